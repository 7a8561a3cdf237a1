// SPDX-License-Identifier: MIT
/*
 * ls-nodecli: a minimal node for control-plane tests, built on lib/ctlclient and lib/sign.
 *
 *   ls-nodecli keygen DIR
 *   ls-nodecli register  -s URL -k DIR -t TOKEN -H HOSTNAME [-r PREFIX]... [-e ENDPOINT]... [-p PORT]
 *   ls-nodecli heartbeat -s URL -k DIR [-e ENDPOINT]... [-p PORT] [-r PREFIX]... [--routes-empty]
 *   ls-nodecli rotate    -s URL -k DIR   (a new WireGuard key in DIR/wg.pub, POST /v1/rotate)
 *   ls-nodecli netmap    -s URL -k DIR [--since V] [--wait S] [--trust DIR]
 *                        (--trust: check the map as the agent does, userspace/trust.h;
 *                        a refusal prints "error 0 trust_refused MESSAGE")
 *   ls-nodecli health    -s URL   (every command: [--pin 'sha256//A;sha256//B'], default
 *                                  $LS_NODECLI_PINS)
 *   ls-nodecli raw       -s URL [-k DIR] METHOD PATH [BODY] [--unsigned] [--skew S]
 *                        [--replay] [--replay-to URL2] [--tamper] [--admin-key-file F]
 *
 * -s takes a comma-separated URL list (failover). Success prints the response JSON on
 * stdout and exits 0; an error prints "error HTTP CODE MESSAGE" on stdout and exits 1.
 * raw prints "HTTP BODY" (for --replay, one line per attempt) and exits 0 on any answer.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctlclient.h"
#include "http.h"
#include "httpconn.h"
#include "userspace/trust.h"
#include "keys.h"
#include "lightscale/api.h"
#include "sign.h"
#include "util.h"

struct keys {
	uint8_t sk[LS_ED25519_SK_LEN];
	char wg_pub[LS_KEY_B64_LEN + 1], machine_pub[LS_KEY_B64_LEN + 1];
};

static int load_keys(const char *dir, struct keys *k)
{
	char path[4096], *buf = NULL;
	size_t len;
	int ret;

	snprintf(path, sizeof(path), "%s/machine.key", dir);
	ret = ls_read_file(path, &buf, &len, 4096);
	if (ret)
		return ret;
	buf[strcspn(buf, "\n")] = '\0';
	ret = ls_hex_decode(k->sk, sizeof(k->sk), buf) == LS_ED25519_SK_LEN ? 0 : -EINVAL;
	free(buf);
	if (ret)
		return ret;
	ls_key_to_base64(k->machine_pub, k->sk + 32);
	snprintf(path, sizeof(path), "%s/wg.pub", dir);
	ret = ls_read_file(path, &buf, &len, 4096);
	if (ret)
		return ret;
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(k->wg_pub, sizeof(k->wg_pub), "%s", buf);
	free(buf);
	return 0;
}

static int keygen(const char *dir)
{
	uint8_t wg[32], wgpub[32], pk[32], sk[64];
	char hex[131], b64[LS_KEY_B64_LEN + 2], path[4096];
	int ret;

	ret = ls_mkdir_p(dir, 0700);
	if (ret)
		return ret;
	ls_wg_genkey(wg);
	ls_wg_pubkey(wgpub, wg);
	ls_ed25519_keypair(pk, sk);
	ls_hex_encode(hex, sk, sizeof(sk));
	strcat(hex, "\n");
	snprintf(path, sizeof(path), "%s/machine.key", dir);
	if ((ret = ls_write_file_atomic(path, hex, strlen(hex), 0600)))
		return ret;
	ls_key_to_base64(b64, wgpub);
	strcat(b64, "\n");
	snprintf(path, sizeof(path), "%s/wg.pub", dir);
	if ((ret = ls_write_file_atomic(path, b64, strlen(b64), 0644)))
		return ret;
	ls_key_to_base64(b64, pk);
	strcat(b64, "\n");
	snprintf(path, sizeof(path), "%s/machine.pub", dir);
	return ls_write_file_atomic(path, b64, strlen(b64), 0644);
}

static int finish(int ret, struct ls_ctl_response *r, struct ls_ctl_error *e)
{
	if (ret) {
		printf("error %ld %s %s\n", e->http_status, e->code, e->message);
		ls_ctl_response_free(r);
		return 1;
	}
	if (r->body)
		printf("%s\n", r->body);
	ls_ctl_response_free(r);
	return 0;
}

/* One request on a new connection, through lib/http's client pieces (not ls_ctl, whose
 * headers it must be able to get wrong on purpose): "STATUS BODY", or "000 WHY". */
