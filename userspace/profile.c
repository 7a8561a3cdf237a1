// SPDX-License-Identifier: MIT
#include "profile.h"
#include "trust.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctlclient.h"
#include "log.h"
#include "netmap.h"
#include "util.h"

uint32_t ls_hash32(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 16777619u;
	}
	return h;
}

int ls_profile_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > LS_PROFILE_NAME_MAX || name[0] == '.' || name[0] == '-')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
		      c == '_' || c == '.'))
			return 0;
	}
	return 1;
}

void ls_profile_ifname(const char *profile, char out[IFNAMSIZ])
{
	if (strlen(profile) + 3 < IFNAMSIZ) {
		snprintf(out, IFNAMSIZ, "ls-%s", profile);
		return;
	}
	snprintf(out, IFNAMSIZ, "ls-%.6s-%05x", profile, ls_hash32(profile) & 0xfffff);
}

int ls_profile_file(const struct ls_profile *p, const char *file, char *out, size_t size)
{
	size_t a = strlen(p->dir), b = strlen(file);

	if (a + b + 2 > size)
		return -ENAMETOOLONG;
	memcpy(out, p->dir, a);
	out[a] = '/';
	memcpy(out + a + 1, file, b + 1);
	return 0;
}

int ls_profile_path(struct ls_profile *p, const char *state_dir, const char *name)
{
	uint32_t h;

	memset(p, 0, sizeof(*p));
	if (!ls_profile_name_valid(name))
		return -EINVAL;
	snprintf(p->name, sizeof(p->name), "%s", name);
	if ((size_t)snprintf(p->dir, sizeof(p->dir), "%s/%s", state_dir, name) >= sizeof(p->dir))
		return -ENAMETOOLONG;
	ls_profile_ifname(name, p->ifname);
	h = ls_hash32(name);
	p->table = 52000 + (h % 4000);
	p->fwmark = 0x4c530000u | (h & 0xffff);
	p->rule_prio = 5200 + (h % 400) * 10;
	p->listen_port = LS_DEFAULT_PORT;
	p->mtu = LS_DEFAULT_MTU;
	return 0;
}

static int read_key_file(const struct ls_profile *p, const char *file, uint8_t *out, size_t len)
{
	char path[PATH_MAX], *s = NULL;
	size_t n;
	int ret;

	if ((ret = ls_profile_file(p, file, path, sizeof(path))))
		return ret;
	if ((ret = ls_read_file(path, &s, &n, 4096)))
		return ret;
	while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
		s[--n] = '\0';
	ret = ls_b64_decode(out, len, s);
	ret = ret == (int)len ? 0 : -EINVAL;
	ls_memzero(s, n);
	free(s);
	return ret;
}

