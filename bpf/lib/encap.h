/* SPDX-License-Identifier: GPL-2.0 */
/*
 * encap.h - VXLAN encapsulation of an skb at TC, and next-hop resolution.
 *
 * ovl_encap() turns the inner Ethernet frame in skb into
 *   outer Ethernet / IPv4 (DF, TTL 64) or IPv6 / UDP / VXLAN (I flag, VNI<<8) / inner
 * toward dst, and returns the redirect verdict, or -OVL_DROP_* having left the
 * packet in any state (the caller drops it). A VNIC with a VLAN id gets its
 * 802.1Q tag inserted in the inner frame (the guest sends untagged, as with an
 * illumos VNIC created with -v).
 *
 * Offloads (see design.md): IP frames grow with bpf_skb_adjust_room and the
 * ENCAP flags so GSO super-packets stay GSO (segmented as UDP tunnels at the
 * device) and CHECKSUM_PARTIAL survives; FIXED_GSO keeps gso_size (without it
 * the helper shrinks the MSS by the header length). Non-IP frames (ARP) are
 * small and grow with bpf_skb_change_head, which accepts any protocol.
 *
 * Next hop: bpf_fib_lookup from the VNIC's host end (ingress ifindex), cached
 * per (destination, source) for OVL_NEXTHOP_TTL_NS in the nexthops map (see
 * ovl_nexthop). The kernel answers FWD_DISABLED unless forwarding is on for
 * that device, so pyovl sets net.ipv{4,6}.conf.<host end>.forwarding=1 on the
 * VNIC host ends only (they carry no IP and pass nothing to the stack). An
 * unresolved neighbour goes through bpf_redirect_neigh (IP frames) which
 * queues and resolves; pyovl also keeps managed neighbour entries for its
 * destinations so ARP frames find the next hop resolved.
 *
 * Targets that require encryption go through mesh.h instead (the kernel's
 * IPsec path); plain encap refuses to leave through an external interface.
 */
#ifndef OVL_ENCAP_H
#define OVL_ENCAP_H

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* RFC 1071 checksum of a 20-byte IPv4 header (checksum field zero). */
static __always_inline __u16 ovl_ip4_csum(const struct iphdr *ip)
{
	const __u16 *p = (const __u16 *)ip;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += p[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return ~sum;
}

/* Mix one word into a running hash (multiply, xor-shift). */
static __always_inline __u32 ovl_mix(__u32 h, __u32 v)
{
	h ^= v;
	h *= 0x9e3779b1;
	return h ^ (h >> 15);
}

/* The inner flow's hash, for the UDP source port and the IPv6 flow label:
 * the skb's own when it has one (a guest's socket sets it), else one made
 * here from addresses, protocol and ports read in place. Frames from a tap or
 * from BPF_PROG_RUN carry none, and bpf_get_hash_recalc's full flow
 * dissection cost ~180 ns per frame there (BPF_PROG_RUN, 6.18). */
static __always_inline __u32 ovl_flow_hash(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	__u32 h = skb->hash, *ports = 0;
	__u8 proto = 0;

	if (h)
		return h;
	h = 0x811c9dc5;
	if ((void *)(eth + 1) > end)
		return h;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return h;
		h = ovl_mix(ovl_mix(h, ip->saddr), ip->daddr);
		proto = ip->protocol;
		if (ip->ihl == 5 && !(ip->frag_off & bpf_htons(OVL_IP_MF | OVL_IP_OFFMASK)))
			ports = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		int i;

		if ((void *)(ip6 + 1) > end)
			return h;
#pragma unroll
		for (i = 0; i < 4; i++)
			h = ovl_mix(ovl_mix(h, ip6->saddr.in6_u.u6_addr32[i]),
				    ip6->daddr.in6_u.u6_addr32[i]);
		proto = ip6->nexthdr;
		ports = (void *)(ip6 + 1);
	} else {
		/* ARP and other non-IP frames: the two MACs */
		__u16 *m = (__u16 *)eth;
		int i;

#pragma unroll
		for (i = 0; i < 6; i++)
			h = ovl_mix(h, m[i]);
	}
	if (ports && (proto == IPPROTO_TCP || proto == IPPROTO_UDP) && (void *)(ports + 1) <= end)
		h = ovl_mix(h, *ports);
	return ovl_mix(h, proto);
}

static __always_inline __u16 ovl_sport(__u32 hash, const struct ovl_overlay *ov)
{
	__u32 lo = ov->sport_min, hi = ov->sport_max;

	if (hi < lo || lo == 0)
		return (__u16)(hash | 0xc000); /* 49152-65535 when unset */
	return (__u16)(lo + hash % (hi - lo + 1));
}

/* Lookup parameters for dst. The source port is left 0: the answer is cached
 * per destination, and on an ECMP route whose hash includes ports a per-flow
 * port would make each refresh pick a path anew (reordering the flows). */
