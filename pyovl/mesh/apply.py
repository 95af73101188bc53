"""Bring the mesh to what overlay.json says, failing closed at every step.

The engine (pyovl/engine/) calls these as plan actions: apply(host, ...)
before any overlay or target is written, remove(host, rec) after nothing
points at an encrypted peer any more. host is the engine: its instance, its
Datapath (dp) and its ledger record (runtime()). The order is the point:
  1. everything is validated first, by the engine's intent step with
     external_device(), check_mtu() and keys.load(): key file (owner, mode,
     a key per encrypted pair), external device, overlay MTUs against the
     ESP overhead; the engine also attaches decap to the external device;
  2. the kernel's fallback policies ("ESP required") for every encrypted
     pair: from here on the kernel cannot send plaintext overlay traffic to
     those peers, whatever IKE does;
  3. nftables on the external device (second layer);
  4. the collect_md vxlan devices and the mesh maps (encrypted peers, the
     devices, the external device): plaintext to or from encrypted peers is
     now refused in the data path;
  5. IKE (pyovl's own charon, or the operator's through vici): connections
     and keys for exactly the encrypted pairs.
remove() undoes them in the reverse order, the fallback policies last.
What it did is recorded in the runtime state ("mesh"), so removal needs no
config file.
"""

from __future__ import annotations

import logging
import os
import shutil

from pyovl import netlink
from pyovl.errors import UsageError
from pyovl.mesh import Mesh, VXLAN_OVERHEAD, ESP_OVERHEAD, from_json

DEVICE_PREFIX = "ovlm"
log = logging.getLogger("pyovl.mesh")


def device_name(port: int) -> str:
    return "%s%d" % (DEVICE_PREFIX, port)


def run_dir(host) -> str:
    return os.path.join(host.dp.state_dir, "ike")


def external_device(mesh: Mesh, device_of_address=netlink.device_of_address) -> str:
    """The device carrying this node's external traffic (named, or the one
    holding its external address)."""
    if mesh.external_device:
        return mesh.external_device
    dev = device_of_address(mesh.me.external)
    if dev is None:
        raise UsageError("mesh: this node's external address %s (node %s) is not on any interface: add it, "
                         "or name the device in mesh.external_device" % (mesh.me.external, mesh.self_name))
    return dev


def check_mtu(mesh: Mesh, ext_mtu: int, ext_dev: str, overlays: dict) -> None:
    """Frames of an encrypted path carry VXLAN and ESP: the overlay MTU must
    leave room for both (Danube uses 1400 or less across PDCs)."""
    if not mesh.encrypted_peers():
        return
    import ipaddress  # noqa: PLC0415

    fam = ipaddress.ip_address(mesh.me.external).version
    limit = ext_mtu - VXLAN_OVERHEAD[fam] - ESP_OVERHEAD
    for name, spec in overlays.items():
        if spec.mtu > limit:
            raise UsageError("overlays.%s: mtu %d does not fit an encrypted path: at most %d on %s (MTU %d) "
                             "minus VXLAN (%d) and ESP (%d)" % (name, spec.mtu, limit, ext_dev, ext_mtu,
                                                               VXLAN_OVERHEAD[fam], ESP_OVERHEAD))


def apply(host, mesh: Mesh, ports: tuple, old: dict | None, ext_dev: str) -> dict:
    """Steps 2-5 above (the engine's intent step did 1, and attached decap to
    ext_dev). host: the engine (instance, dp). Returns the runtime record."""
    from pyovl.mesh import firewall, ike, keys, xfrm  # noqa: PLC0415

    me, enc = mesh.me, mesh.encrypted_peers()
    secrets = keys.load(mesh.keys, me.name, [p.name for p in enc]) if enc else {}
    ports = sorted(ports)
    old = old or {}

    # 2. the kernel refuses plaintext to encrypted peers from here on
    old_pairs = {tuple(p) for p in old.get("fallback", [])}
    new_pairs = {(me.external, p.external) for p in enc}
    for local, remote in sorted(new_pairs):
        xfrm.install_fallback(local, remote, ports)
    for local, remote in sorted(old_pairs - new_pairs):
        xfrm.remove_fallback(local, remote, old.get("ports", ports))

    # 3. the firewall on the external device: a second layer. A kernel
    # without nf_tables inet (Debian's user-mode-linux) runs without it:
    # said in the record and by `mesh show`; the layers above still hold.
    fw = firewall.available()
    if fw is None:
        firewall.apply(host.instance, ext_dev, ports, [p.external for p in mesh.peers()])
    else:
        log.warning("mesh: no nftables firewall on %s: %s", ext_dev, fw)

    # 4. the data path: devices for the encrypted way out, then the maps
    v6 = ":" in me.external
    devices = {}
    for port in ports:
        netlink.ensure_mesh_device(device_name(port), port, ipv6=v6)
        devices[port] = device_name(port)
    for port in old.get("ports", []):
        if port not in devices:
            netlink.delete_link(device_name(port))
    host.dp.set_mesh([p.external for p in enc], devices, [ext_dev])

    # 5. IKE
    vici = mesh.vici
    if vici is None:
        charon = ike.ManagedCharon(run_dir(host))
        if not charon.running():
            charon.start()
        vici = charon.uri
    drv = ike.Ike(vici)
    try:
        drv.apply(me, enc, secrets, set(ports), rekey_time=mesh.rekey_time)
    finally:
        drv.close()

    return {"spec": mesh.to_json(), "ports": ports, "external_device": ext_dev,
            "devices": sorted(devices.values()), "fallback": sorted([list(p) for p in new_pairs]),
            "managed_charon": mesh.vici is None, "firewall": fw or "applied"}


