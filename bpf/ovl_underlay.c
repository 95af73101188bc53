/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ovl_underlay.c - the underlay programs: decapsulation on the underlay device.
 *
 * ovl_underlay_tc  (TC ingress) handles everything: VXLAN for a known VNI whose
 *                  listen ip/port match is stripped and delivered to the local
 *                  port of the inner destination MAC (bpf_redirect_peer for IP
 *                  into a veth guest), broadcast/multicast is copied to every
 *                  local port of the VNI. It keeps GSO and checksum state,
 *                  which makes it the right hook on veth underlays.
 * ovl_underlay_xdp (XDP) fast path for unicast on NICs: strips the headers and
 *                  XDP_REDIRECTs to the port; broadcast goes up (XDP_PASS) to
 *                  the TC program, which is always attached as well.
 * ovl_mesh_rx      (TC ingress of pyovl's collect_md vxlan device, see mesh.h)
 *                  what arrived encrypted: the kernel has decrypted and
 *                  decapsulated it; delivered like ovl_underlay_tc's, only
 *                  from encrypted mesh peers.
 * Anything that is not ours (ovl_rx_classify() == 0) passes untouched: host
 * traffic is never disturbed. Drops are counted per overlay and reason.
 */
#include "lib/compat.h"
#include "ovl_abi.h"
#include "lib/proto.h"
#include "lib/maps.h"
#include "lib/stats.h"
#include "lib/addr.h"
#include "lib/flood.h"
#include "lib/mesh.h"
#include "lib/decap.h"

static __always_inline __u32 ovl_rx_id(const struct ovl_rx *rx)
{
	return rx->ov ? rx->ov->id : 0;
}

int ovl_underlay_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ovl_rx rx = {};
	struct ovl_port *port;
	__u32 ifindex, id;
	__u8 macs[12];
	int rc;

	rc = ovl_rx_classify(data, data_end, ctx->ingress_ifindex, 0, &rx);
	if (rc == 0) {
		ovl_trace_set(XDP_PASS, 0, 0, 0, 0);
		return XDP_PASS;
	}
	id = ovl_rx_id(&rx);
	if (rc < 0)
		goto drop;
	if (ovl_mac_is_group(rx.inner->h_dest)) {
		ovl_trace_set(XDP_PASS, 0, rx.vni, 0, 0);
		return XDP_PASS; /* copies are made by ovl_underlay_tc */
	}
	port = ovl_rx_port(&rx);
	if (!port) {
		rc = -OVL_DROP_NO_PORT;
		goto drop;
	}
	ifindex = port->ifindex;
	if (rx.vlan) {
		/* the MACs move over the tag; the ethertype after it stays */
		__builtin_memcpy(macs, rx.inner, 12);
	}
	if (bpf_xdp_adjust_head(ctx, rx.strip)) {
		rc = -OVL_DROP_DECAP_FAIL;
		goto drop;
	}
	if (rx.vlan) {
		void *d = (void *)(long)ctx->data;

		if (d + 12 > (void *)(long)ctx->data_end) {
			rc = -OVL_DROP_DECAP_FAIL;
			goto drop;
		}
		__builtin_memcpy(d, macs, 12);
	}
	ovl_count(id, OVL_STAT_RX_PACKETS, 1);
	ovl_count(id, OVL_STAT_RX_BYTES,
		  (long)ctx->data_end - (long)ctx->data);
	ovl_trace_set(XDP_REDIRECT, ifindex, rx.vni, 0, 0);
	return bpf_redirect(ifindex, 0);
drop:
	if (rc == -OVL_DROP_PLAINTEXT_RX)
		ovl_mesh_count_plaintext(rx.mesh_peer);
	ovl_count_drop(id, -rc);
	ovl_trace_set(XDP_DROP, 0, rx.vni, -rc, 0);
	return XDP_DROP;
}

/* Strip the outer headers; the inner Ethernet header is written back in place
 * of the outer one. DECAP_L3 sets skb->protocol to the inner IP version.
 * Returns 0, 1 (skb->protocol is stale: deliver so that it is re-parsed) or
 * -OVL_DROP_DECAP_FAIL. */
static __always_inline int ovl_tc_decap(struct __sk_buff *skb, const struct ovl_rx *rx,
					struct ethhdr *inner)
{
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO;

