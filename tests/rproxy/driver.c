/* SPDX-License-Identifier: MIT */
/* ls-rproxy-driver: runs the relay proxy (userspace/relayproxy.c) for one node, with
 * the relays and peers given on the command line, for the labs (tests/lab/rproxy-*.sh).
 *
 *   ls-rproxy-driver --wg-port 51820 --wg-pubkey KEY [--stream ADDR]... [--udp ADDR]...
 *                    [--turn URL,USER,PASS]... [--peer KEY]... [--fwmark N] [--prefer-interval-ms N]
 *                    [--endpoints-file F] [--status-file F] [--probe-endpoint ADDR]...
 *
 * Once the peers are added, prints "KEY 127.77.X.Y:PORT" for each (and writes them to
 * --endpoints-file). Writes the status JSON to --status-file every 250 ms. SIGUSR2
 * sends a probe to every peer; a received probe is printed as
 * "probe from KEY reply=0|1 endpoints=A,B" and, when it is not a reply, answered. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "keys.h"
#include "log.h"
#include "relayclient.h"
#include "userspace/relayproxy.h"
#include "util.h"

#define MAX_LIST 16

static volatile sig_atomic_t stop, want_probe;
static struct ls_rproxy *g_rp;
static const char *probe_eps[LS_RPROXY_PROBE_MAX_ENDPOINTS];
static size_t n_probe_eps;

static void on_signal(int sig)
{
	if (sig == SIGUSR2)
		want_probe = 1;
	else
		stop = 1;
}

static void fill_probe(struct ls_rproxy_probe *p, bool reply)
{
	memset(p, 0, sizeof(*p));
	p->ts_ms = ls_relay_now_unix_ms();
	p->reply = reply;
	for (size_t i = 0; i < n_probe_eps; i++)
		snprintf(p->endpoints[p->n_endpoints++], LS_RPROXY_ENDPOINT_LEN, "%s", probe_eps[i]);
}

static void on_probe(void *ctx, const uint8_t from[LSR_KEY_LEN], const struct ls_rproxy_probe *probe)
{
	char key[LS_KEY_B64_LEN + 1];
	struct ls_rproxy_probe answer;

	ls_key_to_base64(key, from);
	printf("probe from %s reply=%d endpoints=", key, probe->reply);
	for (size_t i = 0; i < probe->n_endpoints; i++)
		printf("%s%s", i ? "," : "", probe->endpoints[i]);
	printf("\n");
	fflush(stdout);
	if (!probe->reply) {
		fill_probe(&answer, true);
		ls_rproxy_send_probe(g_rp, from, &answer);
	}
}

static int usage(const char *msg, const char *arg)
{
	fprintf(stderr, "ls-rproxy-driver: %s `%s'\n", msg, arg ? arg : "");
	return 2;
}

int main(int argc, char **argv)
{
	const char *stream[MAX_LIST], *udp[MAX_LIST], *status_file = NULL, *endpoints_file = NULL;
	struct ls_rproxy_turn_server turn[MAX_LIST];
	uint8_t peers[MAX_LIST][LSR_KEY_LEN];
	size_t n_stream = 0, n_udp = 0, n_turn = 0, n_peers = 0;
	struct ls_rproxy_config cfg = { 0 };
	uint8_t ed_pk[LS_ED25519_PK_LEN];
	bool have_key = false;
	char *eps = NULL;
	size_t eps_len = 0;
	FILE *epf;
	int ret = 1;

	ls_log_init("ls-rproxy-driver");
	if (ls_crypto_init())
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!v)
			return usage("missing value for", o);
		i++;
		if (!strcmp(o, "--wg-port")) {
			cfg.wg_port = (uint16_t)atoi(v);
		} else if (!strcmp(o, "--wg-pubkey")) {
			if (ls_key_from_base64(cfg.wg_pub, v))
				return usage("invalid key", v);
			have_key = true;
		} else if (!strcmp(o, "--stream") && n_stream < MAX_LIST) {
			stream[n_stream++] = v;
		} else if (!strcmp(o, "--udp") && n_udp < MAX_LIST) {
			udp[n_udp++] = v;
		} else if (!strcmp(o, "--turn") && n_turn < MAX_LIST) {
			char *s = strdup(v), *c1 = strchr(s, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;

			if (!c2)
				return usage("--turn wants URL,USER,PASS, not", v);
			*c1 = *c2 = 0;
			turn[n_turn++] = (struct ls_rproxy_turn_server){ s, c1 + 1, c2 + 1 };
		} else if (!strcmp(o, "--peer") && n_peers < MAX_LIST) {
			if (ls_key_from_base64(peers[n_peers++], v))
				return usage("invalid key", v);
		} else if (!strcmp(o, "--prefer-interval-ms")) {
			cfg.prefer_interval_ms = (uint32_t)atoi(v);
		} else if (!strcmp(o, "--fwmark")) {
			cfg.fwmark = (uint32_t)strtoul(v, NULL, 0);
		} else if (!strcmp(o, "--status-file")) {
			status_file = v;
		} else if (!strcmp(o, "--endpoints-file")) {
			endpoints_file = v;
		} else if (!strcmp(o, "--probe-endpoint") && n_probe_eps < LS_RPROXY_PROBE_MAX_ENDPOINTS) {
			probe_eps[n_probe_eps++] = v;
		} else {
			return usage("unknown option", o);
		}
	}
	if (!cfg.wg_port || !have_key)
		return usage("--wg-port and --wg-pubkey are required", "");
	ls_ed25519_keypair(ed_pk, cfg.ed_sk);
	cfg.relays = (struct ls_rproxy_relays){ stream, n_stream, udp, n_udp, turn, n_turn };
	cfg.on_probe = on_probe;
	g_rp = ls_rproxy_new(&cfg);
	ls_memzero(cfg.ed_sk, sizeof(cfg.ed_sk));
	if (!g_rp) {
		fprintf(stderr, "ls-rproxy-driver: %s\n", strerror(errno));
		return 1;
	}
	epf = open_memstream(&eps, &eps_len);
	for (size_t i = 0; i < n_peers; i++) {
		struct sockaddr_in ep;
		char key[LS_KEY_B64_LEN + 1];
		int err = ls_rproxy_peer_add(g_rp, peers[i], &ep);

		if (err) {
			fprintf(stderr, "ls-rproxy-driver: peer_add: %s\n", strerror(-err));
			goto cleanup;
		}
		ls_key_to_base64(key, peers[i]);
		fprintf(epf, "%s %s:%u\n", key, inet_ntoa(ep.sin_addr), ntohs(ep.sin_port));
	}
	fclose(epf);
	fputs(eps, stdout);
	fflush(stdout);
	if (endpoints_file && ls_write_file_atomic(endpoints_file, eps, eps_len, 0644))
		goto cleanup;

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	uint64_t last_status = 0;

	while (!stop) {
		struct pollfd pfd = { .fd = ls_rproxy_fd(g_rp), .events = POLLIN };
		uint64_t now;

		if (poll(&pfd, 1, LS_RPROXY_TICK_MS) > 0)
			ls_rproxy_handle(g_rp);
		now = ls_now_ms();
		ls_rproxy_tick(g_rp, now);
		if (want_probe) {
			struct ls_rproxy_probe p;

			want_probe = 0;
			fill_probe(&p, false);
			for (size_t i = 0; i < n_peers; i++) {
				int err = ls_rproxy_send_probe(g_rp, peers[i], &p);

				printf("probe sent: %s\n", err ? strerror(-err) : "ok");
				fflush(stdout);
			}
		}
		if (status_file && now - last_status >= 250) {
			json_t *st = ls_rproxy_status(g_rp);
			char *s = json_dumps(st, JSON_INDENT(1));

			json_decref(st);
			if (s) {
				ls_write_file_atomic(status_file, s, strlen(s), 0644);
				free(s);
			}
			last_status = now;
		}
	}
	ret = 0;
cleanup:
	ls_rproxy_free(g_rp);
	free(eps);
	for (size_t i = 0; i < n_turn; i++)
		free((char *)turn[i].url);
	return ret;
}
