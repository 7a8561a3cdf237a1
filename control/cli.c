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

#include "audit.h"
#include "control.h"
#include "ctlclient.h"
#include "keys.h"
#include "tlsid.h"
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
	{"network", "set",
	 "Usage: lightscale-control network set NAME [--require-approval | --no-require-approval]\n"
	 "                                     [--route-approval | --no-route-approval]\n"
	 "                                     [--key-lifetime DURATION|none]\n"
	 "\n"
	 "Changes a network's settings (network create takes the same flags):\n"
	 "  --require-approval  a newly registered node is `pending': its netmap has no\n"
	 "                      peers and no one else sees it until `node approve ID'\n"
	 "  --route-approval    advertised routes and exit-node capability (0.0.0.0/0,\n"
	 "                      ::/0) take effect only once approved (`route approve')\n"
	 "  --key-lifetime D    node keys expire D after registration or rotation (nodes\n"
	 "                      rotate them with POST /v1/rotate); an expired node leaves\n"
	 "                      its peers' netmaps and shows as expired in node list\n"
	 "Every node gets a full netmap at its next long-poll.\n"},
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
	{"node", "approve",
	 "Usage: lightscale-control node approve ID [common options]\n"
	 "\n"
	 "Approves a pending node: it gets its peers and they get it at their next\n"
	 "long-poll.\n"},
	{"node", "reject",
	 "Usage: lightscale-control node reject ID [common options]\n"
	 "\n"
	 "Rejects a pending node: it never appears in a netmap and its requests get 403.\n"},
	{"node", "revoke",
	 "Usage: lightscale-control node revoke ID [common options]\n"
	 "\n"
	 "Revokes a node: its keys are dead, its peers drop it at their next long-poll and\n"
	 "its signed requests get 403 node_revoked.\n"},
	{"route", "list",
	 "Usage: lightscale-control route list --network NAME [common options]\n"
	 "\n"
	 "Lists advertised routes: node, prefix, approved, effective (in netmaps), exit.\n"},
	{"route", "approve",
	 "Usage: lightscale-control route approve NODE-ID PREFIX... [common options]\n"
	 "\n"
	 "Approves routes a node advertises (0.0.0.0/0 and ::/0 make it an exit node).\n"},
	{"route", "reject",
	 "Usage: lightscale-control route reject NODE-ID PREFIX... [common options]\n"
	 "\n"
	 "Withdraws the approval of routes of a node.\n"},
	{"acl", "set",
	 "Usage: lightscale-control acl set --network NAME FILE [common options]\n"
	 "\n"
	 "Sets the network's ACL policy (JSON, see lib/acl.h): groups, rules {src, dst,\n"
	 "ports, proto}, visibility. Default deny once a policy exists. A policy that does\n"
	 "not validate is refused with the rule index and field, and the old one stays.\n"},
	{"acl", "get",
	 "Usage: lightscale-control acl get --network NAME [common options]\n"
	 "\n"
	 "Prints the network's ACL policy (null: none, every node reaches every other).\n"},
	{"acl", "delete",
	 "Usage: lightscale-control acl delete --network NAME [common options]\n"
	 "\n"
	 "Removes the policy: allow all.\n"},
	{"acl", "test",
	 "Usage: lightscale-control acl test --network NAME --src NODE --dst NODE[:PORT[/PROTO]]\n"
	 "\n"
	 "Evaluates the policy: allowed or denied (with the rule that allows), and whether\n"
	 "the two nodes see each other. NODE is a name or an id. Exit status 0 allowed,\n"
	 "3 denied.\n"},
	{"audit", "list",
	 "Usage: lightscale-control audit list [--since N] [common options]\n"
	 "\n"
	 "Lists the audit log (security events, a hash chain) after entry N.\n"},
	{"audit", "verify",
	 "Usage: lightscale-control audit verify [--identity KEY|FILE] [common options]\n"
	 "\n"
	 "Fetches the whole audit log, recomputes the hash chain and checks the head's\n"
	 "signature with the deployment's identity key (default DIR/identity.pub). A\n"
	 "tampered entry is named by its sequence number. Exit status 0 ok, 3 tampered.\n"},
	{"admin-key", "create",
	 "Usage: lightscale-control admin-key create [--name NAME] [--ttl DURATION] [common options]\n"
	 "\n"
	 "Creates an admin key and prints it once (only its hash is stored).\n"},
	{"admin-key", "list",
	 "Usage: lightscale-control admin-key list [common options]\n"
	 "\n"
	 "Lists admin keys: id, name, status (valid, expired, revoked), last use; `*' marks\n"
	 "the key of this request.\n"},
	{"admin-key", "revoke",
	 "Usage: lightscale-control admin-key revoke ID [common options]\n"
	 "\n"
	 "Revokes an admin key at once. The last valid key cannot be revoked.\n"},
	{"admin-key", "rotate",
	 "Usage: lightscale-control admin-key rotate [--ttl DURATION] [common options]\n"
	 "\n"
	 "Replaces the admin key in use: creates a new one, writes it to the admin key file\n"
	 "(--admin-key-file, default DIR/admin.key, mode 0600) and revokes the old one.\n"},
	{"tls", "status",
	 "Usage: lightscale-control tls status [common options]\n"
	 "\n"
	 "The TLS key this server serves and the one it has staged, and every endorsed pin\n"
	 "of the deployment (what netmaps publish): state (next: staged, published, not\n"
	 "served yet; active: served; retiring: no longer served, still published until\n"
	 "RETIRE), the server holding it, and whether its endorsement by the identity key\n"
	 "verifies. `*' marks the key this server serves. For a staged key: how many active\n"
	 "nodes made a request since it was published (they hold a netmap carrying it).\n"},
	{"tls", "rotate",
	 "Usage: lightscale-control tls rotate [--cert F --key F] [common options]\n"
	 "\n"
	 "Stages a new TLS key for the server the command talks to (DIR/tls-next.key,\n"
	 "tls-next.crt, tls-next.pin): it is endorsed by the identity key and published in\n"
	 "every netmap at once, while the server keeps serving its current key. Pinned\n"
	 "nodes pick it up at their next long-poll. Activate it once they have (tls status;\n"
	 "a node that is offline during the whole window must be enrolled again).\n"
	 "For an HA set, run it against each server (--state-dir of each).\n"
	 "--cert F --key F stage this certificate and key (PEM, paths on the server's host;\n"
	 "the server copies them) instead of a new self-signed one: the way to rotate a\n"
	 "server started with --tls-cert. After `tls activate' install the pair as its\n"
	 "--tls-cert and --tls-key before the next restart.\n"},
	{"tls", "activate",
	 "Usage: lightscale-control tls activate [--retire-after DURATION] [common options]\n"
	 "\n"
	 "Switches the server to its staged key from the next TLS handshake on (open\n"
	 "connections keep theirs). Refused unless the staged key is endorsed and published\n"
	 "(state next). The previous key stays published as `retiring' for DURATION\n"
	 "(default 24h; 0: withdrawn at once), then netmaps stop carrying it. SIGHUP and a\n"
	 "restart of the server activate a staged key too.\n"},
	{"tls", "withdraw",
	 "Usage: lightscale-control tls withdraw PIN [common options]\n"
	 "\n"
	 "Withdraws an endorsed pin now (netmaps stop carrying it; pinned nodes stop\n"
	 "accepting it). A pin a server serves (active) cannot be withdrawn.\n"},
	{"device", "list",
	 "Usage: lightscale-control device list [common options]\n"
	 "\n"
	 "Lists the device requests (registrations without a token, newest first, at most\n"
	 "500): id, hostname, source address, status (waiting, expired, approved, rejected,\n"
	 "removed), the node an approval made and the admin key that decided it. A waiting\n"
	 "request's approval link works until EXPIRES.\n"},
	{"device", "approve",
	 "Usage: lightscale-control device approve ID --network NAME [common options]\n"
	 "\n"
	 "Approves waiting device request ID into network NAME (what the approval page's\n"
	 "Approve does): the node is created with its name and addresses, and the device's\n"
	 "waiting `lightscale register' completes.\n"},
	{"device", "reject",
	 "Usage: lightscale-control device reject ID [common options]\n"
	 "\n"
	 "Rejects waiting device request ID: no node is made, the device's register ends\n"
	 "with an error, and its machine key cannot ask again.\n"},
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
	int require_approval, route_approval; /* -1 unset */
	const char *src, *dst, *since, *identity, *key_lifetime, *name, *retire_after;
	const char *cert, *key; /* tls rotate: an operator's pair */
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
	/* https: pin the server's key (DIR/tls.pin, written by serve) and its staged one
	 * (DIR/tls-next.pin: the server may switch while we talk to it) */
	{
		char pins[2 * LS_PIN_STRLEN + 2] = "";
		static const char *const files[] = {"tls.pin", "tls-next.pin"};

		for (size_t f = 0; f < 2; f++) {
			snprintf(path, sizeof(path), "%s/%s", c->state_dir, files[f]);
			if (ls_read_file(path, &key, &len, 4096) == 0) {
				key[strcspn(key, "\r\n")] = '\0';
				if (!strncmp(key, "sha256//", 8) && strlen(key) < LS_PIN_STRLEN)
					snprintf(pins + strlen(pins), sizeof(pins) - strlen(pins), "%s%s",
						 pins[0] ? ";" : "", key);
				free(key);
				key = NULL;
			}
		}
		if (pins[0])
			ls_ctl_set_pinned_keys(&c->ctl, pins);
	}
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

