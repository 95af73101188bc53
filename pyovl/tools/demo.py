"""scripts/demo: the lab, brought up and shown working.

Brings up the namespace lab (pyovl/tools/lab.py: three hosts, a point-to-point
overlay and a files overlay with two VLANs, each host its own daemon), then
shows: pings on every path, a 200 MB TCP transfer with its checksum across
hosts on each overlay, show-overlay (default, -t, -f), a metrics excerpt, and
how to look around and tear down. The lab stays up.
"""

from __future__ import annotations

import subprocess
import sys
import time

from pyovl.tools.lab import Lab, guest_ip
from pyovl.tools.topo import sh

SENDER = ("import hashlib,random,socket,sys;r=random.Random(1);h=hashlib.sha256();"
          "s=socket.create_connection((sys.argv[1],5001));n=200*2**20\n"
          "while n:\n c=r.randbytes(min(n,2**20));s.sendall(c);h.update(c);n-=len(c)\n"
          "s.shutdown(1);s.recv(1);print(h.hexdigest())")
RECEIVER = ("import hashlib,socket;s=socket.socket();s.setsockopt(1,2,1);s.bind(('0.0.0.0',5001));s.listen(1);"
            "c,_=s.accept();h=hashlib.sha256();n=0\nwhile True:\n b=c.recv(2**20)\n if not b: break\n"
            " h.update(b);n+=len(b)\nc.close();print(n,h.hexdigest())")


def say(msg: str) -> None:
    print("\n== " + msg, flush=True)


def transfer(lab: Lab, src: tuple[int, str], dst: tuple[int, str]) -> None:
    rx = subprocess.Popen(["ip", "netns", "exec", lab.guest(*dst), "python3", "-c", RECEIVER],
                          stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)
    t0 = time.time()
    sent = sh("python3", "-c", SENDER, guest_ip(*dst), ns=lab.guest(*src)).stdout.strip()
    n, got = rx.communicate(timeout=60)[0].split()
    secs = time.time() - t0
    print("g%d%s -> g%d%s: %s bytes in %.2fs (%.1f Gbit/s), sha256 %s... %s" % (
        *src, *dst, n, secs, int(n) * 8 / secs / 1e9, got[:16], "MATCH" if got == sent else "MISMATCH"))


def main() -> int:
    lab = Lab("lab")
    say("pyovl lab up: three hosts (namespaces lab-h1..3), each running `pyovl up -d` on its own overlay.json")
    for line in lab.up():
        print(line)
    say("pings on every path (the first packets to a new guest are held by the daemon, not lost)")
    results = lab.checks()
    for name, ok in results:
        print("%-40s %s" % (name, "ok" if ok else "FAILED"))
    say("200 MB over TCP with a SHA-256 check, guests' default offloads")
    transfer(lab, (1, "p"), (2, "p"))
    transfer(lab, (1, "a"), (3, "a"))
    for args in (("show-overlay",), ("show-overlay", "-t"), ("show-overlay", "-f")):
        say("pyovl --netns lab-h1 %s" % " ".join(args))
        print(lab.run(1, *args).stdout.rstrip())
    say("metrics excerpt: ip netns exec lab-h1 curl http://127.0.0.1:9134/metrics")
    text = sh("python3", "-c", "import urllib.request;print(urllib.request.urlopen("
              "'http://127.0.0.1:9134/metrics').read().decode())", ns=lab.host(1)).stdout
    for line in text.splitlines():
        if line.startswith(("pyovl_packets_total", "pyovl_lookups_total", "pyovl_overlay_degraded",
                            "pyovl_targets")):
            print(line)
    say("look around")
    print("""  scripts/lab status                                  show-overlay -f / -t, show-vnic on every host
  scripts/lab check                                   the lab's own checks
  ip netns exec lab-g1a ping 10.200.10.3              a guest (g<host><a|b|p>) on VLAN 10
  .venv/bin/pyovl --netns lab-h2 show-overlay files0  any pyovl verb on a host
  cat /run/pyovl-lab/lab/h1.json                      the file host 1 runs
  scripts/lab down                                    remove everything""")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
