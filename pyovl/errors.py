"""Errors pyovl reports to operators: one line each, with an exit code.

Everything the CLI catches derives from PyovlError; its str() is the whole
message the operator sees (no traceback). Lower layers raise these with the
object and the fix named, e.g. "no such interface: eth9".

One line is guaranteed here, not left to each caller: str() escapes every
character that is not printable (newline, carriage return, tab, other
controls, Unicode line separators, bidi overrides) the way repr() does, so
a value with a newline in it cannot split or forge a message line. show()
is how messages quote a value an operator gave: a repr() that never raises
and is cut short when long.

Reading operator files into data, with the same one-line failures, is
pyovl/inputs.py.
"""

from __future__ import annotations


class PyovlError(Exception):
    exit_code = 1

    def __str__(self) -> str:
        return one_line(super().__str__())


class UsageError(PyovlError):
    """Bad input: values, names, files."""

    exit_code = 2


class KernelError(PyovlError):
    """The kernel lacks something or refused an operation."""

    exit_code = 3


class StateError(PyovlError):
    """Pins or state do not match what this pyovl expects."""

    exit_code = 4


def one_line(text: str) -> str:
    """text with every non-printable character escaped as repr() would."""
    if text.isprintable():  # the common case, and cheap
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def show(value: object, limit: int = 72) -> str:
    """repr(value) for a message: one line, at most about limit characters.

    repr() itself can fail on hostile input (an int beyond the 4300-digit
    conversion limit raises ValueError, a deeply nested list RecursionError);
    the type name stands in then."""
    try:
        text = repr(value)
    except (ValueError, RecursionError, MemoryError):
        return "<%s>" % type(value).__name__
    text = one_line(text)
    if len(text) > limit:
        text = "%s... (%d characters)" % (text[:limit], len(text))
    return text
