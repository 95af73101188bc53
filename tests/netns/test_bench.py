"""scripts/bench --quick runs in CI time and writes what it promises."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


def test_bench_quick(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pyovl.tools.bench.run", "--quick", "--reps", "2", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads((tmp_path / "bench.json").read_text())
    for key in ("tcp_throughput", "udp64_pps", "rr_p50_latency"):
        assert res["ratios"][key] and res["ratios"][key] > 0, res["ratios"]
    for mode in ("routed", "kernel", "pyovl-tc", "pyovl-xdp"):
        assert res["traffic"][mode]["rr_p50_us"]["median"] > 0, mode
        assert res["traffic"][mode]["tcp_gbps"]["n"] == 2
    assert res["traffic"]["pyovl-tc"]["tcp_gbps"]["median"] > 1  # real traffic went through
    assert res["generator"]["udp64_pps_bare_veth"] > 0
    runs = {k: v for k, v in res["prog_run_ns"].items() if k.isdigit()}
    assert runs and all(row["encap"] > 0 and row["decap_xdp"] > 0 for row in runs.values())
    assert res["prog_run_ns"]["baseline"]["tc"] > 0
    assert res["miss_path"]["miss_to_first_delivery_us"]["samples"] > 0
    assert all(r["pyovl"]["ok"] and r["kernel_vxlan"]["ok"] for r in res["scale"].values())
    assert os.path.getsize(tmp_path / "bench.png") > 10000
    assert "ratios pyovl-tc/kernel" in p.stdout


def test_files_overlay_scale(prefix):
    """scale.pyovl_files_overlay at a small n: up -d succeeds, the table was
    read (ONLINE), and every generated entry is valid for the files plugin."""
    from pyovl.tools.bench import scale
    from pyovl.lookup.plugin import Destination
    from pyovl.lookup.plugins.files import Table

    t = Table(scale.files_table(2000), "files.json")
    assert len(t.dest) == 2000 and all(isinstance(d, Destination) for d in t.dest.values())
    assert (len(t.arp), len(t.ndp), len(t.dhcp)) == (1000, 500, 200)
    assert len({d.ip for d in t.dest.values()}) == 300
    r = scale.pyovl_files_overlay(prefix, 2000)
    assert r["ok"] and r["online"], r
    assert r["entries"] == 2000 and r["seconds"] > 0
