"""`pyovl dp`: data-path plumbing below the dladm verbs, run by the one writer.
"""

from __future__ import annotations

import json

import click

from pyovl import values
from pyovl.cli.base import Group, cli, instance_of
from pyovl.errors import UsageError

@cli.group(cls=Group)
def dp():
    """Data-path plumbing: programs, overlays, ports and targets in the maps.

    Commands that write the maps below the dladm verbs' level: the daemon
    executes them when it serves (it is the one writer), else this command
    does, under the instance lock. Names: an overlay is its VNI (vnetid), a
    port is the host end of a VNIC (a veth), a target is (vnetid, MAC) ->
    underlay ip:port.
    """


def _dp(ctx):
    from pyovl.dataplane.datapath import Datapath  # noqa: PLC0415

    return Datapath(instance=instance_of(ctx))


def _dp_write(ctx, call: str, **args) -> None:
    """A Datapath method, run by the one writer."""
    from pyovl.daemon import writer  # noqa: PLC0415
    from pyovl.engine import targets  # noqa: PLC0415

    writer.run(instance_of(ctx), {"op": "dp", "call": call, "args": args},
               lambda eng: targets.dp_call(eng.dp, call, args) or [])


@dp.command("init")
@click.argument("underlay", nargs=-1, required=True)
@click.option("--hook", type=click.Choice(["auto", "tc", "xdp"]), default="auto", show_default=True,
              help="Decap hook: tc keeps GSO/checksum offload (veth), xdp is the NIC fast path.")
@click.pass_context
def dp_init(ctx, underlay, hook):
    """Compile and pin the programs, attach decap to the UNDERLAY device(s).

    \b
    Example: pyovl dp init eth1
    """
    _dp_write(ctx, "init", underlays=list(underlay), hook=hook)
    d = _dp(ctx)
    click.echo("pyovl instance %s: programs pinned in %s, underlay %s" % (d.instance, d.pin_dir, ", ".join(underlay)))


@dp.command("add-overlay")
@click.option("-v", "--vnetid", type=int, required=True, help="VNI, 0-16777215.")
@click.option("--listen-ip", required=True, help="Underlay address to receive on (0.0.0.0 = all).")
@click.option("--listen-port", type=int, default=4789, show_default=True)
@click.option("--point", metavar="IP:PORT", help="Point-to-point destination (illumos direct).")
@click.option("--source", metavar="IP", help="Outer source address (default: listen ip or route).")
@click.option("--sport-range", metavar="MIN-MAX", default="32768-60999", show_default=True,
              help="UDP source ports, chosen by a hash of the inner flow.")
@click.option("--strict", is_flag=True, help="Decap only from known destinations of the overlay.")
@click.option("--mtu", type=int, default=1400, show_default=True)
@click.pass_context
def dp_add_overlay(ctx, vnetid, listen_ip, listen_port, point, source, sport_range, strict, mtu):
    """Create (or update) the overlay with VNI vnetid.

    \b
    Examples:
      pyovl dp add-overlay -v 23 --listen-ip 198.18.0.1 --point 198.18.0.2:4789
      pyovl dp add-overlay -v 24 --listen-ip 0.0.0.0 --strict
    """
    lo, _, hi = sport_range.partition("-")
    try:
        rng = (int(lo), int(hi))
    except ValueError:
        raise UsageError("--sport-range must be MIN-MAX, got %r" % sport_range) from None
    _dp_write(ctx, "add_overlay", vni=vnetid, listen_ip=listen_ip, listen_port=listen_port,
              point=values.hostport(point, "--point") if point else None, mtu=mtu, sport_range=rng, strict=strict,
              src_ip=source)


@dp.command("del-overlay")
@click.option("-v", "--vnetid", type=int, required=True)
@click.pass_context
def dp_del_overlay(ctx, vnetid):
    """Delete an overlay (its ports must be gone)."""
    _dp_write(ctx, "del_overlay", vni=vnetid)


@dp.command("add-port")
@click.argument("ifname")
@click.option("-v", "--vnetid", type=int, required=True)
@click.option("-m", "--mac", required=True, help="MAC of the guest behind the port.")
@click.pass_context
def dp_add_port(ctx, ifname, vnetid, mac):
    """Attach the port program to IFNAME (a VNIC's host end) in overlay vnetid.

    \b
    Example: pyovl dp add-port vnic0 -v 23 -m 02:00:00:00:00:0a
    """
    _dp_write(ctx, "add_port", ifname=ifname, vni=vnetid, mac=mac)


@dp.command("del-port")
@click.argument("ifname")
@click.pass_context
def dp_del_port(ctx, ifname):
    """Detach the port program from IFNAME and forget the port."""
    _dp_write(ctx, "del_port", ifname=ifname)


@dp.command("set-target")
@click.option("-v", "--vnetid", type=int, required=True)
@click.argument("mac")
@click.argument("dest", metavar="IP:PORT|drop")
@click.pass_context
def dp_set_target(ctx, vnetid, mac, dest):
    """Point (vnetid, MAC) at an underlay IP:PORT, or at drop.

    \b
    Example: pyovl dp set-target -v 24 02:00:00:00:00:0b 198.18.0.2:4789
    """
    if dest.lower() == "drop":
        _dp_write(ctx, "set_target", vni=vnetid, mac=mac, ip=None, drop=True)
    else:
        ip, port = values.hostport(dest, "destination")
        _dp_write(ctx, "set_target", vni=vnetid, mac=mac, ip=ip, port=port)


@dp.command("del-target")
@click.option("-v", "--vnetid", type=int, required=True)
@click.argument("mac")
@click.pass_context
def dp_del_target(ctx, vnetid, mac):
    """Remove a target entry."""
    _dp_write(ctx, "del_target", vni=vnetid, mac=mac)


@dp.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def dp_show(ctx, as_json):
    """Show the instance: attachments, overlays, counters, drops by reason."""
    d = _dp(ctx)
    info = d.show()
    if as_json:
        click.echo(json.dumps(info, indent=1))
        return
    click.echo("instance %s (%s)%s" % (info["instance"], info["pin_dir"], "" if info["loaded"] else ": not loaded"))
    for dev, a in sorted(info["attached"].items()):
        click.echo("  %-16s %-8s %s" % (dev, a["role"], a["hook"]))
    for ov in info["overlays"]:
        c = ov["counters"]
        click.echo("  vnetid %-8d %-7s listen %-22s %s tx %d rx %d local %d%s" % (
            ov["vnetid"], ov["mode"], ov["listen"], ("point " + ov["point"]) if ov["point"] else "",
            c["tx_packets"], c["rx_packets"], c["local_packets"],
            ("  drops " + ",".join("%s=%d" % kv for kv in ov["drops"].items())) if ov["drops"] else ""))


@dp.command("teardown")
@click.pass_context
def dp_teardown(ctx):
    """Detach every program of this instance and remove its pins and state."""
    _dp_write(ctx, "teardown")
