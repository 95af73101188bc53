"""Kernel capability checks: what pyovl needs and what is missing.

check() returns a list of one-line problems (empty when all is there). Each
probe uses the real facility: the bpf(2) syscall, BTF in sysfs, the clsact
qdisc and an XDP attach on a throwaway veth pair in a scratch namespace.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid

from pyovl.dataplane import syscall


def bpf_syscall_problem() -> str | None:
    """None when this process may load a TC BPF program, else why not."""
    try:
        syscall.probe_prog_load()
    except OSError as e:
        if e.errno == errno.ENOSYS:
            return "this kernel has no bpf() syscall (CONFIG_BPF_SYSCALL)"
        if e.errno == errno.EPERM:
            return "loading BPF programs is not permitted: run as root (CAP_BPF and CAP_NET_ADMIN)"
        return "the kernel refused a trivial BPF program: %s" % os.strerror(e.errno)
    return None


def _scratch(script: str) -> str | None:
    ns = "pyovl-chk-%s" % uuid.uuid4().hex[:8]
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
        p = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", script], capture_output=True, text=True)
        return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["failed"])[-1]
    except (OSError, subprocess.CalledProcessError) as e:
        return str(e)
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def check() -> list[str]:
    problems = []
    if os.geteuid() != 0:
        return ["not root: pyovl needs root (or CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)"]
    err = bpf_syscall_problem()
    if err:
        problems.append(err)
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        problems.append("no BTF (/sys/kernel/btf/vmlinux; CONFIG_DEBUG_INFO_BTF)")
    if not os.path.exists("/lib/modules/%s/build/include" % os.uname().release):
        problems.append("no kernel headers for bcc at /lib/modules/%s/build: run scripts/setup-host"
                        % os.uname().release)
    err = _scratch("ip link add name pyovlchk0 type veth peer name pyovlchk1 && tc qdisc add dev pyovlchk0 clsact")
    if err:
        problems.append("no clsact qdisc (CONFIG_NET_SCH_INGRESS): " + err)
    try:
        import bcc  # noqa: F401,PLC0415
    except ImportError:
        problems.append("bcc's Python module is missing (python3-bpfcc): run scripts/setup-host")
    return problems
