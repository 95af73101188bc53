"""pyovl command line (click). Thin: parse, call the library, print.

Every PyovlError becomes one line on stderr and its exit code; nothing here
prints a traceback for bad input. `--netns NAME` runs the command inside that
network namespace (its own pyovl instance, its own pins).
"""

from __future__ import annotations

import json
import os
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
            _fail(e)
    ctx.obj = {"instance": instance or (ns if ns else None)}


@cli.command("check-kernel")
def check_kernel():
    """Check that this kernel and host can run pyovl; one line per problem."""
    from pyovl.dataplane import kernel  # noqa: PLC0415

    problems = kernel.check()
    if problems:
        raise PyovlError("kernel check failed: " + "; ".join(problems))
    click.echo("kernel ok: bpf, BTF, clsact, headers for bcc")



def _instance(ctx) -> str:
    return ctx.find_root().obj["instance"] or netns.current_name()


def _engine(ctx):
    """An engine to read with (show verbs); writes go through _submit."""
    from pyovl.engine.engine import Engine  # noqa: PLC0415

    return Engine(_instance(ctx))


def _submit(ctx, change) -> list[str]:
    """Hand a change to the one writer (the daemon, or this process under
    the instance lock)."""
    from pyovl.daemon import writer  # noqa: PLC0415

    return writer.submit(_instance(ctx), change)


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

    _submit(ctx, CreateOverlay(name=name, encap=encap, search=search, vnetid=vnetid, props=tuple(props),
                               temporary=temporary))


@cli.command("delete-overlay")
@click.option("-t", "--temporary", is_flag=True, help="Delete until reboot only (keep the persistent config).")
@click.argument("name")
@click.pass_context
def delete_overlay(ctx, temporary, name):
    """Delete an overlay (its VNICs must be deleted first)."""
    from pyovl.engine.declare import DeleteOverlay  # noqa: PLC0415

    _submit(ctx, DeleteOverlay(name=name, temporary=temporary))


def _emit(fields, rows, parsable, output, as_json):
    from pyovl.cli import ofmt  # noqa: PLC0415

    if parsable and not output:
        raise UsageError("-p requires -o")
    fields = ofmt.select(fields, output)
    if as_json:
        click.echo(json.dumps([{n.lower(): r.get(n) for n, _ in fields} for r in rows], indent=1))
    elif rows or not parsable:
        click.echo(ofmt.render(fields, rows, parsable=parsable))


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
    eng = _engine(ctx)
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
        return _emit(show.FMA_FIELDS, rows, parsable, output, as_json)
    if target:
        targets = eng.dp.targets() if loaded else []
        rows = [r for s in specs for r in show.target_rows(s, targets)]
        return _emit(show.TARGET_FIELDS, rows, parsable, output, as_json)
    ids = {vni: ov.id for vni, ov in eng.dp.overlays().items()} if loaded else {}
    rows = [r for s in specs for r in show.prop_rows(s, ids.get(s.vnetid))]
    _emit(show.PROP_FIELDS, rows, parsable, output, as_json)


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
    writer.run(_instance(ctx), {"op": "modify", "name": name, "delete": delete, "flush": flush, "set": entry},
               lambda eng: targets.modify(eng, name, delete=delete, flush=flush, set_entry=entry))


@cli.command("set-linkprop")
@click.option("-p", "--prop", "props", multiple=True, required=True, metavar="mtu=N")
@click.argument("name")
@click.pass_context
def set_linkprop(ctx, props, name):
    """Change a link property of an overlay (only mtu can change after creation)."""
    from pyovl.engine.declare import SetLinkprop  # noqa: PLC0415

    _submit(ctx, SetLinkprop(name=name, props=tuple(props)))


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
    _submit(ctx, CreateVnic(name=name, over=over, mac=mac, vlan=vlan, mtu=mtu, netns=vnetns,
                            addresses=tuple(addresses), temporary=temporary))


@cli.command("delete-vnic")
@click.option("-t", "--temporary", is_flag=True, help="Delete until reboot only.")
@click.argument("name")
@click.pass_context
def delete_vnic(ctx, temporary, name):
    """Delete a VNIC (both ends, and its namespace if pyovl made it and it is empty)."""
    from pyovl.engine.declare import DeleteVnic  # noqa: PLC0415

    _submit(ctx, DeleteVnic(name=name, temporary=temporary))


