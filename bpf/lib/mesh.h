/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mesh.h - the IPsec mesh in the data path (Danube's cross-PDC pairs), fail
 * closed: pyovl never puts plaintext VXLAN on the wire toward a peer that
 * requires encryption, and never accepts plaintext VXLAN claiming to come
 * from one.
 *
 * Why not encrypt here: a direct redirect to the NIC skips the kernel's xfrm
 * (IPsec) output path. A target marked OVL_DEST_F_ENCRYPT therefore leaves
 * through a collect_md vxlan device (one per UDP port, mesh_tunnels): the
 * program sets the tunnel key (VNI, remote) and redirects the inner frame to
 * it; the kernel builds UDP/IP, routes it and applies the IPsec policy. With
 * no SA the policy drops (pyovl installs fallback "ESP required" policies),
 * so the worst case is loss, never plaintext. Decrypted packets reach that
 * device's UDP socket and come back through ovl_mesh_rx (ovl_underlay.c).
 *
 * Interfaces marked OVL_MESH_IF_EXTERNAL (the external/internet side) carry
 * no plaintext VXLAN at all, in either direction.
 */
#ifndef OVL_MESH_H
#define OVL_MESH_H

/* Encapsulate toward an encrypted target: returns the redirect verdict or
 * -OVL_DROP_*. The frame stays the inner frame; the vxlan device adds the
 * rest. A VNIC's VLAN id goes in as an accelerated tag, which the vxlan
 * device writes into the inner frame. */
static __always_inline int ovl_encap_mesh(struct __sk_buff *skb, const struct ovl_dest *dst,
					  __u32 vni, __u16 vlan, __u32 *out_ifindex)
{
	__u16 port = bpf_ntohs(dst->port);
	__u32 *tunnel = mesh_tunnels.lookup(&port);
	struct bpf_tunnel_key key = {};
	__u64 flags = 0;
	__u32 ifindex;

	if (!tunnel || *tunnel == 0)
		return -OVL_DROP_PLAINTEXT_TX; /* no encrypted way out: refuse */
	ifindex = *tunnel;
	if (vlan && bpf_skb_vlan_push(skb, bpf_htons(OVL_ETH_P_8021Q), vlan) < 0)
		return -OVL_DROP_ENCAP_FAIL;
	key.tunnel_id = vni;
	key.tunnel_ttl = OVL_TTL;
	if (ovl_addr_is_v4(&dst->ip)) {
		key.remote_ipv4 = bpf_ntohl(dst->ip.w[3]); /* the helper wants host order */
	} else {
		/* ... and IPv6 as it is on the wire */
		key.remote_ipv6[0] = dst->ip.w[0];
		key.remote_ipv6[1] = dst->ip.w[1];
		key.remote_ipv6[2] = dst->ip.w[2];
		key.remote_ipv6[3] = dst->ip.w[3];
		flags |= BPF_F_TUNINFO_IPV6;
	}
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), flags) < 0)
		return -OVL_DROP_ENCAP_FAIL;
	*out_ifindex = ifindex;
	return bpf_redirect(ifindex, 0);
}

static __always_inline int ovl_mesh_enabled(void)
{
	__u32 zero = 0;
	struct ovl_mesh_cfg *c = mesh_cfg.lookup(&zero);

	return c && c->enabled;
}

/* Plain encap is about to leave through ifindex: refuse external ones. */
static __always_inline int ovl_mesh_external(__u32 ifindex)
{
	__u32 *f;

	if (!ovl_mesh_enabled())
		return 0;
	f = mesh_ifaces.lookup(&ifindex);

	return f && (*f & OVL_MESH_IF_EXTERNAL);
}

/* Plaintext VXLAN arrived from saddr on ifindex: must it be dropped?
 * *peer is set when the address is a mesh node (the caller counts the drop
 * against it with ovl_mesh_count_plaintext). */
static __always_inline int ovl_mesh_plaintext_refused(__u32 ifindex, const struct ovl_addr *saddr,
						      struct ovl_mesh_peer **peer)
{
	struct ovl_mesh_peer *mp;

	if (!ovl_mesh_enabled())
		return 0;
	mp = mesh_peers.lookup((struct ovl_addr *)saddr);
	if (mp && (mp->flags & OVL_MESH_F_ENCRYPT)) {
		*peer = mp;
		return 1;
	}
	return ovl_mesh_external(ifindex);
}

static __always_inline void ovl_mesh_count_plaintext(struct ovl_mesh_peer *mp)
{
	if (mp)
		__sync_fetch_and_add(&mp->plaintext_rx, 1);
}

/* Did the kernel decrypt this skb (a secpath with at least one state)? With
 * ESP GRO (esp4_offload) a decrypted transport-mode packet is received on
 * its device again, so TC sees it: it is not plaintext. */
static __always_inline int ovl_skb_decrypted(struct __sk_buff *skb)
{
	struct bpf_xfrm_state x = {};

	return bpf_skb_get_xfrm_state(skb, 0, &x, sizeof(x), 0) == 0;
}

#endif /* OVL_MESH_H */
