"""The engine of one instance: submit a change, get back what was done.

    eng = Engine("host1")
    eng.diff(UpFile("/etc/pyovl/overlay.json"))      # the plan, nothing applied
    eng.submit(CreateVnic(name="web0", over="ov0"))  # -> ["+ VNIC web0 (on ov0)"]

submit() = declare (the change on the applied declaration) -> observe (facts)
-> desire (checks against the host) -> plan -> apply. Any UsageError comes
from the first three, before anything changed. If applying fails midway,
the engine plans back to the declaration it started from and applies that
(best effort), so the host is left as it was; the error is reported.

Who runs it: the daemon while it serves (the one writer; `hold` is its lock,
taken per action), else the CLI command itself under the instance lock
(lock_fd() / release_lock(): an flock, so two commands never interleave).
The daemon takes the same lock for its whole life.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from dataclasses import dataclass

from pyovl import netns
from pyovl.dataplane.datapath import Datapath
from pyovl.engine import declare as D
from pyovl.engine import ledger as L
from pyovl.engine.apply import Applier
from pyovl.engine.facts import Facts, observe
from pyovl.engine.intent import Wanted, desire
from pyovl.engine.plan import Action, plan
from pyovl.errors import KernelError, PyovlError, StateError
from pyovl.state import Store, remove, run_root

log = logging.getLogger(__name__)
LOCK_WAIT_S = 60.0


@dataclass
class Prepared:
    change: D.Change
    before: D.Declaration
    want: Wanted
    facts: Facts
    rec: dict
    actions: list


class Engine:
    def __init__(self, instance: str | None = None, dp: Datapath | None = None):
        self.instance = instance or netns.current_name()
        self.dp = dp or Datapath(instance=self.instance)
        self.ledger = L.Ledger(self.instance)
        self.store = Store(self.instance)
        self.applied: D.Declaration | None = None  # set by the last submit

    # -- reading ------------------------------------------------------------------
    def runtime(self) -> dict:
        """The ledger record (the mesh code reads its "mesh" entry)."""
        return self.ledger.load()

    def declaration(self) -> D.Declaration:
        return L.declaration(self.ledger.load())

    # -- the four steps ---------------------------------------------------------------
    def prepare(self, change: D.Change, forget_stale: bool = False) -> Prepared:
        """Declare, observe, desire, plan: everything but apply (forget_stale:
        see _ledger_of_this_namespace; a dry run only reads)."""
        if isinstance(change, D.RestorePersistent) and change.store is None:
            change = D.RestorePersistent(store=self.store.persistent())
        rec = self._ledger_of_this_namespace(forget_stale)
        before = L.declaration(rec)
        decl = change.declare(before)
        facts = observe(self.dp)
        want = desire(decl, before, facts)
        actions = plan(facts, before, rec.get("mesh"), want, teardown=isinstance(change, D.Down))
        return Prepared(change, before, want, facts, rec, actions)

    def _ledger_of_this_namespace(self, forget: bool) -> dict:
        """The ledger, unless it was written in another network namespace of
        this name (deleted behind pyovl's back and made again): then nothing
        it records exists any more, and neither do the devices the pins
        served. Those pins are removed and the ledger starts empty; objects
        made with the CLI come back with `up-overlay`, the file's with `up`."""
        rec = self.ledger.load()
        here = netns.cookie()
        if rec.get("netns_cookie") not in (None, here):
            if forget:
                log.warning("instance %s: its namespace was made anew; forgetting what pyovl made in the old one",
                            self.instance)
                self.dp.teardown()
                self.ledger.clear()
            rec = L.empty()
        rec["netns_cookie"] = here
        return rec

    def diff(self, change: D.Change) -> list[Action]:
        return self.prepare(change).actions

    def submit(self, change: D.Change, hold=None, check=None) -> list[str]:
        """Apply change; returns one line per action done. check(wanted), if
        given, runs after every other check and before anything changes."""
        p = self.prepare(change, forget_stale=True)
        if check is not None:
            check(p.want)
        self.dp.forget_ids()  # another writer may have run since this Datapath last looked
        applier = Applier(self, p.before, p.want, p.rec, hold)
        try:
            applier.run(p.actions)
        except Exception as e:  # noqa: BLE001 - reported as one line, after the rollback
            after = self._roll_back(p, e, hold)
            what = "applying '%s' failed: " % applier.current.line() if applier.current else ""
            err = e if isinstance(e, PyovlError) else KernelError(str(e) or type(e).__name__)
            raise type(err)("%s%s%s" % (what, err, after)) from None
        applier.finish()
        self.applied = p.want.decl  # what the daemon syncs its plugins to, without reading the ledger again
        self.store.save_persistent(p.change.persist(p.want.decl, self.store.persistent()))
        if isinstance(change, D.Down):
            self.ledger.clear()
            self.store.clear()
            self.dp.close()
        return [a.line() for a in p.actions] if p.change.reports else []

    def _roll_back(self, p: Prepared, err: BaseException, hold) -> str:
        """Take the host back to the declaration the change started from;
        returns what to add to the error message."""
        if isinstance(p.change, D.Down):
            return ""
        log.info("apply failed (%s): rolling back", err)
        try:
            rec = p.rec  # the applier kept it (and the journal) up to date
            now = L.declaration(rec)
            facts = observe(self.dp)
            want = desire(p.before, now, facts)
            back = plan(facts, now, rec.get("mesh"), want)
            applier = Applier(self, now, want, rec, hold)
            applier.run(back)
            applier.finish()
            return "; nothing was changed (rolled back)"
        except Exception as e2:  # noqa: BLE001 - the first error is the one to report
            log.info("rolling back failed: %s", e2)
            return "; rolling back failed too (%s): run 'pyovl diff' to see what is left" % e2


def lock_fd(instance: str, wait_s: float = LOCK_WAIT_S) -> int:
    """Take the instance lock; release_lock() (or closing the fd) releases
    it (a forked daemon inherits it). The lock file may be unlinked by a
    holder that leaves nothing else behind (release_lock): a lock taken on
    a file no longer at the path is worthless, so it is taken again."""
    path = os.path.join(run_root(), instance, "lock")
    deadline = time.monotonic() + wait_s
    while True:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise StateError("instance %s is busy: another pyovl command holds its lock" % instance) from None
            time.sleep(0.05)
            continue
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # unlinked by the holder before us: lock the file that is there now


def release_lock(instance: str, fd: int) -> None:
    """Release the lock; when the instance keeps nothing else in its run
    directory (a command that changed nothing, or `down`), remove the lock
    file and the directory too, while still holding it (see lock_fd)."""
    d = os.path.join(run_root(), instance)
    try:
        if os.listdir(d) == ["lock"]:
            remove(os.path.join(d, "lock"))  # and the directory, and the root, once empty
    except OSError:
        pass
    os.close(fd)