static void raw_one(const char *base, const char *method, const char *path, const char *hdrs,
		    const char *body, const char *pins)
{
	struct ls_hconn_cfg cfg = {.connect_timeout_ms = 3000, .handshake_timeout_ms = 10000};
	struct ls_http_parser *p = calloc(1, sizeof(*p));
	struct ls_hconn h;
	struct ls_hconn_err e = {0};
	struct ls_http_url u;
	uint64_t deadline = ls_now_ms() + 30000;
	char host[300], buf[16384], *req = NULL;
	int ret = -EINVAL, n;

	ls_hconn_init(&h);
	if (!p || ls_http_parse_url(base, &u)) {
		printf("000 invalid URL `%s'\n", base);
		goto cleanup;
	}
	cfg.pins = u.tls ? pins : NULL; /* as lib/ctlclient: the pins are the trust */
	ls_http_host_field(&u, host, sizeof(host));
	n = asprintf(&req, "%s %s%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s"
			   "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
		     method, u.prefix, path, host, hdrs, body ? strlen(body) : 0, body ? body : "");
	if (n < 0) {
		req = NULL;
		goto cleanup;
	}
	ls_http_parser_init(p, LS_CTL_MAX_RESPONSE - 1, !strcmp(method, "HEAD"));
	ret = ls_hconn_open(&h, base, &u, &cfg, deadline, &e);
	if (!ret)
		ret = ls_hconn_send(&h, req, (size_t)n, deadline, &e);
	while (!ret) {
		ssize_t r = ls_hconn_recv(&h, buf, sizeof(buf), deadline, &e);
		size_t used;

		if (r < 0) {
			ret = (int)r;
			break;
		}
		ret = r ? ls_http_parse(p, buf, (size_t)r, &used) : ls_http_parse_eof(p);
	}
	if (ret == 1)
		printf("%d %s\n", p->status, p->body ? p->body : "");
	else if (ret == -EBADMSG || ret == -EFBIG || ret == -ENODATA)
		printf("000 %s\n", ret == -EFBIG ? "answer too large" : "not a valid HTTP/1.1 answer");
	else
		printf("000 %s\n", e.msg[0] ? e.msg : strerror(-ret));
cleanup:
	ls_hconn_close(&h);
	if (p)
		ls_http_parser_free(p);
	free(p);
	free(req);
}

