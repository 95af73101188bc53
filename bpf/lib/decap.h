/* SPDX-License-Identifier: GPL-2.0 */
/*
 * decap.h - classify an underlay frame; shared by the XDP and TC entry points.
 *
 * ovl_rx_classify() looks at Ethernet / IPv4 or IPv6 / UDP / VXLAN and decides:
 *   1                 the frame is VXLAN for one of our overlays: rx is filled
 *                     (VNI, overlay, bytes to strip, inner Ethernet header,
 *                     inner VLAN id and the ethertype after the tag);
 *   0                 not ours: the caller passes it up untouched (host
 *                     traffic, other UDP, unknown VNIs, other listen ips);
 *   -OVL_DROP_*       ours but unacceptable (truncated inner frame, strict
 *                     source check failed, plaintext from an encrypted peer
 *                     or on an external interface: mesh.h); rx->ov is set
 *                     for counting (and rx->mesh_peer for PLAINTEXT_RX).
 * decrypted: the kernel has decrypted this packet (TC only: with ESP GRO the
 * decrypted packet comes through the device again, secpath attached).
 * It only reads the packet; pointers are checked against data_end here.
 */
#ifndef OVL_DECAP_H
#define OVL_DECAP_H

struct ovl_rx {
	__u32 vni;
	__u32 strip;               /* OVL_ENCAP4_LEN or OVL_ENCAP6_LEN */
	struct ovl_overlay *ov;
	struct ethhdr *inner;
	__be16 inner_proto;        /* inner ethertype (after an 802.1Q tag) */
	__u16 vlan;                /* inner VLAN id, 0 = untagged */
	struct ovl_mesh_peer *mesh_peer; /* PLAINTEXT_RX from this mesh node */
};

static __always_inline int ovl_rx_udp(void *data_end, struct udphdr *udp,
				      struct ovl_addr *saddr, struct ovl_addr *daddr,
				      __u32 strip, __u32 ifindex, int decrypted, struct ovl_rx *rx)
{
	struct ovl_vxlanhdr *vx = (void *)(udp + 1);
	struct ovl_peer_key pk = {};
	struct ovl_overlay *ov;
	struct ethhdr *inner;
	__u32 dport, vni, *listening;

	if ((void *)(vx + 1) > data_end)
		return 0;
	dport = bpf_ntohs(udp->dest);
	listening = listen_ports.lookup(&dport);
	if (!listening || !*listening)
		return 0;
	if (!(vx->flags & bpf_htonl(OVL_VXLAN_I_FLAG)))
		return 0;
	vni = bpf_ntohl(vx->vni) >> 8;
	ov = overlays.lookup(&vni);
	if (!decrypted && ovl_mesh_plaintext_refused(ifindex, saddr, &rx->mesh_peer)) {
		/* before the VNI and listen checks: whatever it claims, plaintext
		 * from an encrypted peer or on the external side never passes */
		rx->ov = ov;
		return -OVL_DROP_PLAINTEXT_RX;
	}
	if (!ov || ov->listen_port != udp->dest)
		return 0;
	if (!ovl_addr_is_any(&ov->listen_ip) && !ovl_addr_eq(&ov->listen_ip, daddr))
		return 0;

	rx->vni = vni;
	rx->ov = ov;
	rx->strip = strip;
	inner = (void *)(vx + 1);
	if ((void *)(inner + 1) > data_end)
		return -OVL_DROP_MALFORMED;
	rx->inner = inner;
	rx->inner_proto = inner->h_proto;
	rx->vlan = 0;
	if (inner->h_proto == bpf_htons(OVL_ETH_P_8021Q)) {
		struct ovl_vlan_tag *tag = (void *)(inner + 1);

		if ((void *)(tag + 1) > data_end)
			return -OVL_DROP_MALFORMED;
		rx->vlan = bpf_ntohs(tag->tci) & 0xfff;
		rx->inner_proto = tag->proto;
		rx->strip += 4; /* the tag goes too: the guest gets its frame untagged */
	}

	if (ov->flags & OVL_F_STRICT) {
		if (ov->mode == OVL_MODE_POINT) {
			if (!ovl_addr_eq(&ov->point.ip, saddr))
				return -OVL_DROP_STRICT_SOURCE;
		} else {
			pk.vni = vni;
			pk.ip = *saddr;
			if (!peers.lookup(&pk))
				return -OVL_DROP_STRICT_SOURCE;
		}
	}
	return 1;
}

static __always_inline int ovl_rx_classify(void *data, void *data_end, __u32 ifindex,
					   int decrypted, struct ovl_rx *rx)
{
	struct ethhdr *eth = data;
	struct ovl_addr saddr, daddr;

	rx->ov = 0;
	rx->mesh_peer = 0;
	if ((void *)(eth + 1) > data_end)
		return 0;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct udphdr *udp;

		if ((void *)(ip + 1) > data_end)
			return 0;
		/* Options and fragments are left to the kernel stack. */
		if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
		    (ip->frag_off & bpf_htons(OVL_IP_MF | OVL_IP_OFFMASK)))
			return 0;
		udp = (void *)(ip + 1);
		ovl_addr_set_v4(&saddr, ip->saddr);
		ovl_addr_set_v4(&daddr, ip->daddr);
		return ovl_rx_udp(data_end, udp, &saddr, &daddr, OVL_ENCAP4_LEN, ifindex, decrypted, rx);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		/* Extension headers are left to the kernel stack. */
		if (ip6->nexthdr != IPPROTO_UDP)
			return 0;
		ovl_addr_set_v6(&saddr, &ip6->saddr);
		ovl_addr_set_v6(&daddr, &ip6->daddr);
		return ovl_rx_udp(data_end, (void *)(ip6 + 1), &saddr, &daddr,
				  OVL_ENCAP6_LEN, ifindex, decrypted, rx);
	}
	return 0;
}

/* Local port for a decapsulated unicast frame (same VNI and VLAN), or NULL. */
static __always_inline struct ovl_port *ovl_rx_port(const struct ovl_rx *rx)
{
	struct ovl_l2key key;
	struct ovl_port *port;

	ovl_l2key_set(&key, rx->vni, rx->inner->h_dest);
	port = ports.lookup(&key);
	return port && port->vlan == rx->vlan ? port : 0;
}

#endif /* OVL_DECAP_H */
