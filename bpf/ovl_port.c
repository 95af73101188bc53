/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ovl_port.c - the port program: TC ingress on a VNIC's host end, i.e. every
 * frame a guest transmits. Like the illumos overlay device it is a switch:
 *   unicast to a local port of the same VNI  -> redirect to that port
 *   and VLAN
 *   broadcast / multicast                    -> a copy to every other local
 *                                               port, then POINT: encap to the
 *                                               destination; DYNAMIC: drop
 *   unicast, POINT overlay                   -> encap to the destination
 *   unicast, DYNAMIC overlay                 -> targets (VNI, MAC): VALID ->
 *                                               encap, DROP -> drop, miss (or
 *                                               an expired DROP) -> daemon
 *   ARP / NDP / DHCP broadcast, DYNAMIC      -> local copies, then the daemon
 *                                               (proxies); other broadcast is
 *                                               dropped, as illumos files does
 * Nothing is ever passed to the host stack: a VNIC host end is a switch port.
 * Verdicts: TC_ACT_REDIRECT, or TC_ACT_SHOT: counted under a drop reason, or
 * (no reason) the frame was copied to the daemon through the misses ring.
 */
#include "lib/compat.h"
#include "ovl_abi.h"
#include "lib/proto.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/addr.h"
#include "lib/flood.h"
#include "lib/mesh.h"
#include "lib/encap.h"
#include "lib/punt.h"

static __always_inline int ovl_port_drop(__u32 ov_id, __u32 vni, int reason, __u32 flooded)
{
	ovl_count_drop(ov_id, reason);
	ovl_trace_set(TC_ACT_SHOT, 0, vni, reason, flooded);
	return TC_ACT_SHOT;
}

/* Hand the frame to the daemon; the copy is in the ring, the skb is done. */
static __always_inline int ovl_port_punt(struct __sk_buff *skb, __u32 type, __u32 ov_id, __u32 vni,
					 struct ovl_l2key *key, __u32 flooded)
{
	int rc = ovl_punt(skb, type, vni, key, ov_id);

	if (rc < 0)
		return ovl_port_drop(ov_id, vni, -rc, flooded);
	ovl_trace_set_punt(TC_ACT_SHOT, 0, vni, 0, flooded, type);
	return TC_ACT_SHOT;
}

/* Deliver to a local port of the same VNI. */
static __always_inline int ovl_switch_local(struct __sk_buff *skb, const struct ovl_port *port,
					    __u32 ov_id, __u32 vni, __u32 len)
{
	__u32 ifindex = port->ifindex;

	ovl_count(ov_id, OVL_STAT_LOCAL_PACKETS, 1);
	ovl_count(ov_id, OVL_STAT_LOCAL_BYTES, len);
	ovl_trace_set(TC_ACT_REDIRECT, ifindex, vni, 0, 0);
	if (port->flags & OVL_VNIC_F_PEER) {
		/* Straight into the guest's ingress: no backlog queue. The frame
		 * came in as OTHERHOST (not for the host end's MAC). */
		bpf_skb_change_type(skb, PACKET_HOST);
		return bpf_redirect_peer(ifindex, 0);
	}
	return bpf_redirect(ifindex, 0);
}

int ovl_port(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 ifindex = skb->ifindex, len = skb->len, vni, ov_id;
	__u32 flooded = 0, out_ifindex = 0;
	__u16 vlan;
	struct ovl_overlay *ov;
	struct ovl_vnic *vnic;
	struct ovl_port *port;
	struct ovl_dest dst;
	struct ovl_l2key key;
	int ret;

	vnic = vnics.lookup(&ifindex);
	if (!vnic)
		return ovl_port_drop(0, 0, OVL_DROP_NOT_A_PORT, 0);
	vni = vnic->vni;
	vlan = vnic->vlan;
	ov = overlays.lookup(&vni);
	if (!ov)
		return ovl_port_drop(0, vni, OVL_DROP_NO_OVERLAY, 0);
	ov_id = ov->id;
	if ((void *)(eth + 1) > data_end)
		return ovl_port_drop(ov_id, vni, OVL_DROP_MALFORMED, 0);
	if (!ovl_mac_eq(eth->h_source, vnic->mac))
		return ovl_port_drop(ov_id, vni, OVL_DROP_SRC_MAC, 0);

	ovl_l2key_set(&key, vni, eth->h_dest);
	if (ovl_mac_is_group(eth->h_dest)) {
		int for_daemon = ovl_bcast_for_daemon(eth); /* eth is gone after flooding */

		flooded = ovl_flood(skb, vni, ifindex, vlan);
		ovl_count(ov_id, OVL_STAT_FLOOD_PACKETS, flooded);
		if (ov->mode != OVL_MODE_POINT) {
			if (for_daemon)
				return ovl_port_punt(skb, OVL_EV_BCAST, ov_id, vni, &key, flooded);
			return ovl_port_drop(ov_id, vni, OVL_DROP_BCAST_DYNAMIC, flooded);
		}
		dst = ov->point;
	} else {
		port = ports.lookup(&key);
		if (port && port->vlan == vlan)
			return ovl_switch_local(skb, port, ov_id, vni, len);
		if (ov->mode == OVL_MODE_POINT) {
			dst = ov->point;
		} else {
			struct ovl_dest *t = targets.lookup(&key);

			if (!t || (t->state == OVL_TARGET_DROP && t->expiry_ns &&
				   bpf_ktime_get_ns() >= t->expiry_ns))
				return ovl_port_punt(skb, OVL_EV_MISS, ov_id, vni, &key, 0);
			if (t->state != OVL_TARGET_VALID)
				return ovl_port_drop(ov_id, vni, OVL_DROP_TARGET_DROP, 0);
			dst = *t;
		}
	}

	ret = ovl_encap(skb, ov, &dst, vni, vlan, &out_ifindex);
	if (ret < 0)
		return ovl_port_drop(ov_id, vni, -ret, flooded);
	ovl_count(ov_id, OVL_STAT_TX_PACKETS, 1);
	ovl_count(ov_id, OVL_STAT_TX_BYTES, len);
	ovl_trace_set(ret, out_ifindex, vni, 0, flooded);
	return ret;
}
