"""Network namespaces, the host's mount namespace, and the bpffs location.

Contract:
  join_host_mounts()  once at process start, before any thread: if this
                      process runs in a copy of the host's mount namespace
                      made by `ip netns exec`, move back into the host's one
                      (network namespace unchanged). Never raises; a no-op
                      in the host. Idempotent.
  create(name)        a named netns in /run/netns, like `ip netns add`,
                      visible to `ip netns` and every process. UsageError
                      (bad name, exists) or KernelError, one line.
  remove(name)        like `ip netns del`; no error when already gone.
  exists(name), names()  named network namespaces (a leftover file in
                      /run/netns that is not a netns bind mount is not one).
  enter(name), inside(name)  setns into a named netns (net only).
  bpffs_root()           where bpffs is (dataplane.loader.pin_dir builds on it):
                      <bpffs>/pyovl/v<ABI>/<instance>/.

Why join the host's mount namespace. `ip netns exec H cmd` unshares the
mount namespace, makes every mount a slave (MS_SLAVE|MS_REC: mounts
propagate in from the host, never out) and remounts /sys with H's sysfs,
so /sys/fs/bpf is gone. Two things then break for a long-lived pyovl:
  - a netns pyovl names is a bind mount of nsfs onto /run/netns/NAME; made
    in the slave copy it stays there, and the host sees only the empty file
    ("setting the network namespace failed: Invalid argument"). iproute2's
    own `ip netns add` under `ip netns exec` has the same defect: making
    /run/netns shared inside the slave copy starts a new peer group that
    still only receives;
  - the host's bpffs is reachable only through another process's
    /proc/<pid>/root, which stops resolving when that process exits.
setns(CLONE_NEWNS) into the mount namespace of the process that ran
`ip netns exec` fixes both at the root: /run/netns and /sys/fs/bpf are the
host's again, for as long as this process lives. The net namespace is a
separate setns type, so pyovl still runs in H. Preconditions the kernel
imposes: CAP_SYS_ADMIN (and CAP_SYS_CHROOT) over the target, and a
single-threaded process (setns(CLONE_NEWNS) returns EINVAL otherwise), hence
a call at CLI start. setns resets cwd and root to the target's root, so the
cwd is restored by path (and checked to be the same directory).

When to join: only if /sys/fs/bpf is not bpffs here and the candidate (the
nearest ancestor, else PID 1) is in another mount namespace with the same
root directory and has bpffs at /sys/fs/bpf, or a different sysfs (which is
what ip netns exec leaves behind). The same-root test keeps a container's
process (its own root) from switching file systems under the operator's
paths; a sandbox that keeps /sys (systemd Private*=) has bpffs and stays.
Things ip netns exec adds that are lost by joining: the /etc/netns/H/* bind
mounts (resolv.conf...), which pyovl does not read. /sys is then the host's
sysfs, of another netns: pyovl reads only netns-independent files there
(/sys/kernel/btf, /sys/devices/system/cpu); /proc/sys/net and /proc/net
follow the reading task's netns and stay right.

Fallback when joining is impossible (no permission, threads, container):
  - create() does what iproute2 does (make /run/netns a shared mount,
    bind-mounting it onto itself first if it is no mount point, then bind
    nsfs), which propagates wherever /run/netns is shared with the host
    (e.g. a container given /run/netns with rshared). If a same-root
    process outside can still be seen and does not see the new name there,
    the namespace is removed again and create() fails with a KernelError
    rather than leave a name that is dead outside;
  - bpffs_root() opens the outside process's /sys/fs/bpf once and keeps
    that directory fd for the life of the process: /proc/self/fd/N names
    the same bpffs after the process it came from is gone (and across fork,
    so the detached daemon keeps it). The fd is close-on-exec: a program
    this process execs looks its bpffs up again. Only this fallback shows
    pin paths as /proc/self/fd/N/pyovl/...
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os

from pyovl.errors import KernelError, UsageError

NETNS_RUN_DIR = "/run/netns"
_CLONE_NEWNS = 0x00020000
_CLONE_NEWNET = 0x40000000
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_SHARED = 1 << 20
_MNT_DETACH = 2
_MAX_ANCESTORS = 64

log = logging.getLogger("pyovl.netns")

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]

# (fd, st_dev, st_ino) of the outside bpffs kept open by bpffs_root().
_bpffs_dir: tuple[int, int, int] | None = None


def _errno_text() -> str:
    return os.strerror(ctypes.get_errno())


def _mount(source: str, target: str, fstype: str | None, flags: int) -> int:
    """mount(2); 0, or the errno."""
    rc = _libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags, None)
    return 0 if rc == 0 else ctypes.get_errno()


# ---- named network namespaces -------------------------------------------


def enter(name: str) -> None:
    path = os.path.join(NETNS_RUN_DIR, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise UsageError("no such network namespace: %s" % name) from None
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            raise KernelError("cannot enter network namespace %s: %s" % (name, _errno_text()))
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


def _check_name(name: str) -> str:
    # The rule iproute2 applies: one path component, not . or ..
    if not name or "/" in name or name in (".", "..") or "\0" in name or len(name.encode()) > 255:
        raise UsageError("invalid network namespace name: %r" % name)
    return os.path.join(NETNS_RUN_DIR, name)


def _is_netns(path: str) -> bool:
    """A bind mount of a namespace: every nsfs inode shares one st_dev, so
    this is false for the plain file a failed or unpropagated bind leaves."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def exists(name: str) -> bool:
    return _is_netns(_check_name(name))