@cli.command("show-vnic")
@click.option("-p", "--parsable", "--parseable", is_flag=True, help="Colon-separated output (needs -o).")
@click.option("-o", "--output", metavar="FIELD,...", help="Fields to show, or 'all'.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("name", required=False)
@click.pass_context
def show_vnic(ctx, parsable, output, as_json, name):
    """Show VNICs: LINK OVER SPEED MACADDRESS MACADDRTYPE VID NETNS."""
    from pyovl.cli import show  # noqa: PLC0415

    recs = _engine(ctx).declaration().vnics
    if name and name not in recs:
        raise UsageError("no such VNIC: %s" % name)
    rows = [show.vnic_row(recs[n].to_json()) for n in ([name] if name else sorted(recs))]
    _emit(show.VNIC_FIELDS, rows, parsable, output, as_json)


@cli.command("up")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-d", "--detach", is_flag=True, help="Serve in the background (the default is the foreground).")
@click.option("--no-daemon", is_flag=True, help="Apply the file and exit: nothing answers misses or proxies.")
@click.option("--check", is_flag=True, help="Only check FILE against this host; change nothing.")
@click.pass_context
def up(ctx, file, detach, no_daemon, check):
    """Make this host match FILE (overlay.json), then serve as the daemon.

    Creates what is missing, changes what differs, recreates what cannot
    change in place, removes what an earlier `up` made and FILE no longer
    has, and repairs what was changed behind pyovl's back. FILE is checked
    whole against this host first: a bad file changes nothing. Then it
    serves (lookups, proxies, metrics, the CLI's requests) until SIGTERM.
    When a daemon already serves this instance, the daemon applies FILE.
    Prints one line per action, as `pyovl diff` does.

    \b
    Examples:
      pyovl up --check /etc/pyovl/overlay.json  # validate only
      pyovl up /etc/pyovl/overlay.json          # foreground, for systemd
      pyovl --netns host1 up -d host1.json      # background
    """
    from pyovl.daemon import client  # noqa: PLC0415
    from pyovl.daemon.server import Daemon, check_bindable  # noqa: PLC0415
    from pyovl.engine.declare import UpFile  # noqa: PLC0415
    from pyovl.engine.engine import Engine, lock_fd, release_lock  # noqa: PLC0415

    # FILE is read once, by whoever applies it (a daemon reads it itself)
    change = UpFile(path=os.path.abspath(file))
    inst = _instance(ctx)
    if check:
        n = len(Engine(inst).diff(change))
        click.echo("%s: ok (%s)" % (file, "%d change(s) to apply" % n if n else "this host matches it"))
        return
    reply = client.request(inst, {"op": "submit", "change": change.to_wire()}, timeout=900)
    if reply is not None:
        for line in reply["done"]:
            click.echo(line)
        return
    fd = lock_fd(inst)
    try:
        eng = Engine(inst)
        # before anything changes: a daemon that could not start makes it a bad file
        bindable = None if no_daemon else (lambda want: check_bindable(want.decl.metrics))
        for line in eng.submit(change, check=bindable):
            click.echo(line)
        if no_daemon:
            return
        serve(Daemon(eng, eng.applied.metrics, lock=fd), detach)
    finally:
        release_lock(inst, fd)  # a detached daemon holds its own copy


@cli.command("diff")
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def diff_cmd(ctx, file, as_json):
    """Show what `pyovl up FILE` would do here, one line per action:
    + create, ~ change in place, -/+ replace, - remove. Without FILE: what
    repairing the applied configuration would do (drift). Prints nothing
    when the host already matches; changes nothing.

    \b
    Examples:
      pyovl diff /etc/pyovl/overlay.json
      pyovl diff --json
    """
    from pyovl.engine.declare import Reconcile, UpFile  # noqa: PLC0415

    change = UpFile(path=os.path.abspath(file)) if file else Reconcile()
    actions = _engine(ctx).diff(change)
    if as_json:
        click.echo(json.dumps([a.to_json() for a in actions], indent=1))
        return
    for a in actions:
        click.echo(a.line())


@cli.command("serve")
@click.option("-d", "--detach", is_flag=True, help="Serve in the background.")
@click.option("--metrics", default="127.0.0.1:9134", show_default=True, metavar="IP:PORT",
              help="Where to serve Prometheus metrics.")
@click.pass_context
def serve_cmd(ctx, detach, metrics):
    """Serve as the daemon for the overlays this instance has now (made by
    create-overlay, or by an earlier `up`), without a file to apply.

    \b
    Example: pyovl up-overlay && pyovl serve     # what the systemd unit does without overlay.json
    """
    from pyovl.daemon import client  # noqa: PLC0415
    from pyovl.daemon.server import Daemon  # noqa: PLC0415
    from pyovl.engine.engine import Engine  # noqa: PLC0415

    inst = _instance(ctx)
    pid = client.running_pid(inst)
    if pid is not None:
        raise PyovlError("a pyovl daemon already serves instance %s (pid %d)" % (inst, pid))
    serve(Daemon(Engine(inst), metrics), detach)


def serve(daemon_obj, detach: bool) -> None:
    """Run the daemon here, or detached (double fork, ready pipe, log file)."""
    import logging  # noqa: PLC0415

    from pyovl.daemon.client import log_path  # noqa: PLC0415

    fmt = "pyovl[%(process)d] %(levelname)s %(message)s"
    if not detach:
        logging.basicConfig(level=logging.INFO, format=fmt)
        daemon_obj.serve()
        return
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        msg = b""
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            msg += chunk
        os.waitpid(pid, 0)
        if not msg.startswith(b"ok "):
            raise PyovlError(msg.decode(errors="replace").strip() or "the daemon died while starting")
        click.echo("pyovl daemon started (pid %s), log %s" % (msg.split()[1].decode(), log_path(daemon_obj.instance)))
        return
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(log_path(daemon_obj.instance), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s " + fmt)

    def ready():
        os.write(w, b"ok %d" % os.getpid())
        os.close(w)

    code = 0
    try:
        daemon_obj.serve(ready=ready)
    except PyovlError as e:
        try:
            os.write(w, str(e).encode())
        except OSError:
            pass
        logging.error("%s", e)
        code = 1
    except Exception:
        logging.exception("the daemon failed")
        code = 1
    os._exit(code)


@cli.command("down")
@click.pass_context
def down(ctx):
    """Remove everything pyovl made here: VNICs, namespaces it created,
    overlays, programs, pins and state (persistent state too)."""
    from pyovl.daemon import client  # noqa: PLC0415
    from pyovl.engine.declare import Down  # noqa: PLC0415
    from pyovl.state import remove  # noqa: PLC0415

    inst = _instance(ctx)
    client.stop_running(inst)  # the daemon first: it would answer misses into a data path going away
    remove(client.log_path(inst))
    _submit(ctx, Down())  # the last out removes the lock and the run directory


@cli.command("up-overlay", hidden=True)
@click.pass_context
def up_overlay(ctx):
    """Bring back persistent overlays and VNICs (run at boot by the systemd unit)."""
    from pyovl.engine.declare import RestorePersistent  # noqa: PLC0415

    for line in _submit(ctx, RestorePersistent()):
        click.echo(line)


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


@cli.group(cls=_Group)
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


@cli.group(cls=_Group)
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

    eng = _engine(ctx)
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


@cli.group(cls=_Group)
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

    return Datapath(instance=_instance(ctx))


def _dp_write(ctx, call: str, **args) -> None:
    """A Datapath method, run by the one writer."""
    from pyovl.daemon import writer  # noqa: PLC0415
    from pyovl.engine import targets  # noqa: PLC0415

    writer.run(_instance(ctx), {"op": "dp", "call": call, "args": args},
               lambda eng: targets.dp_call(eng.dp, call, args) or [])


def _hostport(value: str, what: str) -> tuple[str, int]:
    from pyovl.engine.targets import parse_dest  # noqa: PLC0415

    return parse_dest(value, what)


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
              point=_hostport(point, "--point") if point else None, mtu=mtu, sport_range=rng, strict=strict,
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
        ip, port = _hostport(dest, "destination")
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
        _fail(e)
    sys.exit(0)


if __name__ == "__main__":
    main()
