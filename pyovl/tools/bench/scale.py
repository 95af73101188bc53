"""Control-plane scale: time and memory to bring up N overlays with pyovl
(`pyovl up --no-daemon` of a file of N direct overlays) against N kernel vxlan
devices (`ip -batch`), each in a fresh namespace. Memory is the drop in the
host's MemAvailable (noisy; both measured the same way). Also the time of
`pyovl up -d` of one files overlay whose table has N entries."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time

from pyovl.tools.topo import sh, sweep_ns


def _mem_available_kb() -> int:
    """MemAvailable after dropping clean caches, so the page cache's comings
    and goings do not drown the measurement."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    time.sleep(0.2)
    with open("/proc/meminfo") as f:
        return int([line.split()[1] for line in f if line.startswith("MemAvailable")][0])


def _host(ns: str) -> None:
    sweep_ns(ns)
    sh("ip", "netns", "add", ns)
    sh("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1", ns=ns)
    sh("ip", "addr", "add", "198.18.0.1/24", "dev", "ul0", ns=ns)
    sh("ip", "link", "set", "ul0", "up", ns=ns)
    sh("ip", "link", "set", "ul1", "up", ns=ns)


def _map_memory(instance: str) -> int:
    """The kernel's account (fdinfo memlock) of the maps an overlay uses."""
    from pyovl.dataplane import syscall  # noqa: PLC0415
    from pyovl.dataplane.loader import pin_dir  # noqa: PLC0415

    total = 0
    for name in ("overlays", "flood", "listen_ports"):
        fd = syscall.obj_get(os.path.join(pin_dir(instance), name))
        try:
            with open("/proc/self/fdinfo/%d" % fd) as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("memlock:"))
        finally:
            os.close(fd)
    return total