static __always_inline void ovl_fib_params(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
					   const struct ovl_overlay *ov, const struct ovl_dest *dst,
					   int v4, __u16 tot_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->l4_protocol = IPPROTO_UDP;
	fib->dport = dst->port;
	fib->tot_len = tot_len;
	fib->ifindex = skb->ifindex;
	if (v4) {
		fib->family = AF_INET;
		fib->ipv4_src = ov->src_ip.w[3];
		fib->ipv4_dst = dst->ip.w[3];
	} else {
		fib->family = AF_INET6;
		__builtin_memcpy(fib->ipv6_src, ov->src_ip.w, 16);
		__builtin_memcpy(fib->ipv6_dst, dst->ip.w, 16);
	}
}

static __always_inline int ovl_fib_error(int rc, int ip_inner)
{
	switch (rc) {
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return ip_inner ? 1 : -OVL_DROP_NO_NEIGH;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return -OVL_DROP_TOO_BIG;
	case BPF_FIB_LKUP_RET_FWD_DISABLED:
		return -OVL_DROP_FWD_DISABLED;
	default:
		return -OVL_DROP_NO_ROUTE;
	}
}

/* Resolve the next hop: fib->ifindex, smac and dmac. Returns 0 (resolved),
 * 1 (IP frame, neighbour unresolved: use redirect_neigh with fib->ifindex and
 * the next hop in fib->ipv{4,6}_dst) or -OVL_DROP_*.
 *
 * From the nexthops cache while its entry is fresh; else two fib lookups,
 * then cached: the first with the largest length learns the route's MTU
 * (FRAG_NEEDED reports it), the second with none resolves the next hop (a
 * GSO super-packet's length would make it answer FRAG_NEEDED). Non-GSO
 * frames longer than the MTU are refused either way. Unresolved neighbours
 * are never cached. */
static __always_inline int ovl_nexthop(struct __sk_buff *skb, struct bpf_fib_lookup *fib,
				       const struct ovl_overlay *ov, const struct ovl_dest *dst,
				       int v4, __u32 outer_l3_len, int ip_inner)
{
	__u64 now = bpf_ktime_get_coarse_ns();
	struct ovl_nexthop nh = {};
	struct ovl_nexthop *c;
	struct ovl_nh_key key;
	__u32 mtu;
	int rc;

	key.dst = dst->ip;
	key.src = ov->src_ip;
	c = nexthops.lookup(&key);
	if (c) {
		/* Copied at once: an LRU hash frees a replaced or evicted node
		 * for reuse without waiting for readers (no RCU grace), so the
		 * entry is read in one short copy, not field by field later. */
		nh = *c;
		if (now < nh.expiry_ns) {
			if (!skb->gso_size && outer_l3_len > nh.mtu)
				return -OVL_DROP_TOO_BIG;
			fib->ifindex = nh.ifindex;
			__builtin_memcpy(fib->dmac, nh.dmac, ETH_ALEN);
			__builtin_memcpy(fib->smac, nh.smac, ETH_ALEN);
			return 0;
		}
	}

	ovl_fib_params(skb, fib, ov, dst, v4, 0xffff);
	rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED)
		mtu = fib->mtu_result;
	else if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		mtu = 0xffff;
	else
		return ovl_fib_error(rc, ip_inner);
	if (!skb->gso_size && outer_l3_len > mtu)
		return -OVL_DROP_TOO_BIG;

	ovl_fib_params(skb, fib, ov, dst, v4, 0);
	rc = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return ovl_fib_error(rc, ip_inner);
	nh.expiry_ns = now + OVL_NEXTHOP_TTL_NS;
	nh.ifindex = fib->ifindex;
	nh.mtu = mtu;
	__builtin_memcpy(nh.dmac, fib->dmac, ETH_ALEN);
	__builtin_memcpy(nh.smac, fib->smac, ETH_ALEN);
	nexthops.update(&key, &nh);
	return 0;
}

static __always_inline void ovl_fill_eth(struct ethhdr *eth, const struct bpf_fib_lookup *fib,
					 __be16 proto)
{
	__builtin_memcpy(eth->h_dest, fib->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib->smac, ETH_ALEN);
	eth->h_proto = proto;
}

static __always_inline void ovl_fill_udp_vxlan(struct udphdr *udp, struct ovl_vxlanhdr *vx,
					       __u16 sport, __be16 dport, __u32 udp_len,
					       __u32 vni)
{
	udp->source = bpf_htons(sport);
	udp->dest = dport;
	udp->len = bpf_htons(udp_len);
	udp->check = 0; /* RFC 7348: SHOULD be 0 over IPv4; IPv6 peers need udp6zerocsumrx */
	vx->flags = bpf_htonl(OVL_VXLAN_I_FLAG);
	vx->vni = bpf_htonl(vni << 8);
}

/* Grow the skb by hlen in front of the inner frame (see header comment). */
static __always_inline int ovl_grow(struct __sk_buff *skb, __u32 hlen, int v4, int ip_inner, int tagged)
{
	__u64 flags = BPF_F_ADJ_ROOM_FIXED_GSO | BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		      BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
		      (v4 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV6);

	/* ENCAP_L2(len) wants a constant: one call per inner L2 size */
	if (ip_inner && tagged)
		return bpf_skb_adjust_room(skb, hlen + 4, BPF_ADJ_ROOM_MAC,
					   flags | BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN + 4));
	if (ip_inner)
		return bpf_skb_adjust_room(skb, hlen, BPF_ADJ_ROOM_MAC,
					   flags | BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN));
	if (skb->gso_size)
		return -1;
	return bpf_skb_change_head(skb, tagged ? hlen + 4 : hlen, 0);
}

