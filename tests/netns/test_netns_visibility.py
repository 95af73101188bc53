"""pyovl.netns under `ip netns exec`: namespaces it creates are visible from
outside, its bpffs root outlives the shell that started it, and
join_host_mounts() changes nothing in the host's mount namespace.

Each case runs a child Python (this venv's) through `ip netns exec H`, as
`ip netns exec H pyovl ...` would; H and every namespace made are named with
the session prefix and removed in fixtures.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import uuid

import pytest

from pyovl import netns

pytestmark = [pytest.mark.netns, pytest.mark.root]

PY = sys.executable


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def _ident(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


def _netns_list() -> list[str]:
    return [ln.split()[0] for ln in _run(["ip", "netns", "list"]).stdout.splitlines() if ln.strip()]


@pytest.fixture(autouse=True)
def _host_has_bpffs():
    if not netns._has_bpffs("/proc/self/mountinfo"):
        pytest.skip("the test process itself has no bpffs at /sys/fs/bpf")


@pytest.fixture
def new_name(prefix):
    made = []

    def new(tag: str) -> str:
        name = "%s%s%s" % (prefix, tag, uuid.uuid4().hex[:4])
        made.append(name)
        return name

    yield new
    for name in made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        if os.path.lexists(os.path.join(netns.NETNS_RUN_DIR, name)):
            os.unlink(os.path.join(netns.NETNS_RUN_DIR, name))


@pytest.fixture
def host(new_name):
    h = new_name("h")
    subprocess.run(["ip", "netns", "add", h], check=True, timeout=30)
    return h


def _exec_in(h: str, code: str, **kw):
    return _run(["ip", "netns", "exec", h, PY, "-c", code], **kw)


def test_created_under_ip_netns_exec_is_visible_outside(host, new_name, tmp_path):
    g = new_name("g")
    code = (
        "import json, os\n"
        "from pyovl import netns\n"
        "netns.join_host_mounts()\n"
        "netns.join_host_mounts()\n"
        "netns.create(%r)\n"
        "print(json.dumps({'mnt': os.readlink('/proc/self/ns/mnt'), 'net': os.readlink('/proc/self/ns/net'),\n"
        "                  'cwd': os.getcwd(), 'bpffs': netns.bpffs_root(), 'exists': netns.exists(%r)}))\n"
    ) % (g, g)
    p = _exec_in(host, code, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    seen = json.loads(p.stdout)
    # Joined the host's mount namespace, still in H's network namespace,
    # same working directory.
    assert seen["mnt"] == os.readlink("/proc/self/ns/mnt")
    assert seen["net"] == "net:[%d]" % os.stat(os.path.join(netns.NETNS_RUN_DIR, host)).st_ino
    assert seen["cwd"] == str(tmp_path)
    assert seen["bpffs"] == "/sys/fs/bpf"
    assert seen["exists"] is True

    assert g in _netns_list()
    assert netns.exists(g) and g in netns.names()
    link = _run(["ip", "netns", "exec", g, "ip", "-o", "link"])
    assert link.returncode == 0, link.stderr
    assert "lo:" in link.stdout

    code = "from pyovl import netns\nnetns.join_host_mounts()\nnetns.remove(%r)\nnetns.remove(%r)\n" % (g, g)
    p = _exec_in(host, code)
    assert p.returncode == 0, p.stderr
    assert g not in _netns_list()
    assert not netns.exists(g)
    assert not os.path.lexists(os.path.join(netns.NETNS_RUN_DIR, g))


def test_create_without_join_fails_instead_of_leaving_a_dead_name(host, new_name):
    # The fallback: when the process stays in ip netns exec's mount namespace,
    # the bind cannot reach the host; create() must say so and clean up.
    g = new_name("g")
    code = (
        "from pyovl import netns\n"
        "from pyovl.errors import KernelError\n"
        "try:\n"
        "    netns.create(%r)\n"
        "except KernelError as e:\n"
        "    print('KernelError', e)\n"
    ) % g
    p = _exec_in(host, code)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("KernelError ") and "--netns" in p.stdout, p.stdout
    assert "\n" not in p.stdout.strip()
    assert g not in _netns_list()
    assert not os.path.lexists(os.path.join(netns.NETNS_RUN_DIR, g))


CHILD = """
import json, os, time
from pyovl import netns
from pyovl.dataplane import loader
if %(join)r:
    netns.join_host_mounts()
shell = os.getppid()
root = netns.bpffs_root()
print(json.dumps({"pid": os.getpid(), "root": root, "pins": loader.pin_dir("x")}), flush=True)
deadline = time.monotonic() + 30
while os.getppid() == shell and time.monotonic() < deadline:
    time.sleep(0.02)
out = {"shell_gone": os.getppid() != shell, "isdir": os.path.isdir(root), "again": netns.bpffs_root()}
try:
    out["ident"] = [os.stat(root).st_dev, os.stat(root).st_ino]
except OSError as e:
    out["ident"] = str(e)
print(json.dumps(out), flush=True)
"""


@pytest.mark.parametrize("join", [True, False], ids=["joined", "fallback-fd"])
def test_bpffs_root_outlives_the_shell(host, join):
    # bash runs `ip netns exec H python` in the background (ip execs python,
    # so the shell is its parent) and exits when we write a line.
    argv = ["ip", "netns", "exec", host, PY, "-c", CHILD % {"join": join}]
    script = "%s & read x" % " ".join(shlex.quote(a) for a in argv)
    sh = subprocess.Popen(["bash", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    child = None
    try:
        first = sh.stdout.readline()
        assert first, sh.stderr.read() if sh.poll() is not None else "no output from the child"
        start = json.loads(first)
        child = start["pid"]
        sh.stdin.write("\n")
        sh.stdin.close()
        sh.wait(timeout=30)
        later = json.loads(sh.stdout.readline())
    finally:
        if sh.poll() is None:
            sh.kill()
            sh.wait()
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh.stdout.close()
        sh.stderr.close()

    root = start["root"]
    if join:
        assert root == "/sys/fs/bpf"
    else:
        assert root.startswith("/proc/self/fd/")
    assert start["pins"].startswith(root + "/pyovl/")
    assert later["shell_gone"]
    assert later["isdir"], later
    assert later["again"] == root
    # The host's bpffs itself, not a private one.
    assert later["ident"] == _ident("/sys/fs/bpf")


def test_join_in_the_host_is_a_no_op(tmp_path):
    code = (
        "import json, os\n"
        "from pyovl import netns\n"
        "def seen():\n"
        "    return [os.readlink('/proc/self/ns/mnt'), os.readlink('/proc/self/ns/net'), os.getcwd(),\n"
        "            netns.bpffs_root()]\n"
        "before = seen()\n"
        "netns.join_host_mounts()\n"
        "netns.join_host_mounts()\n"
        "print(json.dumps([before, seen()]))\n"
    )
    p = _run([PY, "-c", code], cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    before, after = json.loads(p.stdout)
    assert before == after
    assert after[0] == os.readlink("/proc/self/ns/mnt")
    assert after[2] == str(tmp_path) and after[3] == "/sys/fs/bpf"
    assert netns._outside_pid() is None
