/* SPDX-License-Identifier: GPL-2.0 */
/*
 * proto.h - VXLAN (RFC 7348) wire format and the encapsulation sizes.
 * The kernel's struct vxlanhdr is not uapi, so it is defined here.
 */
#ifndef OVL_PROTO_H
#define OVL_PROTO_H

struct ovl_vxlanhdr {
	__be32 flags; /* 0x08000000: the I flag, all other bits reserved (0) */
	__be32 vni;   /* VNI << 8, low byte reserved (0) */
};

#define OVL_VXLAN_I_FLAG 0x08000000
#define OVL_VXLAN_PORT 4789

/* Outer bytes in front of the inner Ethernet header. */
#define OVL_ENCAP4_LEN (ETH_HLEN + sizeof(struct iphdr) + sizeof(struct udphdr) + \
			sizeof(struct ovl_vxlanhdr))  /* 50 */
#define OVL_ENCAP6_LEN (ETH_HLEN + sizeof(struct ipv6hdr) + sizeof(struct udphdr) + \
			sizeof(struct ovl_vxlanhdr))  /* 70 */

#define OVL_IP_DF 0x4000
#define OVL_IP_MF 0x2000
#define OVL_IP_OFFMASK 0x1fff
#define OVL_TTL 64

/* Full outer header stacks as encap writes them in one store, starting at
 * .eth. The leading pad puts the IP header on a 4-byte boundary: the
 * verifier rejects misaligned stack access, which a packed struct causes. */
struct ovl_hdr4 {
	__u16 pad;
	struct ethhdr eth;
	struct iphdr ip;
	struct udphdr udp;
	struct ovl_vxlanhdr vx;
	struct ethhdr inner;
};

struct ovl_hdr6 {
	__u16 pad;
	struct ethhdr eth;
	struct ipv6hdr ip;
	struct udphdr udp;
	struct ovl_vxlanhdr vx;
	struct ethhdr inner;
};

/* The 802.1Q tag of a VNIC with a VLAN id, after the inner MACs. */
struct ovl_vlan_tag {
	__be16 tci;
	__be16 proto; /* the frame's own ethertype */
};

#define OVL_HDR_STORE_LEN(h) (offsetof(typeof(h), inner) + ETH_HLEN - offsetof(typeof(h), eth))

/* Write len (a constant) prepared bytes at the front of the frame: directly
 * when they lie in the linear part, as they do after adjust_room or
 * change_head pushed them there; bpf_skb_store_bytes otherwise. The direct
 * write spares the helper's call; the price is the verifier's prologue,
 * which unclones every cloned skb the program sees, so only programs that
 * see nothing but their own traffic (the port program) use it. */
#define ovl_write_front(skb, src, len) ({					\
	void *_d = (void *)(long)(skb)->data;					\
	int _rc = 0;								\
	if (_d + (len) <= (void *)(long)(skb)->data_end)			\
		__builtin_memcpy(_d, (src), (len));				\
	else									\
		_rc = bpf_skb_store_bytes((skb), 0, (src), (len), 0);		\
	_rc; })

#endif /* OVL_PROTO_H */
