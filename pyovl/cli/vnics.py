"""VNICs, as dladm: create-vnic, delete-vnic, show-vnic.
"""

from __future__ import annotations

import click

from pyovl.cli.base import cli, emit, engine_of, submit
from pyovl.errors import UsageError

@cli.command("create-vnic")
@click.option("-t", "--temporary", is_flag=True, help="Do not persist across reboots.")
@click.option("-l", "--link", "over", required=True, metavar="OVERLAY", help="The overlay to attach to.")
@click.option("-m", "--mac-address", "mac", metavar="MAC|random", help="Guest MAC (default: random).")
@click.option("-v", "--vid", "vlan", type=int, default=0, help="VLAN id (0 = none).")
@click.option("--netns", "vnetns", metavar="NS", help="Put the guest end in namespace NS (created if missing).")
@click.option("--mtu", type=int, help="MTU (default: the overlay's).")
@click.option("--address", "addresses", multiple=True, metavar="ADDR/PLEN", help="Guest address; repeatable.")
@click.argument("name")
@click.pass_context
def create_vnic(ctx, temporary, over, mac, vlan, vnetns, mtu, addresses, name):
    """Create a VNIC on an overlay: a veth pair whose guest end is NAME.

    \b
    Examples:
      pyovl create-vnic -l ov0 --netns guest1 --address 10.23.0.1/24 foo0
      pyovl create-vnic -l ov0 -m 02:08:20:00:00:0a vm0    # stays here, for a VM
    """
    from pyovl.engine.declare import CreateVnic  # noqa: PLC0415

    if mac and mac.lower() == "random":
        mac = None
    submit(ctx, CreateVnic(name=name, over=over, mac=mac, vlan=vlan, mtu=mtu, netns=vnetns,
                            addresses=tuple(addresses), temporary=temporary))


@cli.command("delete-vnic")
@click.option("-t", "--temporary", is_flag=True, help="Delete until reboot only.")
@click.argument("name")
@click.pass_context
def delete_vnic(ctx, temporary, name):
    """Delete a VNIC (both ends, and its namespace if pyovl made it and it is empty)."""
    from pyovl.engine.declare import DeleteVnic  # noqa: PLC0415

    submit(ctx, DeleteVnic(name=name, temporary=temporary))


@cli.command("show-vnic")
@click.option("-p", "--parsable", "--parseable", is_flag=True, help="Colon-separated output (needs -o).")
@click.option("-o", "--output", metavar="FIELD,...", help="Fields to show, or 'all'.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("name", required=False)
@click.pass_context
def show_vnic(ctx, parsable, output, as_json, name):
    """Show VNICs: LINK OVER SPEED MACADDRESS MACADDRTYPE VID NETNS."""
    from pyovl.cli import show  # noqa: PLC0415

    recs = engine_of(ctx).declaration().vnics
    if name and name not in recs:
        raise UsageError("no such VNIC: %s" % name)
    rows = [show.vnic_row(recs[n].to_json()) for n in ([name] if name else sorted(recs))]
    emit(show.VNIC_FIELDS, rows, parsable, output, as_json)
