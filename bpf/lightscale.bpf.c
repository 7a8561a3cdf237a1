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
 * the packet themselves when the FIB sends it to an LS_IF_FWD_TARGET interface.
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

SEC("tc")
int ls_overlay_in(struct __sk_buff *skb)
{
	struct ls_pkt p;
	__u32 f = cfg_flags();
	int parsed = parse(skb, false, cfg_overlay_l2, &p);
	int v;

	v = ls_filter_in(skb, &p, parsed, f & LS_CFG_FILTER);
	if (v == LS_SHOT)
		return tc_verdict(v, p.len);
	if (f & (LS_CFG_XLATE_CLIENT | LS_CFG_XLATE_ROUTER)) {
		v = ls_translate(skb, false, &p, parsed, f & LS_CFG_XLATE_CLIENT,
				 f & LS_CFG_XLATE_ROUTER);
		if (v == LS_SHOT)
			return tc_verdict(v, p.len);
	}
	if (f & LS_CFG_METRICS)
		ls_metrics(&p, parsed, false);
	if (f & LS_CFG_FWD_FAST) {
		v = ls_fwd_tc(skb, p.l3);
		if (v != LS_FWD_STACK) {
			ls_count(LS_PROG_DISPATCH, LS_R_PASS, p.len);
			return v;
		}
	}
	return tc_verdict(LS_NEXT, p.len);
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
	__u32 f = cfg_flags();
	int parsed = parse(skb, false, cfg_lan_l2, &p);
	int v;

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

/* ls_lan_in's SNAT and router translation as one global function: its stack does not
 * add to ls_fwd_tc's (6.1 rejected the combined 544 bytes). Returns the packet length as
 * parsed, with bit 31 set when the packet is to be dropped. */
__attribute__((noinline)) int ls_lan_in_stages(struct __sk_buff *skb, __u32 f)
{
	struct ls_pkt p;
	int parsed = parse(skb, false, cfg_lan_l2, &p);
	__u32 shot = 0x80000000u;
	int v;

	if (f & LS_CFG_SNAT) {
		v = ls_snat_in(skb, false, &p, parsed);
		if (v == LS_SHOT)
			return (p.len & 0x7fffffff) | shot;
	}
	if (f & LS_CFG_XLATE_ROUTER) {
		v = ls_translate(skb, false, &p, parsed, true, false);
		if (v == LS_SHOT)
			return (p.len & 0x7fffffff) | shot;
	}
	return p.len & 0x7fffffff;
}

SEC("tc")
int ls_lan_in(struct __sk_buff *skb)
{
	__u32 f = cfg_flags();
	__u32 r = ls_lan_in_stages(skb, f), len = r & 0x7fffffff;
	int v;

	if (r & 0x80000000u)
		return tc_verdict(LS_SHOT, len);
	if (f & LS_CFG_FWD_FAST) {
		v = ls_fwd_tc(skb, cfg_lan_l2);
		if (v != LS_FWD_STACK) {
			ls_count(LS_PROG_DISPATCH, LS_R_PASS, len);
			return v;
		}
	}
	return tc_verdict(LS_NEXT, len);
}

#define LS_ST_SHOT 0x80000000u  /* ls_*_stages: drop the packet */
#define LS_ST_TO_TC 0x40000000u /* ls_xdp_lan_in_stages: leave it to the TC program */
#define LS_ST_LEN 0x3fffffffu

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
