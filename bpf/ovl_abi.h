/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ovl_abi.h - THE map ABI shared by the BPF programs and pyovl (Python).
 *
 * Everything userspace reads or writes is declared here: map names and sizes,
 * key and value layouts, drop reasons, counter slots. pyovl/dataplane/abi.py mirrors
 * it with ctypes and tests/unit/test_abi_sync.py parses this file to prove the
 * two agree. When you change anything below, bump OVL_ABI_VERSION: pins live
 * under /sys/fs/bpf/pyovl/v<OVL_ABI_VERSION>/ and the loader refuses pinned
 * maps whose shape differs (bcc does not check pinned map types).
 *
 * Byte order: IP addresses and UDP ports are network order (__be*), VNIs and
 * everything else host order. IPv4 addresses are stored v4-mapped in 16 bytes
 * (::ffff:a.b.c.d), as illumos stores them.
 */
#ifndef OVL_ABI_H
#define OVL_ABI_H

#define OVL_ABI_VERSION 4
#define OVL_ABI_MAGIC 0x70796f76 /* "pyov" */

#define OVL_MAX_VNI 0xffffff
#define OVL_MAX_OVERLAYS 16384   /* overlay ids 1..16383; id 0 = unattributed */
#define OVL_MAX_VNICS 4096
#define OVL_MAX_TARGETS 1048576  /* no-prealloc: memory follows the fill */
#define OVL_MAX_PEERS 65536
#define OVL_MAX_FLOOD 32         /* local ports of one VNI that get broadcast */
#define OVL_MAX_LISTEN 64        /* UDP ports with a mesh tunnel */
#define OVL_LISTEN_PORTS 65536    /* listen_ports: an array indexed by UDP port */
#define OVL_MAX_MESH_PEERS 4096   /* nodes of the IPsec mesh */
#define OVL_MAX_MESH_IFACES 64
#define OVL_MAX_PENDING 65536     /* LRU: misses being resolved */
#define OVL_RING_PAGES 1024       /* 4 MiB of events to the daemon */
#define OVL_MAX_NEXTHOPS 16384    /* LRU: underlay next hops being used */
#define OVL_NEXTHOP_TTL_NS 100000000ULL /* a cached next hop is looked up again after 100 ms */

/* The miss path (varpd's LOOKUP queue): frames the data path cannot place
 * are copied to the daemon through the misses ring. A miss is reported once
 * per (VNI, MAC) per interval (the pending map); until it is answered its
 * frames keep coming, at most OVL_MISS_QUEUE_BYTES of them (illumos queues
 * 128 KiB per destination), so the daemon can send them on: the first
 * packets to a new destination are not lost. */
#define OVL_MISS_FRAME_MAX 2048 /* a power of two (see punt.h) */
#define OVL_MISS_QUEUE_BYTES (128 * 1024)
#define OVL_MISS_INTERVAL_NS 1000000000ULL

/* overlay modes (illumos OVERLAY_TARGET_POINT / _DYNAMIC) */
#define OVL_MODE_POINT 1
#define OVL_MODE_DYNAMIC 2

/* overlay flags */
#define OVL_F_STRICT 0x1 /* decap only from known destinations of the overlay */

/* target states */
#define OVL_TARGET_VALID 1
#define OVL_TARGET_DROP 2

/* destination flags (struct ovl_dest.flags) */
#define OVL_DEST_F_ENCRYPT 0x1 /* only through IPsec: never plaintext on the wire */

/* mesh peer flags (struct ovl_mesh_peer.flags) */
#define OVL_MESH_F_ENCRYPT 0x1 /* plaintext VXLAN from this address is dropped */

/* mesh interface flags (mesh_ifaces values) */
#define OVL_MESH_IF_EXTERNAL 0x1 /* no plaintext VXLAN in or out on this device */

/* vnic flags */
#define OVL_VNIC_F_PEER 0x1 /* veth: deliver with bpf_redirect_peer */

/* Underlay address as pyovl stores it: 16 bytes, IPv4 v4-mapped. */
struct ovl_addr {
	__u32 w[4];
};

/* Where a frame goes on the underlay. */
struct ovl_dest {
	struct ovl_addr ip;
	__be16 port;
	__u8 state;   /* OVL_TARGET_* */
	__u8 flags;   /* OVL_DEST_F_* */
	__u32 pad;
	__u64 expiry_ns; /* bpf_ktime_get_ns() deadline, 0 = none (DROP TTLs) */
};

/* overlays: VNI -> overlay */
struct ovl_overlay {
	__u32 id;             /* stats slot, 1..OVL_MAX_OVERLAYS-1 */
	__u8 mode;            /* OVL_MODE_* */
	__u8 flags;           /* OVL_F_* */
	__be16 listen_port;
	struct ovl_addr listen_ip; /* all zero or ::ffff:0.0.0.0 = any */
	struct ovl_addr src_ip;    /* outer source used by encap */
	struct ovl_dest point;     /* POINT mode destination */
	__u16 sport_min;      /* UDP source port range (host order) */
	__u16 sport_max;
	__u16 mtu;            /* overlay MTU (inner L3), informational for now */
	__u16 pad;
};

