"""Measure the miss path: miss -> first delivery latency, resolves per second.

    python -m pyovl.tools.bench.misses [--latency-misses N] [--bursts N]

Two hosts (namespaces) on a switch, a files overlay whose table holds
--latency-misses MACs on host b; guest a sends one frame to each, 2 ms apart,
and the daemon's own samples (data-path timestamp to frame sent on) give
p50/p99. Then bursts of 1500 frames to unknown MACs (a burst fits the ring)
measure how many misses per second the daemon resolves. Prints JSON.
Everything is removed afterwards.

measure_during_up() (--during-up N) times the same misses while the daemon
applies an `up` that adds N overlays: the daemon takes its lock per action,
so a miss waits for one action, not for the whole `up`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from pyovl.tools.topo import Topo, sweep

SENDER = r"""
import socket, struct, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("g0", 0))
src = bytes.fromhex(sys.argv[1].replace(":", "")); first, n, gap = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
body = b"\x08\x00\x45" + b"\0" * 45
for i in range(first, first + n):
    s.send(b"\x02\xee" + struct.pack("!I", i) + src + body)
    if gap:
        time.sleep(gap)
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency-misses", type=int, default=1000)
    ap.add_argument("--bursts", type=int, default=20)
    ap.add_argument("--during-up", type=int, metavar="OVERLAYS", help="miss latency while up adds this many overlays")
    args = ap.parse_args()
    if args.during_up:
        print(json.dumps(measure_during_up(args.latency_misses, args.during_up), indent=1))
    else:
        print(json.dumps(measure(args.latency_misses, args.bursts), indent=1))
    return 0


