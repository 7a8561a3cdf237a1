// SPDX-License-Identifier: MIT
/* lightscale register | heartbeat | netmap: the node side of the control API. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "ctlclient.h"
#include "dataplane.h"
#include "netmap.h"
#include "profile.h"
#include "status.h"
#include "trust.h"
#include "util.h"

static const char register_help[] =
	"Usage: lightscale register [--no-wait] [--profile P] [--state-dir DIR] [--json]\n"
	"\n"
	"Enrolls this machine with the control plane: WireGuard public key, machine key,\n"
	"hostname, advertised routes, listen port and local endpoints. Registering again with\n"
	"the same machine key returns the same node (a token is consumed only by the first\n"
	"registration). Prints the node: id, name, addresses, status and network.\n"
	"\n"
	"With an enrollment token (lightscale init --token) the node is created at once; in a\n"
	"network that requires approval it is pending, and on a terminal register prints the\n"
	"approval link and waits for the admin.\n"
	"\n"
	"Without a token (lightscale init --control URL --pin PIN) register asks the server for\n"
	"an approval link, prints it (https://CONTROL/approve/CODE: valid for 10 minutes and\n"
	"once; running register again makes a new one and ends the old) and waits while an\n"
	"admin opens it, signs in, picks the network and approves or rejects. Nothing is\n"
	"created on the server before that. Exit status 0 once approved, 1 when rejected or\n"
	"when the link expired (run register again for a new one).\n"
	"\n"
	"  --no-wait   print the approval link and return (exit 0); a later register or the\n"
	"              agent picks the node up once it is approved\n";

/* the profile's enrollment token (NULL: none, register without a token); -errno */
static int read_token(const struct ls_profile *p, char **token, size_t *len)
{
	char path[PATH_MAX];
	int ret;

	*token = NULL;
	*len = 0;
	ls_profile_file(p, "token", path, sizeof(path));
	ret = ls_read_file(path, token, len, 4096);
	if (ret == -ENOENT)
		return 0;
	if (ret)
		return ret;
	while (*len && ((*token)[*len - 1] == '\n' || (*token)[*len - 1] == ' '))
		(*token)[--*len] = '\0';
	if (!*len) { /* an empty token file: no token */
		free(*token);
		*token = NULL;
	}
	return 0;
}

static int reg_ctl(const struct ls_profile *p, struct ls_ctl *c, struct ls_ctl_error *err)
{
	if (ls_ctl_init(c, p->control_urls ? p->control_urls : "")) {
		snprintf(err->code, sizeof(err->code), "bad_url");
		snprintf(err->message, sizeof(err->message), "invalid control URL `%s'",
			 p->control_urls ? p->control_urls : "");
		return -EINVAL;
	}
	ls_ctl_set_machine_key(c, p->machine_sk);
	ls_ctl_set_fwmark(c, p->fwmark);
	if (ls_profile_ctl_trust(p, c)) {
		ls_ctl_free(c);
		snprintf(err->code, sizeof(err->code), "bad_profile");
		snprintf(err->message, sizeof(err->message),
			 "the profile's stored identity or TLS pins are invalid: run lightscale init again");
		return -EINVAL;
	}
	return 0;
}

