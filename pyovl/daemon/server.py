"""The pyovl daemon: illumos varpd for one instance.

It is the one writer of the maps while it runs. It starts a search-plugin
instance per overlay, consumes the data path's misses ring, and answers:
  miss (unicast, dynamic overlay)  plugin.lookup(MAC) -> target written (a
                                   Drop is cached with a TTL), the pending
                                   entry cleared, and the frame sent on
                                   through the slow path (VXLAN from a UDP
                                   socket) so the first packets are not lost
  ARP request                      proxy ARP: plugin.arp(IP) -> reply injected
                                   into the asking VNIC (AF_PACKET)
  IPv6 Neighbor Solicitation       proxy NDP: plugin.ndp(IP) -> NA injected
  DHCP broadcast request           plugin.dhcp(MAC) -> rewritten to that MAC
                                   and sent through the overlay
  anything else                    dropped (no broadcast leaves the host)
It keeps a degraded state per overlay (a plugin that cannot start, a bad new
files table: the old table stays in use), heals it when the cause goes,
serves Prometheus metrics, and takes CLI requests on a unix socket
(<run root>/<instance>/daemon.sock, one JSON object per line).

Threads: the lookup thread (ring + housekeeping), the control socket, the
metrics server. Map writes and plugin calls happen under one lock. If the
daemon dies, the data path keeps forwarding what it knows (pins), and a new
daemon picks up: it re-reads state and plugin sources and re-reports
pending misses.
"""

from __future__ import annotations

import collections
import ctypes as C
import json
import logging
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time

from prometheus_client import CollectorRegistry, start_http_server

from pyovl.dataplane import abi
from pyovl.dataplane.ringbuf import RingBuffer
from pyovl.config.load import check_hostport
from pyovl.config.specs import OverlaySpec
from pyovl.daemon.client import pid_path, socket_path
from pyovl.dataplane.datapath import drop_dest, valid_dest
from pyovl.engine import declare, targets
from pyovl.engine.engine import Engine, lock_fd, release_lock
from pyovl import netns
from pyovl.errors import PyovlError, StateError, UsageError
from pyovl.inputs import BadJson, decode_json
from pyovl.lookup import proxy, registry
from pyovl.lookup.plugin import Destination, PluginError
from pyovl.daemon.metrics import DaemonMetrics, DatapathCollector

log = logging.getLogger("pyovl.daemon")
DROP_TTL_S = 10.0
HOUSEKEEPING_S = 0.2
MESH_CHECK_S = 1.0  # how often the kernel's SAs are read
REPAIR_MAX_S = 60.0  # the longest wait between two repairs of one peer
TIDY_S = 30.0  # how often duplicate IKE_SAs are looked for
SWITCH_INTERVAL_S = 0.0005  # see Daemon._serve
MAX_REQUEST = 1 << 20  # bytes of one control-socket request
# ethertype -> (parse the question, plugin method, build the answer, metric name)
PROXIES = {proxy.ETH_P_ARP: (proxy.parse_arp_request, "arp", proxy.build_arp_reply, "arp"),
           proxy.ETH_P_IPV6: (proxy.parse_ns, "ndp", proxy.build_na, "ndp")}


def check_bindable(addr: str) -> None:
    """Can the metrics server bind addr? Asked before `up` changes anything,
    so a daemon that could not start never leaves a half-served host."""
    host, _, port = check_hostport(addr).rpartition(":")
    host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
    except OSError as e:
        raise UsageError("cannot serve metrics on %s: %s (set daemon.metrics to a free address)"
                         % (addr, e.strerror)) from None
    finally:
        s.close()


class Instance:
    """A running plugin for one overlay."""

    def __init__(self, spec: OverlaySpec):
        self.spec = spec
        self.plugin = registry.plugins()[spec.search](spec.vnetid, spec.props)
        self.started = False
        self.strict = False  # set by the daemon from the overlay's data-path flags


