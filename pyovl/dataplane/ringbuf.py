"""Consumer of a BPF ring buffer (BPF_MAP_TYPE_RINGBUF) through mmap.

Layout (kernel/bpf/ringbuf.c): page 0 holds the consumer position (we
write it), page 1 the producer position (read-only), then the data pages,
mapped twice in a row so a record never wraps. Each record is an 8-byte
header (u32 length with BUSY bit 31 and DISCARD bit 30, u32 page offset)
and its data, padded to 8 bytes. epoll on the map fd wakes up on data.
No bcc and no libbpf: the daemon opens the pinned map by path.
"""

from __future__ import annotations

import mmap
import os
import select
import struct

from pyovl.dataplane import syscall

_BUSY = 1 << 31
_DISCARD = 1 << 30
_HDR = 8


class RingBuffer:
    def __init__(self, fd: int):
        self.fd = fd
        self.size = syscall.map_info(fd).max_entries
        self.page = mmap.PAGESIZE
        self._cons = mmap.mmap(fd, self.page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self._prod = mmap.mmap(fd, self.page + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ,
                               offset=self.page)
        self._mask = self.size - 1
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)

    @classmethod
    def open_pinned(cls, path: str) -> "RingBuffer":
        return cls(syscall.obj_get(path))

    def drain(self, limit: int = 1 << 30) -> list[bytes]:
        """Every complete record available now (at most limit)."""
        cons = struct.unpack_from("<Q", self._cons, 0)[0]
        prod = struct.unpack_from("<Q", self._prod, 0)[0]
        out = []
        while cons < prod and len(out) < limit:
            off = self.page + (cons & self._mask)
            length, _ = struct.unpack_from("<II", self._prod, off)
            if length & _BUSY:
                break
            n = length & ~(_BUSY | _DISCARD)
            if not length & _DISCARD:
                out.append(self._prod[off + _HDR: off + _HDR + n])
            cons += (n + _HDR + 7) & ~7
        struct.pack_into("<Q", self._cons, 0, cons)
        return out

    def poll(self, timeout: float) -> list[bytes]:
        """Records, waiting up to timeout seconds for the first."""
        recs = self.drain()
        if recs:
            return recs
        self._epoll.poll(timeout)
        return self.drain()

    def close(self) -> None:
        self._epoll.close()
        self._cons.close()
        self._prod.close()
        os.close(self.fd)