/* POST /v1/register: with the token, or (token NULL) without one, signed by the machine key */
static int reg_send(const struct ls_profile *p, struct ls_ctl *c, const char *token,
		    struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	char rbuf[LS_MAX_ADV_ROUTES][LS_PREFIX_STRLEN];
	const char *routes[LS_MAX_ADV_ROUTES];
	char wg[LS_KEY_B64_LEN + 1], mk[LS_KEY_B64_LEN + 1];
	char **eps = NULL;
	size_t n_eps = 0, i;
	int ret;

	ls_key_to_base64(wg, p->wg_pub);
	ls_key_to_base64(mk, p->machine_pk);
	for (i = 0; i < p->n_routes; i++) {
		ls_prefix_format(&p->routes[i], rbuf[i]);
		routes[i] = rbuf[i];
	}
	ls_local_endpoints(p->ifname, p->listen_port, &eps, &n_eps);
	if (token) {
		struct ls_ctl_register_req req = {
			.token = token, .wg_key = wg, .machine_key = mk, .hostname = p->hostname,
			.routes = p->n_routes ? routes : NULL, .n_routes = p->n_routes,
			.endpoints = (const char *const *)eps, .n_endpoints = n_eps,
			.listen_port = p->listen_port,
		};

		ret = ls_ctl_register(c, &req, resp, err);
	} else {
		json_t *b = json_pack("{s:s, s:s, s:s}", "wg_key", wg, "machine_key", mk, "hostname",
				      p->hostname ? p->hostname : "node");
		json_t *ra = json_array(), *ea = json_array();

		for (i = 0; i < p->n_routes; i++)
			json_array_append_new(ra, json_string(routes[i]));
		for (i = 0; i < n_eps; i++)
			json_array_append_new(ea, json_string(eps[i]));
		json_object_set_new(b, "routes", ra);
		json_object_set_new(b, "endpoints", ea);
		if (p->listen_port)
			json_object_set_new(b, "listen_port", json_integer(p->listen_port));
		ret = ls_ctl_request_json(c, "POST", "/v1/register", b, LS_CTL_AUTH_SIGNED, 0, resp, err);
		json_decref(b);
	}
	ls_strv_free(eps, n_eps);
	return ret;
}

/* keeps the node of a register (or register/status) answer in the profile */
static int reg_save(struct ls_profile *p, json_t *doc, struct ls_ctl_error *err)
{
	json_t *node = json_object_get(doc, "node");
	char path[PATH_MAX], *s;

	if (!json_is_object(node) || !json_is_integer(json_object_get(node, "id"))) {
		snprintf(err->code, sizeof(err->code), "bad_response");
		snprintf(err->message, sizeof(err->message), "register answer has no node id");
		return -EBADMSG;
	}
	p->node_id = json_integer_value(json_object_get(node, "id"));
	ls_profile_file(p, "node.json", path, sizeof(path));
	s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (s)
		ls_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	ls_profile_save_config(p);
	return 0;
}

/* the approval link of a waiting answer: approval_url, else the control URL + approval_path */
static void reg_link(const struct ls_ctl *c, const json_t *doc, char *out, size_t n)
{
	const char *u = json_string_value(json_object_get(doc, "approval_url"));
	const char *path = json_string_value(json_object_get(doc, "approval_path"));

	if (u && *u)
		snprintf(out, n, "%s", u);
	else if (path && c->n_urls)
		snprintf(out, n, "%s%s", c->urls[c->current], path);
	else
		snprintf(out, n, "(no link: the server sent none)");
}

/* GET /v1/register/status, signed */
static int reg_status(struct ls_ctl *c, struct ls_ctl_response *resp, struct ls_ctl_error *err)
{
	return ls_ctl_request(c, "GET", "/v1/register/status", NULL, 0, LS_CTL_AUTH_SIGNED, 0, resp, err);
}

int ls_register(const struct ls_profile *cp, json_t **node_out, struct ls_ctl_error *err)
{
	struct ls_profile *p = (struct ls_profile *)cp;
	struct ls_ctl_response resp = { 0 };
	struct ls_ctl c;
	char *token = NULL, link[512];
	size_t len = 0;
	int ret;

	memset(err, 0, sizeof(*err));
	if ((ret = read_token(p, &token, &len))) {
		snprintf(err->code, sizeof(err->code), "no_token");
		snprintf(err->message, sizeof(err->message), "cannot read the enrollment token of profile '%s': %s",
			 p->name, strerror(-ret));
		return ret;
	}
	if ((ret = reg_ctl(p, &c, err)))
		goto cleanup_token;
	if (!token) {
		/* without a token (the agent): where does this machine stand? A waiting request
		 * keeps its link (the one register printed); none, or an expired one: a new one */
		ret = reg_status(&c, &resp, err);
		if (!ret && json_is_object(json_object_get(resp.json, "node")))
			goto registered;
		if (!ret && !strcmp(json_string_value(json_object_get(resp.json, "status")) ?: "", "waiting")) {
			snprintf(err->code, sizeof(err->code), "approval_pending");
			snprintf(err->message, sizeof(err->message),
				 "this device waits for an admin's approval (run lightscale register to "
				 "print its link again)");
			ret = -EAGAIN;
			goto cleanup;
		}
		if (!ret && !strcmp(json_string_value(json_object_get(resp.json, "status")) ?: "", "rejected")) {
			snprintf(err->code, sizeof(err->code), "device_rejected");
			snprintf(err->message, sizeof(err->message), "an admin rejected this device");
			ret = -EACCES;
			goto cleanup;
		}
		if (ret && err->http_status != 404)
			goto cleanup;
		ls_ctl_response_free(&resp);
	}
	ret = reg_send(p, &c, token, &resp, err);
	if (ret)
		goto cleanup;
	if (resp.http_status == 202) {
		reg_link(&c, resp.json, link, sizeof(link));
		snprintf(err->code, sizeof(err->code), "approval_pending");
		snprintf(err->message, sizeof(err->message),
			 "this device waits for an admin's approval at %.400s", link);
		ret = -EAGAIN;
		goto cleanup;
	}
registered:
	if ((ret = reg_save(p, resp.json, err)))
		goto cleanup;
	if (node_out)
		*node_out = json_incref(resp.json);
cleanup:
	ls_ctl_response_free(&resp);
	ls_ctl_free(&c);
cleanup_token:
	if (token)
		ls_memzero(token, len);
	free(token);
	return ret;
}

