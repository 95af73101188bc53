/* SPDX-License-Identifier: GPL-2.0 */
/*
 * punt.h - hand a frame to the daemon (the misses ring), illumos's upcall.
 *
 * ovl_punt() copies the frame into an event; for a miss it reports the
 * (VNI, MAC) once per OVL_MISS_INTERVAL_NS (the first event carries
 * OVL_EV_F_FIRST) and caps the bytes sent while the miss is pending at
 * OVL_MISS_QUEUE_BYTES. Returns 0 (the copy is on its way; the caller drops
 * the original) or -OVL_DROP_*. The pending entry is written by the data
 * path and deleted by the daemon once it has answered.
 */
#ifndef OVL_PUNT_H
#define OVL_PUNT_H

static __always_inline int ovl_punt(struct __sk_buff *skb, __u32 type, __u32 vni,
				    struct ovl_l2key *key, __u32 ov_id)
{
	struct ovl_pending *p = 0, np = {};
	struct ovl_event *ev;
	__u32 len = skb->len;
	__u64 now = bpf_ktime_get_ns();
	int first = type == OVL_EV_MISS;

	/* The copy length must be provably 1..OVL_MISS_FRAME_MAX for the 6.18
	 * verifier. Range checks do not survive clang (it compares a copy, or
	 * folds both bounds into one subtraction), so: mask n = len - 1 to the
	 * buffer (a power of two), check that masking changed nothing, hide n
	 * from clang, and copy n + 1 bytes: the verifier sees [1, MAX]. */
	__u32 n = (len - 1) & (OVL_MISS_FRAME_MAX - 1);

	if (n + 1 != len)
		return len ? -OVL_DROP_PUNT_TOO_BIG : -OVL_DROP_MALFORMED;
	asm volatile("" : "+r"(n));
	if (type == OVL_EV_MISS) {
		p = pending.lookup(key);
		if (p && now - p->first_ns < OVL_MISS_INTERVAL_NS) {
			if (p->bytes + len > OVL_MISS_QUEUE_BYTES)
				return -OVL_DROP_MISS_QUEUE_FULL;
			first = 0;
		}
	}
	ev = misses.ringbuf_reserve(sizeof(*ev));
	if (!ev)
		return -OVL_DROP_RING_FULL;
	ev->h.type = type | (first ? OVL_EV_F_FIRST : 0);
	ev->h.vni = vni;
	ev->h.ifindex = skb->ifindex;
	ev->h.len = len;
	ev->h.ts_ns = now;
	if (bpf_skb_load_bytes(skb, 0, ev->frame, n + 1) < 0) {
		misses.ringbuf_discard(ev, 0);
		return -OVL_DROP_MALFORMED;
	}
	misses.ringbuf_submit(ev, 0);
	if (first) {
		np.first_ns = now;
		np.bytes = len;
		pending.update(key, &np);
		ovl_count(ov_id, OVL_STAT_MISSES, 1);
	} else if (p) {
		p->bytes += len; /* racy across CPUs, and only a bound */
	}
	ovl_count(ov_id, OVL_STAT_PUNTED, 1);
	return 0;
}

/* Broadcast/multicast a dynamic overlay's daemon answers (illumos files:
 * proxy ARP, proxy NDP, the DHCP proxy); everything else is dropped. */
static __always_inline int ovl_bcast_for_daemon(const struct ethhdr *eth)
{
	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return 1;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6) && eth->h_dest[0] == 0x33 && eth->h_dest[1] == 0x33)
		return 1;
	return eth->h_proto == bpf_htons(ETH_P_IP) &&
	       (eth->h_dest[0] & eth->h_dest[1] & eth->h_dest[2] &
		eth->h_dest[3] & eth->h_dest[4] & eth->h_dest[5]) == 0xff;
}

#endif /* OVL_PUNT_H */
