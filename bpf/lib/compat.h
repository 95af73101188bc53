/* SPDX-License-Identifier: GPL-2.0 */
/*
 * compat.h - kernel headers and the constants the Debian 6.1 headers that bcc
 * compiles against lack. Included first by every entry program.
 */
#ifndef OVL_COMPAT_H
#define OVL_COMPAT_H

#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>
#include <uapi/linux/if_packet.h>
#include <uapi/linux/ip.h>
#include <uapi/linux/ipv6.h>
#include <uapi/linux/udp.h>
#include <uapi/linux/in.h>
#include <uapi/linux/pkt_cls.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Kernel 6.3+; absent from the 6.1 uapi headers bcc uses here. They set
 * skb->protocol to the inner L3 on decap so GSO and redirect_peer see it. */
#ifndef BPF_F_ADJ_ROOM_DECAP_L3_IPV4
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define BPF_F_ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)
#endif

#ifndef PACKET_HOST
#define PACKET_HOST 0
#endif

/* bcc 0.26 declares bpf_redirect_neigh() without its plen argument (the
 * kernel's is ifindex, params, plen, flags since 5.11): use the real one. */
static long (*ovl_redirect_neigh)(__u32 ifindex, struct bpf_redir_neigh *params,
				  int plen, __u64 flags) = (void *)BPF_FUNC_redirect_neigh;

#define OVL_ETH_P_8021Q 0x8100
#define OVL_ETH_P_8021AD 0x88A8

#endif /* OVL_COMPAT_H */
