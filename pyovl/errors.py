"""Errors pyovl reports to operators: one line each, with an exit code.

Everything the CLI catches derives from PyovlError; its str() is the whole
message the operator sees (no traceback). Lower layers raise these with the
object and the fix named, e.g. "no such interface: eth9".
"""


class PyovlError(Exception):
    exit_code = 1


class UsageError(PyovlError):
    """Bad input: values, names, files."""

    exit_code = 2


class KernelError(PyovlError):
    """The kernel lacks something or refused an operation."""

    exit_code = 3


class StateError(PyovlError):
    """Pins or state do not match what this pyovl expects."""

    exit_code = 4