class Daemon:
    def __init__(self, engine: Engine, metrics_addr: str = "127.0.0.1:9134", lock: int | None = None):
        """lock: the instance lock's fd when the caller holds it already (up
        applies under it, then serves); else serve() takes it."""
        self.engine = engine
        self.dp = engine.dp
        self.instance = engine.instance
        self.lock = threading.RLock()  # map writes and plugin calls
        self.submit_lock = threading.Lock()  # one change at a time; self.lock is taken per action
        self.lock_fd = lock
        self.netns_cookie = netns.cookie()
        self._http = None  # the metrics server
        self.stop_event = threading.Event()
        self.by_name: dict[str, Instance] = {}
        self.by_vni: dict[int, Instance] = {}
        self.degraded: dict[str, str] = {}
        self.metrics_addr = check_hostport(metrics_addr)
        self.registry = CollectorRegistry()
        self.m = DaemonMetrics(self.registry)
        self.registry.register(DatapathCollector(self))
        self._sockets: dict[tuple, socket.socket] = {}  # (family, encrypted) -> socket
        self._dests: dict = {}  # Destination -> abi.Dest, built once
        self._drops: collections.deque = collections.deque()  # (expiry_ns, key) of DROPs we cached
        self._counters: dict = {}
        self._inject = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self._ifnames: dict[int, str] = {}
        self.ring: RingBuffer | None = None
        self.handled = 0
        self.resolved = 0
        self.busy_s = 0.0  # time spent handling events
        # miss -> first delivery, ns, for `status` (bounded)
        self.latencies: collections.deque = collections.deque(maxlen=100_000)
        # the IPsec mesh: SA state per encrypted peer, overlays it degrades
        self.mesh = None
        self.sa_up: dict[str, bool] = {}
        self.mesh_faults: dict[str, str] = {}
        self._sa_down_since: dict[str, float] = {}
        self._repair_asked: dict[str, float] = {}
        self._repair_wait: dict[str, float] = {}
        self._repair_thread: threading.Thread | None = None
        self._next_mesh_check = 0.0
        self._next_tidy = 0.0

    # -- plugin instances ----------------------------------------------
    def sync_instances(self) -> None:
        """Match plugin instances to the declared overlays. The lock is taken
        per instance, and new plugins start before they are visible: 10k new
        overlays must not hold up the misses of the others (the lock once
        covered the whole loop: 225 ms p99 miss latency during such an up)."""
        decl = self.engine.declaration()
        specs: dict[str, OverlaySpec] = {n: od.spec for n, od in decl.overlays.items()}
        with self.lock:
            if decl.mesh != self.mesh:
                self.mesh = decl.mesh
                self._dests.clear()  # answers resolve differently now
                for inst in self.by_name.values():
                    if inst.started and inst.spec.mode == "dynamic":
                        self._refresh(inst, None)
            gone = [n for n, inst in self.by_name.items() if n not in specs or specs[n] != inst.spec]
        for name in gone:
            with self.lock:
                inst = self.by_name.pop(name)
                self.by_vni.pop(inst.spec.vnetid, None)
                self.degraded.pop(name, None)
                if inst.started:
                    inst.plugin.stop()
        # only this thread adds or removes instances (under submit_lock, or before serving)
        for name in [n for n in specs if n not in self.by_name]:
            inst = Instance(specs[name])
            ov = self.dp.maps.overlays.get(abi.U32(inst.spec.vnetid))
            inst.strict = bool(ov is not None and ov.flags & abi.F_STRICT)
            try:
                inst.plugin.start()
                inst.started, why = True, None
            except PluginError as e:
                why = str(e)
                log.warning("overlay %s degraded: %s", name, e)
            with self.lock:
                self.by_name[name] = inst
                self.by_vni[inst.spec.vnetid] = inst
                if why:
                    self.degraded[name] = why
                else:
                    self.degraded.pop(name, None)

    def _start(self, name: str, inst: Instance) -> None:
        try:
            inst.plugin.start()
            inst.started = True
            self.degraded.pop(name, None)
            log.info("overlay %s: %s plugin started", name, inst.spec.search)
        except PluginError as e:
            self.degraded[name] = str(e)
            log.warning("overlay %s degraded: %s", name, e)

    # -- the lookup loop -------------------------------------------------
    def lookup_loop(self) -> None:
        next_hk = 0.0
        while not self.stop_event.is_set():
            recs = self.ring.poll(HOUSEKEEPING_S)
            t0 = time.perf_counter()
            for rec in recs:
                try:
                    self.on_event(rec)
                except Exception:  # one bad frame must not stop the daemon
                    log.exception("event not handled")
            if recs:
                self.busy_s += time.perf_counter() - t0
            now = time.monotonic()
            if now >= next_hk:
                next_hk = now + HOUSEKEEPING_S
                try:
                    self.housekeeping()
                except Exception:
                    log.exception("housekeeping failed")

    def on_event(self, rec: bytes) -> None:
        hsize = C.sizeof(abi.EventHdr)
        h = abi.EventHdr.from_buffer_copy(rec[:hsize])
        frame = bytes(rec[hsize:hsize + h.len])
        self.handled += 1
        with self.lock:
            inst = self.by_vni.get(h.vni)
            if inst is None or not inst.started or inst.spec.mode != "dynamic":
                return
            if h.type & 0xFF == abi.EV_MISS:
                self._miss(inst, h, frame)
            else:
                self._broadcast(inst, h, frame)

    def _miss(self, inst: Instance, h: abi.EventHdr, frame: bytes) -> None:
        mac = abi.mac_str(frame[:6])
        ans = inst.plugin.lookup(mac)
        name, vni = inst.spec.name, inst.spec.vnetid
        if h.type & abi.EV_F_FIRST:
            key = abi.L2Key.of(vni, frame[:6])
            ok = isinstance(ans, Destination)
            if ok:
                dest = self._dests.get(ans)
                if dest is None:
                    ip, enc = self._resolve(ans.ip)
                    dest = self._dests[ans] = valid_dest(ip, ans.port, encrypt=enc)
            else:
                dest = drop_dest(time.monotonic_ns() + int(DROP_TTL_S * 1e9))
                self._drops.append((dest.expiry_ns, key))
            self.dp.put_target(key, dest, track_peers=inst.strict)
            self.dp.maps.pending.delete(key)
            self._counter(name, inst.spec.search, "ok" if ok else "drop").inc()
        if isinstance(ans, Destination):
            self._send(inst, ans, self._tagged(h.ifindex, frame), "held")
        if h.type & abi.EV_F_FIRST:
            lat = max(0, time.monotonic_ns() - h.ts_ns)
            self.m.latency.labels(name).observe(lat / 1e9)
            self.latencies.append(lat)
            self.resolved += 1

    def _broadcast(self, inst: Instance, h: abi.EventHdr, frame: bytes) -> None:
        name, plugin, search = inst.spec.name, inst.plugin, inst.spec.search
        et = proxy.ethertype(frame)
        if et in PROXIES:
            parse, ask, build, kind = PROXIES[et]
            ip = parse(frame)
            mac = getattr(plugin, ask)(ip) if ip else None
            self.m.lookups.labels(name, search, "proxy_" + kind if mac else "proxy_%s_drop" % kind).inc()
            if mac:
                self._inject_to(h.ifindex, build(frame, abi.mac_bytes(mac)), name, kind + "_reply")
        elif proxy.is_dhcp_request(frame):
            to = plugin.dhcp(abi.mac_str(frame[6:12]))
            self.m.lookups.labels(name, search, "proxy_dhcp" if to else "proxy_dhcp_drop").inc()
            if to:
                self._resend(inst, proxy.with_destination(frame, abi.mac_bytes(to)), h.ifindex)
        else:
            self.m.lookups.labels(name, search, "broadcast_drop").inc()

    def _resend(self, inst: Instance, frame: bytes, src_ifindex: int) -> None:
        """illumos RESEND: through the overlay again, to a local port of the
        sender's VLAN or a target."""
        vni = inst.spec.vnetid
        port = self.dp.maps.ports.get(abi.L2Key.of(vni, frame[:6]))
        vnic = self.dp.maps.vnics.get(abi.U32(src_ifindex))
        if port is not None and vnic is not None and port.vlan == vnic.vlan:
            self._inject_to(port.ifindex, frame, inst.spec.name, "resend_local")
            return
        ans = inst.plugin.lookup(abi.mac_str(frame[:6]))
        if isinstance(ans, Destination):
            self._send(inst, ans, self._tagged(src_ifindex, frame), "resend")

    def _tagged(self, src_ifindex: int, frame: bytes) -> bytes:
        """The frame as the overlay carries it: with the 802.1Q tag of its
        VNIC's VLAN (the data path inserts it on encap; so must we)."""
        vnic = self.dp.maps.vnics.get(abi.U32(src_ifindex))
        if vnic is None or not vnic.vlan:
            return frame
        return frame[:12] + struct.pack("!HH", proxy.ETH_P_8021Q, vnic.vlan) + frame[12:]

    def _resolve(self, ip: str) -> tuple[str, bool]:
        """A plugin's answer as the mesh routes it (pyovl.mesh.Mesh.resolve)."""
        if self.mesh is None:
            return ip, False
        r = self.mesh.resolve(ip)
        return r.ip, r.encrypt

    def _send(self, inst: Instance, dest: Destination, frame: bytes, kind: str) -> None:
        # To an encrypted peer the socket's packets take the kernel's IPsec
        # policy like the mesh device's do: never plaintext.
        # Bound to this node's external address: the IPsec policies (and
        # their fail-closed fallbacks) select on it.
        ip, enc = self._resolve(dest.ip)
        dest = Destination(ip, dest.port)
        fam = socket.AF_INET6 if ":" in dest.ip else socket.AF_INET
        s = self._sockets.get((fam, enc))
        if s is None:
            s = self._sockets[(fam, enc)] = socket.socket(fam, socket.SOCK_DGRAM)
            lip = self.mesh.me.external if enc else inst.spec.props.get("vxlan/listen_ip", "")
            if lip and lip not in ("0.0.0.0", "::") and (":" in lip) == (fam == socket.AF_INET6):
                s.bind((lip, 0))  # the outer source strict peers expect
        try:
            s.sendto(proxy.vxlan_header(inst.spec.vnetid) + frame, (dest.ip, dest.port))
            self.m.slowpath.labels(inst.spec.name, kind).inc()
        except OSError as e:
            log.warning("overlay %s: sending a held frame to %s:%d failed: %s", inst.spec.name, dest.ip,
                        dest.port, e.strerror)

    def _inject_to(self, ifindex: int, frame: bytes, name: str, kind: str) -> None:
        ifname = self._ifnames.get(ifindex)
        if ifname is None:
            ifname = self._ifnames[ifindex] = socket.if_indextoname(ifindex)
        try:
            self._inject.sendto(frame, (ifname, 0))
            self.m.slowpath.labels(name, kind).inc()
        except OSError as e:
            self._ifnames.pop(ifindex, None)
            log.warning("overlay %s: injecting into %s failed: %s", name, ifname, e.strerror)

    def _counter(self, name: str, search: str, result: str):
        c = self._counters.get((name, result))
        if c is None:
            c = self._counters[(name, result)] = self.m.lookups.labels(name, search, result)
        return c

    # -- housekeeping ------------------------------------------------------
    def housekeeping(self) -> None:
        with self.lock:
            for name, inst in self.by_name.items():
                if not inst.started:
                    self._start(name, inst)  # heals once the source is fixed
                    if inst.started:
                        self._refresh(inst, None)
                    continue
                try:
                    changed = inst.plugin.check_reload()
                except PluginError as e:
                    if self.degraded.get(name) != str(e):
                        log.warning("overlay %s degraded: %s (the previous table stays in use)", name, e)
                    self.degraded[name] = str(e)
                    continue
                if name in self.degraded:
                    log.info("overlay %s healed", name)
                    self.degraded.pop(name)
                if changed:
                    self._refresh(inst, changed)
            self._expire_drops()
        now = time.monotonic()
        if self.mesh is not None and now >= self._next_mesh_check:
            self._next_mesh_check = now + MESH_CHECK_S
            self._check_mesh(now)

    # -- the IPsec mesh ------------------------------------------------------
    def _check_mesh(self, now: float) -> None:
        """Ground truth from the kernel: an encrypted peer is up when ESP
        states exist both ways. Overlays that may send to a peer without
        them are degraded, naming it; after mesh.repair_after seconds pyovl
        asks IKE to bring the SA back (restarting its own charon if gone)."""
        from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

        mesh = self.mesh
        faults: dict[str, list[str]] = {}
        need_repair, stale = [], set()
        try:
            health = mesh_apply.health(self.engine, mesh)
        except PyovlError as e:
            log.warning("mesh: cannot read the SAs: %s", e)
            health = {p.name: (False, str(e), False) for p in mesh.encrypted_peers()}
        for p in mesh.encrypted_peers():
            up, why, is_stale = health.get(p.name, (False, "unknown", False))
            if is_stale:
                stale.add(p.name)
            if self.sa_up.get(p.name) != up:
                log.log(logging.INFO if up else logging.WARNING, "mesh peer %s (%s): IPsec SA %s", p.name,
                        p.external, "up" if up else "missing: %s" % why)
            self.sa_up[p.name] = up
            if up:
                self._sa_down_since.pop(p.name, None)
                self._repair_wait.pop(p.name, None)
                continue
            since = self._sa_down_since.setdefault(p.name, now)
            msg = "no IPsec SA with mesh peer %s (%s): %s" % (p.name, p.external, why)
            for name, inst in self.by_name.items():
                if self._reaches(inst, p):
                    faults.setdefault(name, []).append(msg)
            wait = self._repair_wait.get(p.name, mesh.repair_after)
            if now - since >= mesh.repair_after and now - self._repair_asked.get(p.name, -1e9) >= wait:
                need_repair.append(p.name)
                # a peer that stays unreachable is asked less and less often
                # (each ask starts an IKE exchange)
                self._repair_wait[p.name] = min(REPAIR_MAX_S, wait * 2)
        with self.lock:
            self.mesh_faults = {n: "; ".join(v) for n, v in faults.items()}
        busy = self._repair_thread is not None and self._repair_thread.is_alive()
        if not need_repair and not busy and now >= self._next_tidy:
            self._next_tidy = now + TIDY_S
            self._repair_thread = threading.Thread(target=self._tidy, name="mesh-tidy", daemon=True)
            self._repair_thread.start()
            busy = True
        if need_repair and not busy:
            for name in need_repair:
                self._repair_asked[name] = now
            self._repair_thread = threading.Thread(target=self._repair, args=(need_repair, stale & set(need_repair)),
                                                   name="mesh-repair", daemon=True)
            self._repair_thread.start()

    def _reaches(self, inst: Instance, peer) -> bool:
        """Can this overlay send to peer? Point overlays: when their
        destination is that node; dynamic ones: their table may name any node."""
        if inst.spec.mode != "point":
            return True
        node = self.mesh.node_of(inst.spec.props["direct/dest_ip"])
        return node is not None and node.name == peer.name

    def _tidy(self) -> None:
        from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

        try:
            n = mesh_apply.tidy(self.engine)
            if n:
                log.info("mesh: ended %d duplicate IKE_SA(s)", n)
        except PyovlError as e:
            log.debug("mesh: tidy failed: %s", e)
        except Exception:  # noqa: BLE001 - next time
            log.exception("mesh: tidy failed")

    def _repair(self, peers: list[str], stale: set[str]) -> None:
        from pyovl.mesh import apply as mesh_apply  # noqa: PLC0415

        try:
            log.info("mesh: asking IKE for SAs with %s%s", ", ".join(peers),
                     " (rekeying %s)" % ", ".join(sorted(stale)) if stale else "")
            mesh_apply.repair(self.engine, peers, stale)
        except PyovlError as e:
            log.warning("mesh: repair failed: %s", e)
        except Exception:  # noqa: BLE001 - the next check tries again
            log.exception("mesh: repair failed")

    def _refresh(self, inst: Instance, macs: set | None) -> None:
        """Re-answer the targets whose answer may have changed."""
        vni = inst.spec.vnetid
        for tvni, mac, _ in self.dp.targets():
            if tvni != vni or (macs is not None and mac not in macs):
                continue
            ans = inst.plugin.lookup(mac)
            if isinstance(ans, Destination):
                ip, enc = self._resolve(ans.ip)
                self.dp.set_target(vni, mac, ip, ans.port, encrypt=enc)
            else:
                self.dp.del_target(vni, mac)

    def _expire_drops(self) -> None:
        """Delete the DROP entries this daemon cached once their TTL is over
        (the data path already treats them as misses; this bounds the map).
        Expiries are kept in write order, so only expired ones are looked at."""
        now = time.monotonic_ns()
        while self._drops and self._drops[0][0] <= now:
            expiry, key = self._drops.popleft()
            cur = self.dp.maps.targets.get(key)
            if cur is not None and cur.state == abi.TARGET_DROP and cur.expiry_ns == expiry:
                self.dp.maps.targets.delete(key)

    # -- views for the CLI and the metrics --------------------------------
    def degraded_now(self) -> dict[str, str]:
        """Plugin faults and mesh faults, one message per overlay."""
        with self.lock:
            out = dict(self.degraded)
            for name, msg in self.mesh_faults.items():
                out[name] = "%s; %s" % (out[name], msg) if name in out else msg
            return out

    def overlay_table(self) -> dict:
        with self.lock:
            ids = {vni: ov.id for vni, ov in self.dp.overlays().items()}
            return {n: (i.spec, ids.get(i.spec.vnetid)) for n, i in self.by_name.items()}

    def target_counts(self) -> dict[int, tuple[int, int]]:
        out: dict[int, list] = {}
        for vni, _, d in self.dp.targets():
            c = out.setdefault(vni, [0, 0])
            c[0 if d.state == abi.TARGET_VALID else 1] += 1
        return {k: (v[0], v[1]) for k, v in out.items()}

    def map_fill(self) -> list[tuple[str, int, int]]:
        out = []
        for name, (mtype, _k, _v, cap) in abi.MAPS.items():
            if mtype in (abi.MAP_HASH, abi.MAP_LRU_HASH):
                out.append((name, sum(1 for _ in getattr(self.dp.maps, name).keys()), cap))
        return out

    # -- control socket ------------------------------------------------------
    def handle_request(self, req: dict) -> dict:
        op = req.get("op") if isinstance(req, dict) else None
        if op not in (None, "status", "stop") and req.get("netns") not in (None, self.netns_cookie):
            raise StateError("the pyovl daemon of instance %s (pid %d) serves a network namespace that is gone "
                             "(its name was given to a new one): stop it (kill %d), then run the command again"
                             % (self.instance, os.getpid(), os.getpid()))
        if op == "submit":  # the engine takes self.lock per action, not for the whole change
            change = declare.from_wire(req.get("change"))
            moves = isinstance(change, declare.UpFile)  # a file says where metrics are served

            def bindable(want) -> None:  # with the other checks: before anything changes
                if moves and want.decl.metrics != self.metrics_addr:
                    check_bindable(want.decl.metrics)

            with self.submit_lock:
                try:
                    done = self.engine.submit(change, hold=lambda: self.lock, check=bindable)
                finally:
                    self.sync_instances()
                if moves:
                    self.move_metrics(self.engine.applied.metrics)
            if isinstance(change, declare.Down):
                self.stop_event.set()
            return {"ok": True, "done": done}
        if op == "modify":
            with self.submit_lock, self.lock:
                done = targets.modify(self.engine, req.get("name"), delete=req.get("delete"),
                                      flush=bool(req.get("flush")), set_entry=req.get("set"))
            return {"ok": True, "done": done}
        if op == "dp":
            with self.submit_lock, self.lock:
                targets.dp_call(self.dp, req.get("call"), req.get("args"))
            return {"ok": True, "done": []}
        with self.lock:
            if op == "status":
                lat = sorted(self.latencies)
                pct = {p: lat[min(len(lat) - 1, int(len(lat) * p / 100))] / 1e3 if lat else None
                       for p in (50, 99)}
                return {"ok": True, "pid": os.getpid(), "instance": self.instance,
                        "degraded": self.degraded_now(), "metrics": self.metrics_addr,
                        "mesh": {"sa_up": dict(self.sa_up)} if self.mesh is not None else None,
                        "events": self.handled, "resolved": self.resolved, "busy_s": self.busy_s,
                        "latency_us": {"p50": pct[50], "p99": pct[99], "samples": len(lat)}}
            if op == "stop":
                self.stop_event.set()
                return {"ok": True}
        return {"ok": False, "error": "unknown request %r" % op}

    def _serve_socket(self) -> socketserver.UnixStreamServer:
        daemon = self
        path = socket_path(self.instance)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                line = self.rfile.readline(MAX_REQUEST)
                try:
                    reply = daemon.handle_request(decode_json(line))
                except BadJson as e:
                    reply = {"ok": False, "error": "malformed request: %s" % e, "exit": 2}
                except PyovlError as e:
                    reply = {"ok": False, "error": str(e), "exit": e.exit_code}
                except Exception as e:  # noqa: BLE001 - reported to the caller, daemon goes on
                    log.exception("request failed")
                    reply = {"ok": False, "error": "internal error: %s" % e, "exit": 1}
                self.wfile.write(json.dumps(reply).encode() + b"\n")

        srv = socketserver.ThreadingUnixStreamServer(path, Handler)
        srv.daemon_threads = True
        os.chmod(path, 0o600)
        threading.Thread(target=srv.serve_forever, name="control", daemon=True).start()
        return srv

    # -- metrics server ---------------------------------------------------------
    def _serve_metrics(self, addr: str):
        host, _, port = addr.rpartition(":")
        try:
            return start_http_server(int(port), addr=host.strip("[]"), registry=self.registry)
        except OSError as e:
            raise PyovlError("cannot serve metrics on %s: %s" % (addr, e.strerror)) from None

    def _stop_metrics(self) -> None:
        if isinstance(self._http, tuple):  # (server, thread) from prometheus_client >= 0.20
            self._http[0].shutdown()
            self._http[0].server_close()
        self._http = None

    def move_metrics(self, addr: str | None) -> None:
        """A file's daemon.metrics changed while serving: serve there now
        (checked bindable before the change was applied)."""
        if not addr or addr == self.metrics_addr:
            return
        self._stop_metrics()
        self._http = self._serve_metrics(addr)
        log.info("metrics moved from %s to %s", self.metrics_addr, addr)
        self.metrics_addr = addr

    # -- life ----------------------------------------------------------------
    def serve(self, ready=None) -> None:
        """Run until SIGTERM/SIGINT (or a stop request). ready() is called
        once the daemon answers requests and metrics."""
        own_lock = self.lock_fd is None
        if own_lock:  # the one writer from here on (a caller that holds it releases it)
            self.lock_fd = lock_fd(self.instance)
        try:
            self._serve(ready)
        finally:
            if own_lock:
                release_lock(self.instance, self.lock_fd)
                self.lock_fd = None

    def _serve(self, ready) -> None:
        # The lookup thread makes a few syscalls per miss and needs the GIL
        # back after each; while the engine applies a large change it waits a
        # whole switch interval each time (5 ms by default). Measured during
        # an up adding 10k overlays: miss p99 52 ms at 5 ms, 19 ms at 0.5 ms.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.dp.load()
        self.ring = RingBuffer.open_pinned(os.path.join(self.dp.pin_dir, "misses"))
        self.ring.drain()  # events from before this daemon: their frames are stale
        self.dp.maps.pending.clear()  # so misses are reported again, to us
        self.sync_instances()
        self._http = self._serve_metrics(self.metrics_addr)
        ctl_srv = self._serve_socket()
        with open(pid_path(self.instance) + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.replace(pid_path(self.instance) + ".tmp", pid_path(self.instance))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        log.info("serving instance %s: metrics on http://%s/metrics", self.instance, self.metrics_addr)
        if ready:
            ready()
        worker = threading.Thread(target=self.lookup_loop, name="lookup", daemon=True)
        worker.start()
        try:
            while not self.stop_event.wait(0.5):
                if not worker.is_alive():
                    raise PyovlError("the lookup thread died")
        finally:
            self.stop_event.set()
            worker.join(timeout=5)
            ctl_srv.shutdown()
            ctl_srv.server_close()
            self._stop_metrics()
            for p in (socket_path(self.instance), pid_path(self.instance)):
                try:
                    os.unlink(p)
                except OSError:
                    pass
            with self.lock:
                for inst in self.by_name.values():
                    if inst.started:
                        inst.plugin.stop()
            self.ring.close()
            self.dp.close()
            log.info("stopped; the data path keeps forwarding")
