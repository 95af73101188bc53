"""Python mirror of bpf/ovl_abi.h (the one owner of the map ABI).

ctypes structures with the same layout as the C structs, the constants, the
drop reasons and counter slots. tests/unit/test_abi_sync.py parses the header
and checks every number here; the loader checks pinned maps' key and value
sizes against these structures before using them.
"""

from __future__ import annotations

import ctypes as C
import enum
import ipaddress

from pyovl.values import mac_bytes  # noqa: F401 - the one MAC parser; abi.mac_bytes for callers

ABI_VERSION = 4
ABI_MAGIC = 0x70796F76

MAX_VNI = 0xFFFFFF
MAX_OVERLAYS = 16384
MAX_VNICS = 4096
MAX_TARGETS = 1048576
MAX_PEERS = 65536
MAX_FLOOD = 32
MAX_LISTEN = 64
LISTEN_PORTS = 65536
MAX_MESH_PEERS = 4096
MAX_MESH_IFACES = 64
MAX_PENDING = 65536
RING_PAGES = 1024
MAX_NEXTHOPS = 16384
NEXTHOP_TTL_NS = 100_000_000
MISS_FRAME_MAX = 2048
MISS_QUEUE_BYTES = 128 * 1024
MISS_INTERVAL_NS = 1_000_000_000
EV_MISS = 1
EV_BCAST = 2
EV_F_FIRST = 0x100

MODE_POINT = 1
MODE_DYNAMIC = 2
F_STRICT = 0x1
TARGET_VALID = 1
TARGET_DROP = 2
VNIC_F_PEER = 0x1
DEST_F_ENCRYPT = 0x1
MESH_F_ENCRYPT = 0x1
MESH_IF_EXTERNAL = 0x1


class Drop(enum.IntEnum):
    MALFORMED = 1
    NOT_A_PORT = 2
    NO_OVERLAY = 3
    SRC_MAC = 4
    TARGET_DROP = 5
    BCAST_DYNAMIC = 6
    NO_ROUTE = 7
    FWD_DISABLED = 8
    NO_NEIGH = 9
    TOO_BIG = 10
    ENCAP_FAIL = 11
    NO_PORT = 12
    STRICT_SOURCE = 13
    DECAP_FAIL = 14
    MISS_QUEUE_FULL = 15
    RING_FULL = 16
    PUNT_TOO_BIG = 17
    PLAINTEXT_TX = 18
    PLAINTEXT_RX = 19
    NOT_MESH = 20


DROP_MAX = 21


class Stat(enum.IntEnum):
    TX_PACKETS = 0
    TX_BYTES = 1
    RX_PACKETS = 2
    RX_BYTES = 3
    LOCAL_PACKETS = 4
    LOCAL_BYTES = 5
    FLOOD_PACKETS = 6
    MISSES = 7
    PUNTED = 8
    DROP_BASE = 9


STAT_MAX = Stat.DROP_BASE + DROP_MAX
STATS_ENTRIES = MAX_OVERLAYS * STAT_MAX


class Addr(C.Structure):
    _fields_ = [("b", C.c_uint8 * 16)]

    @classmethod
    def of(cls, ip: str | ipaddress._BaseAddress | None) -> "Addr":
        a = cls()
        if ip is None:
            return a
        ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        if ip.version == 4:
            raw = b"\0" * 10 + b"\xff\xff" + ip.packed
        else:
            raw = ip.packed
        C.memmove(a.b, raw, 16)
        return a

    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        raw = bytes(self.b)
        v6 = ipaddress.IPv6Address(raw)
        return v6.ipv4_mapped or v6


class Dest(C.Structure):
    _fields_ = [
        ("ip", Addr),
        ("port", C.c_uint16),  # network order
        ("state", C.c_uint8),
        ("flags", C.c_uint8),
        ("pad", C.c_uint32),
        ("expiry_ns", C.c_uint64),
    ]


class Overlay(C.Structure):
    _fields_ = [
        ("id", C.c_uint32),
        ("mode", C.c_uint8),
        ("flags", C.c_uint8),
        ("listen_port", C.c_uint16),  # network order
        ("listen_ip", Addr),
        ("src_ip", Addr),
        ("point", Dest),
        ("sport_min", C.c_uint16),
        ("sport_max", C.c_uint16),
        ("mtu", C.c_uint16),
        ("pad", C.c_uint16),
    ]


class Vnic(C.Structure):
    _fields_ = [
        ("vni", C.c_uint32),
        ("mac", C.c_uint8 * 6),
        ("vlan", C.c_uint16),
        ("flags", C.c_uint32),
    ]


