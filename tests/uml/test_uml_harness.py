"""The user-mode-linux harness: scripts/uml-run through pyovl.tools.uml.

Matrix (each boots its own UML; skips with pyovl.tools.uml.available()'s reason):
  true                          exit 0, nothing on stdout
  false                         exit 1 comes back as it is
  sh: out, err, env, cwd, 3     stdout and stderr kept apart, an --env
                                variable and a PYOVL_* one arrive, same
                                working directory, exit 3
  ESP transport                 esp4 is loaded; two namespaces over a veth
                                pair with static AES-GCM SAs (ip xfrm):
                                ping passes and the SA counts it; with the
                                SAs flushed the policy blocks the ping

   [ a ] va 198.18.0.1 ==ESP== 198.18.0.2 vb [ b ]      (inside UML)

After each test the host holds nothing of it: no private directory
(/var/tmp/pyovl-uml.*, /dev/shm/pyovl-uml.*) whose owner is gone, no
linux.uml process whose state directory is gone. Other runs may be going
on at the same time (other engineers, other tests): those are told apart
by their live owner and existing directory.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from pyovl.tools import uml

pytestmark = [pytest.mark.root, pytest.mark.slow]

_DIRS = ("/var/tmp/pyovl-uml.*", "/dev/shm/pyovl-uml.*")


@pytest.fixture(autouse=True)
def need_uml():
    reason = uml.available()
    if reason:
        pytest.skip(reason)


def _owner_alive(d: str) -> bool:
    try:
        with open(os.path.join(d, "owner")) as f:
            pid = f.read().strip()
        with open("/proc/%s/cmdline" % pid, "rb") as f:
            return b"uml-run" in f.read()
    except OSError:
        return False


def _orphan_umls() -> list[str]:
    """linux.uml processes whose uml-run state directory is gone."""
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"linux.uml"):
            continue
        state = [a[len(b"PYOVL_UML_STATE=") :] for a in args if a.startswith(b"PYOVL_UML_STATE=")]
        if state and not os.path.isdir(state[0]):
            left.append("pid %s (%s)" % (pid, state[0].decode()))
    return left


@pytest.fixture(autouse=True)
def host_left_clean(need_uml):
    """Name: host_left_clean / Scope: function / Depends: need_uml."""
    before = {d for pattern in _DIRS for d in glob.glob(pattern)}
    yield
    new = {d for pattern in _DIRS for d in glob.glob(pattern)} - before
    left = sorted(d for d in new if not _owner_alive(d))
    assert not left, "uml-run left these directories: %s" % left
    orphans = _orphan_umls()
    assert not orphans, "UML processes outlived their run: %s" % orphans


def test_true():
    p = uml.run(["true"], timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == ""


def test_false_exit_status_comes_back():
    p = uml.run(["false"], timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stdout == ""


def test_streams_env_and_cwd():
    script = 'echo "out $UML_T $PYOVL_UML_TEST $PWD"; echo "err" >&2; exit 3'
    os.environ["PYOVL_UML_TEST"] = "passed"
    try:
        p = uml.run(["sh", "-c", script], timeout=60, env={"UML_T": "a b"})
    finally:
        del os.environ["PYOVL_UML_TEST"]
    assert p.returncode == 3, p.stderr
    assert p.stdout == "out a b passed %s\n" % os.getcwd()
    assert p.stderr.endswith("err\n")


# The keys are random per run and never printed (ip xfrm state shows them:
# only its counters are kept).
ESP_SCRIPT = r"""
set -eu
lsmod | grep -q '^esp4 ' || { echo "esp4 is not loaded" >&2; exit 10; }
ip netns add a
ip netns add b
ip link add va netns a type veth peer name vb netns b
ip -n a addr add 198.18.0.1/24 dev va
ip -n b addr add 198.18.0.2/24 dev vb
ip -n a link set va up
ip -n b link set vb up
key() { echo "0x$(od -An -N20 -tx1 /dev/urandom | tr -d ' \n')"; }
k1=$(key) k2=$(key)
for ns in a b; do
	ip -n $ns xfrm state add src 198.18.0.1 dst 198.18.0.2 proto esp spi 0x101 \
		reqid 1 mode transport aead 'rfc4106(gcm(aes))' "$k1" 128
	ip -n $ns xfrm state add src 198.18.0.2 dst 198.18.0.1 proto esp spi 0x102 \
		reqid 1 mode transport aead 'rfc4106(gcm(aes))' "$k2" 128
done
pol() {  # pol NS SRC DST DIR
	ip -n $1 xfrm policy add src $2/32 dst $3/32 dir $4 \
		tmpl src $2 dst $3 proto esp reqid 1 mode transport
}
pol a 198.18.0.1 198.18.0.2 out
pol a 198.18.0.2 198.18.0.1 in
pol b 198.18.0.2 198.18.0.1 out
pol b 198.18.0.1 198.18.0.2 in
ip netns exec a ping -c 2 -i 0.2 -W 2 198.18.0.2 >/dev/null
echo "ping ok"
ip -n a -s xfrm state get src 198.18.0.1 dst 198.18.0.2 proto esp spi 0x101 |
	sed -n '/lifetime current/{n;s/^[[:space:]]*/sa /;p}'
ip -n a xfrm state flush
if ip netns exec a ping -c 1 -W 1 198.18.0.2 >/dev/null 2>&1; then
	echo "plaintext ping passed without SAs"
else
	echo "blocked without SAs"
fi
"""


def test_esp_transport_between_namespaces():
    p = uml.run(["bash", "-c", ESP_SCRIPT], timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert "ping ok" in lines
    sa = [re.search(r"(\d+)\(packets\)", ln) for ln in lines if ln.startswith("sa ")]
    assert sa and sa[0] and int(sa[0].group(1)) >= 2, p.stdout  # both echo requests
    assert lines[-1] == "blocked without SAs"