int ls_profile_load(struct ls_profile *p, const char *state_dir, const char *name, char *err, size_t err_size)
{
	char path[PATH_MAX], *buf = NULL;
	json_error_t jerr;
	json_t *doc = NULL, *v;
	size_t len, i;
	int ret;

	ret = ls_profile_path(p, state_dir, name);
	if (ret) {
		snprintf(err, err_size, "invalid profile name `%s' (letters, digits, '-', '_', '.')", name);
		return ret;
	}
	ls_profile_file(p, "config.json", path, sizeof(path));
	ret = ls_read_file(path, &buf, &len, 1 << 20);
	if (ret == -ENOENT) {
		snprintf(err, err_size,
			 "no profile '%s' in %s: run lightscale init --profile %s --control URL --token TOKEN%s%s",
			 name, state_dir, name, strcmp(state_dir, "/var/lib/lightscale") ? " --state-dir " : "",
			 strcmp(state_dir, "/var/lib/lightscale") ? state_dir : "");
		return ret;
	}
	if (ret) {
		snprintf(err, err_size, "cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	doc = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!json_is_object(doc)) {
		snprintf(err, err_size, "%s: invalid JSON (line %d: %s); fix it or run lightscale init again", path,
			 jerr.line, jerr.text);
		ret = -EINVAL;
		goto cleanup;
	}
	v = json_object_get(doc, "control");
	if (json_is_string(v))
		p->control_urls = strdup(json_string_value(v));
	v = json_object_get(doc, "hostname");
	if (json_is_string(v))
		p->hostname = strdup(json_string_value(v));
	v = json_object_get(doc, "exit_node");
	if (json_is_string(v))
		p->exit_node = strdup(json_string_value(v));
	v = json_object_get(doc, "identity");
	if (json_is_string(v))
		p->identity = strdup(json_string_value(v));
	v = json_object_get(doc, "tls_pins");
	if (json_is_string(v))
		p->tls_pins = strdup(json_string_value(v));
	if (json_is_integer(json_object_get(doc, "listen_port")))
		p->listen_port = (int)json_integer_value(json_object_get(doc, "listen_port"));
	if (json_is_integer(json_object_get(doc, "mtu")))
		p->mtu = (int)json_integer_value(json_object_get(doc, "mtu"));
	if (json_is_integer(json_object_get(doc, "keepalive")))
		p->keepalive = (int)json_integer_value(json_object_get(doc, "keepalive"));
	if (json_is_integer(json_object_get(doc, "table")))
		p->table = (uint32_t)json_integer_value(json_object_get(doc, "table"));
	if (json_is_integer(json_object_get(doc, "fwmark")))
		p->fwmark = (uint32_t)json_integer_value(json_object_get(doc, "fwmark"));
	if (json_is_integer(json_object_get(doc, "rule_priority")))
		p->rule_prio = (uint32_t)json_integer_value(json_object_get(doc, "rule_priority"));
	if (json_is_integer(json_object_get(doc, "node_id")))
		p->node_id = json_integer_value(json_object_get(doc, "node_id"));
	json_array_foreach(json_object_get(doc, "routes"), i, v) {
		if (p->n_routes < LS_MAX_ADV_ROUTES && json_is_string(v) &&
		    !ls_prefix_parse(json_string_value(v), &p->routes[p->n_routes], false))
			p->n_routes++;
	}
	if (p->listen_port < 0 || p->listen_port > 65535 || p->mtu < 1280 || p->mtu > 9000 || p->keepalive < 0 ||
	    p->keepalive > 65535) {
		snprintf(err, err_size, "%s: listen_port %d or mtu %d out of range", path, p->listen_port, p->mtu);
		ret = -EINVAL;
		goto cleanup;
	}
	if (read_key_file(p, "wg.key", p->wg_priv, LS_WG_KEY_LEN) ||
	    ls_wg_pubkey(p->wg_pub, p->wg_priv) ||
	    read_key_file(p, "machine.key", p->machine_sk, LS_ED25519_SK_LEN)) {
		snprintf(err, err_size, "profile '%s': missing or bad wg.key/machine.key in %s; run lightscale init --profile %s again",
			 name, p->dir, name);
		ret = -EINVAL;
		goto cleanup;
	}
	memcpy(p->machine_pk, p->machine_sk + 32, LS_ED25519_PK_LEN);
	ret = 0;
cleanup:
	json_decref(doc);
	if (ret)
		ls_profile_free(p);
	return ret;
}

int ls_profile_save_config(const struct ls_profile *p)
{
	char path[PATH_MAX], *s;
	json_t *doc, *routes = json_array();
	int ret;

	for (size_t i = 0; i < p->n_routes; i++) {
		char b[LS_PREFIX_STRLEN];

		ls_prefix_format(&p->routes[i], b);
		json_array_append_new(routes, json_string(b));
	}
	doc = json_pack("{s:s, s:s?, s:s?, s:s?, s:i, s:i, s:i, s:s, s:I, s:I, s:I, s:I, s:o}", "profile", p->name,
			"control", p->control_urls, "hostname", p->hostname, "exit_node", p->exit_node,
			"listen_port", p->listen_port, "mtu", p->mtu, "keepalive", p->keepalive, "interface", p->ifname, "table",
			(json_int_t)p->table, "fwmark", (json_int_t)p->fwmark, "rule_priority",
			(json_int_t)p->rule_prio, "node_id", (json_int_t)p->node_id, "routes", routes);
	if (!doc)
		return -ENOMEM;
	if (p->identity)
		json_object_set_new(doc, "identity", json_string(p->identity));
	if (p->tls_pins)
		json_object_set_new(doc, "tls_pins", json_string(p->tls_pins));
	s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(doc);
	if (!s)
		return -ENOMEM;
	ls_profile_file(p, "config.json", path, sizeof(path));
	ret = ls_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	return ret;
}

int ls_profile_save_json(const struct ls_profile *p, const char *file, json_t *doc)
{
	char path[PATH_MAX], *s = doc ? json_dumps(doc, JSON_INDENT(2)) : NULL;
	int ret;

	if (!s)
		return -ENOMEM;
	ls_profile_file(p, file, path, sizeof(path));
	ret = ls_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	return ret;
}

void ls_profile_free(struct ls_profile *p)
{
	free(p->control_urls);
	free(p->hostname);
	free(p->exit_node);
	free(p->identity);
	free(p->tls_pins);
	p->control_urls = p->hostname = p->exit_node = p->identity = p->tls_pins = NULL;
	ls_memzero(p->wg_priv, sizeof(p->wg_priv));
	ls_memzero(p->machine_sk, sizeof(p->machine_sk));
}

int ls_profile_load_netmap(const struct ls_profile *p, struct ls_netmap **out, char *err, size_t err_size)
{
	char path[PATH_MAX], *buf = NULL;
	json_error_t jerr;
	json_t *doc;
	size_t len;
	int ret;

	*out = NULL;
	ls_profile_file(p, "netmap.json", path, sizeof(path));
	ret = ls_read_file(path, &buf, &len, 256u << 20);
	if (ret) {
		snprintf(err, err_size, "no cached netmap in %s: run lightscale netmap --profile %s (or the agent)",
			 p->dir, p->name);
		return ret;
	}
	/* the text goes before the model is built: a large map's peak stays lower */
	doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	free(buf);
	if (!doc) {
		snprintf(err, err_size, "%s: invalid JSON at line %d: %s", path, jerr.line, jerr.text);
		return -EINVAL;
	}
	ret = ls_netmap_parse_json(doc, out, err, err_size);
	json_decref(doc);
	return ret;
}

int ls_profile_save_netmap(const struct ls_profile *p, const struct ls_netmap *nm)
{
	char path[PATH_MAX], *s;
	int ret;

	s = ls_netmap_dump(nm);
	if (!s)
		return -ENOMEM;
	ls_profile_file(p, "netmap.json", path, sizeof(path));
	ret = ls_write_file_atomic(path, s, strlen(s), 0600);
	free(s);
	return ret;
}

int ls_profile_ctl_trust(const struct ls_profile *p, struct ls_ctl *c)
{
	uint8_t pk[32];
	char pins[LS_CTL_PINS_MAX];

	if (p->tls_pins && *p->tls_pins)
		ls_ctl_set_pinned_keys(c, p->tls_pins);
	if (p->identity && *p->identity) {
		if (ls_key_from_base64(pk, p->identity)) {
			pr_err("profile '%s': invalid identity key `%s' in config.json", p->name, p->identity);
			return -EINVAL;
		}
		ls_ctl_set_identity(c, pk);
		/* the pins the deployment published since enrollment (a rotated server key),
		 * each endorsement checked again against the identity (trust.h) */
		if (ls_trust_pins(p->dir, p->identity, pins, sizeof(pins)) > 0)
			ls_ctl_set_pinned_keys(c, pins);
	}
	return 0;
}
