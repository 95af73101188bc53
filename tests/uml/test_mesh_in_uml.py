"""The Danube mesh tests (tests/mesh/test_mesh_lab.py, and the firewall's
kernel-behaviour test) inside user-mode-linux, from a host whose kernel has
no ESP.

One UML boot runs them with the same checkout, venv, strongSwan and bcc
(hostfs root); their output comes back here and is shown when they fail.
Skips with the reason when this kernel has ESP (they then run directly in
the normal suite) or when UML cannot run here (pyovl.tools.uml.available()).
"""

from __future__ import annotations

import sys

import pytest

from pyovl.tools import uml
from pyovl.mesh import xfrm

pytestmark = [pytest.mark.root, pytest.mark.slow]

TARGETS = ["tests/mesh/test_mesh_lab.py", "tests/mesh/test_mesh_firewall_uml.py"]


def test_mesh_lab_inside_uml():
    if xfrm.esp_unsupported() is None:
        pytest.skip("this kernel has ESP: %s run directly" % ", ".join(TARGETS))
    reason = uml.available()
    if reason:
        pytest.skip(reason)
    r = uml.run([sys.executable, "-m", "pytest", *TARGETS, "-p", "no:cacheprovider", "-q", "-rs"],
                timeout=1500, env={"PYOVL_IN_UML": "1"}, mem="1536M")
    print(r.stdout[-6000:], r.stderr[-3000:])
    assert r.returncode == 0, "the mesh tests failed inside UML:\n%s\n%s" % (r.stdout[-6000:], r.stderr[-3000:])
    assert " passed" in r.stdout and " failed" not in r.stdout
