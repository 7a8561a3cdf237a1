/* SPDX-License-Identifier: MIT */
/* ls-rproxy-driver: runs the relay proxy (userspace/relayproxy.c) for one node, with
 * the relays and peers given on the command line, for the labs (tests/lab/rproxy-*.sh).
 *
 *   ls-rproxy-driver --wg-port 51820 --wg-keyfile F [--stream ADDR]... [--udp ADDR]...
 *                    [--turn URL,USER,PASS]... [--peer KEY]... [--fwmark N] [--prefer-interval-ms N]
 *                    [--endpoints-file F] [--status-file F] [--probe-endpoint ADDR]...
 *
 * --wg-keyfile: the node's WireGuard private key (base64, as `wg genkey` writes it); the
 * probes to and from each --peer are sealed with their pair's key (relayproxy.h).
 * Once the peers are added, prints "KEY 127.77.X.Y:PORT" for each (and writes them to
 * --endpoints-file). Writes the status JSON to --status-file every 250 ms. SIGUSR2
 * sends a probe to every peer; a received probe is printed as
 * "probe from KEY reply=0|1 endpoints=A,B" and, when it is not a reply, answered.
 *
 *   ls-rproxy-driver --forge-to KEY --wg-keyfile F --stream ADDR [--forge-gap-ms N]
 *                    [--forge KIND=IP:PORT]...
 *
 * A forger for the labs: connects to the stream relay as the owner of --wg-keyfile's
 * key (any Ed25519 key vouches for it: a relay without an allowed-keys list takes it,
 * as long as that key is not connected already) and sends --forge-to one probe per
 * --forge, N ms apart (default 1200), each naming its own address, in this order:
 *   unsealed  the JSON probe of before, unauthenticated
 *   wrongkey  sealed under a random key
 *   tampered  sealed under the pair's key, one byte of the sealed body changed
 *   genuine   sealed under the pair's key (seq S + 100): the one that must count
 *   replayed  the genuine probe's bytes again (its address is the genuine one's)
 *   old       sealed under the pair's key with seq S, sent after the genuine one: older
 *             than the receiver's replay window
 * printing "forged KIND ADDR: ok|error" for each. */
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
static uint8_t wg_priv[LS_WG_KEY_LEN];
static uint8_t peers[MAX_LIST][LSR_KEY_LEN];
static struct ls_disco_pair pairs[MAX_LIST];
static size_t n_peers;
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

/* The pair state with a --peer (relayproxy.h): probes to and from it are sealed with it. */
static struct ls_disco_pair *pair_cb(void *ctx, const uint8_t key[LSR_KEY_LEN])
{
	(void)ctx;
	for (size_t i = 0; i < n_peers; i++)
		if (!memcmp(peers[i], key, LSR_KEY_LEN))
			return &pairs[i];
	return NULL;
}

static int read_keyfile(const char *path, uint8_t key[LS_WG_KEY_LEN])
{
	char *s = NULL;
	size_t n = 0;
	int ret = ls_read_file(path, &s, &n, 4096);

	if (ret)
		return ret;
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = 0;
	ret = ls_key_from_base64(key, s) ? -EINVAL : 0;
	ls_memzero(s, n);
	free(s);
	return ret;
}

