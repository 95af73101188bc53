"""Traffic measurements between a Pair's guests (iperf3 and ping).

tcp_gbps      single-stream TCP, Gbit/s received (and the sender's retransmits)
udp64_pps     64-byte frames (22-byte UDP payload), packets/s received
rr_latency_us ICMP echo request/response round trips, p50 and p99, microseconds
"""

from __future__ import annotations

import json
import subprocess
import time

from pyovl.tools.topo import sh


def _iperf(pair, args: list[str], seconds: float) -> dict:
    srv = subprocess.Popen(["ip", "netns", "exec", pair.gb, "iperf3", "-s", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = sh("iperf3", "-c", pair.ip_b, "-t", str(seconds), "-J", "--connect-timeout", "2000", *args,
                 ns=pair.ga, check=False, timeout=seconds + 30).stdout
        srv.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass  # no connection ever reached the server: a failed run, reported as 0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    try:
        return json.loads(out)
    except (ValueError, UnboundLocalError):
        return {}


def tcp_gbps(pair, seconds: float) -> tuple[float, int]:
    end = _iperf(pair, [], seconds).get("end", {})
    if "sum_received" not in end:
        return 0.0, 0
    return end["sum_received"]["bits_per_second"] / 1e9, end["sum_sent"].get("retransmits", 0)


def udp64_pps(pair, seconds: float) -> float:
    end = _iperf(pair, ["-u", "-l", "22", "-b", "0"], seconds).get("end", {})
    s = end.get("sum_received") or end.get("sum", {})
    if not s:
        return 0.0
    received = s.get("packets", 0) - s.get("lost_packets", 0)
    return received / max(s.get("seconds", seconds), 1e-9)


def rr_latency_us(pair, count: int) -> tuple[float, float]:
    out = sh("ping", "-c", str(count), "-i", "0.001", "-W", "1", pair.ip_b, ns=pair.ga, check=False,
             timeout=count * 0.01 + 30).stdout
    rtts = sorted(float(line.split("time=")[1].split()[0]) * 1000 for line in out.splitlines() if "time=" in line)
    if not rtts:
        return 0.0, 0.0
    return rtts[len(rtts) // 2], rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
