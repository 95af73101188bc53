/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stats.h - per-CPU counters per overlay (no atomics: each CPU owns its slot;
 * pyovl sums the CPUs at read time) and the test-build verdict trace.
 */
#ifndef OVL_STATS_H
#define OVL_STATS_H

static __always_inline void ovl_count(__u32 ov_id, __u32 slot, __u64 n)
{
	__u32 idx;
	__u64 *v;

	if (ov_id >= OVL_MAX_OVERLAYS)
		ov_id = 0;
	idx = ov_id * OVL_STAT_MAX + slot;
	v = stats.lookup(&idx);
	if (v)
		*v += n;
}

/* Count a drop; reason is the positive enum ovl_drop value. */
static __always_inline void ovl_count_drop(__u32 ov_id, int reason)
{
	if (reason <= 0 || reason >= OVL_DROP_MAX)
		reason = OVL_DROP_MALFORMED;
	ovl_count(ov_id, OVL_STAT_DROP_BASE + reason, 1);
}

#ifdef OVL_TRACE
static __always_inline void ovl_trace_set_punt(__u32 verdict, __u32 ifindex, __u32 vni,
					       int reason, __u32 flooded, __u32 punted)
{
	__u32 zero = 0;
	struct ovl_trace *t = trace.lookup(&zero);

	if (t) {
		t->verdict = verdict;
		t->ifindex = ifindex;
		t->vni = vni;
		t->reason = reason;
		t->flooded = flooded;
		t->punted = punted;
	}
}

static __always_inline void ovl_trace_set(__u32 verdict, __u32 ifindex, __u32 vni,
					  int reason, __u32 flooded)
{
	ovl_trace_set_punt(verdict, ifindex, vni, reason, flooded, 0);
}
#else
#define ovl_trace_set(verdict, ifindex, vni, reason, flooded) do { } while (0)
#define ovl_trace_set_punt(verdict, ifindex, vni, reason, flooded, punted) do { } while (0)
#endif

#endif /* OVL_STATS_H */