	/* Non-IP frames get DECAP_L3_IPV4 too: without a DECAP flag the helper
	 * wants an outer-sized L3 header left after the shrink, and a 28-byte
	 * ARP under an IPv6 outer is shorter than 40 (ENOTSUPP, seen on 6.18).
	 * Their skb->protocol is re-derived when the veth delivers them. */
	if (rx->inner_proto == bpf_htons(ETH_P_IPV6))
		flags |= BPF_F_ADJ_ROOM_DECAP_L3_IPV6;
	else
		flags |= BPF_F_ADJ_ROOM_DECAP_L3_IPV4;
	int reparse = 0;

	if (bpf_skb_adjust_room(skb, -(int)rx->strip, BPF_ADJ_ROOM_MAC, flags) < 0) {
		/* Kernels before 6.3 know no DECAP_L3 flags (EINVAL): shrink
		 * without them; skb->protocol then still names the outer IP, so
		 * the caller delivers through the veth (which re-parses) rather
		 * than into the guest's ingress directly. */
		if (bpf_skb_adjust_room(skb, -(int)rx->strip, BPF_ADJ_ROOM_MAC,
					BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
			return -OVL_DROP_DECAP_FAIL;
		reparse = 1;
	}
	inner->h_proto = rx->inner_proto; /* untagged, as the guest sent it */
	/* Not a direct write: that would make the verifier prepend an unclone
	 * (a head copy) for every cloned skb, host traffic included (any
	 * tcpdump on the underlay clones them all). */
	if (bpf_skb_store_bytes(skb, 0, inner, ETH_HLEN, 0) < 0)
		return -OVL_DROP_DECAP_FAIL;
	return reparse;
}

int ovl_underlay_tc(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct ovl_port port = {};
	struct ovl_rx rx = {};
	struct ethhdr inner;
	__u32 id, len, n;
	int rc, group, reparse;

	/* Outer headers and the inner Ethernet header must be linear. */
	if (skb->len >= OVL_ENCAP4_LEN + ETH_HLEN &&
	    skb->data + OVL_ENCAP6_LEN + ETH_HLEN > skb->data_end)
		bpf_skb_pull_data(skb, OVL_ENCAP6_LEN + ETH_HLEN);
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;

	rc = ovl_rx_classify(data, data_end, skb->ingress_ifindex, 0, &rx);
	if (rc == -OVL_DROP_PLAINTEXT_RX && ovl_skb_decrypted(skb))
		rc = ovl_rx_classify(data, data_end, skb->ingress_ifindex, 1, &rx);
	if (rc == 0) {
		ovl_trace_set(TC_ACT_OK, 0, 0, 0, 0);
		return TC_ACT_OK;
	}
	id = ovl_rx_id(&rx);
	if (rc < 0)
		goto drop;
	inner = *rx.inner;
	group = ovl_mac_is_group(inner.h_dest);
	if (group) {
		/* Decide before flooding: a branch on the number of copies made
		 * would make the verifier track every count on every path (the
		 * 6.18 verifier gives up with E2BIG). */
		struct ovl_flood *fl = flood.lookup(&rx.vni);

		if (!fl || fl->count == 0) {
			rc = -OVL_DROP_NO_PORT;
			goto drop;
		}
	} else {
		struct ovl_port *p = ovl_rx_port(&rx);

		if (!p) {
			rc = -OVL_DROP_NO_PORT;
			goto drop;
		}
		port = *p;
	}
	len = skb->len - rx.strip;
	rc = ovl_tc_decap(skb, &rx, &inner);
	if (rc < 0)
		goto drop;
	reparse = rc;

	if (group) {
		n = ovl_flood(skb, rx.vni, 0, rx.vlan);
		ovl_count(id, OVL_STAT_RX_PACKETS, 1);
		ovl_count(id, OVL_STAT_RX_BYTES, len);
		ovl_count(id, OVL_STAT_FLOOD_PACKETS, n);
		ovl_trace_set(TC_ACT_SHOT, 0, rx.vni, 0, n);
		return TC_ACT_SHOT; /* the copies went out; the original is done */
	}
	ovl_count(id, OVL_STAT_RX_PACKETS, 1);
	ovl_count(id, OVL_STAT_RX_BYTES, len);
	ovl_trace_set(TC_ACT_REDIRECT, port.ifindex, rx.vni, 0, 0);
	if ((port.flags & OVL_VNIC_F_PEER) && !reparse &&
	    (rx.inner_proto == bpf_htons(ETH_P_IP) || rx.inner_proto == bpf_htons(ETH_P_IPV6)))
		return bpf_redirect_peer(port.ifindex, 0);
	/* Egress through the veth: the guest side re-parses the frame, which
	 * non-IP frames need (skb->protocol still names the outer IP). */
	return bpf_redirect(port.ifindex, 0);
drop:
	if (rc == -OVL_DROP_PLAINTEXT_RX)
		ovl_mesh_count_plaintext(rx.mesh_peer);
	ovl_count_drop(id, -rc);
	ovl_trace_set(TC_ACT_SHOT, 0, rx.vni, -rc, 0);
	return TC_ACT_SHOT;
}

/* Decrypted VXLAN, decapsulated by the kernel's vxlan device (collect_md):
 * the tunnel key gives the VNI and the outer source. Only encrypted mesh
 * peers may come this way; the kernel's IPsec input policy has already
 * refused plaintext for their addresses. */
int ovl_mesh_rx(struct __sk_buff *skb)
{
	struct bpf_tunnel_key key = {};
	struct ovl_mesh_peer *mp;
	struct ovl_overlay *ov;
	struct ovl_port *port;
	struct ovl_l2key l2;
	struct ovl_addr src;
	struct ethhdr *eth;
	void *data, *data_end;
	__u32 vni, id = 0, n, ifindex;
	__u16 vlan = 0;
	int rc;

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) == 0) {
		ovl_addr_set_v4(&src, bpf_htonl(key.remote_ipv4));
	} else if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), BPF_F_TUNINFO_IPV6) == 0) {
		src.w[0] = key.remote_ipv6[0];
		src.w[1] = key.remote_ipv6[1];
		src.w[2] = key.remote_ipv6[2];
		src.w[3] = key.remote_ipv6[3];
	} else {
		rc = -OVL_DROP_MALFORMED;
		goto drop;
	}
	vni = key.tunnel_id;
	ov = overlays.lookup(&vni);
	if (!ov) {
		rc = -OVL_DROP_NO_OVERLAY;
		goto drop;
	}
	id = ov->id;
	mp = mesh_peers.lookup(&src);
	if (!mp || !(mp->flags & OVL_MESH_F_ENCRYPT)) {
		rc = -OVL_DROP_NOT_MESH;
		goto drop;
	}
	/* The stack moved an inner 802.1Q tag out of the frame before TC. */
	if (skb->vlan_present) {
		vlan = skb->vlan_tci & 0xfff;
		bpf_skb_vlan_pop(skb);
	}
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end) {
		rc = -OVL_DROP_MALFORMED;
		goto drop;
	}
	if (ovl_mac_is_group(eth->h_dest)) {
		n = ovl_flood(skb, vni, 0, vlan);
		ovl_count(id, OVL_STAT_RX_PACKETS, 1);
		ovl_count(id, OVL_STAT_RX_BYTES, skb->len);
		ovl_count(id, OVL_STAT_FLOOD_PACKETS, n);
		ovl_trace_set(TC_ACT_SHOT, 0, vni, 0, n);
		return TC_ACT_SHOT;
	}
	ovl_l2key_set(&l2, vni, eth->h_dest);
	port = ports.lookup(&l2);
	if (!port || port->vlan != vlan) {
		rc = -OVL_DROP_NO_PORT;
		goto drop;
	}
	ifindex = port->ifindex;
	ovl_count(id, OVL_STAT_RX_PACKETS, 1);
	ovl_count(id, OVL_STAT_RX_BYTES, skb->len);
	ovl_trace_set(TC_ACT_REDIRECT, ifindex, vni, 0, 0);
	if (port->flags & OVL_VNIC_F_PEER) {
		/* addressed to the guest, not to the vxlan device: OTHERHOST */
		bpf_skb_change_type(skb, PACKET_HOST);
		return bpf_redirect_peer(ifindex, 0);
	}
	return bpf_redirect(ifindex, 0);
drop:
	ovl_count_drop(id, -rc);
	ovl_trace_set(TC_ACT_SHOT, 0, 0, -rc, 0);
	return TC_ACT_SHOT;
}
