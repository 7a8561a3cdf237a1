// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Lightscale's data plane: one object, one dispatcher program per hook.
 *
 *   hook                    stages, in order
 *   overlay ingress  (TC)   filter -> translate (client: src r2v; router: dst v2r) -> metrics rx
 *   overlay egress   (TC)   isolate -> translate (client: dst v2r) -> filter track -> metrics tx
 *   LAN egress       (TC)   isolate -> snat
 *   LAN ingress      (TC)   de-snat -> translate (router: src r2v)
 *   LAN ingress      (XDP)  de-snat -> translate (router: src r2v); ICMP errors and anything
 *                           unusual go on to the TC program
 *   underlay ingress (TC)   STUN demux (bpf_sk_assign to the agent's socket)
 *   underlay ingress (XDP)  STUN demux by destination-port rewrite (real NICs only)
 *   underlay egress  (TC)   STUN source-port rewrite (agent port -> WireGuard port)
 * With LS_CFG_FWD_FAST, overlay ingress and LAN ingress (TC and XDP) end by forwarding
 * the packet themselves when the FIB sends it to an LS_IF_FWD_TARGET interface; from TC
 * they run the target's LAN egress stages first and mark the packet, and ls_lan_out then
 * passes it at once.
 *
 * A stage passes with LS_NEXT and the dispatcher ends with TC_ACT_UNSPEC (TCX_NEXT), so
 * programs attached after ours still run. The stage programs (SEC "tc" ls_stage_*) run
 * one stage alone; the table tests use them.
 */
#include "pkt.bpf.h"
#include "translate.bpf.h"
#include "filter.bpf.h"
#include "metrics.bpf.h"
#include "isolate.bpf.h"
#include "snat.bpf.h"
#include "stun.bpf.h"
#include "fwd.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

static __always_inline int tc_verdict(int v, __u32 len)
{
	if (v == LS_SHOT) {
		ls_count(LS_PROG_DISPATCH, LS_R_DROP, len);
		return TC_ACT_SHOT;
	}
	ls_count(LS_PROG_DISPATCH, LS_R_PASS, len);
	return TC_ACT_UNSPEC;
}

static __always_inline __u32 cfg_flags(void)
{
	struct ls_config *c = ls_cfg();
	return c ? c->flags : 0;
}

#define LS_ST_SHOT 0x80000000u  /* ls_*_stages: drop the packet */
#define LS_ST_TO_TC 0x40000000u /* ls_xdp_lan_in_stages: leave it to the TC program */
#define LS_ST_LEN 0x3fffffffu

/* ls_overlay_in's stages as one global function: its stack does not add to the calls
 * after it (ls_fwd_tc, ls_lan_out_fwd and its port search; the kernel allows 512 bytes
 * of stack for a whole chain of calls). Returns the parsed length and LS_ST_SHOT. */
__attribute__((noinline)) int ls_overlay_in_stages(struct __sk_buff *skb, __u32 f)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);

	if (ls_filter_in(skb, &p, parsed, f & LS_CFG_FILTER) == LS_SHOT)
		return (p.len & LS_ST_LEN) | LS_ST_SHOT;
	if ((f & (LS_CFG_XLATE_CLIENT | LS_CFG_XLATE_ROUTER)) &&
	    ls_translate(skb, false, &p, parsed, f & LS_CFG_XLATE_CLIENT, f & LS_CFG_XLATE_ROUTER) == LS_SHOT)
		return (p.len & LS_ST_LEN) | LS_ST_SHOT;
	if (f & LS_CFG_METRICS)
		ls_metrics(&p, parsed, false);
	return p.len & LS_ST_LEN;
}

/* The LAN egress stages (isolate, snat) of the target `out`, for a packet fast forwarding
 * redirects there (fwd.bpf.h; its Ethernet header is in place): what ls_lan_out would
 * do. LS_NEXT or LS_SHOT. */
__attribute__((noinline)) int ls_lan_out_fwd(struct __sk_buff *skb, __u32 out, __u32 f)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, 14, &p);

	if ((f & LS_CFG_ISOLATE) && ls_isolate_if(&p, skb->ifindex, out, true) == LS_SHOT)
		return LS_SHOT;
	if (f & LS_CFG_SNAT)
		return snat_out(skb, &p, parsed, skb->ifindex, out);
	return LS_NEXT;
}

/* The end of an ingress dispatcher: r from its stages function (the parsed length and
 * LS_ST_SHOT), then fast forwarding from a device whose IP header is at l2. */
static __always_inline int ingress_verdict(struct __sk_buff *skb, __u32 f, __u32 r, __u32 l2)
{
	__u32 len = r & LS_ST_LEN, out = 0;
	int v;

	if (r & LS_ST_SHOT)
		return tc_verdict(LS_SHOT, len);
	if (!(f & LS_CFG_FWD_FAST))
		return tc_verdict(LS_NEXT, len);
	v = ls_fwd_tc(skb, l2, f, &out);
	if (v == LS_FWD_STACK)
		return tc_verdict(LS_NEXT, len);
	if (v == LS_FWD_DROP)
		return tc_verdict(LS_SHOT, len);
	if (out) {
		if (ls_lan_out_fwd(skb, out, f) != LS_NEXT)
			return tc_verdict(LS_SHOT, len); /* the redirect is not done then */
		skb->mark = LS_MARK_LAN_OUT_DONE;
		ls_count(LS_PROG_FWD, LS_R_FWD_REDIRECT, len);
	}
	ls_count(LS_PROG_DISPATCH, LS_R_PASS, len);
	return v;
}

