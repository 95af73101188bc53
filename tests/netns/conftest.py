"""Fixtures of the netns tier.

  lab / function / topo, tmp_path   test_daemon.Lab: three hosts on one
                                    switch, a files overlay; every host
                                    brought down and every guest namespace
                                    removed afterwards
"""

from __future__ import annotations

import subprocess

import pytest
from test_daemon import Lab


@pytest.fixture
def lab(topo, tmp_path):
    lab = Lab(topo, tmp_path)
    yield lab
    for h in "abc":
        lab.pyovl(h, "down", check=False)
    for g in lab.guest.values():
        subprocess.run(["ip", "netns", "del", g], capture_output=True)