def names() -> list[str]:
    try:
        entries = os.listdir(NETNS_RUN_DIR)
    except FileNotFoundError:
        return []
    return sorted(n for n in entries if _is_netns(os.path.join(NETNS_RUN_DIR, n)))


def _share_run_dir() -> None:
    """Make /run/netns a shared mount, as iproute2 does, so that a bind onto
    /run/netns/NAME propagates to every mount namespace holding a copy or
    a shared bind of it (`ip netns exec` sessions started later, containers
    given /run/netns with rshared)."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    err = _mount("none", NETNS_RUN_DIR, None, _MS_SHARED | _MS_REC)
    if err == errno.EINVAL:
        # Propagation can only be set on a mount point: bind it onto itself.
        err = _mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", _MS_BIND | _MS_REC)
        if err == 0:
            err = _mount("none", NETNS_RUN_DIR, None, _MS_SHARED | _MS_REC)
    if err:
        raise KernelError("cannot make %s a shared mount: %s" % (NETNS_RUN_DIR, os.strerror(err)))


def _bind_new_netns(path: str) -> None:
    """Bind a new network namespace onto path. unshare(CLONE_NEWNET) moves
    only the calling thread, and /proc/thread-self names that thread's (not
    the main thread's) namespace; the thread then returns by setns."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(_CLONE_NEWNET) != 0:
            raise KernelError("cannot create a network namespace: %s" % _errno_text())
        try:
            err = _mount("/proc/thread-self/ns/net", path, "none", _MS_BIND)
        finally:
            if _libc.setns(home, _CLONE_NEWNET) != 0:
                raise KernelError("cannot return to the original network namespace: %s" % _errno_text())
        if err:
            raise KernelError("cannot bind network namespace %s: %s" % (path, os.strerror(err)))
    finally:
        os.close(home)


def create(name: str) -> None:
    path = _check_name(name)
    if _is_netns(path):
        raise UsageError("network namespace %s already exists" % name)
    _share_run_dir()
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    except FileExistsError:
        # Not a namespace (checked above): the empty file a bind that never
        # reached this mount namespace left behind. Take the name over.
        _detach_and_unlink(path)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0)
    except OSError as e:
        raise KernelError("cannot create %s: %s" % (path, e.strerror)) from None
    os.close(fd)
    try:
        _bind_new_netns(path)
    except BaseException:
        _detach_and_unlink(path)
        raise
    _check_visible(name, path)


def _detach_and_unlink(path: str) -> None:
    # MNT_DETACH: the namespace itself lives on while processes or devices
    # hold it; only the name goes. Since Linux 3.18 unlink also detaches
    # mounts on the file in *other* mount namespaces, so the name is gone
    # everywhere even if our unmount did not propagate.
    if _libc.umount2(path.encode(), _MNT_DETACH) != 0 and ctypes.get_errno() not in (errno.EINVAL, errno.ENOENT):
        raise KernelError("cannot unmount %s: %s" % (path, _errno_text()))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise KernelError("cannot remove %s: %s" % (path, e.strerror)) from None


def remove(name: str) -> None:
    _detach_and_unlink(_check_name(name))


def _check_visible(name: str, path: str) -> None:
    """After create() in a mount namespace we could not leave: fail unless
    the process outside sees the same namespace under the same name."""
    pid = _outside_pid()
    if pid is None:
        return
    outside_dir = "/proc/%d/root%s" % (pid, NETNS_RUN_DIR)
    if _ident(outside_dir) is None:
        return  # the outside process is gone or out of reach: nothing to compare
    if _ident(os.path.join(outside_dir, name)) == _ident(path):
        return
    _detach_and_unlink(path)
    raise KernelError("network namespace %s would exist only inside this process's private mount namespace "
                      "(made by ip netns exec), which could not be left for the host's: "
                      "run pyovl --netns NAME instead of ip netns exec NAME pyovl" % name)


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


# ---- the host's mount namespace ------------------------------------------


def _has_bpffs(mountinfo: str, path: str = "/sys/fs/bpf") -> bool:
    try:
        with open(mountinfo) as f:
            for line in f:
                fields = line.split()
                if fields[4] == path and fields[fields.index("-") + 1] == "bpf":
                    return True
    except (OSError, ValueError, IndexError):
        pass
    return False


