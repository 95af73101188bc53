/* SPDX-License-Identifier: GPL-2.0 */
/*
 * maps.h - every map, declared exactly once, pinned under OVL_PIN_DIR (set by
 * the loader with -DOVL_PIN_DIR="..."). The first program compiled creates
 * and pins them; later ones (and later pyovl runs) open the pins. Writers are
 * listed per map: the data path writes only stats, pending, nexthops, the
 * mesh peers' plaintext counters and the misses ring (and trace in test builds).
 */
#ifndef OVL_MAPS_H
#define OVL_MAPS_H

#ifndef OVL_PIN_DIR
#error "OVL_PIN_DIR must be set by the loader"
#endif

/* VNI -> overlay (writer: pyovl) */
BPF_TABLE_PINNED("hash", __u32, struct ovl_overlay, overlays, OVL_MAX_OVERLAYS,
		 OVL_PIN_DIR "/overlays", BPF_F_NO_PREALLOC);
/* VNIC host-end ifindex -> vnic (writer: pyovl) */
BPF_TABLE_PINNED("hash", __u32, struct ovl_vnic, vnics, OVL_MAX_VNICS,
		 OVL_PIN_DIR "/vnics");
/* (VNI, MAC) -> local port (writer: pyovl) */
BPF_TABLE_PINNED("hash", struct ovl_l2key, struct ovl_port, ports, OVL_MAX_VNICS,
		 OVL_PIN_DIR "/ports");
/* (VNI, MAC) -> underlay destination (writer: pyovl) */
BPF_TABLE_PINNED("hash", struct ovl_l2key, struct ovl_dest, targets, OVL_MAX_TARGETS,
		 OVL_PIN_DIR "/targets", BPF_F_NO_PREALLOC);
/* VNI -> local ports for broadcast (writer: pyovl) */
BPF_TABLE_PINNED("hash", __u32, struct ovl_flood, flood, OVL_MAX_OVERLAYS,
		 OVL_PIN_DIR "/flood", BPF_F_NO_PREALLOC);
/* (VNI, underlay ip) -> refcount, strict source check (writer: pyovl) */
BPF_TABLE_PINNED("hash", struct ovl_peer_key, __u32, peers, OVL_MAX_PEERS,
		 OVL_PIN_DIR "/peers", BPF_F_NO_PREALLOC);
/* UDP port (host order) -> number of overlays listening, 0 = none (writer:
 * pyovl). An array: its lookup is inlined, where a hash lookup cost every
 * decap ~25 ns (BPF_PROG_RUN, 6.18); 256 KiB. */
BPF_TABLE_PINNED("array", __u32, __u32, listen_ports, OVL_LISTEN_PORTS,
		 OVL_PIN_DIR "/listen_ports");
/* per-CPU counters (writer: data path) */
BPF_TABLE_PINNED("percpu_array", __u32, __u64, stats, OVL_STATS_ENTRIES,
		 OVL_PIN_DIR "/stats");
/* (VNI, MAC) -> miss being resolved (writer: data path; daemon deletes) */
BPF_TABLE_PINNED("lru_hash", struct ovl_l2key, struct ovl_pending, pending, OVL_MAX_PENDING,
		 OVL_PIN_DIR "/pending");
/* (underlay destination, source) -> cached next hop (writer: data path;
 * pyovl flushes it) */
BPF_TABLE_PINNED("lru_hash", struct ovl_nh_key, struct ovl_nexthop, nexthops, OVL_MAX_NEXTHOPS,
		 OVL_PIN_DIR "/nexthops");

/* IPsec mesh (writer: pyovl): node address -> flags and plaintext drops
 * (the data path adds to plaintext_rx); UDP port (host order) -> ifindex of
 * the collect_md vxlan device encrypted traffic goes through; ifindex ->
 * OVL_MESH_IF_* for the external interfaces. */
BPF_TABLE_PINNED("hash", struct ovl_addr, struct ovl_mesh_peer, mesh_peers, OVL_MAX_MESH_PEERS,
		 OVL_PIN_DIR "/mesh_peers", BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("hash", __u16, __u32, mesh_tunnels, OVL_MAX_LISTEN,
		 OVL_PIN_DIR "/mesh_tunnels");
BPF_TABLE_PINNED("hash", __u32, __u32, mesh_ifaces, OVL_MAX_MESH_IFACES,
		 OVL_PIN_DIR "/mesh_ifaces");
BPF_TABLE_PINNED("array", __u32, struct ovl_mesh_cfg, mesh_cfg, 1, OVL_PIN_DIR "/mesh_cfg");

/* events to the daemon (writer: data path). bcc's BPF_RINGBUF_OUTPUT with a
 * pin: the frontend takes "ringbuf:<path>" like any pinned section. */
struct misses_table_t {
	int key;
	u32 leaf;
	int (*ringbuf_output)(void *, u64, u64);
	void *(*ringbuf_reserve)(u64);
	void (*ringbuf_discard)(void *, u64);
	void (*ringbuf_submit)(void *, u64);
	u32 max_entries;
};
__attribute__((section("maps/ringbuf:" OVL_PIN_DIR "/misses")))
struct misses_table_t misses = { .max_entries = OVL_RING_PAGES * PAGE_SIZE };

/* ABI stamp (writer: pyovl, once) */
BPF_TABLE_PINNED("array", __u32, struct ovl_abi_info, abi, 1, OVL_PIN_DIR "/abi");

#ifdef OVL_TRACE
/* last verdict per CPU (writer: data path, test builds only) */
BPF_TABLE_PINNED("percpu_array", __u32, struct ovl_trace, trace, 1,
		 OVL_PIN_DIR "/trace");
#endif

#endif /* OVL_MAPS_H */
