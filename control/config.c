// SPDX-License-Identifier: MIT
/*
 * The server's config file (--config FILE), JSON:
 *   {"relays": {"stun": ["192.0.2.1:3478"],
 *               "turn": [{"url": "turn:192.0.2.1:3478", "username": "u", "credential": "c"}],
 *               "stream": ["192.0.2.1:8443"], "udp": ["192.0.2.1:3479"]},
 *    "dns": {"resolvers": ["100.100.100.100"]},
 *    "rate_limits": {"register": {"burst": 30, "per_second": 1},
 *                    "address":  {"burst": 2000, "per_second": 500},
 *                    "node":     {"burst": 60, "per_second": 2},
 *                    "device_request":     {"burst": 10, "per_second": 0.1667},
 *                    "device_request_all": {"burst": 30, "per_second": 0.5}},
 *    "device_requests": {"waiting_per_source": 20, "waiting_max": 1000, "lifetime": 600},
 *    "max_wait": 300, "online_secs": 120, "liveness_flush_ms": 5000,
 *    "connection_limit": 60000, "delta_versions": 4096}
 * Every member is optional. device_request(_all): registrations without a token per source
 * address (per server); device_requests: undecided requests per source address and in all
 * (across the servers of the database), seconds an approval link works.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "lightscale/api.h"

void lsc_config_defaults(struct lsc_config *c)
{
	memset(c, 0, sizeof(*c));
	c->relays = json_pack("{s:[], s:[], s:[], s:[]}", "stun", "turn", "stream", "udp");
	c->dns_resolvers = json_array();
	c->register_burst = 30;
	c->register_rate = 1;
	c->ip_burst = 2000;
	c->ip_rate = 500;
	c->node_burst = 60;
	c->node_rate = 2;
	c->max_wait = LS_NETMAP_MAX_WAIT;
	c->online_secs = LSC_ONLINE_SECS;
	c->liveness_flush_ms = 5000;
	c->connection_limit = 60000;
	c->delta_versions = LSC_DELTA_VERSIONS;
	c->devices.burst = 10;
	c->devices.rate = 1.0 / 6;
	c->devices.all_burst = 30;
	c->devices.all_rate = 0.5;
	c->devices.waiting_per_source = 20;
	c->devices.waiting_max = 1000;
	c->devices.lifetime = 600;
}

void lsc_config_free(struct lsc_config *c)
{
	json_decref(c->relays);
	json_decref(c->dns_resolvers);
	memset(c, 0, sizeof(*c));
}

static int string_list(json_t *a, const char *what, char *err, size_t errlen)
{
	json_t *v;
	size_t i;

	if (!json_is_array(a)) {
		snprintf(err, errlen, "`%s' must be an array of strings", what);
		return -EINVAL;
	}
	json_array_foreach(a, i, v) {
		if (!json_is_string(v)) {
			snprintf(err, errlen, "`%s'[%zu] must be a string", what, i);
			return -EINVAL;
		}
	}
	return 0;
}

static int bucket(json_t *rl, const char *name, double *burst, double *rate, char *err,
		  size_t errlen)
{
	json_t *b = json_object_get(rl, name), *v;

	if (!b)
		return 0;
	v = json_object_get(b, "burst");
	if (v) {
		if (!json_is_number(v) || json_number_value(v) < 1) {
			snprintf(err, errlen, "`rate_limits.%s.burst' must be a number >= 1", name);
			return -EINVAL;
		}
		*burst = json_number_value(v);
	}
	v = json_object_get(b, "per_second");
	if (v) {
		if (!json_is_number(v) || json_number_value(v) <= 0) {
			snprintf(err, errlen, "`rate_limits.%s.per_second' must be a number > 0", name);
			return -EINVAL;
		}
		*rate = json_number_value(v);
	}
	return 0;
}

static int int_member(json_t *j, const char *name, int min, int max, int *out, char *err,
		      size_t errlen)
{
	json_t *v = json_object_get(j, name);

	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
		snprintf(err, errlen, "`%s' must be an integer in %d..%d", name, min, max);
		return -EINVAL;
	}
	*out = (int)json_integer_value(v);
	return 0;
}

int lsc_config_load(struct lsc_config *c, const char *path, char *err, size_t errlen)
{
	static const char *const lists[] = {"stun", "stream", "udp"};
	json_error_t je;
	json_t *j, *r, *v;
	int ret = -EINVAL;
	size_t i;

	j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		snprintf(err, errlen, "%s: the config must be a JSON object", path);
		goto cleanup;
	}
	r = json_object_get(j, "relays");
	if (r) {
		if (!json_is_object(r)) {
			snprintf(err, errlen, "`relays' must be an object");
			goto cleanup;
		}
		for (i = 0; i < 3; i++) {
			v = json_object_get(r, lists[i]);
			if (!v)
				continue;
			if (string_list(v, lists[i], err, errlen))
				goto cleanup;
			json_object_set(c->relays, lists[i], v);
		}
		v = json_object_get(r, "turn");
		if (v) {
			json_t *t;

			if (!json_is_array(v)) {
				snprintf(err, errlen, "`relays.turn' must be an array of objects");
				goto cleanup;
			}
			json_array_foreach(v, i, t) {
				if (!json_is_object(t) ||
				    !json_is_string(json_object_get(t, "url"))) {
					snprintf(err, errlen, "`relays.turn'[%zu] needs a string `url'", i);
					goto cleanup;
				}
			}
			json_object_set(c->relays, "turn", v);
		}
	}
	v = json_object_get(j, "dns");
	if (v && json_object_get(v, "resolvers")) {
		if (string_list(json_object_get(v, "resolvers"), "dns.resolvers", err, errlen))
			goto cleanup;
		json_decref(c->dns_resolvers);
		c->dns_resolvers = json_incref(json_object_get(v, "resolvers"));
	}
	v = json_object_get(j, "rate_limits");
	if (v) {
		if (bucket(v, "register", &c->register_burst, &c->register_rate, err, errlen) ||
		    bucket(v, "address", &c->ip_burst, &c->ip_rate, err, errlen) ||
		    bucket(v, "node", &c->node_burst, &c->node_rate, err, errlen) ||
		    bucket(v, "device_request", &c->devices.burst, &c->devices.rate, err, errlen) ||
		    bucket(v, "device_request_all", &c->devices.all_burst, &c->devices.all_rate, err,
			   errlen))
			goto cleanup;
	}
	v = json_object_get(j, "device_requests");
	if (v && !json_is_object(v)) {
		snprintf(err, errlen, "`device_requests' must be an object");
		goto cleanup;
	}
	if (v && (int_member(v, "waiting_per_source", 1, 1000000, &c->devices.waiting_per_source, err,
			     errlen) ||
		  int_member(v, "waiting_max", 1, 10000000, &c->devices.waiting_max, err, errlen) ||
		  int_member(v, "lifetime", 30, 7 * 86400, &c->devices.lifetime, err, errlen))) {
		char m[256];

		snprintf(m, sizeof(m), "%s", err);
		snprintf(err, errlen, "device_requests: %s", m); /* names the member in full */
		goto cleanup;
	}
	if (int_member(j, "max_wait", 1, 3600, &c->max_wait, err, errlen) ||
	    int_member(j, "online_secs", 5, 86400, &c->online_secs, err, errlen) ||
	    int_member(j, "liveness_flush_ms", 100, 600000, &c->liveness_flush_ms, err, errlen) ||
	    int_member(j, "connection_limit", 16, 1000000, &c->connection_limit, err, errlen) ||
	    int_member(j, "delta_versions", 1, 10000000, &c->delta_versions, err, errlen))
		goto cleanup;
	ret = 0;
cleanup:
	json_decref(j);
	return ret;
}
