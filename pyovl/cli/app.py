"""pyovl's command line: the click group (base.py) with its verbs registered
(each module adds its own), and main(), the entry point.
"""

from __future__ import annotations

import sys

import click

from pyovl.cli import dp, lab, lifecycle, mesh, overlays, vnics  # noqa: F401 - each registers its verbs
from pyovl.cli.base import cli, fail
from pyovl.errors import PyovlError


def main() -> None:
    """Entry point: every error, click's usage errors included, is one line."""
    import logging  # noqa: PLC0415

    # Library logs are for the daemon's log file (serve configures that);
    # a command says what went wrong in its one error line, nothing else.
    logging.getLogger("pyovl").addHandler(logging.NullHandler())
    try:
        cli.main(prog_name="pyovl", standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        click.echo("pyovl: %s" % e.format_message(), err=True)
        sys.exit(2)
    except click.Abort:
        sys.exit(130)
    except PyovlError as e:
        fail(e)
    sys.exit(0)


if __name__ == "__main__":
    main()