static int raw(const char *url, struct keys *k, bool have_keys, const char *method,
	       const char *path, const char *body, bool unsigned_req, long skew, bool replay,
	       bool tamper, const char *admin_key, const char *replay_to, const char *pins)
{
	struct ls_sign_headers h;
	char hdrs[1024] = "";
	size_t l = 0;
	int attempt;

	if (!unsigned_req && have_keys &&
	    ls_sign_request(&h, k->sk, method, path, body, body ? strlen(body) : 0,
			    ls_unix_time() + skew))
		return 1;
	if (!unsigned_req && have_keys)
		l += (size_t)snprintf(hdrs + l, sizeof(hdrs) - l, "%s: %s\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n",
				      LS_HDR_KEY, h.key, LS_HDR_TIMESTAMP, h.timestamp, LS_HDR_NONCE,
				      h.nonce, LS_HDR_SIGNATURE, h.signature);
	if (admin_key && l < sizeof(hdrs))
		snprintf(hdrs + l, sizeof(hdrs) - l, "Authorization: Bearer %s\r\n", admin_key);
	for (attempt = 0; attempt < (replay ? 2 : 1); attempt++)
		raw_one(attempt && replay_to ? replay_to : url, method, path, hdrs,
			body && tamper ? "{\"endpoints\":[\"192.0.2.66:1\"]}" : body, pins);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 's'},
		{"key-dir", required_argument, NULL, 'k'},
		{"token", required_argument, NULL, 't'},
		{"hostname", required_argument, NULL, 'H'},
		{"route", required_argument, NULL, 'r'},
		{"endpoint", required_argument, NULL, 'e'},
		{"listen-port", required_argument, NULL, 'p'},
		{"routes-empty", no_argument, NULL, 'R'},
		{"since", required_argument, NULL, 'S'},
		{"wait", required_argument, NULL, 'W'},
		{"unsigned", no_argument, NULL, 'U'},
		{"skew", required_argument, NULL, 'K'},
		{"replay", no_argument, NULL, 'P'},
		{"tamper", no_argument, NULL, 'T'},
		{"admin-key-file", required_argument, NULL, 'A'},
		{"replay-to", required_argument, NULL, 'O'},
		{"trust", required_argument, NULL, 'X'},
		{"pin", required_argument, NULL, 'Y'},
		{0},
	};
	const char *replay_to = NULL, *trust_dir = NULL, *pins = NULL;
	const char *server = NULL, *keydir = NULL, *token = NULL, *hostname = NULL, *akf = NULL;
	const char *routes[64], *eps[64];
	size_t nr = 0, ne = 0;
	int port = 0, wait = 0, c;
	int64_t since = 0;
	long skew = 0;
	bool routes_empty = false, unsigned_req = false, replay = false, tamper = false;
	struct ls_ctl ctl;
	struct ls_ctl_response resp;
	struct ls_ctl_error err;
	struct keys k = {0};
	bool have_keys = false;
	const char *cmd;

	if (argc < 2) {
		fprintf(stderr, "usage: ls-nodecli keygen|register|heartbeat|netmap|health|raw ...\n");
		return 2;
	}
	cmd = argv[1];
	ls_crypto_init();
	if (!strcmp(cmd, "keygen"))
		return argc == 3 && keygen(argv[2]) == 0 ? 0 : 1;
	optind = 2;
	while ((c = getopt_long(argc, argv, "s:k:t:H:r:e:p:", opts, NULL)) != -1) {
		switch (c) {
		case 's': server = optarg; break;
		case 'k': keydir = optarg; break;
		case 't': token = optarg; break;
		case 'H': hostname = optarg; break;
		case 'r': if (nr < 64) routes[nr++] = optarg; break;
		case 'e': if (ne < 64) eps[ne++] = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 'R': routes_empty = true; break;
		case 'S': since = strtoll(optarg, NULL, 10); break;
		case 'W': wait = atoi(optarg); break;
		case 'U': unsigned_req = true; break;
		case 'K': skew = strtol(optarg, NULL, 10); break;
		case 'P': replay = true; break;
		case 'T': tamper = true; break;
		case 'A': akf = optarg; break;
		case 'O': replay = true; replay_to = optarg; break;
		case 'X': trust_dir = optarg; break;
		case 'Y': pins = optarg; break;
		default: return 2;
		}
	}
	if (!server) {
		fprintf(stderr, "ls-nodecli: --server required\n");
		return 2;
	}
	if (keydir) {
		if (load_keys(keydir, &k)) {
			fprintf(stderr, "ls-nodecli: cannot load keys from %s\n", keydir);
			return 2;
		}
		have_keys = true;
	}
	/* tests pin the servers they start (tests/control/pg.sh exports LS_NODECLI_PINS);
	 * an enrollment string's pins come before these */
	if (!pins && getenv("LS_NODECLI_PINS") && *getenv("LS_NODECLI_PINS") &&
	    !(token && strchr(token, '@')))
		pins = getenv("LS_NODECLI_PINS");
	if (!strcmp(cmd, "raw")) {
		char *akey = NULL;
		size_t len;
		int ret;

		if (optind + 2 > argc) {
			fprintf(stderr, "ls-nodecli raw: METHOD PATH [BODY]\n");
			return 2;
		}
		if (akf) {
			if (ls_read_file(akf, &akey, &len, 4096))
				return 2;
			akey[strcspn(akey, "\n")] = '\0';
		}
		ret = raw(server, &k, have_keys, argv[optind], argv[optind + 1],
			  optind + 2 < argc ? argv[optind + 2] : NULL, unsigned_req, skew, replay,
			  tamper, akey, replay_to, pins);
		free(akey);
		return ret;
	}
	if (ls_ctl_init(&ctl, server)) {
		fprintf(stderr, "ls-nodecli: invalid server `%s'\n", server);
		return 2;
	}
	if (have_keys)
		ls_ctl_set_machine_key(&ctl, k.sk);
	if (pins)
		ls_ctl_set_pinned_keys(&ctl, pins);
	if (token && strchr(token, '@')) {
		/* an enrollment string: trust exactly the servers whose pins it carries */
		static char tok[256], ident[64], epins[1024];

		if (ls_ctl_parse_enroll(token, tok, sizeof(tok), ident, sizeof(ident), epins, sizeof(epins))) {
			fprintf(stderr, "ls-nodecli: invalid enrollment string\n");
			return 2;
		}
		if (epins[0] && !pins)
			ls_ctl_set_pinned_keys(&ctl, epins);
	}
	if (!strcmp(cmd, "register")) {
		struct ls_ctl_register_req req = {
			.token = token, .wg_key = k.wg_pub, .machine_key = k.machine_pub,
			.hostname = hostname, .routes = routes, .n_routes = nr, .endpoints = eps,
			.n_endpoints = ne, .listen_port = port,
		};

		c = finish(ls_ctl_register(&ctl, &req, &resp, &err), &resp, &err);
	} else if (!strcmp(cmd, "heartbeat")) {
		struct ls_ctl_heartbeat_req req = {
			.endpoints = eps, .n_endpoints = ne, .listen_port = port, .routes = routes,
			.n_routes = nr, .send_routes = nr > 0 || routes_empty,
		};

		c = finish(ls_ctl_heartbeat(&ctl, &req, &resp, &err), &resp, &err);
	} else if (!strcmp(cmd, "netmap")) {
		if (trust_dir) {
			char terr[512], tp[4200], *tb = NULL;
			size_t tl;
			int tr;

			/* a trusted identity: the netmap must carry its signature */
			snprintf(tp, sizeof(tp), "%s/trust.json", trust_dir);
			if (ls_read_file(tp, &tb, &tl, 64 << 20) == 0) {
				json_t *tj = json_loadb(tb, tl, 0, NULL);
				uint8_t ipk[32];
				const char *is = json_string_value(json_object_get(tj, "identity"));

				if (is && !ls_key_from_base64(ipk, is))
					ls_ctl_set_identity(&ctl, ipk);
				json_decref(tj);
				free(tb);
			}
			tr = ls_ctl_netmap(&ctl, since, wait, &resp, &err);

			if (!tr && ls_trust_check_netmap(&ctl, trust_dir, resp.json, terr, sizeof(terr))) {
				printf("error 0 trust_refused %s\n", terr);
				ls_ctl_response_free(&resp);
				ls_ctl_free(&ctl);
				return 1;
			}
			c = finish(tr, &resp, &err);
		} else {
			c = finish(ls_ctl_netmap(&ctl, since, wait, &resp, &err), &resp, &err);
		}
	} else if (!strcmp(cmd, "rotate")) {
		uint8_t wg[32], wgpub[32];
		char b64[LS_KEY_B64_LEN + 2], path[4096];

		ls_wg_genkey(wg);
		ls_wg_pubkey(wgpub, wg);
		ls_key_to_base64(b64, wgpub);
		c = finish(ls_ctl_rotate(&ctl, b64, &resp, &err), &resp, &err);
		if (c == 0) {
			strcat(b64, "\n");
			snprintf(path, sizeof(path), "%s/wg.pub", keydir);
			ls_write_file_atomic(path, b64, strlen(b64), 0644);
		}
	} else if (!strcmp(cmd, "health")) {
		c = finish(ls_ctl_health(&ctl, &resp, &err), &resp, &err);
	} else {
		fprintf(stderr, "ls-nodecli: unknown command `%s'\n", cmd);
		c = 2;
	}
	ls_ctl_free(&ctl);
	return c;
}
