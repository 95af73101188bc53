"""scripts/demo: the main job on an embedded default topology.

    guest ga (10.23.0.1)                         guest gb (10.23.0.2)
          | eth0                                        | eth0
        vnic0 (port program)                          vnic0
    [ host ha: pyovl ]--ul0 198.18.0.1 === 198.18.0.2 ul0--[ host hb: pyovl ]
                      (decap program at TC ingress of ul0)

Overlay 23 is point-to-point (illumos direct): ARP crosses it, nothing is
configured in the guests but an address. Everything is torn down at the end,
also on failure or Ctrl-C.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from pyovl import netns
from pyovl.datapath import Datapath
from pyovl.topo import Topo, sh, sweep

PREFIX = "pyovl-demo"
SENDER = ("import hashlib,random,socket,sys;r=random.Random(1);h=hashlib.sha256();"
          "s=socket.create_connection((sys.argv[1],5001));n=200*2**20\n"
          "while n:\n c=r.randbytes(min(n,2**20));s.sendall(c);h.update(c);n-=len(c)\n"
          "s.shutdown(1);s.recv(1);print(h.hexdigest())")
RECEIVER = ("import hashlib,socket;s=socket.socket();s.setsockopt(1,2,1);s.bind(('0.0.0.0',5001));s.listen(1);"
            "c,_=s.accept();h=hashlib.sha256();n=0\nwhile True:\n b=c.recv(2**20)\n if not b: break\n"
            " h.update(b);n+=len(b)\nc.close();print(n,h.hexdigest())")


def say(msg: str) -> None:
    print("\n== " + msg, flush=True)


def iperf(client_ns: str, server_ns: str, ip: str, seconds: int = 5) -> tuple[float, int]:
    """Single-stream TCP: (Gbit/s received, sender retransmits)."""
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    out = sh("iperf3", "-c", ip, "-t", str(seconds), "-J", ns=client_ns).stdout
    srv.wait(timeout=10)
    end = json.loads(out)["end"]
    return end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)


def main() -> int:
    sweep(PREFIX)
    t = Topo(PREFIX)
    try:
        ha, hb, ga, gb = t.ns("ha"), t.ns("hb"), t.ns("ga"), t.ns("gb")
        t.underlay(ha, hb, "198.18.0.1", "198.18.0.2")
        t.vnic(ha, "vnic0", ga, "02:00:00:00:23:01", ["10.23.0.1/24"])
        t.vnic(hb, "vnic0", gb, "02:00:00:00:23:02", ["10.23.0.2/24"])
        for h, me, peer in ((ha, "198.18.0.1", "198.18.0.2"), (hb, "198.18.0.2", "198.18.0.1")):
            say("%s: pyovl --netns %s dp init ul0; dp add-overlay -v 23 --listen-ip %s --point %s:4789; dp add-port"
                % (h, h, me, peer))
            with netns.inside(h):
                dp = Datapath(instance=h)
                dp.init(["ul0"])
                dp.add_overlay(23, me, point=(peer, 4789))
                dp.add_port("vnic0", 23, "02:00:00:00:23:01" if h == ha else "02:00:00:00:23:02")
                dp.close()
        say("ga pings gb across the overlay (ARP resolves through it)")
        print(sh("ping", "-c", "3", "-i", "0.2", "10.23.0.2", ns=ga).stdout.strip())
        print(sh("ip", "neigh", "show", "10.23.0.2", ns=ga).stdout.strip())
        say("200 MB over TCP, ga -> gb, guests' default offloads, SHA-256 compared")
        rx = subprocess.Popen(["ip", "netns", "exec", gb, "python3", "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
        time.sleep(0.3)
        t0 = time.time()
        sent = sh("python3", "-c", SENDER, "10.23.0.2", ns=ga).stdout.strip()
        n, got = rx.communicate(timeout=60)[0].split()
        print("sent %s\nrecv %s  (%s bytes, %.2fs) -> %s" % (sent, got, n, time.time() - t0,
                                                          "MATCH" if sent == got else "MISMATCH"))
        say("single-stream TCP (iperf3, 5 s)")
        gbps_pyovl, retr = iperf(ga, gb, "10.23.0.2")
        print("pyovl: %.1f Gbit/s (%d retransmits)" % (gbps_pyovl, retr))
        for h in (ha, hb):
            print(subprocess.run([sys.executable, "-m", "pyovl", "--netns", h, "dp", "show"],
                                 capture_output=True, text=True).stdout.rstrip())
        say("the same guests over the kernel's vxlan device + bridge (nolearning, static fdb)")
        for h, me, peer in ((ha, "198.18.0.1", "198.18.0.2"), (hb, "198.18.0.2", "198.18.0.1")):
            with netns.inside(h):
                Datapath(instance=h).teardown()
            sh("ip", "link", "add", "vx23", "type", "vxlan", "id", "23", "local", me, "remote", peer,
               "dstport", "4789", "nolearning", ns=h)
            sh("ip", "link", "add", "br23", "type", "bridge", ns=h)
            sh("ip", "link", "set", "vx23", "master", "br23", "mtu", "1450", ns=h)
            sh("ip", "link", "set", "vnic0", "master", "br23", ns=h)
            for d in ("vx23", "br23"):
                sh("ip", "link", "set", d, "up", ns=h)
        sh("ping", "-c", "2", "10.23.0.2", ns=ga)
        gbps_kernel, retr = iperf(ga, gb, "10.23.0.2")
        print("kernel vxlan: %.1f Gbit/s (%d retransmits)   ratio pyovl/kernel: %.2f"
              % (gbps_kernel, retr, gbps_pyovl / gbps_kernel))
        say("done; everything is being removed. To look around instead, run the steps by hand:"
            " see README.md 'Quick start'")
        return 0
    finally:
        t.destroy()


if __name__ == "__main__":
    sys.exit(main())
