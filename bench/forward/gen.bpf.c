// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Forwarding benchmark helpers. gen: an XDP program run with BPF_PROG_RUN in live-frames
 * mode; it writes the whole 64-byte frame on every run (pages are recycled, and the router
 * may have rewritten them) with the flow index in the UDP ports, and transmits it (XDP_TX)
 * out of the generator's veth. sink: counts and drops what reaches the sink's veth.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

__u8 frame[64];       /* template, set by the driver */
__u32 nflows = 1;     /* flows: sport (and dport when vary_dport) = 1024 + i */
__u32 vary_dport = 0;
__u64 next;           /* generator position */
__u64 sunk;           /* sink count */
__u64 sunk_ok;        /* ... of which carry the expected source address */
__be32 want_saddr;    /* set by the driver: what the router must have made the source */

SEC("xdp")
int gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u64 *d = data;
	const __u64 *t = (const __u64 *)frame;

	if (data + 64 > end)
		return XDP_ABORTED;
#pragma unroll
	for (int i = 0; i < 8; i++)
		d[i] = t[i];
	__u32 i = next++ % nflows;
	__be16 port = bpf_htons(1024 + i);
	__u8 *u = data + 14 + 20;
	__builtin_memcpy(u, &port, 2);
	if (vary_dport)
		__builtin_memcpy(u + 2, &port, 2);
	return XDP_TX;
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__be32 src;

	__sync_fetch_and_add(&sunk, 1);
	if (data + 34 <= end) {
		__builtin_memcpy(&src, data + 26, 4);
		if (src == want_saddr)
			__sync_fetch_and_add(&sunk_ok, 1);
	}
	return XDP_DROP;
}
