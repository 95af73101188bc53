"""The data-path module: load, attach, configure and tear down one instance.

A Datapath is one pyovl instance (one per network namespace): its programs and
maps pinned under pin_dir, its attachments recorded in state_dir. It is the
single writer of the maps when no daemon runs (one-shot CLI commands); every
input is validated before anything is changed, so a bad value leaves the
running data path as it was.

Typical use:
    dp = Datapath()                       # instance named after the netns
    dp.init(["eth1"])                     # compile/pin, attach the underlay
    dp.add_overlay(23, listen_ip="198.18.0.1", point=("198.18.0.2", 4789))
    dp.add_port("vnic0", vni=23, mac="02:00:00:00:00:0a")
"""

from __future__ import annotations

import ctypes as C
import os
import socket
import time

from pyovl import netlink, netns, values
from pyovl.dataplane import abi, loader
from pyovl.dataplane.maps import PinnedMaps
from pyovl.state import read_json, remove, run_root, write_json_atomic
from pyovl.errors import KernelError, PyovlError, StateError, UsageError

DEFAULT_PORT = 4789
DEFAULT_SPORT_RANGE = (32768, 60999)  # the kernel vxlan device's default
HOOKS = ("auto", "tc", "xdp")


def valid_dest(ip: str, port: int, encrypt: bool = False) -> abi.Dest:
    """A targets-map value sending to ip:port (encrypt: an IPsec mesh peer).
    This module builds the map values; callers never fill ABI structs."""
    return abi.Dest(ip=abi.Addr.of(values.ip(ip)), port=socket.htons(values.port(port)), state=abi.TARGET_VALID,
                    flags=abi.DEST_F_ENCRYPT if encrypt else 0)


def drop_dest(expiry_ns: int = 0) -> abi.Dest:
    """A targets-map value that drops; expiry_ns (monotonic) 0: never expires,
    else the data path treats it as a miss again once it has passed."""
    return abi.Dest(state=abi.TARGET_DROP, expiry_ns=expiry_ns)


