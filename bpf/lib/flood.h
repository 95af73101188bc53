/* SPDX-License-Identifier: GPL-2.0 */
/*
 * flood.h - broadcast/multicast delivery to the local ports of one VNI and
 * VLAN.
 * Each copy is a bpf_clone_redirect() to the port's host end (egress), so the
 * guest side runs eth_type_trans() and sees the right pkt_type. The original
 * skb is left to the caller. Returns the number of copies sent.
 */
#ifndef OVL_FLOOD_H
#define OVL_FLOOD_H

static __always_inline __u32 ovl_flood(struct __sk_buff *skb, __u32 vni, __u32 exclude, __u16 vlan)
{
	struct ovl_flood *fl = flood.lookup(&vni);
	__u32 i, n = 0;

	if (!fl)
		return 0;
	/* Every slot, not the first fl->count: the writer (datapath.py) zeroes
	 * unused ones. A loop that stops at count compiles to "i != min(count,
	 * 32)", which the 6.1 verifier (user-mode-linux tests) cannot bound
	 * ("sequence of 8193 jumps is too complex", then an access past the
	 * array); a constant trip count it checks exactly. */
	for (i = 0; i < OVL_MAX_FLOOD; i++) {
		__u32 ifindex = fl->ifindex[i];

		if (ifindex == exclude || ifindex == 0 || fl->vlan[i] != vlan)
			continue;
		if (bpf_clone_redirect(skb, ifindex, 0) == 0)
			n++;
	}
	return n;
}

#endif /* OVL_FLOOD_H */
