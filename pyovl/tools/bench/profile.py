"""Where the CPU goes during the traffic benchmark: `perf record -a -g` while
64-byte UDP (or TCP) flows through one mode's topology, each sample's call
chain sorted into

  overlay  the overlay's own work: pyovl's TC programs and the helpers they
           call (cls_bpf_classify and below); for the kernel mode its vxlan
           and bridge functions; for routed, IP forwarding
  idle     the CPU had nothing to run
  other    everything every mode pays: the generator's syscalls, the guests'
           sockets and IP stacks, veth transmit and backlog processing

so "an overlay that cost nothing" is a number: busy / (busy - overlay) is the
most a cheaper data path could gain on that load. Needs perf (linux-perf);
without it the result says so. python -m pyovl.tools.bench.profile [--tcp]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from pyovl.tools.bench import topo, traffic

OVERLAY_FRAMES = {
    "pyovl-tc": re.compile(r"^(cls_bpf_classify|bpf_prog_\w+_ovl_\w+)$"),
    "pyovl-xdp": re.compile(r"^(cls_bpf_classify|bpf_prog_\w+_ovl_\w+|xdp_do_redirect|bpf_prog_run_generic_xdp)$"),
    "kernel": re.compile(r"^(vxlan_\w+|br_\w+|gro_cell_poll|udp_tunnel\w*|iptunnel_\w+|__br_\w+)$"),
    "routed": re.compile(r"^(ip_forward\w*|ip6_forward\w*)$"),
}
IDLE_FRAMES = re.compile(r"^(do_idle|cpuidle_\w+|default_idle\w*|pv_native_safe_halt|cpu_startup_entry)$")


def classify(script: str, overlay: re.Pattern) -> dict:
    """Count perf script samples by the first matching frame class."""
    counts = {"overlay": 0, "idle": 0, "other": 0}
    frames: list[str] = []

    def flush():
        if frames:
            if any(IDLE_FRAMES.match(f) for f in frames):
                counts["idle"] += 1
            elif any(overlay.match(f) for f in frames):
                counts["overlay"] += 1
            else:
                counts["other"] += 1
        frames.clear()

    for line in script.splitlines():
        if not line.strip():
            flush()
        elif line[0] in " \t":
            parts = line.split()
            if len(parts) >= 2:
                frames.append(parts[1].split("+")[0])
    flush()
    total = sum(counts.values()) or 1
    busy = counts["overlay"] + counts["other"]
    return {"samples": total, **{k + "_pct": round(100.0 * v / total, 1) for k, v in counts.items()},
            "overlay_share_of_busy_pct": round(100.0 * counts["overlay"] / max(busy, 1), 1),
            "max_gain_if_overlay_free": round(busy / max(busy - counts["overlay"], 1), 3)}


def profile_mode(prefix: str, mode: str, seconds: float, load: str) -> dict:
    pair = topo.Pair(prefix, mode)
    tmp = tempfile.mkdtemp(prefix="pyovl-prof-")
    try:
        run = (lambda: traffic.udp64_pps(pair, seconds + 2)) if load == "udp" else \
              (lambda: traffic.tcp_gbps(pair, seconds + 2))
        result: dict = {}
        th = threading.Thread(target=lambda: result.update(rate=run()))
        th.start()
        time.sleep(1.0)  # past the connection set-up
        data = os.path.join(tmp, "perf.data")
        subprocess.run(["perf", "record", "-a", "-g", "-q", "-o", data, "--", "sleep", str(seconds)],
                       check=True, capture_output=True)
        th.join()
        script = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"], check=True,
                                capture_output=True, text=True).stdout
        out = classify(script, OVERLAY_FRAMES[mode])
        out["rate"] = result.get("rate")
        return out
    finally:
        pair.destroy()
        shutil.rmtree(tmp, ignore_errors=True)


def profile(prefix: str, modes=("kernel", "pyovl-tc", "routed"), seconds: float = 3.0, load: str = "udp") -> dict:
    if shutil.which("perf") is None:
        return {"skipped": "perf is not installed (Debian: linux-perf)"}
    return {"load": load, "seconds": seconds, "modes": {m: profile_mode(prefix, m, seconds, load) for m in modes}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tcp", action="store_true", help="single-stream TCP instead of 64-byte UDP")
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    from pyovl.tools.bench.topo import PREFIX  # noqa: PLC0415
    from pyovl.tools.topo import sweep  # noqa: PLC0415

    sweep(PREFIX)
    try:
        print(json.dumps(profile(PREFIX, seconds=args.seconds, load="tcp" if args.tcp else "udp"), indent=1))
    finally:
        sweep(PREFIX)
    return 0


if __name__ == "__main__":
    sys.exit(main())