static void register_text(json_t *doc, FILE *f)
{
	json_t *node = json_object_get(doc, "node"), *net = json_object_get(doc, "network"), *v;
	size_t i;

	fprintf(f, "registered as node %lld `%s' (%s)\n", (long long)json_integer_value(json_object_get(node, "id")),
		json_string_value(json_object_get(node, "name")), json_string_value(json_object_get(node, "status")));
	json_array_foreach(json_object_get(node, "addresses"), i, v)
		fprintf(f, "address: %s\n", json_string_value(v));
	if (json_is_object(net))
		fprintf(f, "network: %s\n", json_string_value(json_object_get(net, "name")));
	/* an approval network: the admin approves this device on the control server's page */
	if (json_string_value(json_object_get(doc, "approval_url")))
		fprintf(f, "pending approval: an admin approves this device at\n  %s\n",
			json_string_value(json_object_get(doc, "approval_url")));
}

static void print_err(const struct ls_ctl_error *err)
{
	if (err->http_status)
		fprintf(stderr, "lightscale register: %s (%s, HTTP %ld)\n", err->message, err->code, err->http_status);
	else
		fprintf(stderr, "lightscale register: %s\n", err->message);
}

/* register without a token: a fresh approval link, printed, then (unless no_wait) polls until
 * an admin decides or the link expires. Exit status. */
