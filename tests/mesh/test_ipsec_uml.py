"""Run tests/mesh/test_ipsec.py inside user-mode-linux, from a host whose
kernel has no ESP (this VM's 6.18 has XFRM but not CONFIG_INET_ESP).

Debian's user-mode-linux (a 6.1 kernel as a process, ESP/XFRM/veth/vxlan
as modules) boots with the host's filesystem as its root (hostfs), so the
same checkout, venv and strongSwan run inside. scripts/uml-run does the
booting when it exists; until then (or when it is absent) this file boots
UML itself with a small init script. Either way nothing stays behind:
namespaces and daemons die with UML, the state directory is removed.

Skips, with the reason: this kernel has ESP (test_ipsec.py then runs
directly), no root, no linux.uml, no UML modules tree.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from pyovl.mesh import xfrm

pytestmark = [pytest.mark.root, pytest.mark.slow]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UML = "/usr/bin/linux.uml"
UML_RELEASE = "6.1.176"  # Debian 12's user-mode-linux 6.1um4
UML_MODULES = "/usr/lib/uml/modules/" + UML_RELEASE
TARGET = "tests/mesh/test_ipsec.py"
TIMEOUT = 900
MODULES = ("veth vxlan af_packet xfrm_user xfrm_algo esp4 esp6 aes_generic gcm ghash-generic ctr seqiv "
           "echainiv authenc hmac cbc sha256_generic sha512_generic")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root"
    if os.environ.get("PYOVL_IN_UML"):
        return "already inside user-mode-linux"
    if xfrm.esp_unsupported() is None:
        return "this kernel has ESP: %s runs directly" % TARGET
    if not os.access(UML, os.X_OK):
        return "no %s (apt install user-mode-linux)" % UML
    if not os.path.isdir(UML_MODULES):
        return "no UML modules at %s" % UML_MODULES
    from pyovl.tools import uml  # noqa: PLC0415

    return uml.boot_problem()


def _pytest_argv() -> list[str]:
    return [sys.executable, "-m", "pytest", TARGET, "-p", "no:cacheprovider", "-q", "-rs", "-s"]


def _via_uml_run() -> tuple[int, str]:
    r = subprocess.run([os.path.join(REPO, "scripts", "uml-run"), "--timeout", str(TIMEOUT),
                        "--env", "PYOVL_IN_UML=1", "--", *_pytest_argv()],
                       cwd=REPO, capture_output=True, text=True, timeout=TIMEOUT + 60)
    return r.returncode, r.stdout + r.stderr


INIT = r"""#!/bin/bash
# PID 1 inside UML (written by tests/mesh/test_ipsec_uml.py).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYOVL_IN_UML=1
mount -t proc proc /proc; mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=755 tmpfs /run; mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs tmpfs /dev/shm
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
ip link set lo up
for m in %(modules)s; do modprobe -q "$m" || echo "modprobe $m failed" >&2; done
cd %(repo)s && %(cmd)s >%(state)s/out 2>&1
echo $? >%(state)s/rc
sync
poweroff -f
"""


def _by_hand() -> tuple[int, str]:
    # /tmp and /run are tmpfs inside UML: the state must live elsewhere.
    state = tempfile.mkdtemp(prefix="pyovl-uml-", dir="/var/tmp")
    link = "/lib/modules/" + UML_RELEASE
    made_link = False
    proc = None
    try:
        if not os.path.exists(link):
            os.symlink(UML_MODULES, link)  # kmod inside UML looks here
            made_link = True
        init = os.path.join(state, "init")
        with open(init, "w") as f:
            f.write(INIT % {"modules": MODULES, "repo": REPO, "state": state,
                            "cmd": " ".join(_pytest_argv())})
        os.chmod(init, 0o700)
        os.mkdir(os.path.join(state, "uml"))
        with open(os.path.join(state, "console"), "wb") as console:
            proc = subprocess.Popen([UML, "mem=1G", "rootfstype=hostfs", "rootflags=/", "rw",
                                     "uml_dir=" + os.path.join(state, "uml"), "init=" + init,
                                     "con=null", "con0=fd:0,fd:1"],
                                    stdin=subprocess.DEVNULL, stdout=console, stderr=console,
                                    start_new_session=True)
            try:
                proc.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        out = open(os.path.join(state, "out")).read() if os.path.exists(os.path.join(state, "out")) else ""
        if not os.path.exists(os.path.join(state, "rc")):
            tail = open(os.path.join(state, "console"), errors="replace").read()[-3000:]
            return 125, out + "\nUML did not finish; console tail:\n" + tail
        return int(open(os.path.join(state, "rc")).read().strip() or 125), out
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # UML and its helpers: their own session
            proc.wait()
        if made_link:
            os.unlink(link)
        shutil.rmtree(state, ignore_errors=True)


def test_ipsec_mesh_inside_uml():
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    uml_run = os.path.join(REPO, "scripts", "uml-run")
    rc, out = _via_uml_run() if os.access(uml_run, os.X_OK) else _by_hand()
    print(out[-4000:])
    assert rc == 0, "the IPsec tests failed inside UML (exit %d):\n%s" % (rc, out[-6000:])
    m = re.search(r"(\d+) passed", out)
    assert m and int(m.group(1)) > 0, out[-2000:]
    assert "skipped" not in out.splitlines()[-1], "tests skipped inside UML:\n%s" % out[-2000:]
