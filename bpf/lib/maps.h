/* SPDX-License-Identifier: GPL-2.0 */
/*
 * maps.h - every map, declared exactly once, pinned under OVL_PIN_DIR (set by
 * the loader with -DOVL_PIN_DIR="..."). The first program compiled creates
 * and pins them; later ones (and later pyovl runs) open the pins. Writers are
 * listed per map: the data path writes only stats (and trace in test builds).
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
/* UDP port (host order) -> number of overlays listening (writer: pyovl) */
BPF_TABLE_PINNED("hash", __u16, __u32, listen_ports, OVL_MAX_LISTEN,
		 OVL_PIN_DIR "/listen_ports");
/* per-CPU counters (writer: data path) */
BPF_TABLE_PINNED("percpu_array", __u32, __u64, stats, OVL_STATS_ENTRIES,
		 OVL_PIN_DIR "/stats");
/* ABI stamp (writer: pyovl, once) */
BPF_TABLE_PINNED("array", __u32, struct ovl_abi_info, abi, 1, OVL_PIN_DIR "/abi");

#ifdef OVL_TRACE
/* last verdict per CPU (writer: data path, test builds only) */
BPF_TABLE_PINNED("percpu_array", __u32, struct ovl_trace, trace, 1,
		 OVL_PIN_DIR "/trace");
#endif

#endif /* OVL_MAPS_H */
