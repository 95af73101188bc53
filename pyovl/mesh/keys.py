"""Pre-shared keys for the mesh's IPsec pairs: one key per pair of nodes.

Two nodes in different PDCs share one 32-byte random key; the pair's id is
the two node names sorted and joined by '+' ("n1+n3"). Each node gets a key
file holding only its own pairs, so a stolen host gives away the keys of its
own tunnels and no others:

    {"version": 1, "pairs": {"n1+n3": "<base64 of 32 random bytes>", ...}}

Operators run generate() (a CLI verb wraps it) over the whole inventory and
copy each <node>.json to its node. It keeps every existing key, adds keys
for new cross-PDC pairs only, and drops pairs whose nodes left (or now share
a PDC), so adding or removing a node changes exactly that node's pairs; the
file of a node that left is deleted. It returns counts, never keys. Files
are written atomically with mode 0600 in a 0700 directory (an existing
directory open to group/other is refused, not silently chmod-ed).

Nodes call load(path, self_name, peers) at start. It refuses, with a
one-line UsageError naming the fix, a file that is not a regular file owned
by root, is readable or writable by group/other, is malformed, or lacks the
key of a pair it needs. Keys come back as Secret objects: their repr and
str are "Secret(<redacted>)"; only reveal() gives the bytes, and only the
IKE driver (ike.py, to vici) calls it.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
from dataclasses import dataclass
from typing import Iterable, Mapping

from pyovl.errors import UsageError, show
from pyovl.inputs import BadJson, decode_json, read_file

VERSION = 1
KEY_BYTES = 32
NODE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")  # fullmatch only: "$" matches before a final newline
MAX_KEY_FILE = 1 << 20  # a file for thousands of pairs is a few hundred KiB
FILE_SUFFIX = ".json"


class Secret:
    """Key bytes that do not print themselves."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes):
        if not isinstance(value, bytes):
            raise TypeError("Secret holds bytes")
        self._value = value

    def reveal(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value, other._value)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self):  # no pickling into caches, queues, core files by accident
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True)
class GenerateResult:
    """What generate() did. Counts and names only, never keys."""

    files_written: int  # node files created or rewritten
    files_removed: int  # key files of nodes no longer in the inventory
    pairs_total: int  # distinct cross-PDC pairs in the inventory
    pairs_added: int  # pairs that got a new key
    pairs_kept: int  # pairs whose existing key stayed
    pairs_dropped: int  # pairs that left (node removed, or same PDC now)


def pair_id(a: str, b: str) -> str:
    if a == b:
        raise UsageError("a node has no key pair with itself (%s)" % a)
    return "+".join(sorted((a, b)))


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not NODE_NAME.fullmatch(name):
        raise UsageError("invalid node name %r: 1-32 lowercase letters, digits or '-'" % (name,))
    return name


def _name(node: object) -> str:
    return _check_name(getattr(node, "name", node))


def needed_pairs(nodes: Iterable[object]) -> dict[str, set[str]]:
    """node name -> pair ids it needs (its peers in other PDCs). Pure."""
    nodes = list(nodes)
    names = [_name(n) for n in nodes]
    if len(set(names)) != len(names):
        raise UsageError("the inventory names a node twice")
    out: dict[str, set[str]] = {n: set() for n in names}
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            if a.pdc != b.pdc:  # type: ignore[attr-defined]
                pid = pair_id(a.name, b.name)  # type: ignore[attr-defined]
                out[a.name].add(pid)  # type: ignore[attr-defined]
                out[b.name].add(pid)  # type: ignore[attr-defined]
    return out


def _decode(pid: str, value: object, where: str) -> bytes:
    if not isinstance(value, str):
        raise UsageError("%s: key of pair %s is not a base64 string" % (where, pid))
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("%s: key of pair %s is not valid base64" % (where, pid)) from None
    if len(raw) != KEY_BYTES:
        raise UsageError("%s: key of pair %s is %d bytes, not %d; regenerate it" % (where, pid, len(raw), KEY_BYTES))
    return raw


def _parse(data: bytes, where: str) -> dict[str, bytes]:
    """Validate a key file's bytes (UTF-8 JSON); pair id -> key bytes."""
    try:
        doc = decode_json(data)
    except BadJson as e:
        raise UsageError("%s: not valid JSON (%s); regenerate it with pyovl's key generation"
                         % (where, e.detail)) from None
    if not isinstance(doc, dict) or set(doc) != {"version", "pairs"}:
        raise UsageError('%s: expected {"version": 1, "pairs": {...}}' % where)
    if isinstance(doc["version"], bool) or doc["version"] != VERSION:
        raise UsageError("%s: key file version %s, this pyovl reads version %d"
                         % (where, show(doc["version"]), VERSION))
    pairs = doc["pairs"]
    if not isinstance(pairs, dict):
        raise UsageError('%s: "pairs" must be an object of "a+b": "<base64 key>"' % where)
    out = {}
    for pid, value in pairs.items():
        parts = pid.split("+")
        if len(parts) != 2 or parts[0] >= parts[1] or not all(NODE_NAME.fullmatch(p) for p in parts):
            raise UsageError("%s: invalid pair id %s (two node names, sorted, joined by '+')" % (where, show(pid)))
        out[pid] = _decode(pid, value, where)
    return out


def _dump(pairs: Mapping[str, bytes]) -> str:
    return json.dumps({"version": VERSION,
                       "pairs": {pid: base64.b64encode(pairs[pid]).decode() for pid in sorted(pairs)}},
                      indent=2) + "\n"