/* vnics: ifindex of a VNIC's host end -> its place in an overlay */
struct ovl_vnic {
	__u32 vni;
	__u8 mac[6];
	__u16 vlan;  /* VLAN id of the VNIC (0 = none): tagged in the inner frame */
	__u32 flags; /* OVL_VNIC_F_* */
};

/* ports and targets are keyed by (VNI, MAC) */
struct ovl_l2key {
	__u32 vni;
	__u8 mac[6];
	__u16 pad; /* always 0 */
};

/* ports: (VNI, MAC) -> local delivery */
struct ovl_port {
	__u32 ifindex; /* host end of the VNIC */
	__u16 flags;   /* OVL_VNIC_F_* */
	__u16 vlan;    /* the VNIC's VLAN id, 0 = untagged */
};

/* flood: VNI -> the host ends of its local ports (broadcast delivery) */
struct ovl_flood {
	__u32 count;
	__u32 ifindex[OVL_MAX_FLOOD];
	__u16 vlan[OVL_MAX_FLOOD]; /* a copy goes only to ports of the frame's VLAN */
};

/* peers: (VNI, underlay ip) -> refcount; the strict-mode source check */
struct ovl_peer_key {
	__u32 vni;
	struct ovl_addr ip;
};

/* mesh_peers: underlay address of a mesh node -> what it requires. The
 * IPsec mesh (Danube cross-PDC pairs): encrypted traffic does not go through
 * the direct redirect (it would skip the kernel's IPsec policy) but through
 * a collect_md vxlan device per UDP port (mesh_tunnels), whose packets take
 * the kernel's route and xfrm path; decrypted VXLAN comes back through that
 * device's socket to ovl_mesh_rx. */
struct ovl_mesh_peer {
	__u32 flags;        /* OVL_MESH_F_* */
	__u32 pad;
	__u64 plaintext_rx; /* plaintext VXLAN dropped from this address (data path) */
};

/* nexthops: (underlay destination, source) -> the next hop bpf_fib_lookup
 * gave for it, reused for OVL_NEXTHOP_TTL_NS (writer: data path; pyovl may
 * flush it). Per destination, like the kernel vxlan device's per-remote dst
 * cache: looked up with source port 0, so on an ECMP route one destination
 * host takes one path. Not in the key: the VNIC (policy routing by incoming
 * interface, a VNIC's forwarding switched off) counts at refresh only.
 * The fib lookup was ~175 ns of encap's ~730 (BPF_PROG_RUN, 6.18). */
struct ovl_nh_key {
	struct ovl_addr dst;
	struct ovl_addr src;
};

struct ovl_nexthop {
	__u64 expiry_ns; /* bpf_ktime_get_coarse_ns() after which it is looked up again */
	__u32 ifindex;   /* underlay device */
	__u16 mtu;       /* route MTU (outer L3), checked for non-GSO frames */
	__u8 dmac[6];
	__u8 smac[6];
	__u16 pad;
};

/* mesh_cfg[0]: is a mesh configured at all? An array lookup is inlined by
 * the JIT: without a mesh the data path skips the two hash lookups above. */
struct ovl_mesh_cfg {
	__u32 enabled;
	__u32 pad;
};

/* events in the misses ring */
enum ovl_event_type {
	OVL_EV_MISS = 1,  /* unicast to a MAC with no (live) target */
	OVL_EV_BCAST = 2, /* ARP, IPv6 multicast or IPv4 broadcast on a dynamic overlay */
};
#define OVL_EV_F_FIRST 0x100 /* first frame of a miss: a lookup is wanted */

struct ovl_event_hdr {
	__u32 type;    /* enum ovl_event_type | OVL_EV_F_* */
	__u32 vni;
	__u32 ifindex; /* the VNIC host end the frame came from */
	__u32 len;     /* frame bytes that follow */
	__u64 ts_ns;   /* bpf_ktime_get_ns() */
};

struct ovl_event {
	struct ovl_event_hdr h;
	__u8 frame[OVL_MISS_FRAME_MAX];
};

/* pending: (VNI, MAC) -> a miss being resolved */
struct ovl_pending {
	__u64 first_ns; /* when it was reported */
	__u32 bytes;    /* frames sent to the daemon since */
	__u32 pad;
};

/* abi: one entry that userspace writes on creation and checks on reuse */
struct ovl_abi_info {
	__u32 magic;
	__u32 version;
	__u32 sizes; /* sizeof(ovl_overlay) << 16 | sizeof(ovl_dest) */
	__u32 pad;
};