class L2Key(C.Structure):
    _fields_ = [("vni", C.c_uint32), ("mac", C.c_uint8 * 6), ("pad", C.c_uint16)]

    @classmethod
    def of(cls, vni: int, mac: bytes) -> "L2Key":
        k = cls(vni=vni)
        C.memmove(k.mac, mac, 6)
        return k


class Port(C.Structure):
    _fields_ = [("ifindex", C.c_uint32), ("flags", C.c_uint16), ("vlan", C.c_uint16)]


class Flood(C.Structure):
    _fields_ = [("count", C.c_uint32), ("ifindex", C.c_uint32 * MAX_FLOOD), ("vlan", C.c_uint16 * MAX_FLOOD)]


class PeerKey(C.Structure):
    _fields_ = [("vni", C.c_uint32), ("ip", Addr)]


class MeshPeer(C.Structure):
    _fields_ = [("flags", C.c_uint32), ("pad", C.c_uint32), ("plaintext_rx", C.c_uint64)]


class NhKey(C.Structure):
    _fields_ = [("dst", Addr), ("src", Addr)]


class Nexthop(C.Structure):
    _fields_ = [
        ("expiry_ns", C.c_uint64),
        ("ifindex", C.c_uint32),
        ("mtu", C.c_uint16),
        ("dmac", C.c_uint8 * 6),
        ("smac", C.c_uint8 * 6),
        ("pad", C.c_uint16),
    ]


class MeshCfg(C.Structure):
    _fields_ = [("enabled", C.c_uint32), ("pad", C.c_uint32)]


class AbiInfo(C.Structure):
    _fields_ = [
        ("magic", C.c_uint32),
        ("version", C.c_uint32),
        ("sizes", C.c_uint32),
        ("pad", C.c_uint32),
    ]

    @classmethod
    def current(cls) -> "AbiInfo":
        return cls(ABI_MAGIC, ABI_VERSION, (C.sizeof(Overlay) << 16) | C.sizeof(Dest), 0)


class Trace(C.Structure):
    _fields_ = [
        ("verdict", C.c_uint32),
        ("ifindex", C.c_uint32),
        ("vni", C.c_uint32),
        ("reason", C.c_int32),
        ("flooded", C.c_uint32),
        ("punted", C.c_uint32),
    ]


class EventHdr(C.Structure):
    _fields_ = [
        ("type", C.c_uint32),
        ("vni", C.c_uint32),
        ("ifindex", C.c_uint32),
        ("len", C.c_uint32),
        ("ts_ns", C.c_uint64),
    ]


class Pending(C.Structure):
    _fields_ = [("first_ns", C.c_uint64), ("bytes", C.c_uint32), ("pad", C.c_uint32)]


U16 = C.c_uint16
U32 = C.c_uint32
U64 = C.c_uint64

# BPF map types used here (uapi enum bpf_map_type)
MAP_HASH = 1
MAP_ARRAY = 2
MAP_PERCPU_ARRAY = 6
MAP_LRU_HASH = 9
MAP_RINGBUF = 27

# name -> (map type, key type, value type, max entries)
MAPS: dict[str, tuple[int, type, type, int]] = {
    "overlays": (MAP_HASH, U32, Overlay, MAX_OVERLAYS),
    "vnics": (MAP_HASH, U32, Vnic, MAX_VNICS),
    "ports": (MAP_HASH, L2Key, Port, MAX_VNICS),
    "targets": (MAP_HASH, L2Key, Dest, MAX_TARGETS),
    "flood": (MAP_HASH, U32, Flood, MAX_OVERLAYS),
    "peers": (MAP_HASH, PeerKey, U32, MAX_PEERS),
    "listen_ports": (MAP_ARRAY, U32, U32, LISTEN_PORTS),
    "stats": (MAP_PERCPU_ARRAY, U32, U64, STATS_ENTRIES),
    "abi": (MAP_ARRAY, U32, AbiInfo, 1),
    "pending": (MAP_LRU_HASH, L2Key, Pending, MAX_PENDING),
    "misses": (MAP_RINGBUF, None, None, RING_PAGES * 4096),
    "mesh_peers": (MAP_HASH, Addr, MeshPeer, MAX_MESH_PEERS),
    "mesh_tunnels": (MAP_HASH, U16, U32, MAX_LISTEN),
    "mesh_ifaces": (MAP_HASH, U32, U32, MAX_MESH_IFACES),
    "mesh_cfg": (MAP_ARRAY, U32, MeshCfg, 1),
    "nexthops": (MAP_LRU_HASH, NhKey, Nexthop, MAX_NEXTHOPS),
}
TRACE_MAP = ("trace", (MAP_PERCPU_ARRAY, U32, Trace, 1))


def mac_str(raw: bytes) -> str:
    return ":".join("%02x" % b for b in bytes(raw))
