"""Typed access to pyovl's pinned maps, through bpf(2) alone.

PinnedMaps(pin_dir) opens every map of the ABI from its pin and checks that
the kernel object has the type, key size, value size and size the ABI says
(bcc reuses a pin without checking: a stale pin from another pyovl build would
otherwise be misread). A mismatch raises StateError naming the map and the
fix. BpfMap wraps one map with ctypes keys and values.
"""

from __future__ import annotations

import ctypes as C
import os
from collections.abc import Iterator

from pyovl.dataplane import abi, syscall
from pyovl.errors import StateError


class BpfMap:
    def __init__(self, name: str, fd: int, key_t: type, val_t: type, percpu: bool = False):
        self.name, self.fd, self.key_t, self.val_t, self.percpu = name, fd, key_t, val_t, percpu
        self.ncpus = syscall.possible_cpus() if percpu else 1

    def _value_buf(self):
        if not self.percpu:
            return self.val_t()
        size = (C.sizeof(self.val_t) + 7) // 8 * 8
        return (C.c_uint8 * (size * self.ncpus))()

    def get(self, key):
        val = self._value_buf()
        return val if syscall.map_lookup(self.fd, key, val) else None

    def put(self, key, value, flags: int = syscall.BPF_ANY) -> None:
        syscall.map_update(self.fd, key, value, flags)

    def delete(self, key) -> bool:
        return syscall.map_delete(self.fd, key)

    def keys(self) -> Iterator:
        prev = None
        while True:
            nxt = self.key_t()
            if not syscall.map_next_key(self.fd, prev, nxt):
                return
            yield nxt
            prev = nxt

    def items(self) -> Iterator:
        for k in list(self.keys()):
            v = self.get(k)
            if v is not None:
                yield k, v

    def clear(self) -> None:
        for k in list(self.keys()):
            self.delete(k)

    def percpu_sum(self, key) -> int:
        """Sum of a per-CPU u64 over all CPUs."""
        buf = self.get(key)
        if buf is None:
            return 0
        return sum(C.cast(buf, C.POINTER(C.c_uint64 * self.ncpus)).contents)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class PinnedMaps:
    """All maps of one pyovl instance, opened from pin_dir and checked."""

    def __init__(self, pin_dir: str, trace: bool = False):
        self.pin_dir = pin_dir
        self._maps: dict[str, BpfMap] = {}
        specs = dict(abi.MAPS)
        if trace:
            specs[abi.TRACE_MAP[0]] = abi.TRACE_MAP[1]
        try:
            for name, spec in specs.items():
                self._maps[name] = self._open(name, *spec)
        except BaseException:
            self.close()
            raise

    def _open(self, name: str, mtype: int, key_t: type, val_t: type, max_entries: int) -> BpfMap:
        path = os.path.join(self.pin_dir, name)
        try:
            fd = syscall.obj_get(path)
        except OSError as e:
            raise StateError("cannot open pinned map %s: %s (is the data path loaded? run 'pyovl dp init')"
                             % (path, e.strerror)) from None
        info = syscall.map_info(fd)
        want = (mtype, C.sizeof(key_t) if key_t else 0, C.sizeof(val_t) if val_t else 0, max_entries)
        have = (info.type, info.key_size, info.value_size, info.max_entries)
        if have != want:
            os.close(fd)
            raise StateError("pinned map %s has (type, key, value, entries) %s, this pyovl expects %s: "
                             "it was made by another pyovl build; run 'pyovl dp teardown' and 'pyovl dp init'"
                             % (path, have, want))
        return BpfMap(name, fd, key_t, val_t, percpu=(mtype == abi.MAP_PERCPU_ARRAY))

    def __getattr__(self, name: str) -> BpfMap:
        try:
            return self.__dict__["_maps"][name]
        except KeyError:
            raise AttributeError(name) from None

    def check_abi_stamp(self) -> None:
        stamp = self.abi.get(abi.U32(0))
        cur = abi.AbiInfo.current()
        if stamp is None or stamp.magic == 0:
            self.abi.put(abi.U32(0), cur)
        elif (stamp.magic, stamp.version, stamp.sizes) != (cur.magic, cur.version, cur.sizes):
            raise StateError("pinned maps in %s carry ABI %d/%#x, this pyovl is %d/%#x: "
                             "run 'pyovl dp teardown' and 'pyovl dp init'"
                             % (self.pin_dir, stamp.version, stamp.sizes, cur.version, cur.sizes))

    def overlay_stats(self, ov_id: int) -> list[int]:
        """Counters of one overlay id, summed over CPUs, indexed by abi.Stat/Drop."""
        base = ov_id * abi.STAT_MAX
        return [self.stats.percpu_sum(abi.U32(base + i)) for i in range(abi.STAT_MAX)]

    def zero_stats(self, ov_id: int) -> None:
        zero = self.stats._value_buf()
        for i in range(abi.STAT_MAX):
            self.stats.put(abi.U32(ov_id * abi.STAT_MAX + i), zero)

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps = {}

    def __enter__(self) -> "PinnedMaps":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
