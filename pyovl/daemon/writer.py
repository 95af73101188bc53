"""The one writer, from a command's side: who applies this change?

submit(instance, change): when a daemon serves the instance, it is the one
writer: the change goes over its socket and the daemon runs the engine (its
plugin instances, lookup thread and health see the change at once). When
none does, this process runs the engine itself under the instance lock, so
two commands never interleave. A daemon holds that lock for its whole life,
so "no daemon answered and the lock is free" means nobody else can write.
"""

from __future__ import annotations

import time

from pyovl.daemon import client
from pyovl.engine.declare import Change
from pyovl.engine.engine import Engine, lock_fd, release_lock
from pyovl.errors import StateError

SUBMIT_TIMEOUT_S = 900.0  # a daemon applying 10k overlays answers when done
WAIT_S = 60.0


def submit(instance: str, change: Change) -> list[str]:
    return run(instance, {"op": "submit", "change": change.to_wire()},
               lambda eng: eng.submit(change))["done"]


def run(instance: str, req: dict, local) -> dict:
    """Send req to the daemon, or (none serving) call local(Engine) under
    the instance lock; local returns the reply's "done" list."""
    deadline = time.monotonic() + WAIT_S
    while True:
        reply = client.request(instance, req, timeout=SUBMIT_TIMEOUT_S)
        if reply is not None:
            return reply
        try:
            fd = lock_fd(instance, wait_s=0.5)
        except StateError:
            if time.monotonic() >= deadline:
                raise
            continue  # another command, or a daemon starting: ask again
        try:
            return {"ok": True, "done": local(Engine(instance))}
        finally:
            release_lock(instance, fd)
