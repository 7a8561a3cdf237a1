// SPDX-License-Identifier: MIT
#include "status.h"

#include "mnet.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "rtnl.h"
#include "util.h"
#include "wg.h"

static json_t *prefixes(const struct ls_nm_prefixv *v, bool addr_only)
{
	json_t *a = json_array();
	char b[LS_PREFIX_STRLEN];

	for (size_t i = 0; i < v->n; i++) {
		if (addr_only)
			ls_prefix_format_addr(&v->v[i], b);
		else
			ls_prefix_format(&v->v[i], b);
		json_array_append_new(a, json_string(b));
	}
	return a;
}

static const struct ls_wg_peer *find_wg(const struct ls_wg_device *d, const uint8_t key[32])
{
	for (size_t i = 0; d && i < d->n_peers; i++) {
		if (!memcmp(d->peers[i].key, key, 32))
			return &d->peers[i];
	}
	return NULL;
}

json_t *ls_status_json(const struct ls_profile *prof, const struct ls_dp *dp, const struct ls_netmap *nm)
{
	const struct ls_wg_engine *eng = dp ? dp->eng : ls_wg_engine_serving(prof->ifname);
	struct ls_wg_device *dev = NULL;
	int ifindex = (int)if_nametoindex(prof->ifname);
	json_t *st, *peers = json_array(), *addrs = json_array(), *routes = json_array(), *exitj = json_null();
	char pub[LS_KEY_B64_LEN + 1];
	struct ls_rtnl_addr *a = NULL;
	struct ls_rtnl_route *r = NULL;
	struct ls_rtnl_rule *rules = NULL;
	size_t na = 0, nr = 0, nrules = 0, n_our_rules = 0;
	int64_t exit_id = dp ? dp->exit_peer : 0;

	if (eng)
		eng->get(prof->ifname, &dev);
	ls_key_to_base64(pub, prof->wg_pub);
	if (ifindex && !ls_rtnl_addr_list(AF_UNSPEC, ifindex, &a, &na)) {
		for (size_t i = 0; i < na; i++) {
			char b[LS_PREFIX_STRLEN];

			if (a[i].scope != RT_SCOPE_UNIVERSE)
				continue;
			ls_prefix_format(&a[i].addr, b);
			json_array_append_new(addrs, json_string(b));
		}
	}
	if (!ls_rtnl_route_list(AF_UNSPEC, prof->table, &r, &nr)) {
		for (size_t i = 0; i < nr; i++) {
			char b[LS_PREFIX_STRLEN], ifn[IF_NAMESIZE] = "?";

			if (r[i].type != RTN_UNICAST)
				continue;
			ls_prefix_format(&r[i].dst, b);
			if_indextoname((unsigned int)r[i].oif, ifn);
			json_array_append_new(routes, json_pack("{s:s, s:s}", "dst", b, "dev", ifn));
			/* without an agent, the exit node is the peer the default route goes to */
			if (!dp && r[i].dst.len == 0 && nm && prof->exit_node) {
				char why[128];
				const struct ls_nm_peer *e = ls_dp_pick_exit(nm, prof->exit_node, why, sizeof(why));

				if (e)
					exit_id = e->id;
			}
		}
	}
	for (int f = 0; f < 2; f++) {
		if (ls_rtnl_rule_list(f ? AF_INET6 : AF_INET, &rules, &nrules))
			continue;
		for (size_t i = 0; i < nrules; i++)
			n_our_rules += rules[i].priority >= prof->rule_prio && rules[i].priority <= prof->rule_prio + 2;
		free(rules);
		rules = NULL;
	}
	for (size_t i = 0; nm && i < nm->n_peers; i++) {
		const struct ls_nm_peer *p = nm->peers[i];
		const struct ls_wg_peer *w = find_wg(dev, p->wg_key);
		char key[LS_KEY_B64_LEN + 1], ep[LS_ENDPOINT_STRLEN] = "";
		json_t *pj;

		ls_key_to_base64(key, p->wg_key);
		if (w && (w->flags & LS_WGP_HAS_ENDPOINT))
			ls_endpoint_format((const struct sockaddr *)&w->endpoint, ep);
		pj = json_pack("{s:I, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:b, s:b, s:o, s:b}", "id",
			       (json_int_t)p->id, "name", p->name, "dns_name",
			       p->dns_name ? json_string(p->dns_name) : json_null(), "public_key", key, "addresses",
			       prefixes(&p->addresses, true), "allowed_ips", prefixes(&p->allowed_ips, false),
			       "endpoint", ep[0] ? json_string(ep) : json_null(), "last_handshake",
			       w && w->last_handshake_sec ? json_integer(w->last_handshake_sec) : json_null(),
			       "routes", prefixes(&p->routes, false), "rx_bytes", (json_int_t)(w ? w->rx_bytes : 0),
			       "tx_bytes", (json_int_t)(w ? w->tx_bytes : 0), "online", p->online, "exit_node",
			       p->exit_node, "configured", json_boolean(w != NULL), "is_exit", exit_id == p->id);
		json_array_append_new(peers, pj);
		if (exit_id == p->id) {
			json_decref(exitj);
			exitj = json_pack("{s:I, s:s}", "id", (json_int_t)p->id, "name", p->name);
		}
	}
	st = json_pack("{s:s, s:s, s:o, s:b, s:b, s:s, s:i, s:i, s:I, s:I, s:o, s:o, s:o}", "profile", prof->name,
		       "interface", prof->ifname, "engine", eng ? json_string(eng->name) : json_null(), "up",
		       ifindex != 0, "agent", dp != NULL, "public_key", pub, "mtu", prof->mtu, "listen_port",
		       dev ? dev->listen_port : prof->listen_port, "fwmark", (json_int_t)prof->fwmark, "table",
		       (json_int_t)prof->table, "addresses", addrs, "peers", peers, "exit_node", exitj);
	json_object_set_new(st, "routes", routes);
	if (eng && eng->kind == LS_ENGINE_USERSPACE) {
		char comm[32];
		int pid = ls_uapi_engine_process(prof->ifname, comm, sizeof(comm));

		if (pid > 0)
			json_object_set_new(st, "engine_process", json_pack("{s:i, s:s}", "pid", pid, "name", comm));
	}
	json_object_set_new(st, "rules", json_integer((json_int_t)n_our_rules));
	if (nm) {
		char v4[LS_PREFIX_STRLEN] = "", v6[LS_PREFIX_STRLEN] = "";

		if (nm->network.has_ipv4)
			ls_prefix_format(&nm->network.ipv4, v4);
		if (nm->network.has_ipv6)
			ls_prefix_format(&nm->network.ipv6, v6);
		json_object_set_new(st, "netmap_version", json_integer(nm->version));
		json_object_set_new(st, "network",
				    json_pack("{s:s, s:s, s:s, s:s}", "name", nm->network.name ? nm->network.name : "",
					      "id", nm->network.id ? nm->network.id : "", "ipv4", v4, "ipv6", v6));
		json_object_set_new(st, "self",
				    json_pack("{s:I, s:s, s:o, s:s, s:o}", "id", (json_int_t)nm->self.id, "name",
					      nm->self.name, "dns_name",
					      nm->self.dns_name ? json_string(nm->self.dns_name) : json_null(), "status",
					      ls_nm_status_name(nm->self.status), "addresses",
					      prefixes(&nm->self.addresses, true)));
	} else {
		json_object_set_new(st, "netmap_version", json_null());
	}
	if (dp) {
		json_object_set(st, "refused_routes", dp->refused ? dp->refused : json_array());
		json_object_set(st, "sysctls", dp->sysctls ? dp->sysctls : json_object());
		if (dp->overlay_conflicts)
			json_object_set(st, "overlay_conflicts", dp->overlay_conflicts);
		else
			json_object_set_new(st, "overlay_conflicts", json_array());
		json_object_set_new(st, "masquerade", json_boolean(dp->masquerading));
		json_object_set_new(st, "snat", dp->snat ? json_deep_copy(dp->snat) : json_pack("{s:s}", "mode", "off"));
		json_object_set_new(st, "return_routes", dp->return_routes ? json_deep_copy(dp->return_routes) : json_array());
		json_object_set_new(st, "exit_reason", json_string(dp->exit_reason));
		json_object_set_new(st, "adopted", json_boolean(!dp->created));
		if (dp->bpf)
			json_object_set_new(st, "bpf", json_string("attached"));
		else if (dp->opts.no_bpf && json_array_size(dp->mappings))
			json_object_set_new(st, "bpf", json_string("unavailable: --no-bpf (mapped routes are not translated)"));
		else if (dp->bpf_error[0])
			json_object_set_new(st, "bpf", json_sprintf("unavailable: %s%s", dp->bpf_error,
								    dp->n_xl ? " (mapped routes are not translated)" : ""));
		else if (dp->opts.bpf)
			json_object_set_new(st, "bpf", json_string("failed"));
	}
	/* multi-network: the slot, who owns the default route, conflicts and mappings */
	{
		json_t *mn = ls_mnet_profile_json(prof->name);

		if (dp && dp->mappings)
			json_object_set(mn, "mappings", dp->mappings);
		if (dp)
			json_object_set_new(mn, "owns_default_route",
					    json_boolean(dp->exit_owner[0] && !strcmp(dp->exit_owner, prof->name)));
		json_object_set_new(st, "multinet", mn);
	}
	free(a);
	free(r);
	ls_wg_device_free(dev);
	return st;
}