def _write_atomic(path: str, text: str) -> None:
    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)  # mkstemp: mode 0600, O_EXCL
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _prepare_dir(directory: str) -> None:
    try:
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)  # whatever the umask
        return
    except FileExistsError:
        pass
    except OSError as e:
        raise UsageError("cannot create key directory %s: %s" % (directory, e.strerror)) from None
    st = os.stat(directory)
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError("%s is not a directory" % directory)
    if st.st_mode & 0o077:
        raise UsageError("key directory %s is open to group/other (mode %04o); run: chmod 700 %s"
                         % (directory, stat.S_IMODE(st.st_mode), directory))


def _read_existing(path: str) -> dict[str, bytes] | None:
    """The pairs in an existing node file (keygen extends it), None if none."""
    if not os.path.lexists(path):
        return None
    if os.path.islink(path):
        raise UsageError("%s is a symbolic link; key files are never reached through one" % path)
    return _parse(read_file(path, UsageError, limit=MAX_KEY_FILE)[0], path)


def generate(inventory_nodes: Iterable[object], directory: str) -> GenerateResult:
    """Create or extend <directory>/<node>.json for every node (see module doc).

    inventory_nodes: objects with .name and .pdc (pyovl.mesh.Node). Existing
    pair keys are kept, whichever of the pair's two files still has them;
    if the two files disagree on a pair's key, nothing is written and the
    operator is told which pair to fix.
    """
    nodes = list(inventory_nodes)
    want = needed_pairs(nodes)
    _prepare_dir(directory)
    lock = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)  # flock on the directory: no lock file
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _generate_locked(want, directory)
    finally:
        os.close(lock)


def _generate_locked(want: dict[str, set[str]], directory: str) -> GenerateResult:
    existing: dict[str, dict[str, bytes]] = {}
    stale_files = []
    for fname in sorted(os.listdir(directory)):
        node, ext = fname[: -len(FILE_SUFFIX)], fname[-len(FILE_SUFFIX):]
        if ext != FILE_SUFFIX or not NODE_NAME.fullmatch(node):
            continue
        pairs = _read_existing(os.path.join(directory, fname))
        if pairs is None:
            continue
        existing[node] = pairs
        if node not in want:
            stale_files.append(fname)
    known: dict[str, bytes] = {}
    for node, pairs in sorted(existing.items()):
        for pid, key in pairs.items():
            if node not in pid.split("+"):
                continue  # not this node's pair: ignore, it is dropped below
            if pid in known and not hmac.compare_digest(known[pid], key):
                a, b = pid.split("+")
                raise UsageError("%s.json and %s.json hold different keys for pair %s; delete the pair "
                                 "from one of them (or both, to make a new key) and run again" % (a, b, pid))
            known[pid] = key
    all_pairs = set().union(*want.values()) if want else set()
    added = {pid: secrets.token_bytes(KEY_BYTES) for pid in sorted(all_pairs - set(known))}
    keys = {pid: known.get(pid) or added[pid] for pid in all_pairs}
    written = 0
    for node, pids in sorted(want.items()):
        content = {pid: keys[pid] for pid in pids}
        path = os.path.join(directory, node + FILE_SUFFIX)
        if existing.get(node) == content and stat.S_IMODE(os.stat(path).st_mode) == 0o600:
            continue
        _write_atomic(path, _dump(content))
        written += 1
    for fname in stale_files:
        os.unlink(os.path.join(directory, fname))
    old_pairs = {pid for node, pairs in existing.items() for pid in pairs if node in pid.split("+")}
    return GenerateResult(files_written=written, files_removed=len(stale_files), pairs_total=len(all_pairs),
                          pairs_added=len(added), pairs_kept=len(all_pairs) - len(added),
                          pairs_dropped=len(old_pairs - all_pairs))


def load(path: str, self_name: str, peers: Iterable[object], *, require_root: bool = True) -> dict[str, Secret]:
    """This node's keys for peers (names or objects with .name): peer -> Secret.

    Pairs for nodes not in peers are ignored (the file may be older than the
    inventory). require_root=False skips only the owner check (tests run
    as a normal user); the mode check always applies.
    """
    me = _check_name(self_name)
    try:
        if os.path.islink(path):  # a key file is never reached through a link someone else may redirect
            raise UsageError("key file %s is a symbolic link; point the mesh at the file itself" % path)
    except (TypeError, ValueError):
        raise UsageError("cannot read key file %s: invalid path" % show(path)) from None
    # regular files only (a directory, FIFO or device is refused before it is opened), never blocking
    data, st = read_file(path, UsageError, where="cannot read key file %s" % path, limit=MAX_KEY_FILE)
    if require_root and st.st_uid != 0:
        raise UsageError("key file %s is owned by uid %d, not root; run: chown root:root %s"
                         % (path, st.st_uid, path))
    if st.st_mode & 0o077:
        raise UsageError("key file %s is open to group/other (mode %04o); run: chmod 600 %s"
                         % (path, stat.S_IMODE(st.st_mode), path))
    pairs = _parse(data, path)
    for pid in pairs:
        if me not in pid.split("+"):
            raise UsageError("key file %s holds pair %s, which is not node %s's: is it another node's file?"
                             % (path, pid, me))
    out = {}
    for peer in peers:
        name = _name(peer)
        pid = pair_id(me, name)
        if pid not in pairs:
            raise UsageError("key file %s has no key for pair %s; regenerate the keys for the inventory "
                             "and copy %s.json here" % (path, pid, me))
        out[name] = Secret(pairs[pid])
    return out
