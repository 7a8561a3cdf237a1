// SPDX-License-Identifier: GPL-2.0
/*
 * The VM lab's own BPF probe: proves the kernel-matrix mechanism (load, verifier, attach
 * through XDP, TC clsact and tcx) before the project's programs exist, and checks that an
 * XDP header rewrite keeps TCP checksums right on a NIC that delivers full checksums.
 *
 *   lsv_xdp_dnat (XDP, ingress)   TCP dport 7777 -> 80, checksum patched by hand (RFC 1624)
 *   lsv_tc_snat  (TC, egress)     TCP sport 80 -> 7777, checksum through bpf_l4_csum_replace
 *
 * A client that connects to port 7777 thus talks to a server on port 80 and only completes
 * its transfer if both rewrites keep every checksum valid. lsv_probe_hits counts rewrites:
 * key 0 = XDP, key 1 = TC.
 */
#include <stddef.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define LSV_PORT_OUTER 7777
#define LSV_PORT_INNER 80

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lsv_probe_hits SEC(".maps");

static __always_inline void count(__u32 key)
{
	__u64 *v = bpf_map_lookup_elem(&lsv_probe_hits, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'), all in network byte order. */
static __always_inline __u16 csum_replace2(__u16 check, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~check + (__u16)~old + new;

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int lsv_xdp_dnat(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u16 new_port = bpf_htons(LSV_PORT_INNER);

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5)
		return XDP_PASS;
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end || tcp->dest != bpf_htons(LSV_PORT_OUTER))
		return XDP_PASS;
	tcp->check = csum_replace2(tcp->check, tcp->dest, new_port);
	tcp->dest = new_port;
	count(0);
	return XDP_PASS;
}

SEC("tc")
int lsv_tc_snat(struct __sk_buff *skb)
{
	__u32 l4 = ETH_HLEN + sizeof(struct iphdr);
	__u16 old_port = bpf_htons(LSV_PORT_INNER), new_port = bpf_htons(LSV_PORT_OUTER);
	void *data, *end;
	struct ethhdr *eth;
	struct iphdr *ip;
	struct tcphdr *tcp;

	if (bpf_skb_pull_data(skb, l4 + sizeof(struct tcphdr)) < 0)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl != 5)
		return TC_ACT_OK;
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > end || tcp->source != old_port)
		return TC_ACT_OK;
	if (bpf_l4_csum_replace(skb, l4 + offsetof(struct tcphdr, check), old_port, new_port,
				sizeof(new_port)) < 0)
		return TC_ACT_SHOT;
	if (bpf_skb_store_bytes(skb, l4 + offsetof(struct tcphdr, source), &new_port,
				sizeof(new_port), 0) < 0)
		return TC_ACT_SHOT;
	count(1);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
