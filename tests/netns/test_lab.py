"""The namespace lab passes its own checks and leaves nothing after down."""

from __future__ import annotations

import os
import subprocess

import pytest
from test_cli_helpers import PYOVL

pytestmark = [pytest.mark.netns, pytest.mark.root, pytest.mark.bpf, pytest.mark.slow]


def test_lab_up_check_status_down(prefix):
    lab = prefix + "lab"

    def run(*args, check=True):
        p = subprocess.run([PYOVL, "lab", *args, "--prefix", lab], capture_output=True, text=True, timeout=300)
        assert not check or p.returncode == 0, (args, p.stdout, p.stderr)
        return p

    try:
        out = run("up").stdout
        assert out.count("pyovl daemon started") == 3
        out = run("check").stdout
        assert "FAILED" not in out and out.count(" ok") == 8, out
        st = run("status").stdout
        assert st.count("ONLINE") == 5 and "*:*:*:*:*:*" in st  # files0 x3, p2p0 x2
    finally:
        run("down", check=False)
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert lab not in netns, netns
    from pyovl.dataplane.loader import pin_dir

    for n in (1, 2, 3):
        assert not os.path.exists(pin_dir("%s-h%d" % (lab, n)))
        assert not os.path.exists("/run/pyovl/%s-h%d" % (lab, n))
    assert not os.path.exists("/run/pyovl-lab/" + lab)
    assert "pyovl" not in subprocess.run(["pgrep", "-af", "pyovl.*%s" % lab], capture_output=True, text=True).stdout