static int register_open(struct ls_cli *cli, struct ls_profile *p, bool no_wait)
{
	struct ls_ctl_response resp = { 0 };
	struct ls_ctl_error err = { 0 };
	struct ls_ctl c;
	char link[512], until[64];
	int64_t expires;
	bool warned = false;
	time_t tt;
	struct tm tm;
	int ret = 1;

	if (reg_ctl(p, &c, &err)) {
		print_err(&err);
		return 1;
	}
	if (reg_send(p, &c, NULL, &resp, &err)) {
		print_err(&err);
		if (err.http_status == 429)
			fprintf(stderr, "  the server limits registrations without a token: wait a minute "
					"or ask the admin for an enrollment token\n");
		goto out;
	}
	if (resp.http_status != 202) { /* admitted before: the node */
		if (reg_save(p, resp.json, &err)) {
			print_err(&err);
			goto out;
		}
		ret = ls_cli_print(cli, json_incref(resp.json), register_text);
		goto out;
	}
	reg_link(&c, resp.json, link, sizeof(link));
	expires = json_integer_value(json_object_get(resp.json, "expires_at"));
	tt = (time_t)expires;
	gmtime_r(&tt, &tm);
	strftime(until, sizeof(until), "%H:%M:%S UTC", &tm);
	if (cli->json && no_wait) {
		ret = ls_cli_print(cli, json_incref(resp.json), NULL);
		goto out;
	}
	/* the link goes to stderr with --json, so stdout stays one JSON document */
	fprintf(cli->json ? stderr : stdout,
		"This device has no enrollment token: an admin approves it at this link\n"
		"(valid until %s, once):\n  %s\n",
		until, link);
	fflush(cli->json ? stderr : stdout);
	if (no_wait) {
		ret = 0;
		goto out;
	}
	fprintf(cli->json ? stderr : stdout, "waiting for the admin (Ctrl-C stops waiting; run "
					     "lightscale register again for a new link)...\n");
	fflush(cli->json ? stderr : stdout);
	for (;;) {
		const char *st;

		ls_ctl_response_free(&resp);
		sleep(2);
		if (reg_status(&c, &resp, &err)) {
			if (err.http_status == 404) {
				fprintf(stderr, "lightscale register: the server no longer knows this "
						"device's request: run lightscale register again\n");
				goto out;
			}
			if (!warned)
				fprintf(stderr, "lightscale register: %s (%s); still waiting\n", err.message,
					err.code);
			warned = true;
			if ((int64_t)time(NULL) > expires + 30) {
				fprintf(stderr, "lightscale register: the approval link expired at %s\n", until);
				goto out;
			}
			continue;
		}
		st = json_string_value(json_object_get(resp.json, "status")) ?: "";
		if (json_is_object(json_object_get(resp.json, "node"))) {
			if (reg_save(p, resp.json, &err)) {
				print_err(&err);
				goto out;
			}
			if (!cli->json)
				printf("approved by an admin\n");
			if (!strcmp(st, "rejected") || !strcmp(st, "revoked")) {
				fprintf(stderr, "lightscale register: the device's node is %s\n", st);
				goto out;
			}
			ret = ls_cli_print(cli, json_incref(resp.json), register_text);
			goto out;
		}
		if (!strcmp(st, "waiting"))
			continue;
		if (!strcmp(st, "rejected"))
			fprintf(stderr, "lightscale register: an admin rejected this device (request %lld); "
					"nothing was registered\n",
				(long long)json_integer_value(json_object_get(resp.json, "request")));
		else if (!strcmp(st, "expired"))
			fprintf(stderr, "lightscale register: the approval link expired at %s before an "
					"admin approved it: run lightscale register again for a new link\n",
				until);
		else
			fprintf(stderr, "lightscale register: the request is %s: run lightscale register "
					"again\n", st);
		goto out;
	}
out:
	ls_ctl_response_free(&resp);
	ls_ctl_free(&c);
	return ret;
}

int ls_cmd_register(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "no-wait", no_argument, NULL, 'n' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	struct ls_ctl_error err;
	struct ls_profile p;
	json_t *doc = NULL;
	bool no_wait = false;
	char *token = NULL;
	size_t len = 0;
	int ch, ret;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, ch, optarg))
			continue;
		switch (ch) {
		case 'n':
			no_wait = true;
			break;
		case 'h':
			fputs(register_help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, register_help, "invalid option");
		}
	}
	if (optind < argc)
		return ls_cli_usage_error(cli, register_help, "unexpected argument `%s'", argv[optind]);
	if (ls_cli_profile(cli, &p))
		return 1;
	ret = read_token(&p, &token, &len);
	if (!ret && !token) {
		ret = register_open(cli, &p, no_wait);
		ls_profile_free(&p);
		return ret;
	}
	if (token)
		ls_memzero(token, len);
	free(token);
	ret = ls_register(&p, &doc, &err);
	ls_profile_free(&p);
	if (ret) {
		print_err(&err);
		if (!strncmp(err.code, "token_", 6))
			fprintf(stderr, "  get a new token (lightscale-control token create --network NAME) and run "
					"lightscale init --profile %s --token TOKEN\n", cli->profile);
		return 1;
	}
	{
		/* an approval network: on a terminal, wait for the admin (trust.h) */
		json_t *keep = json_incref(doc);

		ret = ls_cli_print(cli, doc, register_text);
		if (!ret && !no_wait)
			ret = ls_trust_wait_approval(cli, keep);
		json_decref(keep);
		return ret;
	}
}

static const char heartbeat_help[] =
	"Usage: lightscale heartbeat [--profile P] [--state-dir DIR] [--json]\n"
	"\n"
	"Reports this node's local endpoints (every global address of the other interfaces with\n"
	"the WireGuard listen port), the listen port and the advertised routes once, and prints\n"
	"the server's answer: the endpoint it observed and the netmap version. The agent does\n"
	"this on a timer and whenever the addresses change.\n";



