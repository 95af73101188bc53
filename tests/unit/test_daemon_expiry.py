"""The daemon forgets the DROP entries it cached once their TTL is over,
looking only at those (not at the whole target table)."""

from __future__ import annotations

import collections
import time
from types import SimpleNamespace

from pyovl.dataplane import abi
from pyovl.daemon.server import Daemon


class FakeMap(dict):
    def get(self, key):
        return super().get(bytes(key))

    def delete(self, key):
        return self.pop(bytes(key), None) is not None

    def put(self, key, value):
        self[bytes(key)] = value


def test_only_expired_drops_we_cached_are_deleted():
    targets = FakeMap()
    d = Daemon.__new__(Daemon)
    d.dp = SimpleNamespace(maps=SimpleNamespace(targets=targets))
    d._drops = collections.deque()
    now = time.monotonic_ns()
    keys = [abi.L2Key.of(7, bytes([2, 0, 0, 0, 0, i])) for i in range(4)]
    for i, expiry in enumerate((now - 2, now - 1, now + 10**12)):
        targets.put(keys[i], abi.Dest(state=abi.TARGET_DROP, expiry_ns=expiry))
        d._drops.append((expiry, keys[i]))
    # key 1 was answered again meanwhile (a valid target): it must stay
    targets.put(keys[1], abi.Dest(state=abi.TARGET_VALID))
    targets.put(keys[3], abi.Dest(state=abi.TARGET_DROP, expiry_ns=now - 5))  # not ours to expire
    d._expire_drops()
    assert targets.get(keys[0]) is None
    assert targets.get(keys[1]).state == abi.TARGET_VALID
    assert targets.get(keys[2]) is not None and targets.get(keys[3]) is not None
    assert [e for e, _ in d._drops] == [now + 10**12]
