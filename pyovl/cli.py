"""pyovl command line (click). Thin: parse, call the library, print.

Every PyovlError becomes one line on stderr and its exit code; nothing here
prints a traceback for bad input. `--netns NAME` runs the command inside that
network namespace (its own pyovl instance, its own pins).
"""

from __future__ import annotations

import json
import sys

import click

from pyovl import __version__, netns
from pyovl.errors import PyovlError, UsageError


def _fail(e: PyovlError) -> None:
    click.echo("pyovl: %s" % e, err=True)
    sys.exit(e.exit_code)


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except PyovlError as e:
            _fail(e)
        except PermissionError as e:
            _fail(PyovlError("permission denied (%s): run as root" % (e.filename or e.strerror)))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyovl")
@click.option("--netns", "ns", metavar="NAME", help="Run inside network namespace NAME.")
@click.option("--instance", metavar="NAME", help="Instance name (default: the netns name).")
@click.pass_context
def cli(ctx, ns, instance):
    """Overlay networks (VXLAN) with an eBPF data path, managed like illumos dladm.

    \b
    Examples:
      pyovl check-kernel
      pyovl --netns host1 dp init ul0
      pyovl --netns host1 dp add-overlay -v 23 --listen-ip 198.18.0.1 --point 198.18.0.2:4789
    """
    if ns:
        try:
            netns.enter(ns)
        except PyovlError as e:
            _fail(e)
    ctx.obj = {"instance": instance or (ns if ns else None)}


@cli.command("check-kernel")
def check_kernel():
    """Check that this kernel and host can run pyovl; one line per problem."""
    from pyovl import kernel  # noqa: PLC0415

    problems = kernel.check()
    if problems:
        raise PyovlError("kernel check failed: " + "; ".join(problems))
    click.echo("kernel ok: bpf, BTF, clsact, headers for bcc")


@cli.group(cls=_Group)
def dp():
    """Data-path plumbing: programs, overlays, ports and targets in the maps.

    One-shot commands that write the pinned maps directly (when no daemon
    runs). Names: an overlay is its VNI (vnetid), a port is the host end of a
    VNIC (a veth), a target is (vnetid, MAC) -> underlay ip:port.
    """


def _dp(ctx):
    from pyovl.datapath import Datapath  # noqa: PLC0415

    return Datapath(instance=ctx.find_root().obj["instance"])


def _hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise UsageError("%s must be IP:PORT, got %r" % (what, value))
    host = host.strip("[]")
    try:
        return host, int(port)
    except ValueError:
        raise UsageError("%s port must be a number, got %r" % (what, port)) from None


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
    d = _dp(ctx)
    d.init(list(underlay), hook=hook)
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
    d = _dp(ctx)
    d.add_overlay(vnetid, listen_ip, listen_port, _hostport(point, "--point") if point else None,
                  mtu=mtu, sport_range=rng, strict=strict, src_ip=source)


@dp.command("del-overlay")
@click.option("-v", "--vnetid", type=int, required=True)
@click.pass_context
def dp_del_overlay(ctx, vnetid):
    """Delete an overlay (its ports must be gone)."""
    d = _dp(ctx)
    d.del_overlay(vnetid)


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
    d = _dp(ctx)
    d.add_port(ifname, vnetid, mac)


@dp.command("del-port")
@click.argument("ifname")
@click.pass_context
def dp_del_port(ctx, ifname):
    """Detach the port program from IFNAME and forget the port."""
    d = _dp(ctx)
    d.del_port(ifname)


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
    d = _dp(ctx)
    if dest.lower() == "drop":
        d.set_target(vnetid, mac, None, drop=True)
    else:
        ip, port = _hostport(dest, "destination")
        d.set_target(vnetid, mac, ip, port)


@dp.command("del-target")
@click.option("-v", "--vnetid", type=int, required=True)
@click.argument("mac")
@click.pass_context
def dp_del_target(ctx, vnetid, mac):
    """Remove a target entry."""
    d = _dp(ctx)
    if not d.del_target(vnetid, mac):
        raise UsageError("no target %s in overlay %d" % (mac, vnetid))


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
    _dp(ctx).teardown()


def main() -> None:
    cli(prog_name="pyovl")


if __name__ == "__main__":
    main()