def pyovl_overlays(prefix: str, n: int) -> dict:
    ns = "%s-scale-p" % prefix
    _host(ns)
    tmp = tempfile.mkdtemp(prefix="pyovl-scale-")
    env = dict(os.environ, PYOVL_RUN_ROOT=tmp + "/run", PYOVL_STATE_ROOT=tmp + "/lib")
    pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")
    doc = {"overlays": {"ov%d" % i: {"encap": "vxlan", "search": "direct", "vnetid": i,
                                     "props": {"vxlan/listen_ip": "198.18.0.1", "direct/dest_ip": "198.18.0.2",
                                               "direct/dest_port": 4789}} for i in range(1, n + 1)}}
    path = os.path.join(tmp, "o.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    try:
        # programs compiled first: the measurement is the overlays, not bcc
        subprocess.run([pyovl, "--netns", ns, "dp", "init", "ul0"], check=True, capture_output=True, env=env)
        mem0 = _mem_available_kb()
        t0 = time.monotonic()
        p = subprocess.run([pyovl, "--netns", ns, "up", "--no-daemon", path], capture_output=True, text=True, env=env)
        secs = time.monotonic() - t0
        mem = (mem0 - _mem_available_kb()) * 1024
        ok = p.returncode == 0
        return {"seconds": round(secs, 3), "memory_bytes": mem, "map_memory_bytes": _map_memory(ns), "ok": ok,
                "error": p.stderr.strip()[:200]}
    finally:
        subprocess.run([pyovl, "--netns", ns, "down"], capture_output=True, env=env)
        sweep_ns(ns)
        subprocess.run(["rm", "-rf", tmp])


def files_table(n: int, hosts: int = 300) -> dict:
    """An overlay_files table of n guests: distinct MACs, spread over `hosts`
    underlay hosts in 198.18.0.0/15 (port 4789); every second guest has an
    overlay IPv4 (proxy ARP), every fourth an IPv6 too (proxy NDP), every
    tenth a DHCP proxy (the first guest, the tenant's DHCP server)."""
    base = int(ipaddress.ip_address("198.18.1.1"))
    dhcp = "02:08:20:00:00:00"
    table = {}
    for i in range(n):
        e: dict = {"ip": str(ipaddress.ip_address(base + i % hosts)), "port": 4789}
        if i % 2 == 0:
            e["arp"] = "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255)
        if i % 4 == 0:
            e["ndp"] = "fd00::%x:%x" % (i >> 16, i & 0xFFFF)
        if i % 10 == 5:
            e["dhcp-proxy"] = dhcp
        table["02:08:20:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)] = e
    return table


def pyovl_files_overlay(prefix: str, n: int) -> dict:
    """Time `pyovl up -d` of one files overlay whose table has n entries, in a
    fresh namespace (programs compiled first, as for pyovl_overlays).

    What `up` does with a files overlay: it writes the overlay's map entries
    only; the table is read by the daemon, which parses and indexes the whole
    file once when it starts the plugin (files.FilesPlugin.start), before it
    reports ready, and then answers misses from memory, lazily: no target is
    written into the BPF maps at `up`. So `up --no-daemon` never opens the
    file (it would time nothing of the n entries); `up -d` returns once the
    daemon is ready, that is after the whole table is parsed. That is what is
    timed (wall clock, the command's whole run). `online` checks the table was
    really read: `show-overlay -f` says ONLINE only when the plugin started
    (a missing or malformed file says DEGRADED)."""
    ns = "%s-scale-f" % prefix
    tmp = tempfile.mkdtemp(prefix="pyovl-scale-")
    env = dict(os.environ, PYOVL_RUN_ROOT=tmp + "/run", PYOVL_STATE_ROOT=tmp + "/lib")
    pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")
    files = os.path.join(tmp, "files.json")
    doc = {"overlays": {"ov0": {"encap": "vxlan", "search": "files", "vnetid": 1,
                                "props": {"vxlan/listen_ip": "198.18.0.1", "files/config": files}}}}
    path = os.path.join(tmp, "o.json")
    try:
        _host(ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)  # the daemon's metrics listen on 127.0.0.1
        with open(files, "w") as f:
            json.dump(files_table(n), f)
        with open(path, "w") as f:
            json.dump(doc, f)
        # programs compiled first: the measurement is the overlay and its table, not bcc
        subprocess.run([pyovl, "--netns", ns, "dp", "init", "ul0"], check=True, capture_output=True, env=env)
        t0 = time.monotonic()
        p = subprocess.run([pyovl, "--netns", ns, "up", "-d", path], capture_output=True, text=True, env=env,
                           timeout=600)
        secs = time.monotonic() - t0
        st = subprocess.run([pyovl, "--netns", ns, "show-overlay", "-f", "-p", "-o", "status,details", "ov0"],
                            capture_output=True, text=True, env=env, timeout=60)
        online = st.returncode == 0 and st.stdout.strip() == "ONLINE:-"
        ok = p.returncode == 0 and online
        return {"entries": n, "file_bytes": os.path.getsize(files), "seconds": round(secs, 3), "ok": ok,
                "online": online, "error": "" if ok else (p.stderr.strip() or st.stdout.strip())[:200]}
    finally:
        subprocess.run([pyovl, "--netns", ns, "down"], capture_output=True, env=env)
        sweep_ns(ns)
        subprocess.run(["rm", "-rf", tmp])


def kernel_vxlans(prefix: str, n: int) -> dict:
    ns = "%s-scale-k" % prefix
    _host(ns)
    lines = ["link add vx%d type vxlan id %d local 198.18.0.1 remote 198.18.0.2 dstport 4789 nolearning"
             % (i, i) for i in range(1, n + 1)]
    lines += ["link set vx%d up" % i for i in range(1, n + 1)]
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        mem0 = _mem_available_kb()
        t0 = time.monotonic()
        p = subprocess.run(["ip", "-n", ns, "-batch", f.name], capture_output=True, text=True)
        secs = time.monotonic() - t0
        mem = (mem0 - _mem_available_kb()) * 1024
        return {"seconds": round(secs, 3), "memory_bytes": mem, "ok": p.returncode == 0,
                "error": p.stderr.strip()[:200]}
    finally:
        os.unlink(f.name)
        sweep_ns(ns)


def _up_file(ns: str, doc: dict, env: dict, tmp: str, *args: str) -> subprocess.CompletedProcess:
    path = os.path.join(tmp, "o.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")
    return subprocess.run([pyovl, "--netns", ns, *args, path], capture_output=True, text=True, env=env)


def pyovl_vnics_and_diff(prefix: str, n_vnics: int, n_overlays: int) -> dict:
    """The engine at scale: `up --no-daemon` of n_vnics VNICs (guest ends
    left in the host namespace, as for VMs) on overlays of 32, then of
    n_overlays more overlays beside them, then `pyovl diff` of that file on
    the host that matches it (the engine's observe + desire + plan alone)."""
    ns = "%s-scale-v" % prefix
    _host(ns)
    tmp = tempfile.mkdtemp(prefix="pyovl-scale-")
    env = dict(os.environ, PYOVL_RUN_ROOT=tmp + "/run", PYOVL_STATE_ROOT=tmp + "/lib")
    pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")
    props = {"vxlan/listen_ip": "198.18.0.1", "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789}
    per = 32  # VNICs per overlay and host: the data path's flood list (abi.MAX_FLOOD)
    k = (n_vnics + per - 1) // per
    doc = {"overlays": {"ov%d" % j: {"encap": "vxlan", "search": "direct", "vnetid": j + 1, "props": props}
                        for j in range(k)},
           "vnics": {"v%d" % i: {"over": "ov%d" % (i // per), "mac": "02:08:21:00:%02x:%02x" % (i >> 8, i & 0xFF)}
                     for i in range(n_vnics)}}
    try:
        subprocess.run([pyovl, "--netns", ns, "dp", "init", "ul0"], check=True, capture_output=True, env=env)
        t0 = time.monotonic()
        p = _up_file(ns, doc, env, tmp, "up", "--no-daemon")
        vnic_s = time.monotonic() - t0
        if p.returncode != 0:
            return {"ok": False, "error": p.stderr.strip()[:200]}
        doc["overlays"].update({"ov%d" % i: {"encap": "vxlan", "search": "direct", "vnetid": i + 1, "props": props}
                                for i in range(k, k + n_overlays)})
        t0 = time.monotonic()
        p = _up_file(ns, doc, env, tmp, "up", "--no-daemon")
        overlays_s = time.monotonic() - t0
        t0 = time.monotonic()
        d = _up_file(ns, doc, env, tmp, "diff")
        diff_s = time.monotonic() - t0
        return {"ok": p.returncode == 0 and d.returncode == 0 and d.stdout == "", "vnics": n_vnics,
                "overlays": n_overlays, "vnics_seconds": round(vnic_s, 3),
                "per_vnic_ms": round(vnic_s * 1000 / n_vnics, 2), "overlays_seconds": round(overlays_s, 3),
                "diff_seconds": round(diff_s, 3), "error": (p.stderr or d.stderr or d.stdout).strip()[:200]}
    finally:
        subprocess.run([pyovl, "--netns", ns, "down"], capture_output=True, env=env)
        sweep_ns(ns)
        subprocess.run(["rm", "-rf", tmp])


def kernel_bridge_ports(prefix: str, n: int) -> dict:
    """The kernel's nearest thing to n VNICs: n veth pairs, one end of each
    on a bridge, both up (`ip -batch`)."""
    ns = "%s-scale-b" % prefix
    _host(ns)
    lines = ["link add br0 type bridge", "link set br0 up"]
    lines += ["link add vb%d type veth peer name vg%d" % (i, i) for i in range(n)]
    lines += ["link set vb%d master br0 up" % i for i in range(n)]
    lines += ["link set vg%d up" % i for i in range(n)]
    with tempfile.NamedTemporaryFile("w", suffix=".batch", delete=False) as f:
        f.write("\n".join(lines) + "\n")
    try:
        t0 = time.monotonic()
        p = subprocess.run(["ip", "-n", ns, "-batch", f.name], capture_output=True, text=True)
        secs = time.monotonic() - t0
        return {"ports": n, "seconds": round(secs, 3), "per_port_ms": round(secs * 1000 / n, 2),
                "ok": p.returncode == 0, "error": p.stderr.strip()[:200]}
    finally:
        os.unlink(f.name)
        sweep_ns(ns)


if __name__ == "__main__":  # python -m pyovl.tools.bench.scale [VNICS OVERLAYS]
    nv, no = (int(a) for a in (sys.argv[1:3] or ("1000", "10000")))
    print(json.dumps({"pyovl": pyovl_vnics_and_diff("bsc", nv, no), "kernel_bridge": kernel_bridge_ports("bsc", nv)},
                     indent=1))
