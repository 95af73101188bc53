"""The Vagrant lab, as far as a machine without VMs can check it: the
Vagrantfile parses, the per-VM overlay.json files it generates pass pyovl's
own validator with the VMs' underlay addresses, and its scripts parse."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from pyovl.config import load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VAGRANTFILE = os.path.join(ROOT, "Vagrantfile")


@pytest.mark.skipif(shutil.which("ruby") is None, reason="ruby is not installed (scripts/setup-host installs it)")
def test_vagrantfile_is_valid_ruby():
    p = subprocess.run(["ruby", "-c", VAGRANTFILE], capture_output=True, text=True)
    assert p.returncode == 0 and "Syntax OK" in p.stdout, p.stderr


def test_generated_vm_configs_are_valid(tmp_path):
    text = open(VAGRANTFILE).read()
    hosts = dict(re.findall(r'"(h\d)" => "([\d.]+)"', text))
    assert hosts == {"h1": "198.18.0.11", "h2": "198.18.0.12", "h3": "198.18.0.13"}
    pattern = re.search(r"--underlay '([^']+)'", text).group(1)
    pyovl = os.path.join(os.path.dirname(sys.executable), "pyovl")
    files = tmp_path / "files0.json"
    for n in (1, 2, 3):
        out = tmp_path / ("h%d.json" % n)
        p = subprocess.run([pyovl, "lab", "config", "--host", str(n), "--underlay", pattern, "--out", str(out),
                            "--files", str(files)], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        cfg = load.load_file(str(out))
        assert cfg.overlays["files0"].props["vxlan/listen_ip"] == hosts["h%d" % n]
        assert {v.vlan for v in cfg.vnics.values() if v.over == "files0"} == {10, 20}
        if "p2p0" in cfg.overlays:
            assert cfg.overlays["p2p0"].props["direct/dest_ip"] == hosts["h%d" % (3 - n)]
    table = json.loads(files.read_text())
    assert sorted({e["ip"] for e in table.values()}) == sorted(hosts.values())


def test_systemd_unit_runs_the_daemon_in_the_foreground():
    unit = open(os.path.join(ROOT, "contrib", "systemd", "pyovl.service")).read()
    assert "Type=simple" in unit and "up-overlay" in unit and "pyovl serve" in unit
    assert "up -d" not in unit and "--no-daemon" not in unit  # systemd wants the daemon in the foreground


def test_vagrant_scripts_parse():
    for script in ("scripts/vagrant-check", "scripts/setup-host"):
        path = os.path.join(ROOT, script)
        assert os.access(path, os.X_OK), script
        assert subprocess.run(["bash", "-n", path]).returncode == 0, script
