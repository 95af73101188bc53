"""Thin ctypes wrappers over the bpf(2) syscall: map elements, pins, object
info and BPF_PROG_TEST_RUN. No libbpf and no bcc: the CLI reads and writes
pinned maps with these alone, without compiling anything.

Every function raises OSError(errno) on failure, like os functions do.
"""

from __future__ import annotations

import ctypes as C
import ctypes.util
import os
import platform

_libc = C.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_NR_BPF = {"x86_64": 321, "aarch64": 280}[platform.machine()]

MAP_CREATE = 0
PROG_LOAD = 5
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
OBJ_PIN = 6
OBJ_GET = 7
PROG_TEST_RUN = 10
OBJ_GET_INFO_BY_FD = 15

BPF_ANY = 0
BPF_NOEXIST = 1
BPF_EXIST = 2


class _Attr(C.Union):
    _fields_ = [("raw", C.c_uint8 * 160)]


class _MapElem(C.Structure):
    _fields_ = [("map_fd", C.c_uint32), ("pad", C.c_uint32), ("key", C.c_uint64),
                ("value", C.c_uint64), ("flags", C.c_uint64)]


class _ObjPin(C.Structure):
    _fields_ = [("pathname", C.c_uint64), ("bpf_fd", C.c_uint32), ("file_flags", C.c_uint32)]


class _InfoByFd(C.Structure):
    _fields_ = [("bpf_fd", C.c_uint32), ("info_len", C.c_uint32), ("info", C.c_uint64)]


class _TestRun(C.Structure):
    _fields_ = [
        ("prog_fd", C.c_uint32), ("retval", C.c_uint32),
        ("data_size_in", C.c_uint32), ("data_size_out", C.c_uint32),
        ("data_in", C.c_uint64), ("data_out", C.c_uint64),
        ("repeat", C.c_uint32), ("duration", C.c_uint32),
        ("ctx_size_in", C.c_uint32), ("ctx_size_out", C.c_uint32),
        ("ctx_in", C.c_uint64), ("ctx_out", C.c_uint64),
        ("flags", C.c_uint32), ("cpu", C.c_uint32), ("batch_size", C.c_uint32),
    ]


class MapInfo(C.Structure):
    _fields_ = [
        ("type", C.c_uint32), ("id", C.c_uint32), ("key_size", C.c_uint32),
        ("value_size", C.c_uint32), ("max_entries", C.c_uint32), ("map_flags", C.c_uint32),
        ("name", C.c_char * 16), ("rest", C.c_uint8 * 64),
    ]


def _bpf(cmd: int, attr: C.Structure) -> int:
    _libc.syscall.restype = C.c_long
    ret = _libc.syscall(C.c_long(_NR_BPF), C.c_int(cmd), C.byref(attr), C.c_uint(C.sizeof(attr)))
    if ret < 0:
        err = C.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


def _addr(obj) -> int:
    return C.addressof(obj) if obj is not None else 0


def map_lookup(fd: int, key, value) -> bool:
    """Fill value; False when the key is absent."""
    try:
        _bpf(MAP_LOOKUP_ELEM, _MapElem(fd, 0, _addr(key), _addr(value), 0))
    except FileNotFoundError:
        return False
    return True


def map_update(fd: int, key, value, flags: int = BPF_ANY) -> None:
    _bpf(MAP_UPDATE_ELEM, _MapElem(fd, 0, _addr(key), _addr(value), flags))


def map_delete(fd: int, key) -> bool:
    try:
        _bpf(MAP_DELETE_ELEM, _MapElem(fd, 0, _addr(key), 0, 0))
    except FileNotFoundError:
        return False
    return True


def map_next_key(fd: int, key, next_key) -> bool:
    """key None = first key. False at the end."""
    try:
        _bpf(MAP_GET_NEXT_KEY, _MapElem(fd, 0, _addr(key), _addr(next_key), 0))
    except FileNotFoundError:
        return False
    return True


def obj_pin(fd: int, path: str) -> None:
    p = C.create_string_buffer(path.encode())
    _bpf(OBJ_PIN, _ObjPin(C.addressof(p), fd, 0))


def obj_get(path: str) -> int:
    p = C.create_string_buffer(path.encode())
    return _bpf(OBJ_GET, _ObjPin(C.addressof(p), 0, 0))


def map_info(fd: int) -> MapInfo:
    info = MapInfo()
    _bpf(OBJ_GET_INFO_BY_FD, _InfoByFd(fd, C.sizeof(info), C.addressof(info)))
    return info


def prog_test_run(prog_fd: int, data: bytes, ctx: C.Structure | None = None,
                  repeat: int = 1, out_size: int = 65536) -> tuple[int, bytes, int]:
    """Run a loaded program on data; returns (retval, output bytes, ns per run)."""
    din = C.create_string_buffer(data, len(data))
    dout = C.create_string_buffer(out_size)
    attr = _TestRun(prog_fd=prog_fd, data_size_in=len(data), data_size_out=out_size,
                    data_in=C.addressof(din), data_out=C.addressof(dout), repeat=repeat)
    if ctx is not None:
        attr.ctx_in = C.addressof(ctx)
        attr.ctx_size_in = C.sizeof(ctx)
    _bpf(PROG_TEST_RUN, attr)
    return attr.retval, dout.raw[: attr.data_size_out], attr.duration


class _MapCreate(C.Structure):
    _fields_ = [("map_type", C.c_uint32), ("key_size", C.c_uint32), ("value_size", C.c_uint32),
                ("max_entries", C.c_uint32), ("map_flags", C.c_uint32)]


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> int:
    return _bpf(MAP_CREATE, _MapCreate(map_type, key_size, value_size, max_entries, flags))


class _ProgLoad(C.Structure):
    _fields_ = [("prog_type", C.c_uint32), ("insn_cnt", C.c_uint32), ("insns", C.c_uint64),
                ("license", C.c_uint64), ("log_level", C.c_uint32), ("log_size", C.c_uint32),
                ("log_buf", C.c_uint64), ("kern_version", C.c_uint32), ("prog_flags", C.c_uint32)]


def probe_prog_load(prog_type: int = 3) -> None:
    """Load and close 'r0 = 0; exit' (default: a TC classifier). Raises
    OSError: EPERM without privileges, EINVAL/ENOSYS without BPF support."""
    insns = (C.c_uint64 * 2)(0x00000000000000B7, 0x0000000000000095)
    lic = C.create_string_buffer(b"GPL")
    fd = _bpf(PROG_LOAD, _ProgLoad(prog_type, 2, C.addressof(insns), C.addressof(lic)))
    os.close(fd)


def possible_cpus() -> int:
    """Number of possible CPUs: the per-CPU value count of percpu maps."""
    with open("/sys/devices/system/cpu/possible") as f:
        spec = f.read().strip()
    n = 0
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n
