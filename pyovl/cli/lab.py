"""`pyovl lab`: the namespace lab (pyovl/tools/lab.py).
"""

from __future__ import annotations

import json
import os

import click

from pyovl.cli.base import Group, cli
from pyovl.errors import PyovlError

@cli.group(cls=Group)
def lab():
    """The namespace lab: three pyovl hosts, a point-to-point overlay and a
    files overlay with two VLANs (see pyovl/tools/lab.py for the drawing).

    \b
    Examples:
      pyovl lab up && pyovl lab check && pyovl lab status
      ip netns exec lab-g1a ping 10.200.10.3
      pyovl lab down
    """


@lab.command("up")
@click.option("--prefix", default="lab", show_default=True, help="Namespace name prefix.")
def lab_up(prefix):
    """Build the lab (removing an old one first) and start its three daemons."""
    from pyovl.tools.lab import Lab  # noqa: PLC0415

    for line in Lab(prefix).up():
        click.echo(line)


@lab.command("check")
@click.option("--prefix", default="lab", show_default=True)
def lab_check(prefix):
    """Ping every path the lab promises and check VLAN isolation."""
    from pyovl.tools.lab import Lab  # noqa: PLC0415

    results = Lab(prefix).checks()
    for name, ok in results:
        click.echo("%-40s %s" % (name, "ok" if ok else "FAILED"))
    if not all(ok for _, ok in results):
        raise PyovlError("lab check failed")


@lab.command("status")
@click.option("--prefix", default="lab", show_default=True)
def lab_status(prefix):
    """show-overlay -f, -t and show-vnic on every lab host."""
    from pyovl.tools.lab import Lab  # noqa: PLC0415

    click.echo(Lab(prefix).status())


@lab.command("config")
@click.option("--host", "n", type=click.IntRange(1, 3), required=True, help="Which lab host (1-3).")
@click.option("--underlay", metavar="IP_PATTERN", default="198.18.0.{n}", show_default=True,
              help="Underlay address of host n, e.g. 198.18.0.1{n} for the Vagrant VMs.")
@click.option("--prefix", default="lab", show_default=True)
@click.option("--files", "files_path", default="/etc/pyovl/files0.json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True, help="Where to write overlay.json.")
def lab_config(n, underlay, prefix, files_path, out):
    """Write a lab host's overlay.json and the shared files table (Vagrant lab)."""
    from pyovl.tools import lab as L  # noqa: PLC0415

    ul = lambda k: underlay.format(n=k)  # noqa: E731
    table = {mac: dict(e, ip=ul(int(e["ip"].rsplit(".", 1)[1]))) for mac, e in L.files_table().items()}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    os.makedirs(os.path.dirname(os.path.abspath(files_path)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(L.host_config(n, prefix, files_path, underlay_ip=ul), f, indent=1)
    with open(files_path, "w") as f:
        json.dump(table, f, indent=1)
    click.echo("wrote %s and %s" % (out, files_path))


@lab.command("down")
@click.option("--prefix", default="lab", show_default=True)
def lab_down(prefix):
    """Remove the lab completely: daemons, VNICs, namespaces, pins, files."""
    from pyovl.tools.lab import Lab  # noqa: PLC0415

    Lab(prefix).down()
