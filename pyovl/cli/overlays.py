"""Overlays, as dladm: create-overlay, delete-overlay, show-overlay (-f, -t),
modify-overlay (the target table), set-linkprop; and `plugins`.
"""

from __future__ import annotations

import json

import click

from pyovl.cli.base import cli, emit, engine_of, instance_of, submit
from pyovl.errors import UsageError

@cli.command("create-overlay")
@click.option("-t", "--temporary", is_flag=True, help="Do not persist across reboots.")
@click.option("-e", "--encap", help="Encapsulation plugin (vxlan).")
@click.option("-s", "--search", help="Search plugin (direct, files, ...).")
@click.option("-v", "--vnetid", help="Virtual network id (VNI), 0-16777215.")
@click.option("-p", "--prop", "props", multiple=True, metavar="PROP=VALUE[,...]", help="Property; repeatable.")
@click.argument("name", required=False)
@click.pass_context
def create_overlay(ctx, temporary, encap, search, vnetid, props, name):
    """Create an overlay, as dladm create-overlay.

    \b
    Examples:
      pyovl create-overlay -e vxlan -s direct -v 23 -p vxlan/listen_ip=198.18.0.1 \\
          -p direct/dest_ip=198.18.0.2,direct/dest_port=4789 ov0
      pyovl create-overlay -t -e vxlan -s files -v 24 -p vxlan/listen_ip=0.0.0.0 \\
          -p files/config=/etc/pyovl/ov1.json ov1
    """
    from pyovl.engine.declare import CreateOverlay  # noqa: PLC0415

    submit(ctx, CreateOverlay(name=name, encap=encap, search=search, vnetid=vnetid, props=tuple(props),
                               temporary=temporary))


@cli.command("delete-overlay")
@click.option("-t", "--temporary", is_flag=True, help="Delete until reboot only (keep the persistent config).")
@click.argument("name")
@click.pass_context
def delete_overlay(ctx, temporary, name):
    """Delete an overlay (its VNICs must be deleted first)."""
    from pyovl.engine.declare import DeleteOverlay  # noqa: PLC0415

    submit(ctx, DeleteOverlay(name=name, temporary=temporary))


@cli.command("show-overlay")
@click.option("-f", "--fma", is_flag=True, help="Show health: STATUS and DETAILS.")
@click.option("-t", "--target", is_flag=True, help="Show the target table.")
@click.option("-p", "--parsable", "--parseable", is_flag=True, help="Colon-separated output (needs -o).")
@click.option("-o", "--output", metavar="FIELD,...", help="Fields to show, or 'all'.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("name", required=False)
@click.pass_context
def show_overlay(ctx, fma, target, parsable, output, as_json, name):
    """Show overlays: properties (default), health (-f) or targets (-t).

    \b
    Examples:
      pyovl show-overlay ov0
      pyovl show-overlay -f
      pyovl show-overlay -t -p -o target,destination ov1
    """
    from pyovl.cli import show  # noqa: PLC0415

    if fma and target:
        raise UsageError("only one of -f or -t may be used")
    eng = engine_of(ctx)
    recs = eng.declaration().overlays
    names = [name] if name else sorted(recs)
    if name and name not in recs:
        raise UsageError("no such overlay: %s" % name)
    specs = [recs[n].spec for n in names]
    loaded = eng.dp.loaded()
    if fma:
        from pyovl import daemon  # noqa: PLC0415

        status = daemon.request(eng.instance, {"op": "status"}, timeout=5)
        if status is not None:
            degraded = status["degraded"]
        else:  # no daemon: nothing answers the dynamic overlays' misses
            degraded = {s.name: daemon.NO_DAEMON for s in specs if s.mode == "dynamic"}
        rows = [show.fma_row(s.name, degraded.get(s.name)) for s in specs]
        return emit(show.FMA_FIELDS, rows, parsable, output, as_json)
    if target:
        targets = eng.dp.targets() if loaded else []
        rows = [r for s in specs for r in show.target_rows(s, targets)]
        return emit(show.TARGET_FIELDS, rows, parsable, output, as_json)
    ids = {vni: ov.id for vni, ov in eng.dp.overlays().items()} if loaded else {}
    rows = [r for s in specs for r in show.prop_rows(s, ids.get(s.vnetid))]
    emit(show.PROP_FIELDS, rows, parsable, output, as_json)


@cli.command("modify-overlay")
@click.option("-d", "--delete-entry", "delete", metavar="MAC", help="Remove the target entry of MAC.")
@click.option("-f", "--flush-table", "flush", is_flag=True, help="Remove every target entry.")
@click.option("-s", "--set-entry", "set_entry", metavar="MAC=IP:PORT|drop", help="Set a target entry.")
@click.argument("name")
@click.pass_context
def modify_overlay(ctx, delete, flush, set_entry, name):
    """Change the target table of a dynamic overlay.

    \b
    Examples:
      pyovl modify-overlay -s 02:08:20:00:00:01=198.18.0.2:4789 ov1
      pyovl modify-overlay -s 02:08:20:00:00:02=drop ov1
      pyovl modify-overlay -f ov1
    """
    from pyovl.daemon import writer  # noqa: PLC0415
    from pyovl.engine import targets  # noqa: PLC0415

    entry = None
    if set_entry is not None:
        mac, sep, dest = set_entry.partition("=")
        if not sep:
            raise UsageError("invalid entry %r: use MAC=IP:PORT or MAC=drop" % set_entry)
        entry = (mac, dest)
    writer.run(instance_of(ctx), {"op": "modify", "name": name, "delete": delete, "flush": flush, "set": entry},
               lambda eng: targets.modify(eng, name, delete=delete, flush=flush, set_entry=entry))


@cli.command("set-linkprop")
@click.option("-p", "--prop", "props", multiple=True, required=True, metavar="mtu=N")
@click.argument("name")
@click.pass_context
def set_linkprop(ctx, props, name):
    """Change a link property of an overlay (only mtu can change after creation)."""
    from pyovl.engine.declare import SetLinkprop  # noqa: PLC0415

    submit(ctx, SetLinkprop(name=name, props=tuple(props)))


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins_cmd(as_json):
    """List the search plugins: name, mode, properties, where each comes from."""
    from pyovl.lookup import registry  # noqa: PLC0415

    rows = [{"name": c.NAME, "mode": c.MODE, "properties": [p.name for p in c.PROPS], "origin": c.ORIGIN}
            for c in registry.plugins().values()]
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    click.echo("%-10s %-8s %-40s %s" % ("NAME", "MODE", "PROPERTIES", "ORIGIN"))
    for r in rows:
        click.echo("%-10s %-8s %-40s %s" % (r["name"], r["mode"], ",".join(r["properties"]), r["origin"]))
