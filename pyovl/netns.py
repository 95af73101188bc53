"""Network namespaces and the per-instance bpffs location.

One pyovl instance runs per network namespace, each with its own pins under
<bpffs>/pyovl/v<ABI>/<instance>/. ``enter(name)`` moves this process into a
named netns (setns on the net namespace only: the mount namespace, and so the
host's /sys/fs/bpf, stays). ``ip netns exec`` instead remounts /sys without
bpffs; ``bpffs_root()`` then uses the nearest ancestor process's bpffs through
/proc/<pid>/root, so the pins stay shared and survive the command.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from pyovl.bpf.abi import ABI_VERSION
from pyovl.errors import KernelError, UsageError

NETNS_RUN_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def enter(name: str) -> None:
    path = os.path.join(NETNS_RUN_DIR, name)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise UsageError("no such network namespace: %s" % name) from None
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise KernelError("cannot enter network namespace %s: %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)


def current_name() -> str:
    """Name of this process's netns: its /run/netns name, else 'default'."""
    me = os.stat("/proc/self/ns/net")
    try:
        init = os.stat("/proc/1/ns/net")
        if (init.st_dev, init.st_ino) == (me.st_dev, me.st_ino):
            return "default"
    except OSError:
        pass
    try:
        for name in sorted(os.listdir(NETNS_RUN_DIR)):
            st = os.stat(os.path.join(NETNS_RUN_DIR, name))
            if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
                return name
    except OSError:
        pass
    return "default"


def _has_bpffs(mountinfo: str, path: str = "/sys/fs/bpf") -> bool:
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if fields[4] == path and fields[fields.index("-") + 1] == "bpf":
                    return True
    except OSError:
        pass
    return False


def _ppid(pid: int) -> int:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def bpffs_root() -> str:
    if _has_bpffs("/proc/self/mountinfo"):
        return "/sys/fs/bpf"
    # Under `ip netns exec` /sys is private and has no bpffs. The shell that
    # ran it still sees the host's: use the nearest ancestor's, through its
    # root (init's /proc/1/root may be out of reach in containers).
    pid = os.getppid()
    for _ in range(16):
        if pid <= 0:
            break
        alt = "/proc/%d/root/sys/fs/bpf" % pid
        if _has_bpffs("/proc/%d/mountinfo" % pid) and os.access(alt, os.R_OK | os.X_OK):
            return alt
        pid = _ppid(pid)
    os.makedirs("/sys/fs/bpf", exist_ok=True)
    if _libc.mount(b"bpf", b"/sys/fs/bpf", b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise KernelError("no bpffs at /sys/fs/bpf and mounting one failed: %s" % os.strerror(err))
    return "/sys/fs/bpf"


def pin_dir(instance: str) -> str:
    return os.path.join(bpffs_root(), "pyovl", "v%d" % ABI_VERSION, instance)


class inside:
    """Context manager: run the block inside netns name, then come back."""

    def __init__(self, name: str):
        self.name = name
        self._home = -1

    def __enter__(self) -> "inside":
        self._home = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            enter(self.name)
        except BaseException:
            os.close(self._home)
            raise
        return self

    def __exit__(self, *exc) -> None:
        try:
            if _libc.setns(self._home, _CLONE_NEWNET) != 0:
                raise KernelError("cannot return to the original network namespace")
        finally:
            os.close(self._home)