def measure_during_up(misses: int = 1000, overlays: int = 10000) -> dict:
    """Miss -> first delivery while the serving daemon applies an `up` that
    adds `overlays` direct overlays: `misses` frames to unknown MACs, 2 ms
    apart, from one sender started just before that `up` (choose misses so
    that the sending lasts about as long as the up: up_seconds says)."""
    with _two_hosts(misses) as (ha, env, tmp, pyovl, status, send):
        doc = json.load(open(os.path.join(tmp, "a.json")))
        props = {"vxlan/listen_ip": "198.18.0.1", "direct/dest_ip": "198.18.0.2", "direct/dest_port": 4789}
        doc["overlays"].update({"ov%d" % i: {"encap": "vxlan", "search": "direct", "vnetid": 1000 + i,
                                             "props": props} for i in range(1, overlays + 1)})
        big = os.path.join(tmp, "big.json")
        with open(big, "w") as f:
            json.dump(doc, f)
        sender = subprocess.Popen(["ip", "netns", "exec", "pyovl-bm-ga", sys.executable, "-c", SENDER,
                                   "02:08:20:00:00:a1", "0", str(misses), "0.002"])
        time.sleep(0.3)  # the sender's interpreter has started: misses flow when the up starts
        t0 = time.monotonic()
        up = subprocess.Popen([pyovl, "--netns", ha, "up", "-d", big], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
        sender.wait(timeout=600)
        sent = misses
        err = up.communicate(timeout=600)[1]
        up_s = time.monotonic() - t0
        time.sleep(0.5)
        lat = status()["latency_us"]
        return {"overlays_added": overlays, "up_seconds": round(up_s, 3), "up_ok": up.returncode == 0,
                "error": err.strip()[:200], "misses_sent": sent, "sending_seconds": round(misses * 0.002, 3),
                "miss_to_first_delivery_us": {"p50": lat["p50"], "p99": lat["p99"], "samples": lat["samples"]}}


class _two_hosts:
    """Hosts a (daemon, guest g0 on a files overlay whose table maps
    `misses` MACs to host b) and b; yields (ha, env, tmp, pyovl, status, send)."""

    def __init__(self, misses: int):
        self.misses = misses

    def __enter__(self):
        try:
            return self._setup()
        except BaseException:
            self.__exit__()  # __exit__ is not called when __enter__ fails: nothing may stay behind
            raise

    def _setup(self):
        self.tmp = tmp = tempfile.mkdtemp(prefix="pyovl-bm-")
        self.env = env = dict(os.environ, PYOVL_RUN_ROOT=tmp + "/run", PYOVL_STATE_ROOT=tmp + "/lib")
        self.pyovl = pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")
        sweep("pyovl-bm")
        self.t = t = Topo("pyovl-bm")
        sw = t.switch()
        ha, hb = t.ns("ha"), t.ns("hb")
        t.attach(ha, sw, "198.18.0.1")
        t.attach(hb, sw, "198.18.0.2")
        table = {"02:ee:%02x:%02x:%02x:%02x" % tuple(i.to_bytes(4, "big")): {"ip": "198.18.0.2", "port": 4789}
                 for i in range(self.misses)}
        table["02:08:20:00:00:a1"] = {"ip": "198.18.0.1", "port": 4789}
        files = os.path.join(tmp, "t.json")
        with open(files, "w") as f:
            json.dump(table, f)
        doc = {"overlays": {"ov0": {"encap": "vxlan", "search": "files", "vnetid": 42,
                                    "props": {"vxlan/listen_ip": "198.18.0.1", "files/config": files}}},
               "vnics": {"g0": {"over": "ov0", "mac": "02:08:20:00:00:a1", "netns": "pyovl-bm-ga",
                                "addresses": ["10.42.0.1/24"]}}}
        with open(os.path.join(tmp, "a.json"), "w") as f:
            json.dump(doc, f)
        subprocess.run([pyovl, "--netns", ha, "up", "-d", os.path.join(tmp, "a.json")], check=True, env=env,
                       capture_output=True)

        def status():
            out = subprocess.run(["ip", "netns", "exec", ha, sys.executable, "-c",
                                  "import json,sys; from pyovl import daemon; "
                                  "print(json.dumps(daemon.request(sys.argv[1], {'op': 'status'})))", ha],
                                 env=env, capture_output=True, text=True, check=True).stdout
            return json.loads(out)

        def send(first, n, gap):
            subprocess.run(["ip", "netns", "exec", "pyovl-bm-ga", sys.executable, "-c", SENDER,
                            "02:08:20:00:00:a1", str(first), str(n), str(gap)], check=True)

        return ha, env, tmp, pyovl, status, send

    def __exit__(self, *exc):
        if hasattr(self, "pyovl"):
            subprocess.run([self.pyovl, "--netns", "pyovl-bm-ha", "down"], env=self.env, capture_output=True)
        if hasattr(self, "t"):
            self.t.destroy()
        subprocess.run(["ip", "netns", "del", "pyovl-bm-ga"], capture_output=True)
        if hasattr(self, "tmp"):
            shutil.rmtree(self.tmp, ignore_errors=True)


def measure(latency_misses: int = 1000, bursts: int = 20) -> dict:
    with _two_hosts(latency_misses) as (ha, env, tmp, pyovl, status, send):
        send(0, latency_misses, 0.002)
        time.sleep(0.5)
        st = status()
        lat = st["latency_us"]
        base, busy0 = st["resolved"], st["busy_s"]
        first, total = 1 << 24, 0
        busy = 0.0
        for _ in range(bursts):
            before = status()["resolved"]
            b0 = time.monotonic()
            send(first, 1500, 0)
            while status()["resolved"] < before + 1500 and time.monotonic() - b0 < 10:
                time.sleep(0.005)
            busy += time.monotonic() - b0
            first += 1500
            total += 1500
        st = status()
        resolved = st["resolved"] - base
        return {"miss_to_first_delivery_us": {"p50": lat["p50"], "p99": lat["p99"], "samples": lat["samples"]},
                "resolves_per_second": round(resolved / (st["busy_s"] - busy0)),
                "resolves_per_wall_second": round(resolved / busy), "resolved": resolved, "sent": total,
                "note": "resolves_per_second: per second the daemon spends handling events (its capacity); "
                        "per wall second includes starting a sender process per burst"}


if __name__ == "__main__":
    sys.exit(main())
