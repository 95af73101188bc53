"""Shared fixtures and capability probes for all test tiers.

Tiers (directories): unit (no root), bpf (BPF_PROG_RUN, root + bcc),
netns (real traffic between namespaces, root), cli (the real executable).
Missing root, bcc or kernel features make tests skip with the reason; they
never pass silently.

Fixtures (Name / Scope / Depends):
  prefix      / session / -           unique name prefix for this run
  leak_check  / session / prefix      after the run, fails if any namespace,
                                      pin dir or state dir of ours is left
  topo        / function / prefix     a pyovl.tools.topo.Topo, destroyed afterwards
"""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest


def _has_bcc() -> str | None:
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "bcc's Python module (python3-bpfcc) is not installed"
    if not os.path.exists("/lib/modules/%s/build/include" % os.uname().release):
        return "no kernel headers for bcc (run scripts/setup-host)"
    return None


def _is_root() -> str | None:
    return None if os.geteuid() == 0 else "needs root"


def pytest_collection_modifyitems(config, items):
    root, bcc = _is_root(), _has_bcc()
    for item in items:
        if any(m in item.keywords for m in ("root", "bpf", "netns")) and root:
            item.add_marker(pytest.mark.skip(reason=root))
        elif "bpf" in item.keywords and bcc:
            item.add_marker(pytest.mark.skip(reason=bcc))


PREFIX = "pt%s" % uuid.uuid4().hex[:4]


@pytest.fixture(scope="session")
def prefix():
    return PREFIX


def _leftovers(pfx: str) -> list[str]:
    left = []
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    left += ["netns " + line.split()[0] for line in out.splitlines() if line.startswith(pfx)]
    from pyovl.dataplane.loader import pin_dir

    for root in (os.path.dirname(pin_dir("x")), "/run/pyovl"):
        if os.path.isdir(root):
            left += [os.path.join(root, d) for d in os.listdir(root) if d.startswith(pfx)]
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    left += ["link " + ln.split(":")[1].strip() for ln in links.splitlines() if pfx in ln]
    return left


@pytest.fixture(scope="session", autouse=True)
def leak_check():
    yield
    if os.geteuid() != 0:
        return
    from pyovl.tools.topo import sweep

    left = _leftovers(PREFIX)
    sweep(PREFIX)
    assert not left, "the suite left these behind: %s" % left


@pytest.fixture
def topo(request):
    from pyovl.tools.topo import Topo

    t = Topo("%s%s" % (PREFIX, uuid.uuid4().hex[:3]))
    try:
        yield t
    finally:
        t.destroy()
