"""The click group every verb hangs on, and what the verbs share.

Every PyovlError becomes one line on stderr and its exit code; nothing here
prints a traceback for bad input. `--netns NAME` runs the command inside
that network namespace (its own pyovl instance, its own pins). Writes go
through submit() to the one writer (pyovl/daemon/writer.py); reads use
engine_of(). emit() renders rows as dladm does (-p -o, --json).
"""

from __future__ import annotations

import json
import sys

import click

from pyovl import __version__, netns
from pyovl.errors import PyovlError, UsageError


def fail(e: PyovlError) -> None:
    click.echo("pyovl: %s" % e, err=True)
    sys.exit(e.exit_code)


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PyovlError as e:
            fail(e)
        except PermissionError as e:
            fail(PyovlError("permission denied (%s): run as root" % (e.filename or e.strerror)))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyovl")
@click.option("--netns", "ns", metavar="NAME", help="Run inside network namespace NAME.")
@click.option("--instance", metavar="NAME", help="Instance name (default: the netns name).")
@click.pass_context
def cli(ctx, ns, instance):
    """Overlay networks (VXLAN) with an eBPF data path, managed like illumos dladm.

    \b
    Examples:
      pyovl check-kernel
      pyovl up /etc/pyovl/overlay.json
      pyovl --netns host1 show-overlay -f

    Shell completion (bash): eval "$(_PYOVL_COMPLETE=bash_source pyovl)"
    """
    # Before any thread: leave an `ip netns exec` mount namespace (see netns).
    netns.join_host_mounts()
    if ns:
        try:
            netns.enter(ns)
        except PyovlError as e:
            fail(e)
    ctx.obj = {"instance": instance or (ns if ns else None)}


def instance_of(ctx) -> str:
    return ctx.find_root().obj["instance"] or netns.current_name()


def engine_of(ctx):
    """An engine to read with (show verbs); writes go through _submit."""
    from pyovl.engine.engine import Engine  # noqa: PLC0415

    return Engine(instance_of(ctx))


def submit(ctx, change) -> list[str]:
    """Hand a change to the one writer (the daemon, or this process under
    the instance lock)."""
    from pyovl.daemon import writer  # noqa: PLC0415

    return writer.submit(instance_of(ctx), change)


def emit(fields, rows, parsable, output, as_json):
    from pyovl.cli import ofmt  # noqa: PLC0415

    if parsable and not output:
        raise UsageError("-p requires -o")
    fields = ofmt.select(fields, output)
    if as_json:
        click.echo(json.dumps([{n.lower(): r.get(n) for n, _ in fields} for r in rows], indent=1))
    elif rows or not parsable:
        click.echo(ofmt.render(fields, rows, parsable=parsable))