void ls_status_add_nat(json_t *st, json_t *nat, const char *observed)
{
	json_t *peers = json_object_get(nat, "peers"), *p, *o;
	size_t i;

	json_array_foreach(json_object_get(st, "peers"), i, p) {
		o = json_object_get(peers, json_string_value(json_object_get(p, "public_key")) ?: "");
		if (json_is_object(o))
			json_object_set(p, "path", o);
	}
	o = nat ? json_deep_copy(nat) : json_object();
	json_object_del(o, "peers");
	if (observed && observed[0])
		json_object_set_new(o, "observed", json_string(observed));
	json_object_set_new(st, "nat", o);
}

/* "direct 198.51.100.7:41641", "relayed via stream relay 192.0.2.1:443", "relayed via
 * udp relay 192.0.2.1:3478, path MTU 1392" (when the relay's framing lowers it below the
 * interface's if_mtu), ... */
static void path_text(json_t *path, json_int_t if_mtu, char *out, size_t size)
{
	const char *mode = json_string_value(json_object_get(path, "path")) ?: "?";
	const char *ep = json_string_value(json_object_get(path, "endpoint"));
	const char *via = json_string_value(json_object_get(path, "via"));
	const char *relay = json_string_value(json_object_get(path, "relay"));
	json_int_t mtu = json_integer_value(json_object_get(path, "mtu"));

	if (!strcmp(mode, "relayed") && mtu > 0 && mtu < if_mtu)
		snprintf(out, size, "relayed via %s relay %s, path MTU %lld", via ?: "?", relay ?: "(connecting)",
			 (long long)mtu);
	else if (!strcmp(mode, "relayed"))
		snprintf(out, size, "relayed via %s relay %s", via ?: "?", relay ?: "(connecting)");
	else
		snprintf(out, size, "%s%s%s", mode, ep ? " " : "", ep ?: "");
}

