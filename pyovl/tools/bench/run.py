"""scripts/bench: measure pyovl against the kernel's vxlan device.

    python -m pyovl.tools.bench.run [--quick] [--reps N] [--out DIR]

Builds the topologies of pyovl/tools/bench/topo.py (routed, kernel, pyovl-tc,
pyovl-xdp) side by side, then runs every traffic measurement on every mode
in rotated order, --reps times; reports medians and spread (min-max); then
BPF_PROG_RUN costs, the miss path and control-plane scale. Writes
bench.json (with top-level "ratios": pyovl-tc / kernel, same run), bench.png
and prints a table. --quick: short runs, small tables, about a minute.
Everything it builds is removed, also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from pyovl import __version__
from pyovl.tools.bench import profile, progrun, scale, topo, traffic
from pyovl.tools.topo import sweep

PREFIX = topo.PREFIX  # the namespaces this run makes (and sweeps)


def summary(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs), "all": xs}


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def run(quick: bool, reps: int, out_dir: str) -> dict:
    secs = 1.0 if quick else 5.0
    pings = 300 if quick else 2000
    res: dict = {"machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
                             "pyovl": __version__},
                 "command": " ".join(["scripts/bench"] + sys.argv[1:]), "quick": quick, "reps": reps,
                 "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    sweep(PREFIX)
    pairs: dict = {}
    try:
        bare = topo.BarePair(PREFIX)
        res["generator"] = {"udp64_pps_bare_veth": traffic.udp64_pps(bare, secs),
                            "tcp_gbps_bare_veth": traffic.tcp_gbps(bare, secs)[0]}
        bare.destroy()
        for mode in topo.MODES:
            pairs[mode] = topo.Pair(PREFIX, mode)
        raw = {m: {"tcp_gbps": [], "tcp_retransmits": [], "udp64_pps": [], "rr_p50_us": [], "rr_p99_us": []}
               for m in topo.MODES}
        for rep in range(reps):
            order = topo.MODES[rep % len(topo.MODES):] + topo.MODES[:rep % len(topo.MODES)]
            for mode in order:
                p = pairs[mode]
                g, r = traffic.tcp_gbps(p, secs)
                raw[mode]["tcp_gbps"].append(g)
                raw[mode]["tcp_retransmits"].append(r)
                raw[mode]["udp64_pps"].append(traffic.udp64_pps(p, secs))
                p50, p99 = traffic.rr_latency_us(p, pings)
                raw[mode]["rr_p50_us"].append(p50)
                raw[mode]["rr_p99_us"].append(p99)
            print("rep %d/%d done" % (rep + 1, reps), file=sys.stderr, flush=True)
        res["traffic"] = {m: {k: summary(v) for k, v in d.items()} for m, d in raw.items()}
    finally:
        for p in pairs.values():
            p.destroy()
        sweep(PREFIX)
    t = res["traffic"]
    med = lambda m, k: t[m][k]["median"]  # noqa: E731
    res["ratios"] = {"tcp_throughput": ratio(med("pyovl-tc", "tcp_gbps"), med("kernel", "tcp_gbps")),
                     "udp64_pps": ratio(med("pyovl-tc", "udp64_pps"), med("kernel", "udp64_pps")),
                     "rr_p50_latency": ratio(med("pyovl-tc", "rr_p50_us"), med("kernel", "rr_p50_us")),
                     "rr_p99_latency": ratio(med("pyovl-tc", "rr_p99_us"), med("kernel", "rr_p99_us")),
                     "xdp": {"udp64_pps": ratio(med("pyovl-xdp", "udp64_pps"), med("kernel", "udp64_pps")),
                             "rr_p50_latency": ratio(med("pyovl-xdp", "rr_p50_us"), med("kernel", "rr_p50_us"))}}
    if quick:
        res["profile"] = {"skipped": "quick run"}
    else:
        print("CPU profile (perf) ...", file=sys.stderr, flush=True)
        res["profile"] = {"udp": profile.profile(PREFIX, load="udp"), "tcp": profile.profile(PREFIX, load="tcp")}
    print("BPF_PROG_RUN ...", file=sys.stderr, flush=True)
    res["prog_run_ns"] = progrun.measure(PREFIX, (1000, 20000) if quick else (1000, 1000000),
                                         repeat=5000 if quick else 50000)
    big = max((k for k in res["prog_run_ns"] if k.isdigit()), key=int)  # "baseline", "runs" are not sizes
    res["memory_per_target_bytes"] = round(res["prog_run_ns"][big]["targets_memory_bytes"] / int(big), 1)
    print("miss path ...", file=sys.stderr, flush=True)
    from pyovl.tools.bench import misses

    res["miss_path"] = misses.measure(200 if quick else 1000, 3 if quick else 20)
    print("scale ...", file=sys.stderr, flush=True)
    res["scale"] = {}
    for n in ((100, 1000) if quick else (1000, 10000)):
        res["scale"][str(n)] = {"pyovl": scale.pyovl_overlays(PREFIX, n), "kernel_vxlan": scale.kernel_vxlans(PREFIX, n)}
    res["scale_files"] = scale.pyovl_files_overlay(PREFIX, 10000 if quick else 100000)
    print("engine ...", file=sys.stderr, flush=True)
    res["engine"] = engine(quick)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "bench.json"), "w") as f:
        json.dump(res, f, indent=1)
    chart(res, os.path.join(out_dir, "bench.png"))
    return res


def engine(quick: bool = False) -> dict:
    """VNICs against bridge ports, diff at scale, misses during a large up."""
    from pyovl.tools.bench import misses  # noqa: PLC0415

    nv, no = (100, 1000) if quick else (1000, 10000)
    return {"vnics": scale.pyovl_vnics_and_diff(PREFIX, nv, no), "kernel_bridge": scale.kernel_bridge_ports(PREFIX, nv),
            "misses_during_up": misses.measure_during_up(200 if quick else 1000, no)}


def table(res: dict) -> str:
    t = res["traffic"]
    lines = ["%-10s %14s %14s %14s %14s" % ("mode", "TCP Gbit/s", "UDP64 kpps", "RR p50 us", "RR p99 us")]
    def cell(m, k, scale_=1.0, fmt="%.1f"):
        s = t[m][k]
        return (fmt % (s["median"] * scale_)) + (" (%s-%s)" % (fmt % (s["min"] * scale_), fmt % (s["max"] * scale_)))

    for m in topo.MODES:
        lines.append("%-10s %14s %14s %14s %14s" % (m, cell(m, "tcp_gbps"), cell(m, "udp64_pps", 1e-3, "%.0f"),
                                                      cell(m, "rr_p50_us", fmt="%.0f"), cell(m, "rr_p99_us", fmt="%.0f")))
    r = res["ratios"]
    lines.append("ratios pyovl-tc/kernel: TCP %s, UDP64 pps %s, RR p50 %s (p99 %s); pyovl-xdp: UDP64 %s, RR p50 %s"
                 % (r["tcp_throughput"], r["udp64_pps"], r["rr_p50_latency"], r["rr_p99_latency"],
                    r["xdp"]["udp64_pps"], r["xdp"]["rr_p50_latency"]))
    g = res["generator"]
    lines.append("generator ceiling (bare veth): UDP64 %.0f kpps, TCP %.1f Gbit/s" %
                 (g["udp64_pps_bare_veth"] / 1e3, g["tcp_gbps_bare_veth"]))
    base = res["prog_run_ns"]["baseline"]
    for size, row in res["prog_run_ns"].items():
        if size.isdigit() and isinstance(row, dict):
            lines.append("BPF_PROG_RUN, %s targets: encap %d ns, decap TC %d ns, decap XDP %d ns "
                         "(one run per call; a trivial program: TC %d ns, XDP %d ns)"
                         % (size, row["encap"], row["decap_tc"], row["decap_xdp"], base["tc"], base["xdp"]))
    lines.append("memory per target: %s bytes" % res["memory_per_target_bytes"])
    mp = res["miss_path"]
    lines.append("miss -> first delivery p50 %.0f us, p99 %.0f us; resolves/s %s"
                 % (mp["miss_to_first_delivery_us"]["p50"], mp["miss_to_first_delivery_us"]["p99"],
                    mp["resolves_per_second"]))
    for n, row in res["scale"].items():
        lines.append("%s overlays: pyovl %.2fs, maps %.1f MiB (MemAvailable %.1f MiB); "
                     "kernel vxlan devices %.2fs, MemAvailable %.1f MiB" % (
                         n, row["pyovl"]["seconds"], row["pyovl"]["map_memory_bytes"] / 2**20,
                         row["pyovl"]["memory_bytes"] / 2**20,
                         row["kernel_vxlan"]["seconds"], row["kernel_vxlan"]["memory_bytes"] / 2**20))
    for load, pr in (res.get("profile") or {}).items():
        for m, row in (pr.get("modes", {}) if isinstance(pr, dict) else {}).items():
            lines.append("profile %s, %s: overlay %.1f%% of busy CPU (a free overlay would gain at most %.3fx)"
                         % (load, m, row["overlay_share_of_busy_pct"], row["max_gain_if_overlay_free"]))
    f = res.get("scale_files")
    if f:
        lines.append("files overlay, %d entries: pyovl up -d %.2fs (%s)"
                     % (f["entries"], f["seconds"], "table read, ONLINE" if f["ok"] else "FAILED: " + f["error"]))
    return "\n".join(lines)


def chart(res: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = res["traffic"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for ax, (key, title, sc) in zip(axes, (("tcp_gbps", "single-stream TCP (Gbit/s)", 1),
                                           ("udp64_pps", "64-byte UDP (kpps received)", 1e-3),
                                           ("rr_p50_us", "request/response p50 (us, lower is better)", 1))):
        meds = [t[m][key]["median"] * sc for m in topo.MODES]
        lo = [meds[i] - t[m][key]["min"] * sc for i, m in enumerate(topo.MODES)]
        hi = [t[m][key]["max"] * sc - meds[i] for i, m in enumerate(topo.MODES)]
        ax.bar(topo.MODES, meds, yerr=[lo, hi], color=["#999999", "#4477aa", "#ee6677", "#228833"], capsize=4)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("pyovl vs the kernel's vxlan device, %s, %d CPUs (median, min-max of %d runs)"
                 % (res["machine"]["kernel"], res["machine"]["cpus"], res["reps"]), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about a minute: short runs, small tables")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each traffic measurement (default 5)")
    ap.add_argument("--out", default="bench-results", help="directory for bench.json and bench.png")
    args = ap.parse_args()
    res = run(args.quick, args.reps, args.out)
    print(table(res))
    print("wrote %s/bench.json and %s/bench.png" % (args.out, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
