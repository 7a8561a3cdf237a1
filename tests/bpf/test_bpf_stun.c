// SPDX-License-Identifier: MIT
/*
 * stun demux: WireGuard listens on 51820, the agent's STUN socket on 40000.
 * Egress: the agent's STUN messages leave from 51820. Ingress: STUN to 51820 is handed to
 * the agent's socket with bpf_sk_assign (header untouched); everything else is left alone.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/bpf/harness.h"

#define U LS_PROG_STUN

static const struct pk o_stun4 = { 4, 17, "192.0.2.10", "198.51.100.1", 51820, 3478, .stun = true };
static const struct pk o_stun4_0 = { 4, 17, "192.0.2.10", "198.51.100.1", 51820, 3478, .stun = true, .udp_csum0 = true };
static const struct pk o_stun6 = { 6, 17, "2001:db8::10", "2001:db8:1::1", 51820, 3478, .stun = true, .payload = 8 };

static const struct tcase out_cases[] = {
	{ "agent's STUN request leaves from the WireGuard port", "ls_stage_stun_out",
	  { 4, 17, "192.0.2.10", "198.51.100.1", 40000, 3478, .stun = true }, VERDICT_NEXT, &o_stun4, { { U, LS_R_STUN_SPORT, 1 } } },
	{ "... with a zero UDP checksum kept zero", "ls_stage_stun_out",
	  { 4, 17, "192.0.2.10", "198.51.100.1", 40000, 3478, .stun = true, .udp_csum0 = true }, VERDICT_NEXT, &o_stun4_0,
	  { { U, LS_R_STUN_SPORT, 1 } } },
	{ "v6 STUN request with an attribute", "ls_stage_stun_out",
	  { 6, 17, "2001:db8::10", "2001:db8:1::1", 40000, 3478, .stun = true, .payload = 8 }, VERDICT_NEXT, &o_stun6,
	  { { U, LS_R_STUN_SPORT, 1 } } },
	{ "not STUN from the agent's port: untouched", "ls_stage_stun_out",
	  { 4, 17, "192.0.2.10", "198.51.100.1", 40000, 3478, .payload = 40 }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_OTHER, 1 } } },
	{ "STUN from another port: untouched", "ls_stage_stun_out",
	  { 4, 17, "192.0.2.10", "198.51.100.1", 40001, 3478, .stun = true }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_OTHER, 1 } } },
	{ "wrong magic cookie: untouched", "ls_stage_stun_out",
	  { 4, 17, "192.0.2.10", "198.51.100.1", 40000, 3478, .stun = true, .stun_cookie = 0x2112a443 }, VERDICT_NEXT, NULL,
	  { { U, LS_R_STUN_OTHER, 1 } } },
	{ "tcp from the agent's port: untouched", "ls_stage_stun_out",
	  { 4, 6, "192.0.2.10", "198.51.100.1", 40000, 3478 }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_OTHER, 1 } } },
};

static const struct tcase in_nosock[] = {
	{ "STUN to the WireGuard port, agent socket absent: passes to WireGuard", "ls_stage_stun_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 3478, 51820, .stun = true }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_NO_SOCK, 1 } } },
	{ "WireGuard packet: untouched", "ls_stage_stun_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 51820, 51820, .payload = 148 }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_OTHER, 1 } } },
	{ "truncated STUN (length field past the end)", "ls_stage_stun_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 3478, 51820, .stun = true, .payload = 4, .truncate = 14 + 20 + 8 + 20 }, VERDICT_NEXT,
	  NULL, { { U, LS_R_STUN_OTHER, 1 } } },
};

/* BPF_PROG_TEST_RUN does not run at TC ingress, so bpf_sk_assign refuses (EOPNOTSUPP) and
 * the program counts stun_assign_error: these cases prove the socket lookup and the
 * decision; tests/lab/bpf-stun.sh proves the steering on a real ingress. */
static const struct tcase in_sock[] = {
	{ "STUN to the WireGuard port finds the agent's socket, header untouched", "ls_stage_stun_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 3478, 51820, .stun = true }, VERDICT_NEXT, NULL,
	  { { U, LS_R_STUN_ASSIGN_ERR, 1 }, { U, LS_R_STUN_NO_SOCK, 0 } } },
	{ "v6 STUN finds the agent's socket", "ls_stage_stun_in",
	  { 6, 17, "2001:db8:1::1", "2001:db8::10", 3478, 51820, .stun = true }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_ASSIGN_ERR, 1 } } },
	{ "the underlay ingress dispatcher does it too", "ls_underlay_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 3478, 51820, .stun = true }, VERDICT_NEXT, NULL, { { U, LS_R_STUN_ASSIGN_ERR, 1 } } },
};

static const struct pk o_xdp4 = { 4, 17, "198.51.100.1", "192.0.2.10", 3478, 40000, .stun = true };
static const struct pk o_xdp6 = { 6, 17, "2001:db8:1::1", "2001:db8::10", 3478, 40000, .stun = true, .payload = 4 };
static const struct tcase xdp_cases[] = {
	{ "xdp: STUN to the WireGuard port gets the agent's port", "ls_xdp_underlay_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 3478, 51820, .stun = true }, VERDICT_XDP_PASS, &o_xdp4,
	  { { U, LS_R_STUN_DPORT, 1 } } },
	{ "xdp: v6 STUN too", "ls_xdp_underlay_in",
	  { 6, 17, "2001:db8:1::1", "2001:db8::10", 3478, 51820, .stun = true, .payload = 4 }, VERDICT_XDP_PASS, &o_xdp6,
	  { { U, LS_R_STUN_DPORT, 1 } } },
	{ "xdp: WireGuard packet untouched", "ls_xdp_underlay_in",
	  { 4, 17, "198.51.100.1", "192.0.2.10", 51820, 51820, .payload = 148 }, VERDICT_XDP_PASS, NULL,
	  { { U, LS_R_STUN_OTHER, 1 } } },
};

int main(void)
{
	int fails = 0;

	if (unshare(CLONE_NEWNET) || system("ip link set lo up")) {
		printf("not ok 1 - private netns\n");
		return 1;
	}
	struct lsbpf *b = h_open();
	struct lsbpf_state *s = lsbpf_state_new();
	s->flags = LS_CFG_STUN;
	s->wg_port = 51820;
	s->stun_port = 40000;
	fails += h_ok(lsbpf_apply(b, s) == 0, "apply ports");
	fails += h_run(b, out_cases, sizeof(out_cases) / sizeof(out_cases[0]));
	fails += h_run(b, in_nosock, sizeof(in_nosock) / sizeof(in_nosock[0]));
	fails += h_run(b, xdp_cases, sizeof(xdp_cases) / sizeof(xdp_cases[0]));

	int fd = socket(AF_INET6, SOCK_DGRAM, 0), off = 0;
	setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(40000) };
	fails += h_ok(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "agent socket bound to [::]:40000");
	fails += h_run(b, in_sock, sizeof(in_sock) / sizeof(in_sock[0]));
	close(fd);
	lsbpf_state_free(s);
	lsbpf_close(b);
	h_plan_done();
	return fails ? 1 : 0;
}
