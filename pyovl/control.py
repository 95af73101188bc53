"""The control plane: create, change and remove overlays and VNICs, and
reconcile to an overlay.json (`pyovl up`).

A Controller is one pyovl instance (the network namespace it runs in). Every
verb validates all of its input and the host (devices, names, conflicts)
before it changes anything, then applies, then records what it did in the
state store (pyovl/state.py). The data path (pyovl/datapath.py) does the map
writes; this module decides what they should be.

Objects carry a source: "cli" (create-overlay, create-vnic) or "file" (up).
`up FILE` owns the file's objects: it creates what is missing, changes what
differs in place where it can (properties, MTU, addresses: map updates are
atomic, so no packet is dropped), recreates what cannot change in place
(vnetid, encap, search, a VNIC's MAC or namespace), and removes file objects
the file no longer has. It never touches CLI-made objects; a name clash is an
error before anything changes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import random

from pyroute2 import netns as pr_netns

from pyovl import netlink, netns
from pyovl.config import Config, OverlaySpec, VnicSpec
from pyovl.datapath import Datapath
from pyovl.errors import UsageError
from pyovl.state import Store, remove


def random_mac() -> str:
    """dladm's default for create-vnic: random, with its 2:8:20 prefix."""
    return "02:08:20:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(3))


def host_end_name(vnic: str) -> str:
    return "ovh" + hashlib.sha1(vnic.encode()).hexdigest()[:8]


