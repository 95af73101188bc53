"""pyovl.tools.bench.profile's sorting of perf samples (pure logic: a perf script
text in, shares out)."""

from __future__ import annotations

from pyovl.tools.bench.profile import OVERLAY_FRAMES, classify

SCRIPT = """
\tffffffff81000001 pv_native_safe_halt+0x5
\tffffffff81000002 do_idle+0x10

\tffffffffa0000001 bpf_prog_ff6d84ae36f58906_ovl_port+0x1f
\tffffffff81000003 cls_bpf_classify+0x2
\tffffffff81000004 __netif_receive_skb_core.constprop.0+0x9

\tffffffff81000005 bpf_ipv4_fib_lookup+0x3
\tffffffff81000006 bpf_skb_fib_lookup+0x1
\tffffffffa0000001 bpf_prog_ff6d84ae36f58906_ovl_port+0x30
\tffffffff81000003 cls_bpf_classify+0x2

\tffffffff81000007 udp_sendmsg+0x44
\tffffffff81000008 do_syscall_64+0x1

\tffffffff81000009 vxlan_xmit_one+0x44
\tffffffff8100000a br_dev_queue_push_xmit+0x1
"""


def test_pyovl_samples_under_its_programs_count_as_overlay():
    r = classify(SCRIPT, OVERLAY_FRAMES["pyovl-tc"])
    assert r["samples"] == 5
    assert (r["idle_pct"], r["overlay_pct"], r["other_pct"]) == (20.0, 40.0, 40.0)
    assert r["overlay_share_of_busy_pct"] == 50.0 and r["max_gain_if_overlay_free"] == 2.0


def test_kernel_vxlan_and_bridge_frames_count_for_the_kernel_mode():
    r = classify(SCRIPT, OVERLAY_FRAMES["kernel"])
    assert r["overlay_pct"] == 20.0 and r["other_pct"] == 60.0
