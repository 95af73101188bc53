"""Operator files into data: the one way pyovl reads what someone wrote.

read_file() and parse_json() turn a file an operator wrote into data:
every way that can fail (missing, unreadable, a FIFO or device, huge, not
UTF-8, bad JSON, nested too deeply, a number too long for int()) becomes
one error of the caller's class (pyovl.errors), never another exception,
and reading never blocks (O_NONBLOCK, regular files only). decode_json()
is parse_json() for callers that word the message themselves: it raises
only BadJson. Used for overlay.json, mesh inventories and key files, the
files plugin's tables, pyovl's own state and the daemon's requests.
"""

from __future__ import annotations

import json
import os
import stat

from pyovl.errors import PyovlError, UsageError, show

MAX_FILE_BYTES = 64 << 20
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _oserror(e: BaseException, path: object) -> str:
    # ValueError: a NUL in the path; UnicodeEncodeError: a lone surrogate in it.
    return getattr(e, "strerror", None) or "invalid path %s" % show(path)


def read_file(path: str, error: type[PyovlError] = UsageError, where: str | None = None,
              limit: int = MAX_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and its fstat(); error("<where>: <why>") otherwise.

    Only a regular file is opened: the path is stat()ed first, so a device
    is never opened at all (opening one can have effects) and a FIFO can
    not block open(); O_NONBLOCK covers a swap between stat and open, and
    fstat() checks what was really opened before anything is read."""
    where = path if where is None else where
    if not isinstance(path, str) or not path:  # an int would be taken as a file descriptor
        raise error("%s: invalid path %s" % (where, show(path)))
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise error("%s: is %s, not a regular file" % (where, _kind(st.st_mode)))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        raise error("%s: %s" % (where, _oserror(e, path))) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error("%s: is %s, not a regular file" % (where, _kind(st.st_mode)))
        if st.st_size > limit:
            raise error("%s: is %d bytes; more than %d MiB is refused" % (where, st.st_size, limit >> 20))
        chunks, total = [], 0
        while True:  # the file may grow while read: the cap holds for what is read
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise error("%s: grew beyond %d MiB while being read" % (where, limit >> 20))
    except OSError as e:
        raise error("%s: %s" % (where, _oserror(e, path))) from None
    finally:
        os.close(fd)
    return b"".join(chunks), st


class BadJson(ValueError):
    """decode_json()'s failure: str() is the whole reason ("invalid JSON at
    line 2 column 15: Expecting value"), detail the short one ("line 2
    column 15") for callers that phrase the message themselves."""

    def __init__(self, text: str, detail: str):
        super().__init__(text)
        self.detail = detail


def _no_constant(name: str) -> object:
    raise BadJson("invalid JSON: %s is not JSON" % name, "%s is not JSON" % name)


def _unique_keys(pairs: list) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))
        why = "key %s appears twice in one object" % show(dup)
        raise BadJson("invalid JSON: " + why, why)
    return out


def decode_json(data: bytes | str, unique_keys: bool = True) -> object:
    """UTF-8 JSON text -> Python value; BadJson (only) on any problem.

    Stricter than json.loads where being lenient hides mistakes: NaN and
    Infinity are refused, and (unless unique_keys is False) so is a key given
    twice in one object, which json.loads would silently resolve to the last.
    A leading UTF-8 byte order mark is allowed."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            why = "byte 0x%02x at offset %d" % (data[e.start], e.start)
            raise BadJson("not UTF-8 text (%s)" % why, "not UTF-8: " + why) from None
    else:
        text = data
    try:
        return json.loads(text, parse_constant=_no_constant,
                          object_pairs_hook=_unique_keys if unique_keys else None)
    except BadJson:
        raise
    except json.JSONDecodeError as e:
        raise BadJson("invalid JSON at line %d column %d: %s" % (e.lineno, e.colno, e.msg),
                      "line %d column %d" % (e.lineno, e.colno)) from None
    except RecursionError:
        raise BadJson("invalid JSON: nested too deeply", "nested too deeply") from None
    except ValueError:
        # int() refuses numbers of more than sys.get_int_max_str_digits() digits
        raise BadJson("invalid JSON: a number has too many digits", "a number has too many digits") from None


def parse_json(data: bytes | str, where: str, error: type[PyovlError] = UsageError,
               unique_keys: bool = True) -> object:
    """decode_json(), failing with error("<where>: <reason>")."""
    try:
        return decode_json(data, unique_keys)
    except BadJson as e:
        raise error("%s: %s" % (where, e)) from None