static const char *ago(int64_t t, char *buf, size_t size)
{
	int64_t d = ls_unix_time() - t;

	if (t <= 0)
		return "never";
	if (d < 0)
		d = 0;
	ls_format_duration(buf, size, d);
	strncat(buf, " ago", size - strlen(buf) - 1);
	return buf;
}

static void join_strings(json_t *arr, char *out, size_t size)
{
	size_t i;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(arr, i, v) {
		if (i)
			strncat(out, ", ", size - strlen(out) - 1);
		strncat(out, json_is_string(v) ? json_string_value(v) : "?", size - strlen(out) - 1);
	}
	if (!out[0])
		snprintf(out, size, "(none)");
}

/* How overlay traffic leaves a router: SNAT per interface, nftables, or routed with the
 * return routes the gateways need. */
static void snat_text(json_t *st, FILE *f)
{
	json_t *sn = json_object_get(st, "snat"), *v, *h;
	const char *mode = json_string_value(json_object_get(sn, "mode"));
	size_t i, k;

	if (!mode)
		return;
	if (!strcmp(mode, "bpf")) {
		fprintf(f, "snat:         bpf, ports %s%s\n", json_string_value(json_object_get(sn, "ports")) ?: "?",
			json_is_true(json_object_get(sn, "reserved")) ? " (reserved in ip_local_reserved_ports)"
									: " (NOT reserved)");
		if (!json_array_size(json_object_get(sn, "interfaces")))
			fprintf(f, "              (no LAN or uplink interface yet)\n");
		json_array_foreach(json_object_get(sn, "interfaces"), i, v) {
			char hooks[256] = "";
			const char *a4 = json_string_value(json_object_get(v, "ipv4"));
			const char *a6 = json_string_value(json_object_get(v, "ipv6"));

			json_array_foreach(json_object_get(v, "hooks"), k, h)
				snprintf(hooks + strlen(hooks), sizeof(hooks) - strlen(hooks), "%s%s/%s%s", k ? " " : "",
					 json_string_value(json_object_get(h, "hook")) ?: "?",
					 json_string_value(json_object_get(h, "mode")) ?: "?",
					 json_is_true(json_object_get(h, "attached")) ? "" : "(DETACHED)");
			fprintf(f, "  %-11s %s as %s%s%s [%s]\n", json_string_value(json_object_get(v, "interface")),
				json_string_value(json_object_get(v, "role")), a4 ? a4 : "", a4 && a6 ? ", " : "",
				a6 ? a6 : (a4 ? "" : "(no address: not translated)"), hooks);
		}
	} else if (!strcmp(mode, "nftables")) {
		fprintf(f, "snat:         nftables masquerade (table %s)%s%s\n",
			json_string_value(json_object_get(sn, "table")) ?: "?", json_is_string(json_object_get(sn, "why")) ? "; " : "",
			json_string_value(json_object_get(sn, "why")) ?: "");
	} else if (!strcmp(mode, "routed")) {
		fprintf(f, "snat:         none (routed, --no-masquerade); the gateways need these routes back:\n");
		json_array_foreach(json_object_get(st, "return_routes"), i, v)
			fprintf(f, "  %-11s %s\n", json_string_value(json_object_get(v, "interface")),
				json_string_value(json_object_get(v, "command")));
		if (!json_array_size(json_object_get(st, "return_routes")))
			fprintf(f, "              (no LAN or uplink address found)\n");
	}
}