def remove(host, rec: dict | None) -> None:
    """Undo apply() from its runtime record; safe to repeat, and after a crash."""
    if not rec:
        return
    from pyovl.mesh import firewall, ike, xfrm  # noqa: PLC0415

    mesh = from_json(rec["spec"])
    try:
        if rec.get("managed_charon"):
            ike.ManagedCharon(run_dir(host)).stop()
            shutil.rmtree(run_dir(host), ignore_errors=True)  # its conf and log: down leaves nothing
        elif mesh is not None and mesh.vici:
            drv = ike.Ike(mesh.vici)
            try:
                drv.apply(mesh.me, [], {}, set(rec.get("ports", [])), rekey_time=mesh.rekey_time)
            finally:
                drv.close()
    finally:
        if host.dp.loaded():
            host.dp.set_mesh([], {}, [])
        for dev in rec.get("devices", []):
            netlink.delete_link(dev)
        if rec.get("firewall") == "applied":
            firewall.remove(host.instance)
        for local, remote in rec.get("fallback", []):
            xfrm.remove_fallback(local, remote, rec.get("ports", []))


def repair(host, peers: list[str], stale: set[str] = frozenset()) -> None:
    """Bring IKE back for peers without an SA (the daemon calls this, off its
    lookup thread, once a peer has had no SA for mesh.repair_after seconds):
    restart pyovl's own charon if it is gone (loading the connections and
    keys again), then ask for each peer's SA, or rekey the stale ones."""
    from pyovl.mesh import ike, keys  # noqa: PLC0415

    rec = host.runtime().get("mesh")
    mesh = from_json(rec["spec"]) if rec else None
    if mesh is None:
        return
    vici = mesh.vici
    if vici is None:
        charon = ike.ManagedCharon(run_dir(host))
        if not charon.running():
            charon.start()
            enc = mesh.encrypted_peers()
            secrets = keys.load(mesh.keys, mesh.me.name, [p.name for p in enc]) if enc else {}
            drv = ike.Ike(charon.uri)
            try:
                drv.apply(mesh.me, enc, secrets, set(rec["ports"]), rekey_time=mesh.rekey_time)
            finally:
                drv.close()
        vici = charon.uri
    drv = ike.Ike(vici)
    try:
        for name in peers:
            if name in stale:
                drv.rekey(name)  # new SAs on both ends replace the vanished ones
            else:
                drv.initiate(name)
    finally:
        drv.close()


def vici_uri(host, mesh: Mesh) -> str:
    from pyovl.mesh import ike  # noqa: PLC0415

    return mesh.vici or ike.ManagedCharon(run_dir(host)).uri


def health(host, mesh: Mesh) -> dict[str, tuple[bool, str, bool]]:
    """Per encrypted peer: (up, why not, stale). Up means: for both of the
    peer's CHILD_SAs, IKE has one installed whose two SPIs the kernel holds
    as ESP states. stale: IKE believes in a CHILD_SA the kernel no longer
    has (someone deleted it): only a rekey replaces it on both ends. Without
    an answer from IKE, the kernel's states alone decide."""
    from pyovl.mesh import ike, xfrm  # noqa: PLC0415

    me = mesh.me.external
    states = {(s.src, s.dst, s.spi) for s in xfrm.list_states() if s.proto == "esp" and s.spi}
    events, err = [], None
    try:
        drv = ike.Ike(vici_uri(host, mesh), timeout=3.0)
        try:
            events = drv.list_sas()
        finally:
            drv.close()
    except ike.IkeError as e:
        err = str(e)
    children: dict[str, list[tuple[str, int, int]]] = {}
    for ev in events:
        for name, sa in ev.items():
            if ike._s(sa.get("state", b"")) != "ESTABLISHED":
                continue
            for child in (sa.get("child-sas") or {}).values():
                if ike._s(child.get("state", b"")) not in ike.LIVE_CHILD:
                    continue
                try:
                    spi_in = int(ike._s(child.get("spi-in", b"0")), 16)
                    spi_out = int(ike._s(child.get("spi-out", b"0")), 16)
                except ValueError:
                    continue
                children.setdefault(name[len(ike.CONN_PREFIX):], []).append(
                    (ike._s(child.get("name", b"")), spi_in, spi_out))
    out = {}
    for p in mesh.encrypted_peers():
        if err is not None:
            kernel = any(s == me and d == p.external for s, d, _ in states) and \
                any(s == p.external and d == me for s, d, _ in states)
            out[p.name] = (False, "IKE not answering (%s)%s" % (err, "" if kernel else "; no kernel SA"), False)
            continue
        missing, stale = [], False
        for want in ike.child_names(p.name):
            have = [(i, o) for n, i, o in children.get(p.name, []) if n == want]
            if any((p.external, me, i) in states and (me, p.external, o) in states for i, o in have):
                continue
            missing.append(want[len(ike.conn_name(p.name)) + 1:])
            stale = stale or bool(have)
        out[p.name] = (not missing, "no SA for %s%s" % (", ".join(missing),
                                                        " (deleted from the kernel)" if stale else ""), stale)
    return out


def tidy(host) -> int:
    """End IKE_SAs duplicated by simultaneous initiation (both ends start
    at load: see ike.Ike.tidy); the daemon calls it now and then."""
    from pyovl.mesh import ike  # noqa: PLC0415

    rec = host.runtime().get("mesh")
    mesh = from_json(rec["spec"]) if rec else None
    if mesh is None or not mesh.encrypted_peers():
        return 0
    drv = ike.Ike(vici_uri(host, mesh), timeout=5.0)
    try:
        return drv.tidy(mesh.me.name)
    finally:
        drv.close()