/* the identity public key: --identity KEY or FILE, else DIR/identity.pub */
static int load_identity(struct cli *c, uint8_t pk[32])
{
	char path[4200], *buf = NULL;
	const char *src = c->identity;
	size_t len;
	int ret;

	if (src && strlen(src) == 44 && !ls_key_from_base64(pk, src))
		return 0;
	if (src)
		snprintf(path, sizeof(path), "%s", src);
	else
		snprintf(path, sizeof(path), "%s/identity.pub", c->state_dir);
	ret = ls_read_file(path, &buf, &len, 4096);
	if (ret) {
		fprintf(stderr, "lightscale-control: cannot read the identity key `%s': %s\n", path,
			strerror(-ret));
		return ret;
	}
	buf[strcspn(buf, "\r\n")] = '\0';
	ret = ls_key_from_base64(pk, buf) ? -EINVAL : 0;
	if (ret)
		fprintf(stderr, "lightscale-control: `%s' holds no identity key\n", path);
	free(buf);
	return ret;
}

/* audit list | verify: 0 ok, 1 error, 3 the log does not verify */
static int audit_cmd(struct cli *c, bool verify)
{
	struct ls_ctl_response resp = {0};
	struct ls_ctl_error err;
	struct ls_audit_entry *ents = NULL;
	struct ls_audit_head head = {0};
	json_t *all = json_array(), *jhead = NULL, *v;
	uint8_t pk[32], prev[LS_AUDIT_HASH_LEN] = {0};
	long long since = c->since ? strtoll(c->since, NULL, 10) : 0;
	char path[128];
	size_t i, n = 0;
	long bad;
	int ret = 0, status = 0;

	if (verify) {
		since = 0;
		if (load_identity(c, pk)) {
			json_decref(all);
			return 1;
		}
	}
	for (;;) {
		bool more;

		snprintf(path, sizeof(path), "/v1/audit?since=%lld", since);
		ret = ls_ctl_request_json(&c->ctl, "GET", path, NULL, LS_CTL_AUTH_ADMIN, 0, &resp, &err);
		if (ret) {
			ls_ctl_error_print(&err, "lightscale-control");
			status = 1;
			goto out;
		}
		json_array_foreach(json_object_get(resp.json, "entries"), i, v) {
			json_array_append(all, v);
			since = json_integer_value(json_object_get(v, "seq"));
		}
		more = json_is_true(json_object_get(resp.json, "more"));
		json_decref(jhead);
		jhead = json_incref(json_object_get(resp.json, "head"));
		ls_ctl_response_free(&resp);
		if (!more)
			break;
	}
	if (!verify) {
		if (c->json) {
			char *t = json_dumps(json_pack("{s:O, s:O}", "entries", all, "head", jhead),
					     JSON_INDENT(2) | JSON_SORT_KEYS);

			puts(t ? t : "{}");
			free(t);
		} else {
			printf("%-6s %-20s %-15s %s\n", "SEQ", "TIME", "TYPE", "DATA");
			json_array_foreach(all, i, v) {
				char t[64];

				fmt_time(t, sizeof(t), ji(v, "time"));
				printf("%-6" JSON_INTEGER_FORMAT " %-20.19s %-15s %s\n", ji(v, "seq"), t,
				       js(v, "type"), js(v, "data"));
			}
		}
		goto out;
	}
	n = json_array_size(all);
	ents = calloc(n + 1, sizeof(*ents));
	if (!ents) {
		status = 1;
		goto out;
	}
	json_array_foreach(all, i, v) {
		ents[i].seq = (uint64_t)ji(v, "seq");
		ents[i].time = ji(v, "time");
		ents[i].type = js(v, "type");
		ents[i].data = js(v, "data");
		if (ls_hex_decode(ents[i].hash, sizeof(ents[i].hash), js(v, "hash")) != LS_AUDIT_HASH_LEN)
			memset(ents[i].hash, 0, sizeof(ents[i].hash));
	}
	if (n && ents[0].seq != 1) {
		printf("audit log: entry 1 is missing (the log starts at %" PRIu64 ")\n", ents[0].seq);
		status = 3;
		goto out;
	}
	bad = ls_audit_verify_chain(ents, n, prev);
	if (bad >= 0) {
		printf("audit log: entry %" PRIu64 " (%s) does not verify: its content or hash was "
		       "changed, or an entry before it is missing\n",
		       ents[bad].seq, ents[bad].type);
		status = 3;
		goto out;
	}
	if (ls_audit_head_from_json(jhead, &head)) {
		printf("audit log: the server sent no valid head\n");
		status = 3;
		goto out;
	}
	if (!ls_audit_verify_head(&head, pk)) {
		printf("audit log: the head (entry %" PRIu64 ") is not signed by the identity key\n",
		       head.seq);
		status = 3;
		goto out;
	}
	if (head.seq != (n ? ents[n - 1].seq : 0) ||
	    (n && memcmp(head.hash, ents[n - 1].hash, LS_AUDIT_HASH_LEN))) {
		printf("audit log: the signed head (entry %" PRIu64 ") does not match the entries "
		       "(last %" PRIu64 ")\n", head.seq, n ? ents[n - 1].seq : 0);
		status = 3;
		goto out;
	}
	if (c->json) {
		char *t = json_dumps(json_pack("{s:b, s:I}", "ok", 1, "entries", (json_int_t)n),
				     JSON_COMPACT);

		puts(t ? t : "{}");
		free(t);
	} else {
		printf("audit log: %zu entries, chain and signed head verify\n", n);
	}
out:
	free(ents);
	json_decref(all);
	json_decref(jhead);
	return status;
}