class Datapath:
    def __init__(self, instance: str | None = None, pin_dir: str | None = None,
                 state_dir: str | None = None, trace: bool = False):
        self.instance = instance or netns.current_name()
        self.pin_dir = pin_dir or loader.pin_dir(self.instance)
        self.state_dir = state_dir or os.path.join(run_root(), self.instance)
        self.trace = trace
        self._maps: PinnedMaps | None = None
        self._neighbours: set[str] = set()
        self._used_ids: set[int] | None = None
        self._next_id = 1

    # -- state ----------------------------------------------------------
    @property
    def _state_file(self) -> str:
        return os.path.join(self.state_dir, "datapath.json")

    def _load_state(self) -> dict:
        return read_json(self._state_file, {"attached": {}})

    def _save_state(self, state: dict) -> None:
        write_json_atomic(self._state_file, state, pretty=False)  # written per port: keep it cheap

    @property
    def maps(self) -> PinnedMaps:
        if self._maps is None:
            self.require_loaded()
            self._maps = PinnedMaps(self.pin_dir, trace=self.trace)
        return self._maps

    def close(self) -> None:
        if self._maps is not None:
            self._maps.close()
            self._maps = None

    def loaded(self) -> bool:
        return loader.is_loaded(self.pin_dir)

    # -- programs -------------------------------------------------------
    def load(self, force: bool = False) -> None:
        loader.load(self.pin_dir, trace=self.trace, force=force)

    def init(self, underlays: list[str], hook: str = "auto") -> None:
        """Load the programs and attach the underlay program(s) to each device."""
        if hook not in HOOKS:
            raise UsageError("unknown decap hook %s (one of %s)" % (hook, ", ".join(HOOKS)))
        infos = {dev: netlink.link_info(dev) for dev in underlays}  # validates names first
        from pyovl.dataplane import kernel  # noqa: PLC0415

        err = kernel.bpf_syscall_problem()
        if err:
            raise KernelError(err)
        self.load()
        for dev, info in infos.items():
            self.attach_underlay(dev, hook if hook != "auto" else
                                 ("tc" if info["kind"] in ("veth", "netkit") else "xdp"))

    def attach_underlay(self, dev: str, hook: str) -> None:
        """TC ingress always (broadcast copies, and the whole job on veth);
        XDP in front of it when hook is xdp."""
        state = self._load_state()
        fd = loader.open_prog(self.pin_dir, "underlay_tc")
        try:
            created = netlink.tc_attach(dev, fd, "ovl_underlay_tc")
        finally:
            os.close(fd)
        prev = state["attached"].get(dev, {})
        state["attached"][dev] = {"role": "underlay", "hook": hook,
                                  "clsact": created or prev.get("clsact", False)}
        self._save_state(state)
        if hook == "xdp":
            fd = loader.open_prog(self.pin_dir, "underlay_xdp")
            try:
                netlink.xdp_attach(dev, fd)
            finally:
                os.close(fd)
        elif prev.get("hook") == "xdp":
            netlink.xdp_detach(dev)

    def detach_underlay(self, dev: str) -> None:
        state = self._load_state()
        entry = state["attached"].pop(dev, None)
        if entry is None:
            return
        if entry.get("hook") == "xdp":
            netlink.xdp_detach(dev)
        netlink.tc_detach(dev, remove_clsact=entry.get("clsact", False))
        self._save_state(state)

    def underlays(self) -> dict[str, dict]:
        return {k: v for k, v in self._load_state()["attached"].items() if v["role"] == "underlay"}

    # -- overlays -------------------------------------------------------
    def forget_ids(self) -> None:
        """Read the used overlay ids from the map again on the next create
        (the cache below is only valid while no other process writes)."""
        self._used_ids = None
        self._next_id = 1

    def _free_id(self) -> int:
        """Lowest unused overlay id. The used set is read from the map once
        per Datapath, then kept (this process is the one writer)."""
        if self._used_ids is None:
            self._used_ids = {v.id for _, v in self.maps.overlays.items()}
        for i in range(self._next_id, abi.MAX_OVERLAYS):
            if i not in self._used_ids:
                self._next_id = i + 1
                return i
        for i in range(1, abi.MAX_OVERLAYS):
            if i not in self._used_ids:
                return i
        raise PyovlError("no free overlay id: %d overlays exist" % (abi.MAX_OVERLAYS - 1))

    def add_overlay(self, vni: int, listen_ip: str, listen_port: int = DEFAULT_PORT,
                    point: tuple[str, int] | None = None, mtu: int = 1400,
                    sport_range: tuple[int, int] = DEFAULT_SPORT_RANGE, strict: bool = False,
                    src_ip: str | None = None, point_encrypt: bool = False) -> None:
        """Create or update the overlay for vni. point=(ip, port) makes it a
        POINT (direct) overlay, otherwise it is DYNAMIC (targets)."""
        values.vni(vni)
        lip = values.ip(listen_ip, "listen ip")
        values.port(listen_port, "listen port")
        lo, hi = sport_range
        if not (1 <= lo <= hi <= 65535):
            raise UsageError("invalid source port range %d-%d" % (lo, hi))
        pdest = valid_dest(point[0], point[1], encrypt=point_encrypt) if point else None
        if src_ip is None:
            src_ip = self._pick_src(lip, point[0] if point else None)
        sip = values.ip(src_ip, "source address")
        if pdest and sip.version != pdest.ip.ip().version:
            raise UsageError("destination %s and source %s are of different IP versions" % (point[0], sip))

        key = abi.U32(vni)
        old = self.maps.overlays.get(key)
        ov_id = old.id if old else self._free_id()
        ov = abi.Overlay(id=ov_id,
                         mode=abi.MODE_POINT if point else abi.MODE_DYNAMIC,
                         flags=abi.F_STRICT if strict else 0,
                         listen_port=socket.htons(listen_port), listen_ip=abi.Addr.of(lip),
                         src_ip=abi.Addr.of(sip), sport_min=lo, sport_max=hi, mtu=mtu)
        if pdest:
            ov.point = pdest
            self._keep_neighbour(point[0])
        if old is None:
            self._listen_ref(listen_port, +1)
        elif socket.ntohs(old.listen_port) != listen_port:
            self._listen_ref(listen_port, +1)
            self._listen_ref(socket.ntohs(old.listen_port), -1)
        self.maps.overlays.put(key, ov)
        if self._used_ids is not None:
            self._used_ids.add(ov_id)

    def _pick_src(self, lip, point_ip: str | None) -> str:
        if not lip.is_unspecified:
            return str(lip)
        if point_ip:
            src = netlink.route_src(point_ip)
            if src:
                return src
        for dev in self.underlays():
            addr = netlink.first_address(dev)
            if addr:
                return addr
        raise UsageError("listen ip %s is a wildcard and no underlay address was found: "
                         "give a source address" % lip)

    def _listen_ref(self, port: int, delta: int) -> None:
        key = abi.U32(port)  # an array indexed by port: 0 = nobody listens
        cur = self.maps.listen_ports.get(key)
        n = (cur.value if cur is not None else 0) + delta
        self.maps.listen_ports.put(key, abi.U32(max(n, 0)))

    def del_overlay(self, vni: int) -> None:
        values.vni(vni)
        ov = self.maps.overlays.get(abi.U32(vni))
        if ov is None:
            raise UsageError("no overlay with vnetid %d" % vni)
        ports = [k for k, v in self.maps.vnics.items() if v.vni == vni]
        if ports:
            raise UsageError("overlay %d still has %d port(s): delete them first" % (vni, len(ports)))
        for k, _ in list(self.maps.targets.items()):
            if k.vni == vni:
                self.maps.targets.delete(k)
        for k in list(self.maps.peers.keys()):
            if k.vni == vni:
                self.maps.peers.delete(k)
        self.maps.overlays.delete(abi.U32(vni))
        self.maps.flood.delete(abi.U32(vni))
        self.maps.zero_stats(ov.id)
        if self._used_ids is not None:
            self._used_ids.discard(ov.id)
            self._next_id = min(self._next_id, ov.id)
        self._listen_ref(socket.ntohs(ov.listen_port), -1)

    def overlays(self) -> dict[int, abi.Overlay]:
        return {k.value: v for k, v in self.maps.overlays.items()}

    # -- ports ----------------------------------------------------------
    def add_port(self, ifname: str, vni: int, mac: str | None = None, vlan: int = 0) -> None:
        """Make ifname (a VNIC's host end) a port of overlay vni. mac is the
        guest's MAC; vlan its VLAN id (the data path tags and untags)."""
        values.vni(vni)
        if not isinstance(vlan, int) or not 0 <= vlan <= 4094:
            raise UsageError("invalid VLAN id %r: must be 0-4094" % (vlan,))
        info = netlink.link_info(ifname)
        if self.maps.overlays.get(abi.U32(vni)) is None:
            raise UsageError("no overlay with vnetid %d" % vni)
        if mac is None:
            raise UsageError("the MAC address of the guest behind %s is required" % ifname)
        raw = values.mac(mac)
        idx = info["ifindex"]
        flags = abi.VNIC_F_PEER if info["kind"] == "veth" else 0
        old = self.maps.vnics.get(abi.U32(idx))
        if old is not None and (old.vni != vni or bytes(old.mac) != raw or old.vlan != vlan):
            self._unlink_port(idx, old)
        key = abi.L2Key.of(vni, raw)
        other = self.maps.ports.get(key)
        if other is not None and other.ifindex != idx:
            raise UsageError("MAC %s is already a port of overlay %d" % (mac, vni))
        vnic = abi.Vnic(vni=vni, flags=flags, vlan=vlan)
        C.memmove(vnic.mac, raw, 6)
        netlink.enable_forwarding(ifname)
        self._flood_set(vni, add=(idx, vlan))  # first: it is the one that can refuse (a full flood list)
        self.maps.vnics.put(abi.U32(idx), vnic)
        self.maps.ports.put(key, abi.Port(ifindex=idx, flags=flags, vlan=vlan))
        fd = loader.open_prog(self.pin_dir, "port")
        try:
            created = netlink.tc_attach(ifname, fd, "ovl_port")
        finally:
            os.close(fd)
        state = self._load_state()
        state["attached"][ifname] = {"role": "port", "hook": "tc", "clsact": created,
                                     "ifindex": idx, "vni": vni}
        self._save_state(state)

    def _flood_set(self, vni: int, add: tuple[int, int] | None = None, remove: int | None = None) -> None:
        """Add (ifindex, vlan) to, or remove ifindex from, the VNI's flood list."""
        key = abi.U32(vni)
        cur = self.maps.flood.get(key)
        members = [(cur.ifindex[i], cur.vlan[i]) for i in range(cur.count)] if cur is not None else []
        members = [m for m in members if m[0] not in (remove, add[0] if add else None)]
        if add is not None:
            if len(members) >= abi.MAX_FLOOD:
                raise UsageError("overlay %d has %d local ports, the most broadcast reaches"
                                 % (vni, abi.MAX_FLOOD))
            members.append(add)
        if not members:
            self.maps.flood.delete(key)
            return
        fl = abi.Flood(count=len(members))
        for i, (ifindex, vlan) in enumerate(members):
            fl.ifindex[i], fl.vlan[i] = ifindex, vlan
        self.maps.flood.put(key, fl)

    def _unlink_port(self, idx: int, vnic: abi.Vnic) -> None:
        key = abi.L2Key.of(vnic.vni, bytes(vnic.mac))
        port = self.maps.ports.get(key)
        if port is not None and port.ifindex == idx:
            self.maps.ports.delete(key)
        self._flood_set(vnic.vni, remove=idx)
        self.maps.vnics.delete(abi.U32(idx))

    def del_port(self, ifname: str) -> None:
        state = self._load_state()
        entry = state["attached"].get(ifname)
        idx = entry["ifindex"] if entry else netlink.ifindex(ifname)
        vnic = self.maps.vnics.get(abi.U32(idx))
        if vnic is None and entry is None:
            raise UsageError("%s is not a pyovl port" % ifname)
        netlink.tc_detach(ifname, remove_clsact=bool(entry and entry.get("clsact")))
        if vnic is not None:
            self._unlink_port(idx, vnic)
        state["attached"].pop(ifname, None)
        self._save_state(state)

    # -- targets --------------------------------------------------------
    def set_target(self, vni: int, mac: str, ip: str | None, port: int | None = None,
                   drop: bool = False, ttl_s: float | None = None, encrypt: bool = False) -> None:
        """Point (vni, mac) at ip:port, or at DROP (for ttl_s seconds when
        given: the data path treats an expired DROP as a miss again).
        encrypt: the destination is an IPsec mesh peer (see set_mesh)."""
        values.vni(vni)
        raw = values.mac(mac)
        ov = self.maps.overlays.get(abi.U32(vni))
        if ov is None:
            raise UsageError("no overlay with vnetid %d" % vni)
        if ov.mode != abi.MODE_DYNAMIC:
            raise UsageError("overlay %d is point-to-point: it has no target table" % vni)
        key = abi.L2Key.of(vni, raw)
        if drop:
            dest = drop_dest(time.monotonic_ns() + int(ttl_s * 1e9) if ttl_s else 0)
        else:
            dest = valid_dest(ip, port if port else DEFAULT_PORT, encrypt=encrypt)
        self._peer_release(key)
        self.maps.targets.put(key, dest)
        if not drop:
            self._peer_ref(vni, dest.ip, +1)
            self._keep_neighbour(ip)

    def _keep_neighbour(self, ip: str) -> None:
        """Once per destination and process: it runs ip(8)."""
        if ip not in self._neighbours:
            self._neighbours.add(ip)
            netlink.keep_neighbour(ip)

    def put_target(self, key: abi.L2Key, dest: abi.Dest, track_peers: bool) -> None:
        """The daemon's path: key and dest already built and checked. Peer
        refcounts (the strict-mode source check) only when the overlay is
        strict; they cost three more syscalls per target."""
        if track_peers:
            self._peer_release(key)
        self.maps.targets.put(key, dest)
        if dest.state == abi.TARGET_VALID:
            if track_peers:
                self._peer_ref(key.vni, dest.ip, +1)
            self._keep_neighbour(str(dest.ip.ip()))

    def del_target(self, vni: int, mac: str) -> bool:
        values.vni(vni)
        key = abi.L2Key.of(vni, values.mac(mac))
        self._peer_release(key)
        return self.maps.targets.delete(key)

    def _peer_release(self, key: abi.L2Key) -> None:
        old = self.maps.targets.get(key)
        if old is not None and old.state == abi.TARGET_VALID:
            self._peer_ref(key.vni, old.ip, -1)

    def _peer_ref(self, vni: int, ip: abi.Addr, delta: int) -> None:
        key = abi.PeerKey(vni=vni, ip=ip)
        cur = self.maps.peers.get(key)
        n = (cur.value if cur is not None else 0) + delta
        if n > 0:
            self.maps.peers.put(key, abi.U32(n))
        else:
            self.maps.peers.delete(key)

    def targets(self) -> list[tuple[int, str, abi.Dest]]:
        return [(k.vni, abi.mac_str(k.mac), v) for k, v in self.maps.targets.items()]

    # -- IPsec mesh ----------------------------------------------------
    def set_mesh(self, encrypted: list[str], tunnels: dict[int, str], externals: list[str]) -> None:
        """Make the mesh maps say exactly this: encrypted = underlay addresses
        of the peers that require IPsec (plaintext VXLAN from them is dropped);
        tunnels = UDP port -> pyovl's collect_md vxlan device for that port
        (mesh_rx attached to it here); externals = devices that carry no
        plaintext VXLAN. Order matters for failing closed: peers and tunnels
        are written before targets point at them (the caller's job) and
        removed after."""
        want_peers = {bytes(abi.Addr.of(values.ip(ip, "mesh peer address"))) for ip in encrypted}
        want_tun = {values.port(p, "mesh port"): netlink.ifindex(dev) for p, dev in tunnels.items()}
        want_ext = {netlink.ifindex(dev) for dev in externals}
        m = self.maps
        on = bool(want_peers or want_tun or want_ext)
        if on:  # before the entries: the data path looks at them only when on
            m.mesh_cfg.put(abi.U32(0), abi.MeshCfg(enabled=1))
        for raw in want_peers:
            key = abi.Addr.from_buffer_copy(raw)
            if m.mesh_peers.get(key) is None:
                m.mesh_peers.put(key, abi.MeshPeer(flags=abi.MESH_F_ENCRYPT))
        for port, idx in want_tun.items():
            m.mesh_tunnels.put(abi.U16(port), abi.U32(idx))
        for idx in want_ext:
            m.mesh_ifaces.put(abi.U32(idx), abi.U32(abi.MESH_IF_EXTERNAL))
        for key in list(m.mesh_peers.keys()):
            if bytes(key) not in want_peers:
                m.mesh_peers.delete(key)
        for key in list(m.mesh_tunnels.keys()):
            if key.value not in want_tun:
                m.mesh_tunnels.delete(key)
        for key in list(m.mesh_ifaces.keys()):
            if key.value not in want_ext:
                m.mesh_ifaces.delete(key)
        if not on:
            m.mesh_cfg.put(abi.U32(0), abi.MeshCfg(enabled=0))
        for dev in tunnels.values():
            self.attach_mesh_device(dev)

    def attach_mesh_device(self, dev: str) -> None:
        state = self._load_state()
        if state["attached"].get(dev, {}).get("role") == "mesh":
            return
        fd = loader.open_prog(self.pin_dir, "mesh_rx")
        try:
            created = netlink.tc_attach(dev, fd, "ovl_mesh_rx")
        finally:
            os.close(fd)
        state["attached"][dev] = {"role": "mesh", "clsact": created}
        self._save_state(state)

    def mesh(self) -> dict:
        """{'peers': {ip: plaintext_rx drops}, 'tunnels': {port: ifindex},
        'externals': [ifindex]} as the maps say."""
        m = self.maps
        return {"peers": {str(k.ip()): v.plaintext_rx for k, v in m.mesh_peers.items()},
                "tunnels": {k.value: v.value for k, v in m.mesh_tunnels.items()},
                "externals": sorted(k.value for k in m.mesh_ifaces.keys())}

    def flush_nexthops(self) -> int:
        """Forget the data path's cached next hops (it looks them up again on
        the next frame); returns how many there were. Entries also expire by
        themselves after abi.NEXTHOP_TTL_NS."""
        m = self.maps.nexthops
        n = 0
        for key in list(m.keys()):
            n += m.delete(key)
        return n

    # -- whole instance -------------------------------------------------
    def show(self) -> dict:
        out = {"instance": self.instance, "pin_dir": self.pin_dir, "loaded": self.loaded(),
               "attached": self._load_state()["attached"], "overlays": []}
        if not out["loaded"]:
            return out
        for vni, ov in sorted(self.overlays().items()):
            st = self.maps.overlay_stats(ov.id)
            out["overlays"].append({
                "vnetid": vni, "id": ov.id,
                "mode": "point" if ov.mode == abi.MODE_POINT else "dynamic",
                "listen": "%s:%d" % (ov.listen_ip.ip(), socket.ntohs(ov.listen_port)),
                "point": ("%s:%d" % (ov.point.ip.ip(), socket.ntohs(ov.point.port))
                          if ov.mode == abi.MODE_POINT else None),
                "strict": bool(ov.flags & abi.F_STRICT),
                "counters": {s.name.lower(): st[s] for s in abi.Stat if s != abi.Stat.DROP_BASE},
                "drops": {d.name.lower(): st[abi.Stat.DROP_BASE + d] for d in abi.Drop
                          if st[abi.Stat.DROP_BASE + d]},
            })
        return out

    def teardown(self) -> None:
        """Detach everything this instance attached and remove its pins and
        state. Safe to run repeatedly and after a crash."""
        state = self._load_state()
        for dev, entry in state["attached"].items():
            if entry["role"] == "underlay" and entry.get("hook") == "xdp":
                netlink.xdp_detach(dev)
            netlink.tc_detach(dev, remove_clsact=entry.get("clsact", False))
        self.close()
        loader.unload(self.pin_dir)
        remove(self._state_file)

    def require_loaded(self) -> None:
        if not self.loaded():
            raise StateError("the data path of instance %s is not loaded: run 'pyovl dp init'" % self.instance)
