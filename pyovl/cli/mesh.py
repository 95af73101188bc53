"""`pyovl mesh`: the Danube mesh's keys and its peers' state.
"""

from __future__ import annotations

import json

import click

from pyovl.cli.base import Group, cli, engine_of
from pyovl.errors import UsageError

@cli.group(cls=Group)
def mesh():
    """The Danube mesh: nodes in PDCs, IPsec between PDCs (overlay.json "mesh").

    \b
    Examples:
      pyovl mesh keygen --inventory /etc/pyovl/overlay.json --dir /etc/pyovl/keys
      pyovl mesh show
    """


@mesh.command("keygen")
@click.option("--inventory", "inv", required=True, type=click.Path(dir_okay=False),
              help="overlay.json with a mesh section, or a mesh inventory file.")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False),
              help="Where the per-node key files go (created 0700; files 0600).")
def mesh_keygen(inv, directory):
    """Create or extend one key file per node: a random key for every pair of
    nodes in different PDCs, in both nodes' files and nowhere else. Existing
    pairs keep their keys; pairs of removed nodes go. Keys are never printed:
    copy each node's file to it (its mesh.keys path)."""
    from pyovl.config.load import load_file  # noqa: PLC0415
    from pyovl.inputs import parse_json, read_file  # noqa: PLC0415
    from pyovl.mesh import keys, parse_mesh  # noqa: PLC0415

    doc = parse_json(read_file(inv)[0], inv)  # any unreadable or malformed file: one UsageError
    m = load_file(inv).mesh if isinstance(doc, dict) and "overlays" in doc else parse_mesh(doc)
    if m is None:
        raise UsageError("%s has no mesh section" % inv)
    r = keys.generate(list(m.nodes.values()), directory)
    click.echo("%d cross-PDC pairs: %d new keys, %d kept, %d dropped; %d node files written, %d removed (in %s)"
               % (r.pairs_total, r.pairs_added, r.pairs_kept, r.pairs_dropped, r.files_written, r.files_removed,
                  directory))


@mesh.command("show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def mesh_show(ctx, as_json):
    """Peers of this node: PDC, address used, encryption, SA state, plaintext refused."""
    from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

    eng = engine_of(ctx)
    m = eng.declaration().mesh
    if m is None:
        raise UsageError("no mesh is applied on instance %s" % eng.instance)
    drops = eng.dp.mesh()["peers"] if eng.dp.loaded() else {}
    health = mesh_apply.health(eng, m)
    rows = []
    for p in m.peers():
        r = m.resolve(p.admin)
        up, why, _ = health.get(p.name, (False, "", False))
        rows.append({"peer": p.name, "pdc": p.pdc, "address": r.ip, "ipsec": "yes" if r.encrypt else "no",
                     "sa": ("up" if up else "down") if r.encrypt else "-", "detail": "" if up else why,
                     "plaintext_in_dropped": drops.get(p.external, 0) if r.encrypt else 0})
    if as_json:
        click.echo(json.dumps({"self": m.self_name, "pdc": m.me.pdc, "peers": rows}, indent=1))
        return
    click.echo("%-12s %-8s %-16s %-6s %-5s %-13s %s" % ("PEER", "PDC", "ADDRESS", "IPSEC", "SA", "PLAINTEXT-IN",
                                                      "DETAIL"))
    for r in rows:
        click.echo("%-12s %-8s %-16s %-6s %-5s %-13d %s" % (r["peer"], r["pdc"], r["address"], r["ipsec"], r["sa"],
                                                           r["plaintext_in_dropped"], r["detail"] or "-"))