SEC("tc")
int ls_overlay_in(struct __sk_buff *skb)
{
	__u32 f = cfg_flags();

	return ingress_verdict(skb, f, ls_overlay_in_stages(skb, f), cfg_overlay_l2);
}

SEC("tc")
int ls_overlay_out(struct __sk_buff *skb)
{
	struct ls_pkt p;
	__u32 f = cfg_flags();
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	int v;

	if (f & LS_CFG_ISOLATE) {
		v = ls_isolate(skb, &p, parsed, false);
		if (v == LS_SHOT)
			return tc_verdict(v, p.len);
	}
	if (f & LS_CFG_XLATE_CLIENT) {
		v = ls_translate(skb, false, &p, parsed, false, true);
		if (v == LS_SHOT)
			return tc_verdict(v, p.len);
	}
	if (f & LS_CFG_FILTER)
		ls_filter_track(&p, parsed);
	if (f & LS_CFG_METRICS)
		ls_metrics(&p, parsed, true);
	return tc_verdict(LS_NEXT, p.len);
}

SEC("tc")
int ls_lan_out(struct __sk_buff *skb)
{
	struct ls_pkt p;
	__u32 f, len = skb->len;
	int parsed, v;

	if (skb->mark == LS_MARK_LAN_OUT_DONE) {
		/* fast forwarding ran this program's stages already (ls_lan_out_fwd) */
		skb->mark = 0;
		ls_count(LS_PROG_DISPATCH, LS_R_LAN_OUT_DONE, len);
		return TC_ACT_UNSPEC;
	}
	f = cfg_flags();
	parsed = parse(skb, false, cfg_lan_l2, &p);
	if (f & LS_CFG_ISOLATE) {
		v = ls_isolate(skb, &p, parsed, true);
		if (v == LS_SHOT)
			return tc_verdict(v, p.len);
	}
	if (f & LS_CFG_SNAT) {
		v = ls_snat_out(skb, &p, parsed);
		if (v == LS_SHOT)
			return tc_verdict(v, p.len);
	}
	return tc_verdict(LS_NEXT, p.len);
}

/* ls_lan_in's SNAT and router translation as one global function, for the same reason as
 * ls_overlay_in_stages (6.1 rejected the combined 544 bytes). */
__attribute__((noinline)) int ls_lan_in_stages(struct __sk_buff *skb, __u32 f)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_lan_l2, &p);
	__u32 len = p.len & LS_ST_LEN;
	int v;

	if (f & LS_CFG_SNAT) {
		v = ls_snat_in(skb, false, &p, parsed);
		if (v == LS_SHOT)
			return len | LS_ST_SHOT;
	}
	if (f & LS_CFG_XLATE_ROUTER) {
		v = ls_translate(skb, false, &p, parsed, true, false);
		if (v == LS_SHOT)
			return len | LS_ST_SHOT;
	}
	return len;
}

SEC("tc")
int ls_lan_in(struct __sk_buff *skb)
{
	__u32 f = cfg_flags();

	return ingress_verdict(skb, f, ls_lan_in_stages(skb, f), cfg_lan_l2);
}

/* ls_xdp_lan_in's stages before forwarding, as one global function (verified once, and
 * its stack does not add to ls_fwd_xdp's). Returns the parsed length and LS_ST_* bits. */
__attribute__((noinline)) int ls_xdp_lan_in_stages(struct xdp_md *ctx, __u32 f)
{
	struct ls_pkt p;
	int parsed = parse(ctx, true, cfg_lan_l2, &p);
	__u32 len = p.len & LS_ST_LEN;
	int v;

	/* ICMP errors and malformed packets: the TC program on the same NIC does them. */
	if (parsed || icmp_err(&p)) {
		ls_count(LS_PROG_DISPATCH, LS_R_XDP_TO_TC, p.len);
		return len | LS_ST_TO_TC;
	}
	if (f & LS_CFG_SNAT) {
		v = ls_snat_in(ctx, true, &p, parsed);
		if (v == LS_SHOT)
			return len | LS_ST_SHOT;
	}
	if (f & LS_CFG_XLATE_ROUTER) {
		v = ls_translate(ctx, true, &p, parsed, true, false);
		if (v == LS_SHOT)
			return len | LS_ST_SHOT;
	}
	return len;
}

/* XDP fast forwarding as a global function: it parses again (the stages before may have
 * rewritten the packet). */
__attribute__((noinline)) int ls_fwd_xdp(struct xdp_md *ctx, __u32 l3)
{
	struct ls_pkt p;
	int parsed = parse(ctx, true, l3 & 0xff, &p);

	return ls_fwd(ctx, true, &p, parsed);
}

