"""A host's whole configuration: up (and --check), diff, serve, down,
up-overlay (boot), check-kernel; and running the daemon (serve()).
"""

from __future__ import annotations

import json
import os

import click

from pyovl.cli.base import cli, engine_of, instance_of, submit
from pyovl.errors import PyovlError

@cli.command("check-kernel")
def check_kernel():
    """Check that this kernel and host can run pyovl; one line per problem."""
    from pyovl.dataplane import kernel  # noqa: PLC0415

    problems = kernel.check()
    if problems:
        raise PyovlError("kernel check failed: " + "; ".join(problems))
    click.echo("kernel ok: bpf, BTF, clsact, headers for bcc")


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
    inst = instance_of(ctx)
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
    actions = engine_of(ctx).diff(change)
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

    inst = instance_of(ctx)
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

    inst = instance_of(ctx)
    client.stop_running(inst)  # the daemon first: it would answer misses into a data path going away
    remove(client.log_path(inst))
    submit(ctx, Down())  # the last out removes the lock and the run directory


@cli.command("up-overlay", hidden=True)
@click.pass_context
def up_overlay(ctx):
    """Bring back persistent overlays and VNICs (run at boot by the systemd unit)."""
    from pyovl.engine.declare import RestorePersistent  # noqa: PLC0415

    for line in submit(ctx, RestorePersistent()):
        click.echo(line)
