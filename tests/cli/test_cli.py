"""Black-box tests of the real `pyovl` executable: exit codes and output.

Bad input gets one line on stderr, a non-zero exit and changes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from pyovl.tools.topo import sh

PYOVL = shutil.which("pyovl") or os.path.join(os.path.dirname(sys.executable), "pyovl")


def run(*args, ns=None):
    argv = [PYOVL] + (["--netns", ns] if ns else []) + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def one_line_error(p, code, text):
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert text in p.stderr, p.stderr


def test_help_has_examples():
    p = run("dp", "add-overlay", "--help")
    assert p.returncode == 0 and "Examples" in p.stdout


@pytest.mark.root
def test_unknown_netns():
    one_line_error(run("dp", "show", ns="no-such-ns-here"), 2, "no such network namespace: no-such-ns-here")


@pytest.mark.root
@pytest.mark.bpf
def test_bad_input_changes_nothing(topo):
    h = topo.ns("h")
    sh("ip", "link", "add", "ul0", "type", "veth", "peer", "name", "ul1", ns=h)
    sh("ip", "addr", "add", "198.18.0.1/24", "dev", "ul0", ns=h)
    sh("ip", "link", "set", "ul0", "up", ns=h)
    one_line_error(run("dp", "init", "ul0", "eth9", ns=h), 2, "no such interface: eth9")
    # nothing half-attached: no pins, no qdisc on ul0
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", "ul0", ns=h).stdout
    assert run("dp", "show", "--json", ns=h).returncode == 0
    assert json.loads(run("dp", "show", "--json", ns=h).stdout)["loaded"] is False

    assert run("dp", "init", "ul0", ns=h).returncode == 0
    try:
        one_line_error(run("dp", "add-overlay", "-v", "16777216", "--listen-ip", "198.18.0.1", ns=h),
                       2, "vnetid 16777216 out of range (0-16777215)")
        one_line_error(run("dp", "add-overlay", "-v", "5", "--listen-ip", "198.18.0.1", "--listen-port", "0",
                           ns=h), 2, "listen port 0 out of range (1-65535)")
        one_line_error(run("dp", "add-overlay", "-v", "5", "--listen-ip", "198.18.0.1", "--point",
                           "198.18.0.2:0", ns=h), 2, "invalid --point '198.18.0.2:0': the port must be 1-65535")
        one_line_error(run("dp", "add-overlay", "-v", "5", "--listen-ip", "not-an-ip", ns=h),
                       2, "invalid listen ip: not-an-ip")
        one_line_error(run("dp", "add-port", "eth9", "-v", "5", "-m", "02:00:00:00:00:01", ns=h),
                       2, "no such interface: eth9")
        assert json.loads(run("dp", "show", "--json", ns=h).stdout)["overlays"] == []
        assert run("dp", "add-overlay", "-v", "5", "--listen-ip", "198.18.0.1", ns=h).returncode == 0
        one_line_error(run("dp", "set-target", "-v", "5", "zz:00", "198.18.0.2:4789", ns=h), 2,
                       "invalid MAC address")
        [ov] = json.loads(run("dp", "show", "--json", ns=h).stdout)["overlays"]
        assert ov["vnetid"] == 5 and ov["mode"] == "dynamic"
        # `ip netns exec` gives the command a private /sys without bpffs: it
        # must still find this instance's pins (through init's bpffs)
        p = subprocess.run(["ip", "netns", "exec", h, PYOVL, "dp", "show", "--json"],
                           capture_output=True, text=True)
        shown = json.loads(p.stdout)
        assert shown["instance"] == h and shown["loaded"] and shown["overlays"][0]["vnetid"] == 5
    finally:
        assert run("dp", "teardown", ns=h).returncode == 0
    # teardown left nothing: no qdisc, no pins
    assert "clsact" not in sh("tc", "qdisc", "show", "dev", "ul0", ns=h).stdout
    assert json.loads(run("dp", "show", "--json", ns=h).stdout)["loaded"] is False


@pytest.mark.root
def test_no_bpf_privilege_is_one_line():
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    p = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", PYOVL, "dp", "init", "lo"],
                       capture_output=True, text=True)
    one_line_error(p, 3, "loading BPF programs is not permitted")
    from pyovl.dataplane import loader

    assert not os.path.exists(loader.pin_dir("default")), "a refused init left pins behind"
