/* SPDX-License-Identifier: GPL-2.0 */
/*
 * addr.h - helpers for struct ovl_addr (16 bytes, IPv4 v4-mapped) and MACs.
 */
#ifndef OVL_ADDR_H
#define OVL_ADDR_H

static __always_inline int ovl_addr_is_v4(const struct ovl_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == bpf_htonl(0xffff);
}

/* Unspecified: :: or ::ffff:0.0.0.0 (listen on all addresses). */
static __always_inline int ovl_addr_is_any(const struct ovl_addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[3] == 0 &&
	       (a->w[2] == 0 || a->w[2] == bpf_htonl(0xffff));
}

static __always_inline int ovl_addr_eq(const struct ovl_addr *a, const struct ovl_addr *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] &&
	       a->w[2] == b->w[2] && a->w[3] == b->w[3];
}

static __always_inline void ovl_addr_set_v4(struct ovl_addr *a, __be32 ip)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = bpf_htonl(0xffff);
	a->w[3] = ip;
}

static __always_inline void ovl_addr_set_v6(struct ovl_addr *a, const struct in6_addr *ip)
{
	a->w[0] = ip->in6_u.u6_addr32[0];
	a->w[1] = ip->in6_u.u6_addr32[1];
	a->w[2] = ip->in6_u.u6_addr32[2];
	a->w[3] = ip->in6_u.u6_addr32[3];
}

static __always_inline int ovl_mac_is_group(const __u8 *mac)
{
	return mac[0] & 1; /* broadcast or multicast */
}

static __always_inline int ovl_mac_eq(const __u8 *a, const __u8 *b)
{
	return ((const __u16 *)a)[0] == ((const __u16 *)b)[0] &&
	       ((const __u16 *)a)[1] == ((const __u16 *)b)[1] &&
	       ((const __u16 *)a)[2] == ((const __u16 *)b)[2];
}

static __always_inline void ovl_l2key_set(struct ovl_l2key *k, __u32 vni, const __u8 *mac)
{
	k->vni = vni;
	__builtin_memcpy(k->mac, mac, 6);
	k->pad = 0;
}

#endif /* OVL_ADDR_H */