void ls_status_text(json_t *st, FILE *f)
{
	char buf[1024], t[64];
	json_t *p, *ex = json_object_get(st, "exit_node"), *r;
	size_t i;

	fprintf(f, "profile:      %s\n", json_string_value(json_object_get(st, "profile")));
	fprintf(f, "interface:    %s (%s)\n", json_string_value(json_object_get(st, "interface")),
		json_is_true(json_object_get(st, "up")) ? "up" : "down");
	fprintf(f, "engine:       %s",
		json_is_string(json_object_get(st, "engine")) ? json_string_value(json_object_get(st, "engine")) : "none");
	if (json_is_object(json_object_get(st, "engine_process")))
		fprintf(f, " (%s, pid %lld)",
			json_string_value(json_object_get(json_object_get(st, "engine_process"), "name")),
			(long long)json_integer_value(json_object_get(json_object_get(st, "engine_process"), "pid")));
	fprintf(f, "\n");
	fprintf(f, "agent:        %s\n", json_is_true(json_object_get(st, "agent")) ? "running" : "not running");
	fprintf(f, "public key:   %s\n", json_string_value(json_object_get(st, "public_key")));
	fprintf(f, "listen port:  %lld\n", (long long)json_integer_value(json_object_get(st, "listen_port")));
	join_strings(json_object_get(st, "addresses"), buf, sizeof(buf));
	fprintf(f, "addresses:    %s\n", buf);
	if (json_is_object(json_object_get(st, "network")))
		fprintf(f, "network:      %s (netmap version %lld)\n",
			json_string_value(json_object_get(json_object_get(st, "network"), "name")),
			(long long)json_integer_value(json_object_get(st, "netmap_version")));
	fprintf(f, "exit node:    %s\n",
		json_is_object(ex) ? json_string_value(json_object_get(ex, "name")) : "none");
	fprintf(f, "routes:       table %lld, %zu route(s), %lld rule(s)\n",
		(long long)json_integer_value(json_object_get(st, "table")), json_array_size(json_object_get(st, "routes")),
		(long long)json_integer_value(json_object_get(st, "rules")));
	json_array_foreach(json_object_get(st, "routes"), i, r)
		fprintf(f, "              %s dev %s\n", json_string_value(json_object_get(r, "dst")),
			json_string_value(json_object_get(r, "dev")));
	{
		json_t *mn = json_object_get(st, "multinet"), *m;
		size_t k;

		if (mn) {
			fprintf(f, "default route: %s\n", json_is_string(json_object_get(mn, "default_owner"))
								   ? json_string_value(json_object_get(mn, "default_owner"))
								   : "(no profile owns it)");
			json_array_foreach(json_object_get(mn, "mappings"), k, m) {
				const char *v = json_string_value(json_object_get(m, "virtual"));

				fprintf(f, "  mapped:     %s -> %s%s%s\n", v ? v : "(none)",
					json_string_value(json_object_get(m, "real")),
					json_array_size(json_object_get(m, "conflicts_with")) ? " (overlaps another profile)" : "",
					v ? "" : " (no free virtual prefix)");
			}
		}
		if (json_is_string(json_object_get(st, "bpf")))
			fprintf(f, "bpf:          %s\n", json_string_value(json_object_get(st, "bpf")));
	}
	snat_text(st, f);
	{
		json_t *nat = json_object_get(st, "nat"), *s;
		size_t k;

		if (json_is_object(nat)) {
			join_strings(json_object_get(nat, "endpoints"), buf, sizeof(buf));
			fprintf(f, "endpoints:    %s", buf);
			if (json_is_string(json_object_get(nat, "observed")))
				fprintf(f, " (control plane sees %s)", json_string_value(json_object_get(nat, "observed")));
			fprintf(f, "\n");
			json_array_foreach(json_object_get(nat, "stun"), k, s)
				fprintf(f, "  stun:       %s -> %s\n", json_string_value(json_object_get(s, "server")),
					json_is_string(json_object_get(s, "mapped")) ? json_string_value(json_object_get(s, "mapped"))
										    : "(no answer)");
			if (json_is_object(json_object_get(nat, "relays"))) {
				json_t *rl = json_object_get(nat, "relays");
				const char *names[] = { "stream", "udp" };

				for (size_t n = 0; n < 2; n++) {
					json_t *x = json_object_get(rl, names[n]);

					if (json_array_size(json_object_get(x, "relays")))
						fprintf(f, "  %s relay: %s%s%s\n", names[n],
							json_string_value(json_object_get(x, "state")) ?: "?",
							json_is_string(json_object_get(x, "current")) ? " " : "",
							json_string_value(json_object_get(x, "current")) ?: "");
				}
			}
		}
	}
	json_array_foreach(json_object_get(st, "refused_routes"), i, r)
		fprintf(f, "  refused:    %s from %s: %s\n", json_string_value(json_object_get(r, "route")),
			json_string_value(json_object_get(r, "peer")), json_string_value(json_object_get(r, "reason")));
	json_array_foreach(json_object_get(st, "overlay_conflicts"), i, r)
		fprintf(f, "  warning:    overlay %s %s\n", json_string_value(json_object_get(r, "prefix")),
			json_string_value(json_object_get(r, "reason")));
	json_array_foreach(json_object_get(st, "peers"), i, p) {
		json_t *ep = json_object_get(p, "endpoint"), *hs = json_object_get(p, "last_handshake");

		fprintf(f, "\npeer %lld: %s%s\n", (long long)json_integer_value(json_object_get(p, "id")),
			json_string_value(json_object_get(p, "name")),
			json_is_true(json_object_get(p, "is_exit")) ? " (exit node)" : "");
		fprintf(f, "  public key:     %s\n", json_string_value(json_object_get(p, "public_key")));
		fprintf(f, "  endpoint:       %s\n", json_is_string(ep) ? json_string_value(ep) : "(none)");
		if (json_is_object(json_object_get(p, "path"))) {
			path_text(json_object_get(p, "path"), json_integer_value(json_object_get(st, "mtu")), buf,
				  sizeof(buf));
			fprintf(f, "  path:           %s\n", buf);
		}
		join_strings(json_object_get(p, "allowed_ips"), buf, sizeof(buf));
		fprintf(f, "  allowed ips:    %s\n", buf);
		fprintf(f, "  last handshake: %s\n", ago(json_is_integer(hs) ? json_integer_value(hs) : 0, t, sizeof(t)));
		fprintf(f, "  transfer:       %lld B received, %lld B sent\n",
			(long long)json_integer_value(json_object_get(p, "rx_bytes")),
			(long long)json_integer_value(json_object_get(p, "tx_bytes")));
	}
}

int ls_localapi_path(const char *profile, char *out, size_t size)
{
	const char *dir = getenv("LIGHTSCALE_RUN_DIR");

	if ((size_t)snprintf(out, size, "%s/%s.sock", dir ? dir : LS_RUN_DIR, profile) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int ls_localapi_query(const char *profile, const char *request, json_t **out)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t cap = 1 << 16, n = 0;
	char *buf = NULL;
	json_error_t jerr;
	int fd, ret;
	struct timeval tv = { .tv_sec = 10 };

	*out = NULL;
	if (ls_localapi_path(profile, sun.sun_path, sizeof(sun.sun_path)))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		goto cleanup;
	}
	if (dprintf(fd, "%s\n", request) < 0) {
		ret = -errno;
		goto cleanup;
	}
	buf = malloc(cap);
	for (;;) {
		ssize_t r;

		if (!buf) {
			ret = -ENOMEM;
			goto cleanup;
		}
		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				ret = -ENOMEM;
				goto cleanup;
			}
			buf = nb;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			ret = -errno;
			goto cleanup;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = json_loadb(buf, n, 0, &jerr);
	ret = *out ? 0 : -EBADMSG;
cleanup:
	free(buf);
	close(fd);
	return ret;
}