class Controller:
    def __init__(self, instance: str | None = None):
        self.instance = instance or netns.current_name()
        self.dp = Datapath(instance=self.instance)
        self.store = Store(self.instance)
        self._loaded = False
        self._device_cache: dict[str, str | None] = {}
        self._kinds: dict[str, str | None] = {}
        self._attached: dict[str, str] = {}
        self._mesh_known = False  # self._mesh read from the runtime state yet
        self._mesh = None

    # -- lookups --------------------------------------------------------
    def runtime(self) -> dict:
        return self.store.runtime()

    def overlay(self, name: str) -> OverlaySpec:
        rec = self.runtime()["overlays"].get(name)
        if rec is None:
            raise UsageError("no such overlay: %s" % name)
        return OverlaySpec.from_json(rec["spec"])

    def overlays(self) -> dict[str, dict]:
        return self.runtime()["overlays"]

    def mesh(self):
        """The applied mesh (pyovl.mesh.Mesh) or None; read once per Controller
        (up() sets it as it applies it)."""
        if not self._mesh_known:
            from pyovl.mesh import from_json  # noqa: PLC0415

            rec = self.runtime().get("mesh")
            self._mesh = from_json(rec["spec"]) if rec else None
            self._mesh_known = True
        return self._mesh

    def resolve(self, ip: str) -> tuple[str, bool]:
        """Where a plugin's answer really goes: (address, encrypted) (mesh.resolve)."""
        m = self.mesh()
        if m is None:
            return ip, False
        r = m.resolve(ip)
        return r.ip, r.encrypt

    def vnics(self) -> dict[str, dict]:
        return self.runtime()["vnics"]

    # -- underlay -------------------------------------------------------
    def _devices(self, spec: OverlaySpec, configured: tuple = ()) -> list[str]:
        if configured:
            for d in configured:
                netlink.ifindex(d)  # raises "no such interface"
            return list(configured)
        lip = ipaddress.ip_address(spec.props["vxlan/listen_ip"])
        if lip.is_unspecified:
            devs = netlink.devices_with_addresses(2 if lip.version == 4 else 10)
            devs = [d for d in devs if not d.startswith("ovh")]
            if not devs:
                raise UsageError("%s: vxlan/listen_ip %s listens on all addresses, but no interface has one"
                                 % (spec.name, lip))
            return devs
        if str(lip) not in self._device_cache:
            self._device_cache[str(lip)] = netlink.device_of_address(str(lip))
        dev = self._device_cache[str(lip)]
        if dev is None:
            raise UsageError("%s: vxlan/listen_ip %s is not an address of this host" % (spec.name, lip))
        return [dev]

    def _ensure_datapath(self, devices: list[str], hook: str) -> None:
        """Programs loaded, decap attached to each device with the right hook.
        Called per overlay: what it learns (pins checked, device kinds,
        attachments) is kept for this Controller; asking netlink every time
        made 10k overlays take 15 s."""
        if not self._loaded:
            self.dp.load()
            self._loaded = True
            self._attached = {d: a["hook"] for d, a in self.dp.underlays().items()}
        for dev in devices:
            if hook != "auto":
                want = hook
            else:
                if dev not in self._kinds:
                    self._kinds[dev] = netlink.link_info(dev)["kind"]
                want = "tc" if self._kinds[dev] in ("veth", "netkit") else "xdp"
            if self._attached.get(dev) != want:
                self.dp.attach_underlay(dev, want)
                self._attached[dev] = want

    # -- overlays -------------------------------------------------------
    def _apply_overlay(self, spec: OverlaySpec, devices: list[str], hook: str) -> None:
        self._ensure_datapath(devices, hook)
        point, encrypt = None, False
        if spec.mode == "point":
            ip, encrypt = self.resolve(spec.props["direct/dest_ip"])
            point = (ip, spec.props["direct/dest_port"])
        self.dp.add_overlay(spec.vnetid, spec.props["vxlan/listen_ip"], spec.props["vxlan/listen_port"],
                            point=point, mtu=spec.mtu, point_encrypt=encrypt)

    def _check_new_overlay(self, spec: OverlaySpec, rt: dict, replacing: set = frozenset()) -> None:
        for name, rec in rt["overlays"].items():
            if name in replacing:
                continue
            if rec["spec"]["vnetid"] == spec.vnetid and name != spec.name:
                raise UsageError("vnetid %d is already used by overlay %s" % (spec.vnetid, name))

    def create_overlay(self, spec: OverlaySpec, temporary: bool = False) -> None:
        rt = self.runtime()
        if spec.name in rt["overlays"]:
            raise UsageError("overlay %s already exists" % spec.name)
        if spec.name in rt["vnics"]:
            raise UsageError("%s is already a VNIC" % spec.name)
        self._check_new_overlay(spec, rt)
        devices = self._devices(spec)
        self._apply_overlay(spec, devices, "auto")
        rt["overlays"][spec.name] = {"spec": spec.to_json(), "source": "cli", "persistent": not temporary,
                                     "devices": devices}
        self.store.save_runtime(rt)
        if not temporary:
            p = self.store.persistent()
            p["overlays"][spec.name] = spec.to_json()
            self.store.save_persistent(p)

    def _remove_overlay(self, rt: dict, name: str) -> None:
        spec = OverlaySpec.from_json(rt["overlays"][name]["spec"])
        if self.dp.loaded() and spec.vnetid in self.dp.overlays():
            self.dp.del_overlay(spec.vnetid)
        del rt["overlays"][name]
        rt["degraded"].pop(name, None)
        self._detach_unused(rt)
        self.store.save_runtime(rt)

    def _detach_unused(self, rt: dict) -> None:
        needed = {d for rec in rt["overlays"].values() for d in rec.get("devices", [])}
        if rt.get("mesh"):
            needed.add(rt["mesh"]["external_device"])  # plaintext from outside is refused there
        for dev in list(self.dp.underlays()):
            if dev not in needed:
                self.dp.detach_underlay(dev)
                self._attached.pop(dev, None)

    def delete_overlay(self, name: str, temporary: bool = False) -> None:
        rt = self.runtime()
        self.overlay(name)
        users = sorted(v for v, rec in rt["vnics"].items() if rec["spec"]["over"] == name)
        if users:
            raise UsageError("overlay %s is busy: VNIC(s) %s are on it; delete them first"
                             % (name, ", ".join(users)))
        self._remove_overlay(rt, name)
        if not temporary:
            p = self.store.persistent()
            if p["overlays"].pop(name, None) is not None:
                self.store.save_persistent(p)

    def set_mtu(self, name: str, mtu: int) -> None:
        from pyovl.props import MTU  # noqa: PLC0415

        mtu = MTU.parse(mtu)
        rt = self.runtime()
        spec = self.overlay(name)
        props = dict(spec.props, mtu=mtu)
        new = OverlaySpec(spec.name, spec.vnetid, spec.encap, spec.search, props, spec.rule)
        rec = rt["overlays"][name]
        self._apply_overlay(new, rec["devices"], "auto")
        rec["spec"] = new.to_json()
        for vrec in rt["vnics"].values():
            v = VnicSpec.from_json(vrec["spec"])
            if v.over == name and (v.mtu is None or v.mtu > mtu):
                netlink.guest_set(v.name, v.netns, mtu=min(v.mtu or mtu, mtu))
        self.store.save_runtime(rt)
        if rec.get("persistent"):
            p = self.store.persistent()
            if name in p["overlays"]:
                p["overlays"][name] = new.to_json()
                self.store.save_persistent(p)

    def modify_overlay(self, name: str, delete: str | None = None, flush: bool = False,
                       set_entry: tuple[str, str] | None = None, via_daemon: bool = False) -> None:
        """illumos modify-overlay: -d MAC, -f, -s MAC=IP:PORT|drop (dynamic
        only). With a daemon running, the daemon (the one writer) does it."""
        if sum(x is not None and x is not False for x in (delete, flush or None, set_entry)) != 1:
            raise UsageError("only one of -d, -f, or -s may be used")
        spec = self.overlay(name)
        if spec.mode != "dynamic":
            raise UsageError("overlay %s uses %s (point-to-point): it has no target table" % (name, spec.search))
        if not via_daemon:
            from pyovl import daemon  # noqa: PLC0415

            req = {"op": "modify", "name": name, "delete": delete, "flush": flush,
                   "set": list(set_entry) if set_entry else None}
            if daemon.request(self.instance, req) is not None:
                return
        if delete is not None:
            if not self.dp.del_target(spec.vnetid, delete):
                raise UsageError("overlay %s has no entry for %s" % (name, delete))
        elif flush:
            for vni, mac, _ in self.dp.targets():
                if vni == spec.vnetid:
                    self.dp.del_target(vni, mac)
        else:
            mac, dest = set_entry
            if dest.lower() == "drop":
                self.dp.set_target(spec.vnetid, mac, None, drop=True)
            else:
                ip, sep, port = dest.rpartition(":")
                if not sep or not ip:
                    raise UsageError("invalid destination %r: use IP:PORT or drop" % dest)
                try:
                    port = int(port)
                except ValueError:
                    raise UsageError("invalid destination port %r" % port) from None
                ip, encrypt = self.resolve(ip.strip("[]"))
                self.dp.set_target(spec.vnetid, mac, ip, port, encrypt=encrypt)

    # -- VNICs ----------------------------------------------------------
    def _apply_vnic(self, v: VnicSpec, ov: OverlaySpec, mac: str) -> dict:
        host = host_end_name(v.name)
        created_ns = False
        if v.netns and v.netns not in pr_netns.listnetns():
            pr_netns.create(v.netns)
            created_ns = True
        try:
            if netlink.link_exists(v.name, v.netns):
                raise UsageError("an interface named %s already exists%s"
                                 % (v.name, " in namespace %s" % v.netns if v.netns else ""))
            netlink.create_vnic(host, v.name, mac, v.mtu or ov.mtu, v.netns, v.addresses)
            try:
                self.dp.add_port(host, ov.vnetid, mac, v.vlan)
            except BaseException:
                netlink.delete_link(host)
                raise
        except BaseException:
            if created_ns:
                pr_netns.remove(v.netns)
            raise
        return {"host": host, "mac": mac, "created_netns": created_ns}

    def _remove_vnic(self, rt: dict, name: str) -> None:
        rec = rt["vnics"][name]
        v = VnicSpec.from_json(rec["spec"])
        try:
            self.dp.del_port(rec["host"])
        except UsageError:
            pass  # the port is already gone
        netlink.delete_link(rec["host"])
        if rec.get("created_netns") and v.netns in pr_netns.listnetns():
            if set(netlink.netns_links(v.netns)) <= {"lo"}:
                pr_netns.remove(v.netns)
        del rt["vnics"][name]
        self.store.save_runtime(rt)

    def create_vnic(self, v: VnicSpec, temporary: bool = False) -> None:
        rt = self.runtime()
        if v.name in rt["vnics"]:
            raise UsageError("VNIC %s already exists" % v.name)
        ov = self.overlay(v.over)
        if v.mtu is not None and v.mtu > ov.mtu:
            raise UsageError("mtu %d is above overlay %s's mtu %d" % (v.mtu, ov.name, ov.mtu))
        mac = v.mac or random_mac()
        self._check_mac_free(rt, ov, mac, v.name)
        rec = self._apply_vnic(v, ov, mac)
        rec.update(spec=v.to_json(), source="cli", persistent=not temporary)
        rt["vnics"][v.name] = rec
        self.store.save_runtime(rt)
        if not temporary:
            p = self.store.persistent()
            p["vnics"][v.name] = VnicSpec.from_json(dict(v.to_json(), mac=mac)).to_json()
            self.store.save_persistent(p)

    def _check_mac_free(self, rt: dict, ov: OverlaySpec, mac: str, name: str) -> None:
        for vname, rec in rt["vnics"].items():
            if vname != name and rec["spec"]["over"] == ov.name and rec["mac"] == mac:
                raise UsageError("MAC %s is already used by VNIC %s on overlay %s" % (mac, vname, ov.name))

    def delete_vnic(self, name: str, temporary: bool = False) -> None:
        rt = self.runtime()
        if name not in rt["vnics"]:
            raise UsageError("no such VNIC: %s" % name)
        self._remove_vnic(rt, name)
        if not temporary:
            p = self.store.persistent()
            if p["vnics"].pop(name, None) is not None:
                self.store.save_persistent(p)

    # -- overlay.json ---------------------------------------------------
    def up(self, cfg: Config, path: str | None = None) -> list[str]:
        """Reconcile this instance's file-made objects to cfg. Returns what it did."""
        rt = self.runtime()
        done: list[str] = []
        for kind, names in (("overlays", cfg.overlays), ("vnics", cfg.vnics)):
            for n in names:
                rec = rt[kind].get(n)
                if rec and rec["source"] != "file":
                    raise UsageError("%s %s was made by the CLI: delete it, or rename it in the file"
                                     % (kind[:-1], n))
        cur_ov = {n: OverlaySpec.from_json(r["spec"]) for n, r in rt["overlays"].items() if r["source"] == "file"}
        identity = lambda s: (s.vnetid, s.encap, s.search)  # noqa: E731
        recreate = {n for n, s in cur_ov.items() if n not in cfg.overlays or identity(s) != identity(cfg.overlays[n])}
        for spec in cfg.overlays.values():
            self._check_new_overlay(spec, rt, replacing=recreate | set(cur_ov))
        devices = {n: self._devices(s, cfg.underlay_devices) for n, s in cfg.overlays.items()}
        for n, v in cfg.vnics.items():  # names free (unless ours)
            rec = rt["vnics"].get(n)
            if rec is None and netlink.link_exists(v.name, v.netns):
                raise UsageError("vnics.%s: an interface named %s already exists" % (n, v.name))

        def vnic_changed(rec: dict, v: VnicSpec) -> bool:
            old = VnicSpec.from_json(rec["spec"])
            return (old.over != v.over or old.netns != v.netns or old.over in recreate or old.vlan != v.vlan
                    or (v.mac is not None and v.mac != rec["mac"]))

        for n, rec in list(rt["vnics"].items()):
            if rec["source"] == "file" and (n not in cfg.vnics or vnic_changed(rec, cfg.vnics[n])):
                self._remove_vnic(rt, n)
                done.append("removed VNIC %s" % n)
        for n in sorted(recreate):
            self._remove_overlay(rt, n)
            done.append("removed overlay %s" % n)
        mesh_changed = False
        if cfg.mesh is not None:
            # before any overlay or target can point at an encrypted peer
            from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

            ports = {s.props["vxlan/listen_port"] for s in cfg.overlays.values()}
            ports |= {s.props["direct/dest_port"] for s in cfg.overlays.values() if s.mode == "point"}
            rec = mesh_apply.apply(self, cfg.mesh, ports or {4789}, cfg.overlays)
            mesh_changed = rec != rt.get("mesh")
            if mesh_changed:
                done.append("applied mesh (node %s, %d encrypted peers)"
                            % (cfg.mesh.self_name, len(cfg.mesh.encrypted_peers())))
            rt["mesh"] = rec
            self.store.save_runtime(rt)
            self._mesh, self._mesh_known = cfg.mesh, True
        try:  # overlays are map entries: applied in a batch, recorded once
            for n, spec in cfg.overlays.items():
                rec = rt["overlays"].get(n)
                if (rec is not None and rec["spec"] == spec.to_json() and rec.get("devices") == devices[n]
                        and not (mesh_changed and spec.mode == "point")):
                    continue
                self._apply_overlay(spec, devices[n], cfg.hook)
                rt["overlays"][n] = {"spec": spec.to_json(), "source": "file", "persistent": False,
                                     "devices": devices[n]}
                done.append("%s overlay %s" % ("changed" if rec else "created", n))
        finally:
            self.store.save_runtime(rt)
        for n, v in cfg.vnics.items():
            ov = cfg.overlays[v.over]
            rec = rt["vnics"].get(n)
            if rec is None:
                mac = v.mac or random_mac()
                self._check_mac_free(rt, ov, mac, n)
                rec = self._apply_vnic(v, ov, mac)
                rec.update(spec=v.to_json(), source="file", persistent=False)
                rt["vnics"][n] = rec
                self.store.save_runtime(rt)
                done.append("created VNIC %s" % n)
                continue
            old = VnicSpec.from_json(rec["spec"])
            want_mtu, had_mtu = v.mtu or ov.mtu, old.mtu or cur_ov[old.over].mtu  # cur_ov: before this up
            add = tuple(a for a in v.addresses if a not in old.addresses)
            rm = tuple(a for a in old.addresses if a not in v.addresses)
            if want_mtu != had_mtu or add or rm:
                netlink.guest_set(v.name, v.netns, mtu=want_mtu if want_mtu != had_mtu else None, add=add, remove=rm)
                done.append("changed VNIC %s" % n)
            if rec["spec"] != v.to_json():
                rec["spec"] = v.to_json()
                self.store.save_runtime(rt)
        for n in list(rt["overlays"]):
            if rt["overlays"][n]["source"] == "file" and n not in cfg.overlays:
                self._remove_overlay(rt, n)
                done.append("removed overlay %s" % n)
        if cfg.mesh is None and rt.get("mesh"):
            from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

            mesh_apply.remove(self, rt.pop("mesh"))
            self._mesh, self._mesh_known = None, True
            done.append("removed mesh")
        rt["file"] = os.path.abspath(path) if path else None
        self.store.save_runtime(rt)
        return done

    def up_overlay(self) -> list[str]:
        """Bring back the persistent CLI-made overlays and VNICs (at boot)."""
        p = self.store.persistent()
        rt = self.runtime()
        done = []
        for n, d in p["overlays"].items():
            if n not in rt["overlays"]:
                self.create_overlay(OverlaySpec.from_json(d), temporary=True)
                self._mark_persistent("overlays", n)
                done.append("overlay %s" % n)
        for n, d in p["vnics"].items():
            if n not in self.runtime()["vnics"]:
                self.create_vnic(VnicSpec.from_json(d), temporary=True)
                self._mark_persistent("vnics", n)
                done.append("VNIC %s" % n)
        return done

    def _mark_persistent(self, kind: str, name: str) -> None:
        rt = self.runtime()
        rt[kind][name]["persistent"] = True
        self.store.save_runtime(rt)

    def down(self) -> None:
        """Remove everything this instance made: VNICs, namespaces it created,
        overlays, programs, pins and state (persistent too)."""
        from pyovl import daemon  # noqa: PLC0415

        daemon.stop_running(self.instance)
        rt = self.runtime()
        for n in list(rt["vnics"]):
            self._remove_vnic(rt, n)
        # Overlays are map entries: removing the pins removes them all at
        # once (one by one, 10k overlays took minutes).
        self.dp.teardown()
        if rt.get("mesh"):
            from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

            mesh_apply.remove(self, rt["mesh"])
        self.store.clear()
        remove(daemon.log_path(self.instance))  # and the instance's run directory
