// SPDX-License-Identifier: MIT
/* Admin commands of lightscale-control: clients of the admin API (lib/ctlclient). Each
 * prints text, or the server's JSON with --json, from one response. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "ctlclient.h"
#include "keys.h"
#include "util.h"

#define COMMON_OPTS                                                                          \
	"Common options:\n"                                                                  \
	"  --server URL[,URL...]  control server(s) (default: DIR/control.url)\n"           \
	"  --admin-key-file F     admin key (default: DIR/admin.key)\n"                     \
	"  --state-dir DIR        server state directory (default " LSC_DEFAULT_STATE_DIR ")\n" \
	"  --json                 print the server's JSON instead of text\n"

struct cmd_help {
	const char *group, *action, *text;
};

static const struct cmd_help helps[] = {
	{"network", "create",
	 "Usage: lightscale-control network create NAME [--ipv4 CIDR] [--ipv6 CIDR]\n"
	 "                                        [--dns-suffix SUFFIX] [common options]\n"
	 "\n"
	 "Creates a network. NAME is 1-32 of a-z, 0-9 and '-'. Its overlay prefixes are\n"
	 "derived from the network's id: an IPv4 /18 inside 100.64.0.0/10 and an RFC 4193\n"
	 "IPv6 /48 (fdXX:XXXX:XXXX::/48, the global id hashed from the id); a prefix that\n"
	 "overlaps another network's moves to the next free one. --ipv4 and --ipv6 give\n"
	 "them explicitly. Node names are DNS labels under SUFFIX (default NAME.ls.internal).\n"
	 "\n"
	 "Example: lightscale-control network create home --dns-suffix home.example\n"},
	{"network", "list",
	 "Usage: lightscale-control network list [common options]\n"
	 "\n"
	 "Lists every network with its prefixes and node count.\n"},
	{"network", "show",
	 "Usage: lightscale-control network show NAME [common options]\n"
	 "\n"
	 "Shows one network: id, prefixes, DNS suffix, netmap version, node count and the\n"
	 "number of tokens still usable.\n"},
	{"token", "create",
	 "Usage: lightscale-control token create --network NAME [--ttl DURATION] [--uses N]\n"
	 "                                      [--tag TAG]... [common options]\n"
	 "\n"
	 "Creates an enrollment token for a network and prints it once: only its hash is\n"
	 "stored. A node registers with `lightscale init --token TOKEN'.\n"
	 "\n"
	 "  --ttl DURATION   validity: 90s, 15m, 12h, 7d, 1h30m (default 24h)\n"
	 "  --uses N         registrations it allows (default 1)\n"
	 "  --tag TAG        tag given to the nodes it enrolls (repeatable)\n"
	 "\n"
	 "A refused token tells why: token_invalid, token_expired, token_used_up or\n"
	 "token_revoked.\n"},
	{"token", "list",
	 "Usage: lightscale-control token list --network NAME [common options]\n"
	 "\n"
	 "Lists the tokens of a network (never their secrets) with their status: valid,\n"
	 "expired, used_up or revoked.\n"},
	{"token", "revoke",
	 "Usage: lightscale-control token revoke ID [common options]\n"
	 "\n"
	 "Revokes a token: later registrations with it get token_revoked. Nodes it already\n"
	 "enrolled stay.\n"},
	{"node", "list",
	 "Usage: lightscale-control node list --network NAME [common options]\n"
	 "\n"
	 "Lists the nodes of a network: id, DNS name, addresses, status, online.\n"},
	{"node", "show",
	 "Usage: lightscale-control node show ID [common options]\n"
	 "\n"
	 "Shows one node: names, keys (public), addresses, advertised routes, endpoints,\n"
	 "status, last seen.\n"},
	{"node", "delete",
	 "Usage: lightscale-control node delete ID [common options]\n"
	 "\n"
	 "Removes a node from its network. Its peers drop it with their next netmap; its\n"
	 "machine key can enroll again only with a new token.\n"},
};

static void print_help(FILE *f, const char *group, const char *action)
{
	size_t i;
	bool any = false;

	for (i = 0; i < ARRAY_SIZE(helps); i++) {
		if (strcmp(helps[i].group, group) || (action && strcmp(helps[i].action, action)))
			continue;
		if (any)
			fputs("\n", f);
		fputs(helps[i].text, f);
		any = true;
	}
	if (any)
		fputs("\n" COMMON_OPTS, f);
	else
		fprintf(f, "lightscale-control: no command `%s%s%s'\n", group, action ? " " : "",
			action ? action : "");
}

struct cli {
	const char *server, *key_file, *state_dir;
	const char *network, *ipv4, *ipv6, *dns_suffix, *ttl, *uses;
	const char *tags[32];
	size_t n_tags;
	bool json;
	struct ls_ctl ctl;
};

static int setup_client(struct cli *c)
{
	char path[4200], *url = NULL, *key = NULL;
	size_t len;
	int ret;

	if (c->server) {
		url = strdup(c->server);
	} else {
		snprintf(path, sizeof(path), "%s/control.url", c->state_dir);
		ret = ls_read_file(path, &url, &len, 4096);
		if (ret) {
			fprintf(stderr,
				"lightscale-control: no --server given and cannot read `%s': %s\n",
				path, strerror(-ret));
			return ret;
		}
	}
	ret = ls_ctl_init(&c->ctl, url);
	if (ret) {
		fprintf(stderr, "lightscale-control: invalid server URL `%s'\n", url);
		free(url);
		return ret;
	}
	free(url);
	if (c->key_file)
		snprintf(path, sizeof(path), "%s", c->key_file);
	else
		snprintf(path, sizeof(path), "%s/admin.key", c->state_dir);
	ret = ls_read_file(path, &key, &len, 4096);
	if (ret) {
		fprintf(stderr, "lightscale-control: cannot read the admin key `%s': %s\n", path,
			strerror(-ret));
		return ret;
	}
	key[strcspn(key, "\r\n")] = '\0';
	ret = ls_ctl_set_admin_key(&c->ctl, key);
	ls_memzero(key, len);
	free(key);
	return ret;
}

static void fmt_time(char *out, size_t n, json_int_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!t) {
		snprintf(out, n, "never");
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static const char *js(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static json_int_t ji(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void join(char *out, size_t n, const json_t *a, const char *sep)
{
	size_t i, used = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(a, i, v) {
		int w = snprintf(out + used, n - used, "%s%s", i ? sep : "", json_string_value(v));

		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
	}
	if (!used)
		snprintf(out, n, "-");
}

static void print_network(const json_t *j)
{
	printf("network %s\n", js(j, "name"));
	printf("  id          %s\n", js(j, "id"));
	printf("  ipv4        %s\n", js(j, "ipv4"));
	printf("  ipv6        %s\n", js(j, "ipv6"));
	printf("  dns suffix  %s\n", js(j, "dns_suffix"));
	printf("  version     %" JSON_INTEGER_FORMAT "\n", ji(j, "version"));
	if (json_object_get(j, "nodes"))
		printf("  nodes       %" JSON_INTEGER_FORMAT "\n", ji(j, "nodes"));
	if (json_object_get(j, "valid_tokens"))
		printf("  tokens      %" JSON_INTEGER_FORMAT " valid\n", ji(j, "valid_tokens"));
}

static void print_token(const json_t *j)
{
	char t[64], tags[512];

	fmt_time(t, sizeof(t), ji(j, "expires_at"));
	join(tags, sizeof(tags), json_object_get(j, "tags"), ",");
	if (json_object_get(j, "token"))
		printf("token     %s\n", js(j, "token"));
	printf("id        %s\n", js(j, "id"));
	printf("network   %s\n", js(j, "network"));
	printf("status    %s\n", js(j, "status"));
	printf("expires   %s\n", t);
	printf("uses      %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "\n", ji(j, "uses"),
	       ji(j, "max_uses"));
	printf("tags      %s\n", tags);
}

static void print_node(const json_t *j)
{
	char t[64], buf[1024];

	printf("node %" JSON_INTEGER_FORMAT " %s\n", ji(j, "id"), js(j, "dns_name"));
	printf("  network      %s\n", js(j, "network"));
	printf("  hostname     %s\n", js(j, "hostname"));
	join(buf, sizeof(buf), json_object_get(j, "addresses"), " ");
	printf("  addresses    %s\n", buf);
	printf("  wg key       %s\n", js(j, "wg_key"));
	printf("  machine key  %s\n", js(j, "machine_key"));
	join(buf, sizeof(buf), json_object_get(j, "routes"), " ");
	printf("  routes       %s\n", buf);
	join(buf, sizeof(buf), json_object_get(j, "endpoints"), " ");
	printf("  endpoints    %s\n", buf);
	join(buf, sizeof(buf), json_object_get(j, "tags"), " ");
	printf("  tags         %s\n", buf);
	printf("  status       %s\n", js(j, "status"));
	fmt_time(t, sizeof(t), ji(j, "last_seen"));
	printf("  last seen    %s%s\n", t, json_is_true(json_object_get(j, "online")) ? " (online)" : "");
}

static int do_request(struct cli *c, const char *method, const char *path, json_t *body,
		      struct ls_ctl_response *resp)
{
	struct ls_ctl_error err;
	int ret;

	ret = ls_ctl_request_json(&c->ctl, method, path, body, LS_CTL_AUTH_ADMIN, 0, resp, &err);
	json_decref(body);
	if (ret) {
		ls_ctl_error_print(&err, "lightscale-control");
		return ret;
	}
	if (c->json) {
		char *s = json_dumps(resp->json, JSON_INDENT(2) | JSON_SORT_KEYS);

		if (s)
			puts(s);
		free(s);
	}
	return 0;
}

static bool valid_path_part(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_' || *s == '.'))
			return false;
	return true;
}

int lsc_cli_main(int argc, char **argv, const char *cmd)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 'S'},
		{"admin-key-file", required_argument, NULL, 'K'},
		{"state-dir", required_argument, NULL, 'D'},
		{"json", no_argument, NULL, 'j'},
		{"network", required_argument, NULL, 'n'},
		{"ipv4", required_argument, NULL, '4'},
		{"ipv6", required_argument, NULL, '6'},
		{"dns-suffix", required_argument, NULL, 'd'},
		{"ttl", required_argument, NULL, 't'},
		{"uses", required_argument, NULL, 'u'},
		{"tag", required_argument, NULL, 'g'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct cli c = {.state_dir = LSC_DEFAULT_STATE_DIR};
	struct ls_ctl_response resp = {0};
	const char *action, *arg = NULL;
	char path[512];
	int ch, ret = 0;
	bool want_help = false;
	size_t i;

	if (!strcmp(cmd, "help")) {
		if (argc < 1) {
			fprintf(stderr, "lightscale-control help: which command?\n");
			return 2;
		}
		print_help(stdout, argv[0], argc > 1 ? argv[1] : NULL);
		return 0;
	}
	if (strcmp(cmd, "network") && strcmp(cmd, "token") && strcmp(cmd, "node")) {
		fprintf(stderr, "lightscale-control: unknown command `%s' (see --help)\n", cmd);
		return 2;
	}
	if (argc < 2 || argv[1][0] == '-') {
		print_help(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr, cmd, NULL);
		return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	action = argv[1];
	optind = 2;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'S': c.server = optarg; break;
		case 'K': c.key_file = optarg; break;
		case 'D': c.state_dir = optarg; break;
		case 'j': c.json = true; break;
		case 'n': c.network = optarg; break;
		case '4': c.ipv4 = optarg; break;
		case '6': c.ipv6 = optarg; break;
		case 'd': c.dns_suffix = optarg; break;
		case 't': c.ttl = optarg; break;
		case 'u': c.uses = optarg; break;
		case 'g':
			if (c.n_tags == ARRAY_SIZE(c.tags)) {
				fprintf(stderr, "lightscale-control: too many --tag\n");
				return 2;
			}
			c.tags[c.n_tags++] = optarg;
			break;
		case 'h': want_help = true; break;
		default: print_help(stderr, cmd, action); return 2;
		}
	}
	if (want_help) {
		print_help(stdout, cmd, action);
		return 0;
	}
	if (optind < argc)
		arg = argv[optind++];
	if (optind < argc) {
		fprintf(stderr, "lightscale-control: unexpected argument `%s'\n", argv[optind]);
		return 2;
	}
#define NEED_ARG(what)                                                                        \
	do {                                                                                  \
		if (!arg || !valid_path_part(arg)) {                                          \
			fprintf(stderr, "lightscale-control %s %s: " what " required%s%s%s\n", cmd, \
				action, arg ? " (invalid `" : "", arg ? arg : "", arg ? "')" : ""); \
			return 2;                                                             \
		}                                                                             \
	} while (0)
#define NEED_NETWORK()                                                                        \
	do {                                                                                  \
		if (!c.network || !valid_path_part(c.network)) {                              \
			fprintf(stderr, "lightscale-control %s %s: --network NAME required\n", cmd, \
				action);                                                      \
			return 2;                                                             \
		}                                                                             \
	} while (0)

	if (!strcmp(cmd, "network") && !strcmp(action, "create")) {
		json_t *b;

		NEED_ARG("NAME");
		b = json_pack("{s:s, s:s?, s:s?, s:s?}", "name", arg, "ipv4", c.ipv4, "ipv6", c.ipv6,
			      "dns_suffix", c.dns_suffix);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "POST", "/v1/admin/networks", b, &resp)))
			goto out;
		if (!c.json)
			print_network(resp.json);
	} else if (!strcmp(cmd, "network") && !strcmp(action, "list")) {
		json_t *v;

		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", "/v1/admin/networks", NULL, &resp)))
			goto out;
		if (!c.json) {
			printf("%-20s %-18s %-24s %6s  %s\n", "NAME", "IPV4", "IPV6", "NODES", "DNS SUFFIX");
			json_array_foreach(json_object_get(resp.json, "networks"), i, v)
				printf("%-20s %-18s %-24s %6" JSON_INTEGER_FORMAT "  %s\n", js(v, "name"),
				       js(v, "ipv4"), js(v, "ipv6"), ji(v, "nodes"), js(v, "dns_suffix"));
		}
	} else if (!strcmp(cmd, "network") && !strcmp(action, "show")) {
		NEED_ARG("NAME");
		snprintf(path, sizeof(path), "/v1/admin/networks/%s", arg);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", path, NULL, &resp)))
			goto out;
		if (!c.json)
			print_network(resp.json);
	} else if (!strcmp(cmd, "token") && !strcmp(action, "create")) {
		int64_t ttl = 0;
		long long uses = 0;
		json_t *b = json_object(), *tags = json_array();
		char *end = NULL;

		NEED_NETWORK();
		if (c.ttl && (ls_parse_duration(c.ttl, &ttl) || ttl <= 0)) {
			fprintf(stderr, "lightscale-control: invalid duration `%s'\n", c.ttl);
			json_decref(b);
			json_decref(tags);
			return 2;
		}
		if (c.uses) {
			uses = strtoll(c.uses, &end, 10);
			if (!*c.uses || *end || uses < 1) {
				fprintf(stderr, "lightscale-control: invalid --uses `%s'\n", c.uses);
				json_decref(b);
				json_decref(tags);
				return 2;
			}
			json_object_set_new(b, "uses", json_integer(uses));
		}
		if (ttl)
			json_object_set_new(b, "ttl", json_integer(ttl));
		for (i = 0; i < c.n_tags; i++)
			json_array_append_new(tags, json_string(c.tags[i]));
		json_object_set_new(b, "tags", tags);
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/tokens", c.network);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "POST", path, b, &resp)))
			goto out;
		if (!c.json)
			print_token(resp.json);
	} else if (!strcmp(cmd, "token") && !strcmp(action, "list")) {
		json_t *v;

		NEED_NETWORK();
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/tokens", c.network);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", path, NULL, &resp)))
			goto out;
		if (!c.json) {
			printf("%-14s %-8s %-9s %-24s %s\n", "ID", "STATUS", "USES", "EXPIRES", "TAGS");
			json_array_foreach(json_object_get(resp.json, "tokens"), i, v) {
				char t[64], tags[256], u[32];

				fmt_time(t, sizeof(t), ji(v, "expires_at"));
				join(tags, sizeof(tags), json_object_get(v, "tags"), ",");
				snprintf(u, sizeof(u), "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
					 ji(v, "uses"), ji(v, "max_uses"));
				printf("%-14s %-8s %-9s %-24s %s\n", js(v, "id"), js(v, "status"), u, t,
				       tags);
			}
		}
	} else if (!strcmp(cmd, "token") && !strcmp(action, "revoke")) {
		NEED_ARG("ID");
		snprintf(path, sizeof(path), "/v1/admin/tokens/%s", arg);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "DELETE", path, NULL, &resp)))
			goto out;
		if (!c.json)
			printf("revoked token %s\n", js(resp.json, "id"));
	} else if (!strcmp(cmd, "node") && !strcmp(action, "list")) {
		json_t *v;

		NEED_NETWORK();
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/nodes", c.network);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", path, NULL, &resp)))
			goto out;
		if (!c.json) {
			printf("%-6s %-36s %-30s %-8s %s\n", "ID", "DNS NAME", "ADDRESSES", "STATUS", "ONLINE");
			json_array_foreach(json_object_get(resp.json, "nodes"), i, v) {
				char a[256];

				join(a, sizeof(a), json_object_get(v, "addresses"), " ");
				printf("%-6" JSON_INTEGER_FORMAT " %-36s %-30s %-8s %s\n", ji(v, "id"),
				       js(v, "dns_name"), a, js(v, "status"),
				       json_is_true(json_object_get(v, "online")) ? "yes" : "no");
			}
		}
	} else if (!strcmp(cmd, "node") && (!strcmp(action, "show") || !strcmp(action, "delete"))) {
		bool del = !strcmp(action, "delete");

		NEED_ARG("ID");
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s", arg);
		if ((ret = setup_client(&c)) ||
		    (ret = do_request(&c, del ? "DELETE" : "GET", path, NULL, &resp)))
			goto out;
		if (!c.json) {
			if (del)
				printf("deleted node %" JSON_INTEGER_FORMAT " %s\n", ji(resp.json, "id"),
				       js(resp.json, "dns_name"));
			else
				print_node(resp.json);
		}
	} else {
		fprintf(stderr, "lightscale-control: unknown command `%s %s'\n", cmd, action);
		print_help(stderr, cmd, NULL);
		return 2;
	}
out:
	ls_ctl_response_free(&resp);
	ls_ctl_free(&c.ctl);
	return ret ? 1 : 0;
}