/* tls status|rotate|activate|withdraw: 0, 1 (failed, printed), 2 (usage) */
static int tls_cmd(struct cli *c, const char *action, const char *arg, struct ls_ctl_response *resp)
{
	json_t *b = NULL, *v;
	char t1[64], t2[64];
	int ret;
	size_t i;

	if (!strcmp(action, "status")) {
		if ((ret = setup_client(c)) || (ret = do_request(c, "GET", "/v1/admin/tls", NULL, resp)))
			return 1;
		if (c->json)
			return 0;
		v = json_object_get(resp->json, "server");
		printf("server   %s\nserving  %s\nstaged   %s\nidentity %s\n\n", js(v, "id"), js(v, "serving"),
		       json_string_value(json_object_get(v, "staged")) ? js(v, "staged") : "none", js(resp->json, "identity"));
		printf("  %-52s %-9s %-10s %-8s %s\n", "PIN", "STATE", "SERVER", "ENDORSED", "SINCE / RETIRES");
		json_array_foreach(json_object_get(resp->json, "pins"), i, v) {
			fmt_time(t1, sizeof(t1), ji(v, "activated_at") ? ji(v, "activated_at") : ji(v, "created_at"));
			fmt_time(t2, sizeof(t2), ji(v, "retire_at"));
			printf("%s %-52s %-9s %-10.10s %-8s %s%s%s\n",
			       json_is_true(json_object_get(v, "served_here")) ? "*" : " ", js(v, "pin"),
			       js(v, "state"), js(v, "server_id")[0] ? js(v, "server_id") : "-",
			       json_is_true(json_object_get(v, "endorsed")) ? "yes" : "NO", t1,
			       ji(v, "retire_at") ? " / " : "", ji(v, "retire_at") ? t2 : "");
			if (json_object_get(v, "nodes"))
				printf("  (staged: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
				       " active nodes have made a request since it was published)\n",
				       ji(v, "nodes_seen_since"), ji(v, "nodes"));
		}
		return 0;
	}
	if (!strcmp(action, "rotate")) {
		if (!c->cert != !c->key) {
			fprintf(stderr, "lightscale-control tls rotate: --cert and --key go together\n");
			return 2;
		}
		if (c->cert) {
			char *cp = realpath(c->cert, NULL), *kp = realpath(c->key, NULL);

			if (!cp || !kp) {
				fprintf(stderr, "lightscale-control: cannot find `%s': %s\n",
					!cp ? c->cert : c->key, strerror(errno));
				free(cp);
				free(kp);
				return 2;
			}
			b = json_pack("{s:s, s:s}", "cert_file", cp, "key_file", kp);
			free(cp);
			free(kp);
		}
		if ((ret = setup_client(c)) || (ret = do_request(c, "POST", "/v1/admin/tls/rotate", b, resp)))
			return 1;
		if (!c->json)
			printf("staged TLS key %s (endorsed and published; serving %s until `tls activate')\n",
			       js(resp->json, "pin"), js(resp->json, "serving"));
		return 0;
	}
	if (!strcmp(action, "activate")) {
		b = json_object();
		if (c->retire_after) {
			int64_t secs;

			if (ls_parse_duration(c->retire_after, &secs) || secs < 0) {
				fprintf(stderr, "lightscale-control: invalid duration `%s'\n", c->retire_after);
				json_decref(b);
				return 2;
			}
			json_object_set_new(b, "retire_after", json_integer(secs));
		}
		if ((ret = setup_client(c)) || (ret = do_request(c, "POST", "/v1/admin/tls/activate", b, resp))) {
			json_decref(b);
			return 1;
		}
		json_decref(b);
		if (!c->json) {
			json_t *in = json_object_get(resp->json, "install");

			fmt_time(t1, sizeof(t1), ji(resp->json, "retire_at"));
			printf("serving %s\n", js(resp->json, "pin"));
			if (js(resp->json, "previous")[0])
				printf("%s stays published until %s\n", js(resp->json, "previous"), t1);
			if (in)
				printf("before the next restart install %s and %s as --tls-cert %s and its "
				       "--tls-key (a restart serves --tls-cert)\n",
				       js(in, "cert"), js(in, "key"), js(in, "as"));
		}
		return 0;
	}
	if (!strcmp(action, "withdraw")) {
		if (!arg || strncmp(arg, "sha256//", 8)) {
			fprintf(stderr, "lightscale-control tls withdraw: which pin (sha256//BASE64)?\n");
			return 2;
		}
		b = json_pack("{s:s}", "pin", arg);
		if ((ret = setup_client(c)) || (ret = do_request(c, "POST", "/v1/admin/tls/withdraw", b, resp))) {
			json_decref(b);
			return 1;
		}
		json_decref(b);
		if (!c->json)
			printf("withdrew %s\n", js(resp->json, "pin"));
		return 0;
	}
	fprintf(stderr, "lightscale-control: unknown command `tls %s'\n", action);
	print_help(stderr, "tls", NULL);
	return 2;
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
		{"require-approval", no_argument, NULL, 'A'},
		{"no-require-approval", no_argument, NULL, 'a'},
		{"route-approval", no_argument, NULL, 'R'},
		{"no-route-approval", no_argument, NULL, 'r'},
		{"src", required_argument, NULL, 's'},
		{"dst", required_argument, NULL, 'T'},
		{"since", required_argument, NULL, 'N'},
		{"identity", required_argument, NULL, 'I'},
		{"key-lifetime", required_argument, NULL, 'L'},
		{"name", required_argument, NULL, 'M'},
		{"retire-after", required_argument, NULL, 'W'},
		{"cert", required_argument, NULL, 'C'},
		{"key", required_argument, NULL, 'Y'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	struct cli c = {.state_dir = LSC_DEFAULT_STATE_DIR, .require_approval = -1,
			.route_approval = -1};
	const char *rest[64];
	size_t n_rest = 0;
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
	if (strcmp(cmd, "network") && strcmp(cmd, "token") && strcmp(cmd, "node") &&
	    strcmp(cmd, "route") && strcmp(cmd, "acl") && strcmp(cmd, "audit") &&
	    strcmp(cmd, "admin-key") && strcmp(cmd, "tls") && strcmp(cmd, "device")) {
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
		case 'A': c.require_approval = 1; break;
		case 'a': c.require_approval = 0; break;
		case 'R': c.route_approval = 1; break;
		case 'r': c.route_approval = 0; break;
		case 's': c.src = optarg; break;
		case 'T': c.dst = optarg; break;
		case 'N': c.since = optarg; break;
		case 'I': c.identity = optarg; break;
		case 'L': c.key_lifetime = optarg; break;
		case 'M': c.name = optarg; break;
		case 'W': c.retire_after = optarg; break;
		case 'C': c.cert = optarg; break;
		case 'Y': c.key = optarg; break;
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
	while (optind < argc && n_rest < ARRAY_SIZE(rest) && !strcmp(cmd, "route"))
		rest[n_rest++] = argv[optind++];
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
		if (c.require_approval >= 0)
			json_object_set_new(b, "require_approval", json_boolean(c.require_approval));
		if (c.route_approval >= 0)
			json_object_set_new(b, "route_approval", json_boolean(c.route_approval));
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
	} else if (!strcmp(cmd, "network") && !strcmp(action, "set")) {
		json_t *b = json_object();

		NEED_ARG("NAME");
		if (c.require_approval >= 0)
			json_object_set_new(b, "require_approval", json_boolean(c.require_approval));
		if (c.route_approval >= 0)
			json_object_set_new(b, "route_approval", json_boolean(c.route_approval));
		if (c.key_lifetime) {
			int64_t lt = 0;

			if (strcmp(c.key_lifetime, "none") &&
			    (ls_parse_duration(c.key_lifetime, &lt) || lt <= 0)) {
				fprintf(stderr, "lightscale-control: invalid duration `%s'\n", c.key_lifetime);
				json_decref(b);
				return 2;
			}
			json_object_set_new(b, "key_lifetime", json_integer(lt));
		}
		snprintf(path, sizeof(path), "/v1/admin/networks/%s", arg);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "PATCH", path, b, &resp)))
			goto out;
		if (!c.json)
			print_network(resp.json);
	} else if (!strcmp(cmd, "node") && (!strcmp(action, "approve") || !strcmp(action, "reject") ||
					    !strcmp(action, "revoke"))) {
		NEED_ARG("ID");
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s/%s", arg, action);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "POST", path, NULL, &resp)))
			goto out;
		if (!c.json)
			printf("node %" JSON_INTEGER_FORMAT " %s: %s\n", ji(resp.json, "id"),
			       js(resp.json, "dns_name"), js(resp.json, "status"));
	} else if (!strcmp(cmd, "route") && !strcmp(action, "list")) {
		json_t *v;

		NEED_NETWORK();
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/routes", c.network);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", path, NULL, &resp)))
			goto out;
		if (!c.json) {
			printf("%-6s %-24s %-20s %-9s %-10s %s\n", "NODE", "NAME", "PREFIX", "APPROVED",
			       "EFFECTIVE", "EXIT");
			json_array_foreach(json_object_get(resp.json, "routes"), i, v)
				printf("%-6" JSON_INTEGER_FORMAT " %-24s %-20s %-9s %-10s %s\n",
				       ji(v, "node"), js(v, "name"), js(v, "prefix"),
				       json_is_true(json_object_get(v, "approved")) ? "yes" : "no",
				       json_is_true(json_object_get(v, "effective")) ? "yes" : "no",
				       json_is_true(json_object_get(v, "exit")) ? "yes" : "no");
		}
	} else if (!strcmp(cmd, "route") && (!strcmp(action, "approve") || !strcmp(action, "reject"))) {
		json_t *b, *a = json_array();

		NEED_ARG("NODE-ID");
		if (!n_rest) {
			json_decref(a);
			fprintf(stderr, "lightscale-control route %s: PREFIX required\n", action);
			return 2;
		}
		for (i = 0; i < n_rest; i++)
			json_array_append_new(a, json_string(rest[i]));
		b = json_pack("{s:o}", "routes", a);
		snprintf(path, sizeof(path), "/v1/admin/nodes/%s/%s-routes", arg, action);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "POST", path, b, &resp)))
			goto out;
		if (!c.json) {
			char buf[1024];

			join(buf, sizeof(buf), json_object_get(resp.json, "approved_routes"), " ");
			printf("node %" JSON_INTEGER_FORMAT ": approved routes %s\n", ji(resp.json, "id"),
			       buf);
		}
	} else if (!strcmp(cmd, "acl") && (!strcmp(action, "get") || !strcmp(action, "delete"))) {
		bool del = !strcmp(action, "delete");

		NEED_NETWORK();
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/acl", c.network);
		if ((ret = setup_client(&c)) ||
		    (ret = do_request(&c, del ? "DELETE" : "GET", path, NULL, &resp)))
			goto out;
		if (!c.json) {
			char *t = json_dumps(json_object_get(resp.json, "policy"),
					     JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);

			puts(t ? t : "null");
			free(t);
		}
	} else if (!strcmp(cmd, "acl") && !strcmp(action, "set")) {
		struct ls_ctl_error err;
		char *text = NULL;
		size_t len;

		NEED_NETWORK();
		if (!arg) {
			fprintf(stderr, "lightscale-control acl set: FILE required\n");
			return 2;
		}
		ret = ls_read_file(arg, &text, &len, 1 << 20);
		if (ret) {
			fprintf(stderr, "lightscale-control: cannot read `%s': %s\n", arg, strerror(-ret));
			return 1;
		}
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/acl", c.network);
		if ((ret = setup_client(&c))) {
			free(text);
			goto out;
		}
		ret = ls_ctl_request(&c.ctl, "PUT", path, text, len, LS_CTL_AUTH_ADMIN, 0, &resp, &err);
		free(text);
		if (ret) {
			ls_ctl_error_print(&err, "lightscale-control");
			goto out;
		}
		if (c.json) {
			char *t = json_dumps(resp.json, JSON_INDENT(2) | JSON_SORT_KEYS);

			puts(t ? t : "{}");
			free(t);
		} else {
			printf("ACL policy of network %s set\n", c.network);
		}
	} else if (!strcmp(cmd, "acl") && !strcmp(action, "test")) {
		char dst[128], proto[16] = "any";
		long port = 0;
		json_t *b;
		char *colon;

		NEED_NETWORK();
		if (!c.src || !c.dst) {
			fprintf(stderr, "lightscale-control acl test: --src NODE and --dst NODE[:PORT[/PROTO]] required\n");
			return 2;
		}
		snprintf(dst, sizeof(dst), "%s", c.dst);
		colon = strchr(dst, ':');
		if (colon) {
			char *slash = strchr(colon, '/'), *end = NULL;

			*colon = '\0';
			if (slash) {
				*slash = '\0';
				snprintf(proto, sizeof(proto), "%s", slash + 1);
			}
			port = strtol(colon + 1, &end, 10);
			if (!colon[1] || *end || port < 0 || port > 65535) {
				fprintf(stderr, "lightscale-control: invalid port in `%s'\n", c.dst);
				return 2;
			}
		}
		b = json_pack("{s:s, s:s, s:i, s:s}", "src", c.src, "dst", dst, "port", (int)port,
			      "proto", proto);
		snprintf(path, sizeof(path), "/v1/admin/networks/%s/acl-test", c.network);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "POST", path, b, &resp)))
			goto out;
		if (!c.json) {
			json_t *rule = json_object_get(resp.json, "rule");

			printf("%s -> %s:%ld/%s: %s", js(resp.json, "src"), js(resp.json, "dst"), port,
			       js(resp.json, "proto"),
			       json_is_true(json_object_get(resp.json, "allowed")) ? "allowed" : "denied");
			if (json_is_integer(rule))
				printf(" by rules[%" JSON_INTEGER_FORMAT "]", json_integer_value(rule));
			else if (!json_is_true(json_object_get(resp.json, "policy")))
				printf(" (no policy: allow all)");
			printf("; %s\n", json_is_true(json_object_get(resp.json, "visible"))
						 ? "they see each other"
						 : "they do not see each other");
		}
		if (!json_is_true(json_object_get(resp.json, "allowed"))) {
			ls_ctl_response_free(&resp);
			ls_ctl_free(&c.ctl);
			return 3;
		}
	} else if (!strcmp(cmd, "admin-key") && (!strcmp(action, "create") || !strcmp(action, "rotate"))) {
		bool rot = !strcmp(action, "rotate");
		char old[16] = "", kpath[4200];
		json_t *b = json_pack("{s:s}", "name", c.name ? c.name : rot ? "rotated" : "admin"), *v;
		int64_t ttl = 0;

		if (c.ttl && (ls_parse_duration(c.ttl, &ttl) || ttl <= 0)) {
			fprintf(stderr, "lightscale-control: invalid duration `%s'\n", c.ttl);
			json_decref(b);
			return 2;
		}
		if (ttl)
			json_object_set_new(b, "ttl", json_integer(ttl));
		if ((ret = setup_client(&c))) {
			json_decref(b);
			goto out;
		}
		if (rot) {
			bool saved = c.json;

			c.json = false;
			ret = do_request(&c, "GET", "/v1/admin/admin-keys", NULL, &resp);
			c.json = saved;
			if (ret) {
				json_decref(b);
				goto out;
			}
			json_array_foreach(json_object_get(resp.json, "admin_keys"), i, v)
				if (json_is_true(json_object_get(v, "current")))
					snprintf(old, sizeof(old), "%s", js(v, "id"));
			ls_ctl_response_free(&resp);
		}
		if ((ret = do_request(&c, "POST", "/v1/admin/admin-keys", b, &resp)))
			goto out;
		if (rot) {
			char line[128];

			if (c.key_file)
				snprintf(kpath, sizeof(kpath), "%s", c.key_file);
			else
				snprintf(kpath, sizeof(kpath), "%s/admin.key", c.state_dir);
			snprintf(line, sizeof(line), "%s\n", js(resp.json, "key"));
			ret = ls_write_file_atomic(kpath, line, strlen(line), 0600);
			ls_memzero(line, sizeof(line));
			if (ret) {
				fprintf(stderr, "lightscale-control: cannot write `%s': %s (new key %s kept)\n",
					kpath, strerror(-ret), js(resp.json, "id"));
				goto out;
			}
			ls_ctl_set_admin_key(&c.ctl, js(resp.json, "key"));
			if (!c.json)
				printf("new admin key %s written to %s\n", js(resp.json, "id"), kpath);
			if (old[0]) {
				struct ls_ctl_response r2 = {0};
				bool saved = c.json;

				snprintf(path, sizeof(path), "/v1/admin/admin-keys/%s", old);
				c.json = false;
				ret = do_request(&c, "DELETE", path, NULL, &r2);
				c.json = saved;
				ls_ctl_response_free(&r2);
				if (ret)
					goto out;
				if (!c.json)
					printf("revoked the old admin key %s\n", old);
			}
		} else if (!c.json) {
			printf("admin key %s\nid   %s\nname %s\n", js(resp.json, "key"), js(resp.json, "id"),
			       js(resp.json, "name"));
		}
	} else if (!strcmp(cmd, "admin-key") && !strcmp(action, "list")) {
		json_t *v;

		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", "/v1/admin/admin-keys", NULL, &resp)))
			goto out;
		if (!c.json) {
			printf("  %-12s %-16s %-8s %-24s %s\n", "ID", "NAME", "STATUS", "EXPIRES", "LAST USED");
			json_array_foreach(json_object_get(resp.json, "admin_keys"), i, v) {
				char e[64], u[64];

				fmt_time(e, sizeof(e), ji(v, "expires_at"));
				fmt_time(u, sizeof(u), ji(v, "last_used_at"));
				printf("%s %-12s %-16s %-8s %-24s %s\n",
				       json_is_true(json_object_get(v, "current")) ? "*" : " ", js(v, "id"),
				       js(v, "name"), js(v, "status"), ji(v, "expires_at") ? e : "never", u);
			}
		}
	} else if (!strcmp(cmd, "admin-key") && !strcmp(action, "revoke")) {
		NEED_ARG("ID");
		snprintf(path, sizeof(path), "/v1/admin/admin-keys/%s", arg);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "DELETE", path, NULL, &resp)))
			goto out;
		if (!c.json)
			printf("revoked admin key %s\n", js(resp.json, "id"));
	} else if (!strcmp(cmd, "device") && !strcmp(action, "list")) {
		json_t *v;

		if ((ret = setup_client(&c)) || (ret = do_request(&c, "GET", "/v1/admin/devices", NULL, &resp)))
			goto out;
		if (!c.json) {
			printf("%-6s %-24s %-40s %-9s %-6s %-12s %s\n", "ID", "HOSTNAME", "SOURCE", "STATUS",
			       "NODE", "DECIDED BY", "CREATED / EXPIRES");
			json_array_foreach(json_object_get(resp.json, "devices"), i, v) {
				char t1[64], t2[64], node[24] = "-";

				fmt_time(t1, sizeof(t1), ji(v, "created_at"));
				fmt_time(t2, sizeof(t2), ji(v, "expires_at"));
				if (ji(v, "node"))
					snprintf(node, sizeof(node), "%" JSON_INTEGER_FORMAT, ji(v, "node"));
				printf("%-6" JSON_INTEGER_FORMAT " %-24s %-40s %-9s %-6s %-12s %s / %s\n",
				       ji(v, "id"), js(v, "hostname"), js(v, "source"), js(v, "status"), node,
				       js(v, "decided_by")[0] ? js(v, "decided_by") : "-", t1, t2);
			}
		}
	} else if (!strcmp(cmd, "device") && (!strcmp(action, "approve") || !strcmp(action, "reject"))) {
		bool appr = !strcmp(action, "approve");
		json_t *b = NULL;

		NEED_ARG("ID");
		if (appr) {
			NEED_NETWORK();
			b = json_pack("{s:s}", "network", c.network);
		}
		snprintf(path, sizeof(path), "/v1/admin/devices/%s/%s", arg, action);
		if ((ret = setup_client(&c)) || (ret = do_request(&c, "POST", path, b, &resp)))
			goto out;
		if (!c.json) {
			if (appr)
				printf("device request %" JSON_INTEGER_FORMAT " approved: node %" JSON_INTEGER_FORMAT
				       " %s\n",
				       ji(resp.json, "request"), ji(json_object_get(resp.json, "node"), "id"),
				       js(json_object_get(resp.json, "node"), "dns_name"));
			else
				printf("device request %" JSON_INTEGER_FORMAT " rejected\n", ji(resp.json, "request"));
		}
	} else if (!strcmp(cmd, "tls")) {
		ret = tls_cmd(&c, action, arg, &resp);
		if (ret == 2) {
			ls_ctl_response_free(&resp);
			ls_ctl_free(&c.ctl);
			return 2;
		}
	} else if (!strcmp(cmd, "audit") && (!strcmp(action, "list") || !strcmp(action, "verify"))) {
		ret = setup_client(&c);
		if (ret)
			goto out;
		ret = audit_cmd(&c, !strcmp(action, "verify"));
		ls_ctl_free(&c.ctl);
		return ret;
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