/*
 * Drop reasons. Helpers return them negated (-OVL_DROP_*), entry programs
 * count them per overlay and per CPU in the stats map.
 */
enum ovl_drop {
	OVL_DROP_MALFORMED = 1,   /* truncated or malformed frame */
	OVL_DROP_NOT_A_PORT,      /* port program on an interface with no vnic */
	OVL_DROP_NO_OVERLAY,      /* the VNIC's VNI has no overlay */
	OVL_DROP_SRC_MAC,         /* source MAC is not the VNIC's (spoofing) */
	OVL_DROP_TARGET_DROP,     /* target entry says DROP */
	OVL_DROP_BCAST_DYNAMIC,   /* broadcast/multicast on a dynamic overlay */
	OVL_DROP_NO_ROUTE,        /* no underlay route to the destination */
	OVL_DROP_FWD_DISABLED,    /* fib lookup needs forwarding on the VNIC */
	OVL_DROP_NO_NEIGH,        /* non-IP frame, underlay next hop unresolved */
	OVL_DROP_TOO_BIG,         /* encapsulated frame exceeds the underlay */
	OVL_DROP_ENCAP_FAIL,      /* kernel refused to grow the packet */
	OVL_DROP_NO_PORT,         /* decap: no local port for the inner MAC */
	OVL_DROP_STRICT_SOURCE,   /* decap: outer source unknown to the overlay */
	OVL_DROP_DECAP_FAIL,      /* kernel refused to shrink the packet */
	OVL_DROP_MISS_QUEUE_FULL, /* 128 KiB already wait for this destination */
	OVL_DROP_RING_FULL,       /* the daemon is not keeping up (or not running) */
	OVL_DROP_PUNT_TOO_BIG,    /* a frame to the daemon above OVL_MISS_FRAME_MAX */
	OVL_DROP_PLAINTEXT_TX,    /* would leave unencrypted: encrypted target with no
				   * mesh device, or out of an external interface */
	OVL_DROP_PLAINTEXT_RX,    /* plaintext VXLAN from an encrypted peer or
				   * arriving on an external interface */
	OVL_DROP_NOT_MESH,        /* VXLAN from the mesh device whose sender is not
				   * an encrypted peer */
	OVL_DROP_MAX,
};

/* Counter slots; stats index = overlay id * OVL_STAT_MAX + slot. */
enum ovl_stat {
	OVL_STAT_TX_PACKETS = 0,  /* encapsulated onto the underlay */
	OVL_STAT_TX_BYTES,        /* inner frame bytes */
	OVL_STAT_RX_PACKETS,      /* decapsulated and delivered */
	OVL_STAT_RX_BYTES,
	OVL_STAT_LOCAL_PACKETS,   /* switched between local ports */
	OVL_STAT_LOCAL_BYTES,
	OVL_STAT_FLOOD_PACKETS,   /* broadcast copies to local ports */
	OVL_STAT_MISSES,          /* misses reported (first frames) */
	OVL_STAT_PUNTED,          /* frames copied to the daemon */
	OVL_STAT_DROP_BASE,       /* + enum ovl_drop */
	OVL_STAT_MAX = OVL_STAT_DROP_BASE + OVL_DROP_MAX,
};

#define OVL_STATS_ENTRIES (OVL_MAX_OVERLAYS * OVL_STAT_MAX)

/* Test builds (-DOVL_TRACE) record each verdict for BPF_PROG_RUN checks. */
struct ovl_trace {
	__u32 verdict;  /* TC_ACT_* / XDP_* */
	__u32 ifindex;  /* redirect target, 0 if none */
	__u32 vni;      /* overlay the frame was attributed to */
	__s32 reason;   /* drop reason, 0 if none */
	__u32 flooded;  /* local broadcast copies */
	__u32 punted;   /* OVL_EV_* when the frame went to the daemon */
};

/* Map names as pinned: <pin dir>/<name>. */
#define OVL_MAP_OVERLAYS overlays
#define OVL_MAP_VNICS vnics
#define OVL_MAP_PORTS ports
#define OVL_MAP_TARGETS targets
#define OVL_MAP_FLOOD flood
#define OVL_MAP_PEERS peers
#define OVL_MAP_LISTEN listen_ports
#define OVL_MAP_STATS stats
#define OVL_MAP_ABI abi
#define OVL_MAP_PENDING pending
#define OVL_MAP_MISSES misses
#define OVL_MAP_MESH_PEERS mesh_peers
#define OVL_MAP_MESH_TUNNELS mesh_tunnels
#define OVL_MAP_MESH_IFACES mesh_ifaces
#define OVL_MAP_MESH_CFG mesh_cfg
#define OVL_MAP_NEXTHOPS nexthops

#endif /* OVL_ABI_H */