def _ppid(pid: int) -> int:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _candidates() -> list[int]:
    """Ancestors, nearest first, then PID 1."""
    out = []
    pid = os.getppid()
    while pid > 1 and len(out) < _MAX_ANCESTORS:
        out.append(pid)
        pid = _ppid(pid)
    out.append(1)
    return out


def _ident(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:  # gone, or ptrace access refused (/proc/<pid>/ns, root)
        return None
    return st.st_dev, st.st_ino


def _outside_pid() -> int | None:
    """The process whose mount namespace this one is an `ip netns exec`-like
    copy of (see the module docstring), or None: we have bpffs ourselves,
    or nothing of the kind is in reach."""
    if _has_bpffs("/proc/self/mountinfo"):
        return None
    mine, root, sys_dev = _ident("/proc/self/ns/mnt"), _ident("/"), _ident("/sys")
    for pid in _candidates():
        ns = _ident("/proc/%d/ns/mnt" % pid)
        if ns is None or ns == mine or _ident("/proc/%d/root" % pid) != root:
            continue
        other_sys = _ident("/proc/%d/root/sys" % pid)
        if _has_bpffs("/proc/%d/mountinfo" % pid) or (other_sys and sys_dev and other_sys[0] != sys_dev[0]):
            return pid
    return None


def join_host_mounts() -> None:
    try:
        pid = _outside_pid()
    except OSError as e:  # no /proc: nothing to do anything with
        log.debug("not joining the host's mount namespace: %s", e)
        return
    if pid is None:
        return
    try:
        target = os.open("/proc/%d/ns/mnt" % pid, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        log.warning("staying in this private mount namespace: cannot open pid %d's: %s", pid, e.strerror)
        return
    try:
        cwd_path = os.getcwd()
        cwd_fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        cwd_path, cwd_fd = None, -1
    try:
        if _libc.setns(target, _CLONE_NEWNS) != 0:
            # EINVAL: threads already run; EPERM: no CAP_SYS_ADMIN over it.
            log.warning("staying in this private mount namespace: setns into pid %d's: %s", pid, _errno_text())
            return
        # setns moved cwd (and root) to the new namespace's root.
        if cwd_path is None:
            return
        try:
            before = os.fstat(cwd_fd)
            try:
                os.chdir(cwd_path)
                after = os.stat(".")
                same = (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
            except OSError:
                same = False
            if not same:
                # The directory exists only in the namespace we left: keep
                # it (relative paths still mean the same files).
                os.fchdir(cwd_fd)
        except OSError as e:
            log.warning("working directory %s lost when joining the host's mount namespace: %s", cwd_path, e)
    finally:
        os.close(target)
        if cwd_fd >= 0:
            os.close(cwd_fd)


# ---- bpffs ----------------------------------------------------------------


def _outside_bpffs() -> str | None:
    """/proc/self/fd/N of the nearest other process's /sys/fs/bpf, opened once
    and kept open so the path outlives that process."""
    global _bpffs_dir
    if _bpffs_dir is not None:
        fd, dev, ino = _bpffs_dir
        try:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) == (dev, ino):
                return "/proc/self/fd/%d" % fd
        except OSError:
            pass
        _bpffs_dir = None  # closed behind our back (or reused): open again
    for pid in _candidates():
        if not _has_bpffs("/proc/%d/mountinfo" % pid):
            continue
        try:
            fd = os.open("/proc/%d/root/sys/fs/bpf" % pid, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        st = os.fstat(fd)
        _bpffs_dir = (fd, st.st_dev, st.st_ino)
        return "/proc/self/fd/%d" % fd
    return None


def bpffs_root() -> str:
    if _has_bpffs("/proc/self/mountinfo"):
        return "/sys/fs/bpf"
    # Under `ip netns exec` without join_host_mounts(): /sys has no bpffs,
    # but the process that ran it still sees the host's.
    alt = _outside_bpffs()
    if alt is not None:
        return alt
    os.makedirs("/sys/fs/bpf", exist_ok=True)
    err = _mount("bpf", "/sys/fs/bpf", "bpf", 0)
    if err:
        raise KernelError("no bpffs at /sys/fs/bpf and mounting one failed: %s" % os.strerror(err))
    return "/sys/fs/bpf"


SO_NETNS_COOKIE = 71  # Linux 5.14+


def cookie() -> int | None:
    """This process's network namespace's cookie: unique for the life of the
    kernel and never reused, unlike the namespace's inode number (None on a
    kernel without SO_NETNS_COOKIE)."""
    import socket  # noqa: PLC0415
    import struct  # noqa: PLC0415

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sk:
        try:
            return struct.unpack("=Q", sk.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]
        except OSError:
            return None

