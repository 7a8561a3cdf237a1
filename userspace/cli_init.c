// SPDX-License-Identifier: MIT
/* lightscale init: create a profile. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ctlclient.h"
#include "profile.h"
#include "util.h"

static const char help[] =
	"Usage: lightscale init --control URL[,URL...] [--token TOKEN | --pin PIN] [options]\n"
	"\n"
	"Creates the profile directory STATE_DIR/PROFILE (mode 0700) with a WireGuard key pair,\n"
	"an Ed25519 machine key (both 0600), the control URLs and the enrollment token. An\n"
	"existing profile keeps its keys (use --new-keys to replace them); settings given here\n"
	"replace the stored ones. Then run `lightscale register`.\n"
	"\n"
	"Without a token, `lightscale register' prints an approval link and waits until an admin\n"
	"opens it, signs in with an admin key and admits this device to a network (auth-URL\n"
	"onboarding). The control plane serves HTTPS with its own certificate, so tell init which\n"
	"server to trust: --pin with the server's TLS pin(s) (the admin finds them in\n"
	"`lightscale-control token create --json' (pins) or STATE_DIR/tls.pin on the server), and\n"
	"--identity with the deployment's identity key (identity.pub) to check signed netmaps,\n"
	"or both at once as an enrollment string without its token: --token @IDENTITY@PIN,...\n"
	"\n"
	"Options:\n"
	"  --profile P            profile name (default `default'); interface ls-P\n"
	"  --state-dir DIR        where profiles live (default /var/lib/lightscale)\n"
	"  --control URL[,URL]    control plane base URLs, tried in order (failover)\n"
	"  --token TOKEN          enrollment token (lst_...) from `lightscale-control token create',\n"
	"                         or its enrollment string TOKEN@IDENTITY@PIN,... (token create\n"
	"                         --json: enroll): the identity key and the server's TLS pins are\n"
	"                         kept, and every request is pinned from the first one;\n"
	"                         @IDENTITY@PIN,... (no token): the same trust, no token\n"
	"  --pin sha256//B64[,..] TLS pins of the control servers (SHA-256 of each public key),\n"
	"                         checked from the first request\n"
	"  --identity KEY         the deployment's identity key (base64): netmaps must be signed\n"
	"  --no-token             forget a stored token: register asks for an approval link\n"
	"  --hostname H           node name (default: this machine's hostname)\n"
	"  --listen-port N        WireGuard UDP port (default 51820)\n"
	"  --mtu N                overlay MTU (default 1420)\n"
	"  --keepalive S          persistent keepalive for every peer, seconds (default 0: off;\n"
	"                         25 keeps NAT mappings open behind a NAT)\n"
	"  --advertise-routes L   comma-separated prefixes this node routes (0.0.0.0/0 and ::/0\n"
	"                         offer it as an exit node)\n"
	"  --exit-node X          exit node to use: auto, none, a peer id or name (default none)\n"
	"  --new-keys             generate new keys even if the profile has some\n"
	"  --json                 print the result as JSON\n";

static int parse_routes(struct ls_profile *p, const char *list)
{
	char *dup = strdup(list), *save = NULL, *tok;
	int ret = 0;

	if (!dup)
		return -ENOMEM;
	p->n_routes = 0;
	for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!*tok)
			continue;
		if (p->n_routes == LS_MAX_ADV_ROUTES) {
			fprintf(stderr, "lightscale init: more than %d routes\n", LS_MAX_ADV_ROUTES);
			ret = -E2BIG;
			break;
		}
		if (ls_prefix_parse(tok, &p->routes[p->n_routes], false)) {
			fprintf(stderr, "lightscale init: invalid route `%s' (a prefix like 192.168.1.0/24)\n", tok);
			ret = -EINVAL;
			break;
		}
		p->n_routes++;
	}
	free(dup);
	return ret;
}

static int write_b64_file(const struct ls_profile *p, const char *file, const uint8_t *data, size_t len, mode_t mode)
{
	char path[PATH_MAX], b64[128];
	size_t n;
	int ret;

	ls_profile_file(p, file, path, sizeof(path));
	ls_b64_encode(b64, sizeof(b64), data, len);
	n = strlen(b64);
	b64[n++] = '\n';
	ret = ls_write_file_atomic(path, b64, n, mode);
	ls_memzero(b64, sizeof(b64));
	return ret;
}

int ls_cmd_init(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "token", required_argument, NULL, 't' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "listen-port", required_argument, NULL, 'p' },
		{ "mtu", required_argument, NULL, 'm' },
		{ "keepalive", required_argument, NULL, 'k' },
		{ "advertise-routes", required_argument, NULL, 'r' },
		{ "exit-node", required_argument, NULL, 'x' },
		{ "new-keys", no_argument, NULL, 'N' },
		{ "pin", required_argument, NULL, 'P' },
		{ "identity", required_argument, NULL, 'I' },
		{ "no-token", no_argument, NULL, 'T' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	const char *control = NULL, *token = NULL, *hostname = NULL, *routes = NULL, *exitn = NULL;
	const char *pin = NULL, *identity = NULL;
	int port = -1, mtu = -1, keepalive = -1, c, ret;
	bool new_keys = false, existed, no_token = false;
	struct ls_profile p;
	char path[PATH_MAX], err[512], host[256], pub[LS_KEY_B64_LEN + 1];
	char tok[512], ident[LS_KEY_B64_LEN + 8], pins[1024];
	struct stat st;
	json_t *out;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		switch (c) {
		case 'c': control = optarg; break;
		case 't': token = optarg; break;
		case 'H': hostname = optarg; break;
		case 'r': routes = optarg; break;
		case 'x': exitn = optarg; break;
		case 'N': new_keys = true; break;
		case 'P': pin = optarg; break;
		case 'I': identity = optarg; break;
		case 'T': no_token = true; break;
		case 'p':
		case 'k':
		case 'm': {
			char *end;
			long v = strtol(optarg, &end, 10);

			if (*end || v < (c == 'm' ? 1280 : 0) || v > (c == 'm' ? 9000 : 65535))
				return ls_cli_usage_error(cli, help, "invalid %s `%s'",
							  c == 'p' ? "port" : c == 'k' ? "keepalive" : "MTU (1280-9000)", optarg);
			if (c == 'p')
				port = (int)v;
			else if (c == 'k')
				keepalive = (int)v;
			else
				mtu = (int)v;
			break;
		}
		case 'h':
			fputs(help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, help, "invalid option");
		}
	}
	if (optind < argc)
		return ls_cli_usage_error(cli, help, "unexpected argument `%s'", argv[optind]);

	ret = ls_profile_load(&p, cli->state_dir, cli->profile, err, sizeof(err));
	existed = ret == 0;
	if (ret == -EINVAL && !ls_profile_name_valid(cli->profile))
		return ls_cli_usage_error(cli, help, "%s", err);
	if (!existed) {
		ls_profile_path(&p, cli->state_dir, cli->profile);
		if (!control)
			return ls_cli_usage_error(cli, help, "a new profile needs --control URL and --token TOKEN, or "
							     "--control URL and --pin PIN (register then asks an admin "
							     "through an approval link)");
	}
	if (token && no_token) {
		ls_profile_free(&p);
		return ls_cli_usage_error(cli, help, "--token and --no-token exclude each other");
	}
	if (control && strncmp(control, "http://", 7) && strncmp(control, "https://", 8)) {
		ls_profile_free(&p);
		return ls_cli_usage_error(cli, help, "invalid control URL `%s' (http:// or https://)", control);
	}
	if (token && token[0] == '@') {
		/* @IDENTITY@PINS: an enrollment string's trust without its token */
		char with[1100];

		snprintf(with, sizeof(with), "x%s", token);
		if (strlen(token) > 1000 ||
		    ls_ctl_parse_enroll(with, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)) ||
		    !pins[0]) {
			ls_profile_free(&p);
			return ls_cli_usage_error(cli, help,
						  "invalid enrollment string `%.60s' (@IDENTITY@sha256//PIN,...)",
						  token);
		}
		token = NULL;
		no_token = true;
		free(p.identity);
		free(p.tls_pins);
		p.identity = strdup(ident);
		p.tls_pins = strdup(pins);
	} else if (token && strchr(token, '@')) {
		if (ls_ctl_parse_enroll(token, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins))) {
			ls_profile_free(&p);
			return ls_cli_usage_error(cli, help,
						  "invalid enrollment string `%.60s...' (TOKEN@IDENTITY@sha256//PIN,...)",
						  token);
		}
		token = tok;
		free(p.identity);
		free(p.tls_pins);
		p.identity = strdup(ident);
		p.tls_pins = pins[0] ? strdup(pins) : NULL;
	}
	if (pin) {
		/* the enrollment-string parser checks the pins: "x@IDENTITY@PINS" */
		char with[1100], dummy_ident[LS_KEY_B64_LEN + 8];
		uint8_t k[32] = {1};

		ls_key_to_base64(dummy_ident, k);
		snprintf(with, sizeof(with), "x@%s@%s", dummy_ident, pin);
		for (char *q = with; *q; q++)
			if (*q == ';') /* curl's list form too */
				*q = ',';
		if (strlen(pin) > 1000 ||
		    ls_ctl_parse_enroll(with, tok, sizeof(tok), ident, sizeof(ident), pins, sizeof(pins)) ||
		    !pins[0]) {
			ls_profile_free(&p);
			return ls_cli_usage_error(cli, help, "invalid --pin `%.80s' (sha256//BASE64[,sha256//...])", pin);
		}
		free(p.tls_pins);
		p.tls_pins = strdup(pins);
	}
	if (identity) {
		uint8_t k[32];

		if (ls_key_from_base64(k, identity)) {
			ls_profile_free(&p);
			return ls_cli_usage_error(cli, help, "invalid --identity `%.60s' (a base64 Ed25519 public key)",
						  identity);
		}
		free(p.identity);
		p.identity = strdup(identity);
	}
	if (token && strncmp(token, "lst_", 4)) {
		ls_profile_free(&p);
		return ls_cli_usage_error(cli, help, "invalid token `%.8s...' (enrollment tokens start with lst_)", token);
	}
	if (control) {
		free(p.control_urls);
		p.control_urls = strdup(control);
	}
	if (hostname || !p.hostname) {
		if (!hostname) {
			if (gethostname(host, sizeof(host)))
				snprintf(host, sizeof(host), "node");
			host[sizeof(host) - 1] = '\0';
			hostname = host;
		}
		free(p.hostname);
		p.hostname = strdup(hostname);
	}
	if (port >= 0)
		p.listen_port = port;
	if (mtu > 0)
		p.mtu = mtu;
	if (keepalive >= 0)
		p.keepalive = keepalive;
	if (exitn) {
		free(p.exit_node);
		p.exit_node = strdup(exitn);
	}
	if (routes && (ret = parse_routes(&p, routes)))
		goto cleanup;

	if (stat(cli->state_dir, &st) && (ret = ls_mkdir_p(cli->state_dir, 0755))) {
		fprintf(stderr, "lightscale init: cannot create %s: %s\n", cli->state_dir, strerror(-ret));
		goto cleanup;
	}
	if ((ret = ls_mkdir_p(p.dir, 0700)) || chmod(p.dir, 0700)) {
		fprintf(stderr, "lightscale init: cannot create %s: %s\n", p.dir, strerror(ret ? -ret : errno));
		ret = ret ? ret : -errno;
		goto cleanup;
	}
	if (!existed || new_keys) {
		ls_wg_genkey(p.wg_priv);
		ls_wg_pubkey(p.wg_pub, p.wg_priv);
		ls_ed25519_keypair(p.machine_pk, p.machine_sk);
		if ((ret = write_b64_file(&p, "wg.key", p.wg_priv, LS_WG_KEY_LEN, 0600)) ||
		    (ret = write_b64_file(&p, "wg.pub", p.wg_pub, LS_WG_KEY_LEN, 0644)) ||
		    (ret = write_b64_file(&p, "machine.key", p.machine_sk, LS_ED25519_SK_LEN, 0600))) {
			fprintf(stderr, "lightscale init: cannot write keys in %s: %s\n", p.dir, strerror(-ret));
			goto cleanup;
		}
		p.node_id = 0;
	}
	if (token) {
		ls_profile_file(&p, "token", path, sizeof(path));
		if ((ret = ls_write_file_atomic(path, token, strlen(token), 0600))) {
			fprintf(stderr, "lightscale init: cannot write %s: %s\n", path, strerror(-ret));
			goto cleanup;
		}
	} else if (no_token || !existed) {
		/* no token: register asks for an approval link */
		ls_profile_file(&p, "token", path, sizeof(path));
		if (unlink(path) && errno != ENOENT) {
			ret = -errno;
			fprintf(stderr, "lightscale init: cannot remove %s: %s\n", path, strerror(errno));
			goto cleanup;
		}
	}
	if ((ret = ls_profile_save_config(&p))) {
		fprintf(stderr, "lightscale init: cannot write config in %s: %s\n", p.dir, strerror(-ret));
		goto cleanup;
	}
	if (p.control_urls && strstr(p.control_urls, "https://") && !p.tls_pins)
		fprintf(stderr, "lightscale init: no TLS pins (--pin, or an enrollment string): the control "
				"server's certificate must be one this system's CA store trusts\n");
	ls_key_to_base64(pub, p.wg_pub);
	ls_profile_file(&p, "token", path, sizeof(path));
	out = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b}", "profile", p.name, "directory",
			p.dir, "interface", p.ifname, "control", p.control_urls, "hostname", p.hostname,
			"wg_public_key", pub, "created", !existed, "token", access(path, F_OK) == 0, "pinned",
			p.tls_pins != NULL, "identity", p.identity != NULL);
	ls_cli_print(cli, out, NULL);
	ret = 0;
cleanup:
	ls_profile_free(&p);
	return ret ? 1 : 0;
}