/* The forger (see the top): one probe per kind to `to', as the owner of wg_priv. */
static int forge(const char *relay, const uint8_t to[LSR_KEY_LEN], const char *const *kinds, size_t n_kinds,
		 int gap_ms)
{
	struct ls_relay_identity id;
	struct ls_relay_stream *rs = NULL;
	struct sockaddr_storage ss;
	socklen_t len;
	uint8_t key[LS_DISCO_KEY_LEN], genuine[LS_DISCO_PROBE_MAX_LEN];
	uint64_t s0 = (uint64_t)ls_relay_now_unix_ms() * 1000;
	int gn = 0, err;
	uint32_t reason = 0;

	ls_relay_identity_random(&id);
	ls_wg_pubkey(id.wg_key, wg_priv);
	if (ls_rproxy_parse_addr(relay, &ss, &len) || ls_disco_key(key, wg_priv, id.wg_key, to))
		return -EINVAL;
	err = ls_relay_stream_connect(&rs, (struct sockaddr *)&ss, len, &id, 5000, &reason);
	if (err) {
		fprintf(stderr, "ls-rproxy-driver: forge: connect %s: %s (%s)\n", relay, strerror(-err),
			ls_relay_reason_str(reason));
		return err;
	}
	for (size_t i = 0; i < n_kinds; i++) {
		const char *eq = strchr(kinds[i], '=');
		struct ls_rproxy_probe p = { .ts_ms = ls_relay_now_unix_ms(), .n_endpoints = 1 };
		uint8_t buf[LSR_MAX_PROBE], wrong[LS_DISCO_KEY_LEN];
		size_t kl = eq ? (size_t)(eq - kinds[i]) : 0;
		int n = -EINVAL;

		if (!eq || strlen(eq + 1) >= LS_RPROXY_ENDPOINT_LEN)
			continue;
		snprintf(p.endpoints[0], LS_RPROXY_ENDPOINT_LEN, "%s", eq + 1);
		if (i)
			usleep((useconds_t)gap_ms * 1000);
		if (!strncmp(kinds[i], "unsealed", kl)) {
			n = snprintf((char *)buf, sizeof(buf), "{\"v\":1,\"ts\":%llu,\"reply\":false,\"endpoints\":[\"%s\"]}",
				     (unsigned long long)p.ts_ms, eq + 1);
		} else if (!strncmp(kinds[i], "wrongkey", kl)) {
			randombytes_buf(wrong, sizeof(wrong));
			n = ls_disco_probe_seal(&p, s0 + 101, id.wg_key, to, wrong, buf, sizeof(buf));
		} else if (!strncmp(kinds[i], "tampered", kl)) {
			n = ls_disco_probe_seal(&p, s0 + 102, id.wg_key, to, key, buf, sizeof(buf));
			if (n > 0)
				buf[LS_DISCO_PROBE_HDR_LEN + LS_DISCO_NONCE_LEN + 20] ^= 1; /* a sealed byte */
		} else if (!strncmp(kinds[i], "genuine", kl)) {
			n = gn = ls_disco_probe_seal(&p, s0 + 100, id.wg_key, to, key, genuine, sizeof(genuine));
			if (n > 0)
				memcpy(buf, genuine, (size_t)n);
		} else if (!strncmp(kinds[i], "replayed", kl)) {
			n = gn;
			if (n > 0)
				memcpy(buf, genuine, (size_t)n);
		} else if (!strncmp(kinds[i], "old", kl)) {
			n = ls_disco_probe_seal(&p, s0, id.wg_key, to, key, buf, sizeof(buf));
		}
		err = n > 0 ? ls_relay_stream_probe(rs, to, buf, (size_t)n, 2000) : -EINVAL;
		printf("forged %.*s %s: %s\n", (int)kl, kinds[i], eq + 1, err ? strerror(-err) : "ok");
		fflush(stdout);
	}
	ls_relay_stream_flush(rs, 2000);
	usleep(500 * 1000); /* let the relay pass them on before the connection goes */
	ls_relay_stream_free(rs);
	ls_memzero(key, sizeof(key));
	ls_memzero(&id, sizeof(id));
	return 0;
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
	const char *forge_kinds[MAX_LIST];
	uint8_t forge_to[LSR_KEY_LEN];
	size_t n_stream = 0, n_udp = 0, n_turn = 0, n_forge = 0;
	bool have_priv = false, have_forge_to = false;
	int forge_gap_ms = 1200;
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
		} else if (!strcmp(o, "--wg-keyfile")) {
			if (read_keyfile(v, wg_priv))
				return usage("cannot read a WireGuard private key from", v);
			have_priv = true;
		} else if (!strcmp(o, "--forge-to")) {
			if (ls_key_from_base64(forge_to, v))
				return usage("invalid key", v);
			have_forge_to = true;
		} else if (!strcmp(o, "--forge") && n_forge < MAX_LIST) {
			forge_kinds[n_forge++] = v;
		} else if (!strcmp(o, "--forge-gap-ms")) {
			forge_gap_ms = atoi(v);
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
	if (have_forge_to) {
		if (!have_priv || !n_stream)
			return usage("--forge-to needs --wg-keyfile and --stream", "");
		return forge(stream[0], forge_to, forge_kinds, n_forge, forge_gap_ms) ? 1 : 0;
	}
	if (have_priv) {
		uint8_t pub[LS_WG_KEY_LEN];

		ls_wg_pubkey(pub, wg_priv);
		if (have_key && memcmp(pub, cfg.wg_pub, sizeof(pub)))
			return usage("--wg-pubkey is not --wg-keyfile's public key", "");
		memcpy(cfg.wg_pub, pub, sizeof(pub));
		have_key = true;
		for (size_t i = 0; i < n_peers; i++)
			if (ls_disco_key(pairs[i].key, wg_priv, cfg.wg_pub, peers[i]))
				return usage("a low-order peer key", "");
		cfg.pair = pair_cb;
	}
	if (!cfg.wg_port || !have_key)
		return usage("--wg-port and --wg-keyfile (or --wg-pubkey: no probes) are required", "");
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