int ls_heartbeat(struct ls_ctl *c, const struct ls_profile *p, json_t **out, struct ls_ctl_error *err)
{
	char rbuf[LS_MAX_ADV_ROUTES][LS_PREFIX_STRLEN];
	const char *routes[LS_MAX_ADV_ROUTES];
	struct ls_ctl_response resp = { 0 };
	char **eps = NULL;
	size_t n_eps = 0;
	int ret;

	for (size_t i = 0; i < p->n_routes; i++) {
		ls_prefix_format(&p->routes[i], rbuf[i]);
		routes[i] = rbuf[i];
	}
	ls_local_endpoints(p->ifname, p->listen_port, &eps, &n_eps);
	struct ls_ctl_heartbeat_req req = {
		.endpoints = (const char *const *)eps, .n_endpoints = n_eps, .listen_port = p->listen_port,
		.routes = routes, .n_routes = p->n_routes, .send_routes = true,
	};
	ret = ls_ctl_heartbeat(c, &req, &resp, err);
	if (!ret && out) {
		json_t *e = json_array();

		for (size_t i = 0; i < n_eps; i++)
			json_array_append_new(e, json_string(eps[i]));
		*out = resp.json ? json_incref(resp.json) : json_object();
		json_object_set_new(*out, "endpoints", e);
	}
	ls_strv_free(eps, n_eps);
	ls_ctl_response_free(&resp);
	return ret;
}

int ls_cmd_heartbeat(struct ls_cli *cli, int argc, char **argv)
{
	struct ls_ctl_error err;
	struct ls_profile p;
	struct ls_ctl c;
	json_t *doc = NULL;
	int ret = ls_cli_simple_opts(cli, argc, argv, heartbeat_help);

	if (ret >= 0)
		return ret;
	if (ls_cli_profile(cli, &p))
		return 1;
	if (ls_cli_ctl(cli, &p, &c)) {
		ls_profile_free(&p);
		return 1;
	}
	ret = ls_heartbeat(&c, &p, &doc, &err);
	ls_ctl_free(&c);
	ls_profile_free(&p);
	if (ret) {
		ls_ctl_error_print(&err, "lightscale heartbeat");
		if (!strcmp(err.code, "unknown_node"))
			fprintf(stderr, "  this node is not registered: run lightscale register --profile %s\n", cli->profile);
		return 1;
	}
	return ls_cli_print(cli, doc, NULL);
}

static const char netmap_help[] =
	"Usage: lightscale netmap [--wait S] [--since V] [--fetch] [--profile P] [--json]\n"
	"\n"
	"Prints the netmap. When an agent runs for the profile, its current map comes from the\n"
	"agent's local API; otherwise (or with --fetch) it is fetched from the control plane and\n"
	"the full map is cached in the profile directory.\n"
	"\n"
	"  --since V   ask for changes after version V (a delta, or {\"unchanged\": true})\n"
	"  --wait S    long-poll: hold up to S seconds for a version newer than --since (or,\n"
	"              without --since, newer than the cached netmap's version)\n"
	"  --fetch     ask the control plane even when an agent runs\n"
	"The server holds one long-poll per node: a --wait poll and the node's running agent\n"
	"cut each other short (each then answers \"unchanged\" early).\n"
	"  --json      the netmap document as JSON (text: a summary)\n";

