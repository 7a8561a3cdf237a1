// SPDX-License-Identifier: MIT
/* lightscale-relay settings: defaults, "key value" setters, config file. */
#include "relay.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

void lsr_config_defaults(struct lsr_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->control, sizeof(c->control), "/run/lightscale/relay.sock");
	c->udp_lifetime_s = 90;
	c->clock_skew_s = 60;
	c->max_udp = 65536;
	c->max_stream = 16384;
	c->queue_limit = 1 << 20;
	c->keepalive_s = 25;
	c->idle_timeout_s = 75;
	c->hello_timeout_s = 10;
	c->proof_rate = 20;
	c->proof_rate_total = 10000;
}

/* "ADDR:PORT", "[V6]:PORT" or "PORT" ([::]:PORT, both families). Port 0 picks one. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_s;
	char *end;
	long port;
	size_t hlen;

	memset(ss, 0, sizeof(*ss));
	if (!*s)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		hlen = (size_t)(close - s - 1);
		memcpy(host, s + 1, hlen < sizeof(host) ? hlen : 0);
		port_s = close + 2;
	} else if (strchr(s, ':')) {
		const char *colon = strrchr(s, ':');

		if (strchr(s, ':') != colon)
			return -EINVAL;
		hlen = (size_t)(colon - s);
		memcpy(host, s, hlen < sizeof(host) ? hlen : 0);
		port_s = colon + 1;
	} else {
		snprintf(host, sizeof(host), "::");
		hlen = 2;
		port_s = s;
	}
	if (hlen == 0 || hlen >= sizeof(host) || !isdigit((unsigned char)*port_s))
		return -EINVAL;
	host[hlen] = '\0';
	errno = 0;
	port = strtol(port_s, &end, 10);
	if (*end || errno || port < 0 || port > 65535)
		return -EINVAL;
	if (strchr(host, ':')) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	}
	return 0;
}

int lsr_config_add_listen(struct lsr_config *c, enum lsr_listen_kind kind, const char *value)
{
	struct lsr_listen_addr *l;

	if (c->n_listen >= LSR_MAX_LISTEN)
		return -E2BIG;
	l = &c->listen[c->n_listen];
	if (parse_listen(value, &l->sa, &l->len))
		return -EINVAL;
	l->kind = kind;
	c->n_listen++;
	return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == 'k' || *end == 'K')
		v *= 1024, end++;
	else if (*end == 'm' || *end == 'M')
		v *= 1024 * 1024, end++;
	if (*end || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_secs(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	int64_t v;

	if (ls_parse_duration(s, &v) || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int set_path(char *dst, size_t size, const char *value)
{
	if (strlen(value) >= size)
		return -ENAMETOOLONG;
	snprintf(dst, size, "%s", value);
	return 0;
}

int lsr_config_set(struct lsr_config *c, const char *key, const char *value, char *err, size_t errlen)
{
	int r = -EINVAL;
	const char *want = NULL;

	if (!strcmp(key, "stun") || !strcmp(key, "udp") || !strcmp(key, "stream")) {
		enum lsr_listen_kind kind = key[0] == 'u' ? LSR_LISTEN_UDP :
					    key[1] == 't' && key[2] == 'u' ? LSR_LISTEN_STUN :
									     LSR_LISTEN_STREAM;

		r = lsr_config_add_listen(c, kind, value);
		want = r == -E2BIG ? "at most 8 listen addresses in all" : "ADDR:PORT, [ADDR]:PORT or PORT";
	} else if (!strcmp(key, "control")) {
		r = strcmp(value, "none") ? set_path(c->control, sizeof(c->control), value) :
					    (c->control[0] = '\0', 0);
		want = "a Unix socket path (at most 107 bytes) or none";
	} else if (!strcmp(key, "allowed-keys")) {
		r = set_path(c->allowed_keys, sizeof(c->allowed_keys), value);
		want = "a file path";
	} else if (!strcmp(key, "log-file")) {
		r = set_path(c->log_file, sizeof(c->log_file), value);
		want = "a file path";
	} else if (!strcmp(key, "pid-file")) {
		r = set_path(c->pid_file, sizeof(c->pid_file), value);
		want = "a file path";
	} else if (!strcmp(key, "udp-lifetime")) {
		r = parse_secs(value, 10, 3600, &c->udp_lifetime_s);
		want = "a duration from 10s to 1h";
	} else if (!strcmp(key, "clock-skew")) {
		r = parse_secs(value, 1, 86400, &c->clock_skew_s);
		want = "a duration from 1s to 1d";
	} else if (!strcmp(key, "keepalive")) {
		r = parse_secs(value, 1, 3600, &c->keepalive_s);
		want = "a duration from 1s to 1h";
	} else if (!strcmp(key, "idle-timeout")) {
		r = parse_secs(value, 2, 86400, &c->idle_timeout_s);
		want = "a duration from 2s to 1d";
	} else if (!strcmp(key, "hello-timeout")) {
		r = parse_secs(value, 1, 600, &c->hello_timeout_s);
		want = "a duration from 1s to 10m";
	} else if (!strcmp(key, "max-udp")) {
		r = parse_u32(value, 1, 1 << 24, &c->max_udp);
		want = "a number from 1 to 16777216";
	} else if (!strcmp(key, "max-stream")) {
		r = parse_u32(value, 1, 1 << 20, &c->max_stream);
		want = "a number from 1 to 1048576";
	} else if (!strcmp(key, "proof-rate")) {
		r = parse_u32(value, 0, 1000000, &c->proof_rate);
		want = "proofs per second per address, 0 for no limit";
	} else if (!strcmp(key, "proof-rate-total")) {
		r = parse_u32(value, 0, 10000000, &c->proof_rate_total);
		want = "proofs per second, 0 for no limit";
	} else if (!strcmp(key, "queue-limit")) {
		r = parse_u32(value, 4096, 1u << 30, &c->queue_limit);
		want = "bytes from 4096 to 1G (K and M suffixes)";
	} else {
		snprintf(err, errlen, "unknown setting `%s'", key);
		return -EINVAL;
	}
	if (r)
		snprintf(err, errlen, "invalid %s `%s' (want %s)", key, value, want);
	return r ? -EINVAL : 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

int lsr_config_load(struct lsr_config *c, const char *path, char *err, size_t errlen)
{
	char *text = NULL, *line, *next, msg[512];
	size_t len;
	int lineno = 0, r;

	r = ls_read_file(path, &text, &len, 1 << 20);
	if (r) {
		snprintf(err, errlen, "cannot read config `%s': %s", path, strerror(-r));
		return r;
	}
	for (line = text; line; line = next) {
		char *key, *value, *eq, *hash;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		key = trim(line);
		if (!*key)
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, errlen, "%s:%d: expected `key = value', got `%s'", path, lineno, key);
			r = -EINVAL;
			goto cleanup;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		r = lsr_config_set(c, key, value, msg, sizeof(msg));
		if (r) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
			goto cleanup;
		}
	}
	r = 0;
cleanup:
	free(text);
	return r;
}