SEC("xdp")
int ls_xdp_lan_in(struct xdp_md *ctx)
{
	__u32 f = cfg_flags();
	__u32 r = ls_xdp_lan_in_stages(ctx, f), len = r & LS_ST_LEN;
	int v;

	if (r & LS_ST_TO_TC)
		return XDP_PASS;
	if (r & LS_ST_SHOT) {
		ls_count(LS_PROG_DISPATCH, LS_R_DROP, len);
		return XDP_DROP;
	}
	if (f & LS_CFG_FWD_FAST) {
		v = ls_fwd_xdp(ctx, cfg_lan_l2);
		if (v != LS_FWD_STACK) {
			ls_count(LS_PROG_DISPATCH, LS_R_PASS, len);
			return v;
		}
	}
	ls_count(LS_PROG_DISPATCH, LS_R_PASS, len);
	return XDP_PASS;
}

SEC("tc")
int ls_underlay_in(struct __sk_buff *skb)
{
	struct ls_pkt p;
	__u32 f = cfg_flags();
	int parsed = parse(skb, false, cfg_underlay_l2, &p);

	if (f & LS_CFG_STUN)
		ls_stun_in(skb, &p, parsed);
	return tc_verdict(LS_NEXT, p.len);
}

SEC("xdp")
int ls_xdp_underlay_in(struct xdp_md *ctx)
{
	struct ls_pkt p;
	__u32 f = cfg_flags();
	int parsed = parse(ctx, true, cfg_underlay_l2, &p);

	if ((f & LS_CFG_STUN) && ls_stun_xdp_in(ctx, &p, parsed) == LS_SHOT) {
		ls_count(LS_PROG_DISPATCH, LS_R_DROP, p.len);
		return XDP_DROP;
	}
	ls_count(LS_PROG_DISPATCH, LS_R_PASS, p.len);
	return XDP_PASS;
}

SEC("tc")
int ls_underlay_out(struct __sk_buff *skb)
{
	struct ls_pkt p;
	__u32 f = cfg_flags();
	int parsed = parse(skb, false, cfg_underlay_l2, &p);

	if (f & LS_CFG_STUN) {
		if (ls_stun_out(skb, &p, parsed) == LS_SHOT)
			return tc_verdict(LS_SHOT, p.len);
	}
	return tc_verdict(LS_NEXT, p.len);
}

/* ---- One stage alone (table tests, benchmarks). They use cfg_overlay_l2. ---- */

static __always_inline int stage_verdict(int v)
{
	return v == LS_SHOT ? TC_ACT_SHOT : TC_ACT_UNSPEC;
}

SEC("tc")
int ls_stage_xlate_dst(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_translate(skb, false, &p, parsed, false, true));
}

SEC("tc")
int ls_stage_xlate_src(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_translate(skb, false, &p, parsed, true, false));
}

SEC("xdp")
int ls_stage_xdp_xlate_src(struct xdp_md *ctx)
{
	struct ls_pkt p;
	int parsed = parse(ctx, true, cfg_lan_l2, &p);
	return ls_translate(ctx, true, &p, parsed, true, false) == LS_SHOT ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int ls_stage_xdp_xlate_dst(struct xdp_md *ctx)
{
	struct ls_pkt p;
	int parsed = parse(ctx, true, cfg_lan_l2, &p);
	return ls_translate(ctx, true, &p, parsed, false, true) == LS_SHOT ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int ls_stage_filter_in(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_filter_in(skb, &p, parsed, true));
}

SEC("tc")
int ls_stage_filter_track(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_filter_track(&p, parsed));
}

SEC("tc")
int ls_stage_metrics_tx(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_metrics(&p, parsed, true));
}

SEC("tc")
int ls_stage_metrics_rx(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_metrics(&p, parsed, false));
}

SEC("tc")
int ls_stage_isolate(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	return stage_verdict(ls_isolate(skb, &p, parsed, true));
}

SEC("tc")
int ls_stage_snat_out(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_lan_l2, &p);
	return stage_verdict(ls_snat_out(skb, &p, parsed));
}

SEC("tc")
int ls_stage_snat_in(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_lan_l2, &p);
	return stage_verdict(ls_snat_in(skb, false, &p, parsed));
}

SEC("xdp")
int ls_stage_xdp_snat_in(struct xdp_md *ctx)
{
	struct ls_pkt p;
	int parsed = parse(ctx, true, cfg_lan_l2, &p);
	return ls_snat_in(ctx, true, &p, parsed) == LS_SHOT ? XDP_DROP : XDP_PASS;
}

SEC("tc")
int ls_stage_stun_out(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_underlay_l2, &p);
	return stage_verdict(ls_stun_out(skb, &p, parsed));
}

SEC("tc")
int ls_stage_stun_in(struct __sk_buff *skb)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_underlay_l2, &p);
	return stage_verdict(ls_stun_in(skb, &p, parsed));
}

/* Floor for benchmarks: an empty program of each type. */
SEC("tc")
int ls_empty_tc(struct __sk_buff *skb)
{
	return TC_ACT_UNSPEC;
}

SEC("xdp")
int ls_empty_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}
