"""Apply: run a plan's actions one by one, each journalled in the ledger.

Applier.run(actions) executes each action against the kernel (through the
Datapath, netlink and netns modules) and records it: a create before the
kernel object is made, a change or a removal after. `hold` (a context
manager factory) is entered around each action alone: the daemon passes its
lock, so misses and proxy requests are answered between two actions of a
long apply rather than after it. On success the ledger is set to the whole
wanted declaration and committed once; on failure the journal keeps what
was done, and the caller decides to roll back.
"""

from __future__ import annotations

import contextlib
import logging
import time

from pyovl import netlink, netns
from pyovl.engine import ledger as L
from pyovl.engine import plan as P
from pyovl.engine.declare import Declaration
from pyovl.engine.facts import host_end_name
from pyovl.engine.intent import Wanted
from pyovl.errors import KernelError, UsageError

log = logging.getLogger(__name__)


class Applier:
    def __init__(self, host, before: Declaration, want: Wanted, rec: dict, hold=None):
        """host: the Engine (dp, instance, ledger); rec: the ledger record,
        changed in place as actions complete."""
        self.host = host
        self.dp = host.dp
        self.ledger: L.Ledger = host.ledger
        self.before = before
        self.want = want
        self.rec = rec
        self.hold = hold or contextlib.nullcontext
        self.yields = hold is not None  # others wait for the lock between actions
        self.current: P.Action | None = None  # the action running (named in errors)

    def run(self, actions: list[P.Action]) -> None:
        for a in actions:
            self.current = a
            with self.hold():
                log.info("apply: %s", a.line())
                getattr(self, "_" + type(a).__name__)(a)
            if self.yields:
                # Python's locks are not fair: without giving up the GIL here this
                # thread takes the lock again before a waiting lookup thread can run
                time.sleep(0)
        self.current = None

    def finish(self) -> None:
        """Every action done: the ledger says exactly the wanted declaration."""
        d = self.want.decl
        vnics = {}
        for n, vd in d.vnics.items():
            vnics[n] = self._vnic_record(n, vd)
        self.rec["overlays"] = {n: od.to_json() for n, od in d.overlays.items()}
        self.rec["vnics"] = vnics
        self.rec["underlay"] = {"devices": list(d.underlay_devices), "hook": d.hook}
        self.rec["file"], self.rec["metrics"] = d.file, d.metrics
        self.ledger.commit(self.rec)

    def _vnic_record(self, name: str, vd, created_netns: bool | None = None) -> dict:
        """A VNIC's ledger record: its declaration and whether pyovl made its
        namespace (kept from the record unless given)."""
        if created_netns is None:
            created_netns = bool((self.rec["vnics"].get(name) or {}).get("created_netns"))
        return dict(vd.to_json(), created_netns=created_netns)

    # -- actions ------------------------------------------------------------------
    def _LoadPrograms(self, a: P.LoadPrograms) -> None:
        from pyovl.dataplane import kernel  # noqa: PLC0415 - probes only when programs must be loaded

        err = kernel.bpf_syscall_problem()
        if err:
            raise KernelError(err)
        self.dp.load()

    def _RemoveVnic(self, a: P.RemoveVnic) -> None:
        old = self.rec["vnics"].get(a.name) or {}
        host = host_end_name(a.name)
        if self.dp.loaded():
            try:
                self.dp.del_port(host)
            except UsageError:
                pass  # not a port (any more)
        netlink.delete_link(host)
        ns = (old.get("spec") or {}).get("netns")
        keep_ns = a.replace and (self.want.vnics[a.name].spec.netns == ns)
        if old.get("created_netns") and ns and not keep_ns and netns.exists(ns):
            if set(netlink.netns_links(ns)) <= {"lo"}:
                netns.remove(ns)
        if a.replace and keep_ns:
            return  # the record stays (created_netns included) until the create half
        self.ledger.record(self.rec, "del", "vnics", a.name)

    def _RemoveOverlay(self, a: P.RemoveOverlay) -> None:
        if self.dp.loaded() and a.vni in self.dp.overlays():
            self.dp.del_overlay(a.vni)
        self.ledger.record(self.rec, "del", "overlays", a.name)

    def _AttachUnderlay(self, a: P.AttachUnderlay) -> None:
        self.dp.attach_underlay(a.name, a.hook)

    def _DetachUnderlay(self, a: P.DetachUnderlay) -> None:
        self.dp.detach_underlay(a.name)

    def _ApplyMesh(self, a: P.ApplyMesh) -> None:
        from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415 - only hosts with a mesh

        w = self.want
        rec = mesh_apply.apply(self.host, w.mesh, w.mesh_ports, self.rec.get("mesh"), w.mesh_device)
        self.ledger.record(self.rec, "set", "top", "mesh", rec)

    def _RemoveMesh(self, a: P.RemoveMesh) -> None:
        from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

        mesh_apply.remove(self.host, self.rec.get("mesh"))
        self.ledger.record(self.rec, "set", "top", "mesh", None)

    def _PutOverlay(self, a: P.PutOverlay) -> None:
        w = self.want.overlays[a.name]
        od = self.want.decl.overlays[a.name]
        if a.create:
            self.ledger.record(self.rec, "set", "overlays", a.name, od.to_json())
        p = w.spec.props
        self.dp.add_overlay(w.vni, p["vxlan/listen_ip"], p["vxlan/listen_port"],
                            point=w.point[:2] if w.point else None, mtu=w.spec.mtu,
                            point_encrypt=bool(w.point and w.point[2]))
        if not a.create:
            self.ledger.record(self.rec, "set", "overlays", a.name, od.to_json())

    def _CreateVnic(self, a: P.CreateVnic) -> None:
        w = self.want.vnics[a.name]
        v = w.spec
        old = self.rec["vnics"].get(a.name) or {}
        kept_ns = bool(old.get("created_netns")) and (old.get("spec") or {}).get("netns") == v.netns
        create_ns = bool(v.netns) and not netns.exists(v.netns)
        self.ledger.record(self.rec, "set", "vnics", a.name, self._vnic_record(a.name, w.decl, create_ns or kept_ns))
        netlink.delete_link(w.host)  # an end left by an interrupted apply (the name is ours)
        if create_ns:
            netns.create(v.netns)
        try:
            netlink.create_vnic(w.host, v.name, w.decl.mac, w.mtu, v.netns, v.addresses)
            try:
                self.dp.add_port(w.host, w.vni, w.decl.mac, v.vlan)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.dp.del_port(w.host)  # whatever map entries it wrote
                netlink.delete_link(w.host)
                raise
        except BaseException:
            if create_ns:
                netns.remove(v.netns)
            self.ledger.record(self.rec, "del", "vnics", a.name)
            raise

    def _ChangeVnic(self, a: P.ChangeVnic) -> None:
        w = self.want.vnics[a.name]
        if a.mtu is not None or a.add or a.remove:
            netlink.guest_set(w.spec.name, w.spec.netns, mtu=a.mtu, add=a.add, remove=a.remove)
        if a.port:
            self.dp.add_port(w.host, w.vni, w.decl.mac, w.spec.vlan)
        self.ledger.record(self.rec, "set", "vnics", a.name, self._vnic_record(a.name, w.decl))

    def _Teardown(self, a: P.Teardown) -> None:
        self.dp.teardown()
        for n in list(self.rec["overlays"]):
            self.ledger.record(self.rec, "del", "overlays", n)