static __always_inline int ovl_encap(struct __sk_buff *skb, const struct ovl_overlay *ov,
				     const struct ovl_dest *dst, __u32 vni, __u16 vlan,
				     __u32 *out_ifindex)
{
	int v4 = ovl_addr_is_v4(&dst->ip);
	__u32 hlen = v4 ? OVL_ENCAP4_LEN : OVL_ENCAP6_LEN;
	__u32 l3_len = skb->len + hlen - ETH_HLEN + (vlan ? 4 : 0);
	struct ovl_vlan_tag tag;
	__be16 proto = skb->protocol;
	int ip_inner = proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6);
	struct bpf_fib_lookup fib;
	struct ethhdr inner;
	__u32 hash;
	__u16 sport;
	int nh;

	if (l3_len > 0xffff)
		return -OVL_DROP_TOO_BIG;
	if (bpf_skb_load_bytes(skb, 0, &inner, sizeof(inner)) < 0)
		return -OVL_DROP_MALFORMED;
	if (dst->flags & OVL_DEST_F_ENCRYPT)
		return ovl_encap_mesh(skb, dst, vni, vlan, out_ifindex); /* the kernel's vxlan picks the port */
	hash = ovl_flow_hash(skb);
	sport = ovl_sport(hash, ov);
	nh = ovl_nexthop(skb, &fib, ov, dst, v4, l3_len, ip_inner);
	if (nh < 0)
		return nh;
	if (ovl_mesh_external(fib.ifindex))
		return -OVL_DROP_PLAINTEXT_TX; /* plaintext never leaves on the internet side */
	if (ovl_grow(skb, hlen, v4, ip_inner, vlan != 0) < 0)
		return -OVL_DROP_ENCAP_FAIL;
	if (vlan) {
		tag.tci = bpf_htons(vlan);
		tag.proto = inner.h_proto;
		inner.h_proto = bpf_htons(OVL_ETH_P_8021Q);
		if (bpf_skb_store_bytes(skb, hlen + ETH_HLEN, &tag, sizeof(tag), 0) < 0)
			return -OVL_DROP_ENCAP_FAIL;
	}

	if (v4) {
		struct ovl_hdr4 h = {};

		ovl_fill_eth(&h.eth, &fib, bpf_htons(ETH_P_IP));
		h.ip.version = 4;
		h.ip.ihl = 5;
		h.ip.tot_len = bpf_htons(l3_len);
		h.ip.frag_off = bpf_htons(OVL_IP_DF);
		h.ip.ttl = OVL_TTL;
		h.ip.protocol = IPPROTO_UDP;
		h.ip.saddr = ov->src_ip.w[3];
		h.ip.daddr = dst->ip.w[3];
		h.ip.check = ovl_ip4_csum(&h.ip);
		ovl_fill_udp_vxlan(&h.udp, &h.vx, sport, dst->port,
				   l3_len - sizeof(struct iphdr), vni);
		h.inner = inner;
		if (ovl_write_front(skb, &h.eth, OVL_HDR_STORE_LEN(h)) < 0)
			return -OVL_DROP_ENCAP_FAIL;
	} else {
		struct ovl_hdr6 h = {};
		__u32 flow = hash & 0xfffff;

		ovl_fill_eth(&h.eth, &fib, bpf_htons(ETH_P_IPV6));
		h.ip.version = 6;
		h.ip.flow_lbl[0] = flow >> 16;
		h.ip.flow_lbl[1] = flow >> 8;
		h.ip.flow_lbl[2] = flow;
		h.ip.payload_len = bpf_htons(l3_len - sizeof(struct ipv6hdr));
		h.ip.nexthdr = IPPROTO_UDP;
		h.ip.hop_limit = OVL_TTL;
		__builtin_memcpy(&h.ip.saddr, ov->src_ip.w, 16);
		__builtin_memcpy(&h.ip.daddr, dst->ip.w, 16);
		ovl_fill_udp_vxlan(&h.udp, &h.vx, sport, dst->port,
				   l3_len - sizeof(struct ipv6hdr), vni);
		h.inner = inner;
		if (ovl_write_front(skb, &h.eth, OVL_HDR_STORE_LEN(h)) < 0)
			return -OVL_DROP_ENCAP_FAIL;
	}

	*out_ifindex = fib.ifindex;
	if (nh == 1) {
		struct bpf_redir_neigh neigh = {};

		if (v4) {
			neigh.nh_family = AF_INET;
			neigh.ipv4_nh = fib.ipv4_dst;
		} else {
			neigh.nh_family = AF_INET6;
			__builtin_memcpy(neigh.ipv6_nh, fib.ipv6_dst, 16);
		}
		return ovl_redirect_neigh(fib.ifindex, &neigh, sizeof(neigh), 0);
	}
	return bpf_redirect(fib.ifindex, 0);
}

#endif /* OVL_ENCAP_H */