static void netmap_text(json_t *doc, FILE *f)
{
	json_t *net = json_object_get(doc, "network"), *self = json_object_get(doc, "self"), *p, *v;
	size_t i, j;

	if (json_is_true(json_object_get(doc, "unchanged"))) {
		fprintf(f, "version %lld: unchanged\n", (long long)json_integer_value(json_object_get(doc, "version")));
		return;
	}
	fprintf(f, "version %lld (%s)\n", (long long)json_integer_value(json_object_get(doc, "version")),
		json_is_true(json_object_get(doc, "full")) ? "full" : "delta");
	if (json_is_object(net))
		fprintf(f, "network %s: %s %s, DNS suffix %s\n", json_string_value(json_object_get(net, "name")),
			json_string_value(json_object_get(net, "ipv4")) ?: "-",
			json_string_value(json_object_get(net, "ipv6")) ?: "-",
			json_string_value(json_object_get(net, "dns_suffix")) ?: "-");
	fprintf(f, "self %lld: %s (%s)", (long long)json_integer_value(json_object_get(self, "id")),
		json_string_value(json_object_get(self, "name")), json_string_value(json_object_get(self, "status")));
	json_array_foreach(json_object_get(self, "addresses"), j, v)
		fprintf(f, " %s", json_string_value(v));
	fprintf(f, "\n");
	json_array_foreach(json_object_get(doc, "peers"), i, p) {
		fprintf(f, "peer %lld: %s%s%s", (long long)json_integer_value(json_object_get(p, "id")),
			json_string_value(json_object_get(p, "name")),
			json_is_true(json_object_get(p, "online")) ? " (online)" : "",
			json_is_true(json_object_get(p, "exit_node")) ? " (exit node)" : "");
		json_array_foreach(json_object_get(p, "allowed_ips"), j, v)
			fprintf(f, " %s", json_string_value(v));
		fprintf(f, "\n");
	}
	json_array_foreach(json_object_get(doc, "peers_removed"), j, v)
		fprintf(f, "removed peer %lld\n", (long long)json_integer_value(v));
}

int ls_cmd_netmap(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "wait", required_argument, NULL, 'w' },
		{ "since", required_argument, NULL, 's' },
		{ "fetch", no_argument, NULL, 'f' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	struct ls_ctl_response resp = { 0 };
	struct ls_ctl_error err;
	struct ls_netmap *nm = NULL;
	struct ls_profile p;
	int64_t since = 0, wait_s = 0;
	bool fetch = false;
	char msg[512];
	struct ls_ctl c;
	json_t *doc = NULL;
	int ch, ret;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, ch, optarg))
			continue;
		switch (ch) {
		case 'w':
			if (ls_parse_duration(optarg, &wait_s) || wait_s > 300)
				return ls_cli_usage_error(cli, netmap_help, "invalid --wait `%s' (seconds, at most 300)", optarg);
			break;
		case 's': {
			char *end;

			since = strtoll(optarg, &end, 10);
			if (*end || since < 0)
				return ls_cli_usage_error(cli, netmap_help, "invalid --since `%s'", optarg);
			break;
		}
		case 'f':
			fetch = true;
			break;
		case 'h':
			fputs(netmap_help, stdout);
			return 0;
		default:
			return ls_cli_usage_error(cli, netmap_help, "invalid option");
		}
	}
	if (!fetch && !since && !wait_s && ls_localapi_query(cli->profile, "netmap", &doc) == 0)
		return ls_cli_print(cli, doc, netmap_text);
	if (ls_cli_profile(cli, &p))
		return 1;
	if (ls_cli_ctl(cli, &p, &c)) {
		ls_profile_free(&p);
		return 1;
	}
	if (wait_s && !since) {
		struct ls_netmap *cached = NULL;

		if (ls_profile_load_netmap(&p, &cached, msg, sizeof(msg)) == 0)
			since = cached->version;
		ls_netmap_free(cached);
	}
	ret = ls_ctl_netmap(&c, since, (int)wait_s, &resp, &err);
	if (ret) {
		ls_ctl_error_print(&err, "lightscale netmap");
		if (!strcmp(err.code, "unknown_node"))
			fprintf(stderr, "  this node is not registered: run lightscale register --profile %s\n", p.name);
		goto cleanup;
	}
	if ((ret = ls_netmap_parse_json(resp.json, &nm, msg, sizeof(msg)))) {
		fprintf(stderr, "lightscale netmap: the control plane sent an invalid netmap: %s\n", msg);
		goto cleanup;
	}
	if (nm->full && (ret = ls_profile_save_netmap(&p, nm)))
		fprintf(stderr, "lightscale netmap: cannot cache the netmap in %s: %s\n", p.dir, strerror(-ret));
	doc = ls_netmap_to_json(nm);
	ret = ls_cli_print(cli, doc, netmap_text);
cleanup:
	ls_netmap_free(nm);
	ls_ctl_response_free(&resp);
	ls_ctl_free(&c);
	ls_profile_free(&p);
	return ret ? 1 : 0;
}
