/* SPDX-License-Identifier: MIT */
/*
 * Split DNS: each profile's agent runs a small resolver on its own loopback address
 * 127.77.S.1:53 (S = the profile's multi-network slot + 1, so several profiles coexist on
 * one host). Names under the network's DNS suffix are answered from the netmap's
 * dns.records (A/AAAA; an address inside a route that this profile reaches through a
 * virtual prefix is answered translated); unknown names under the suffix get NXDOMAIN;
 * every other name is forwarded to the upstream resolvers (read from /etc/resolv.conf at
 * start, our own 127.77.x addresses left out, or given with --dns-upstream).
 *
 * Resolver integration: with systemd-resolved running (/run/systemd/resolve exists and
 * resolvectl is there) the agent also listens on its overlay IPv4 address and sets it as
 * ls-P's per-link DNS server with the routing domain ~SUFFIX (reverted on exit).
 * Otherwise nothing outside is changed unless --manage-resolv-conf, which adds
 * "nameserver 127.77.S.1" to the top of /etc/resolv.conf (atomically; the original comes
 * back on exit); `lightscale dns status' prints the exact instructions.
 */
#ifndef LS_DNSD_H
#define LS_DNSD_H

#include <jansson.h>
#include <stdbool.h>

#include "dns.h"
#include "mnet.h"
#include "netmap.h"
#include "profile.h"

struct ls_dnsd_opts {
	bool off;                /* --no-dns */
	const char *listen;      /* --dns-listen ADDR (default 127.77.S.1) */
	int port;                /* --dns-port (default 53) */
	char **upstreams;        /* --dns-upstream ADDR[:PORT] */
	size_t n_upstreams;
	bool manage_resolv_conf; /* --manage-resolv-conf */
};

struct ls_dnsd;

/* The records a netmap answers, translated through xl (real -> virtual). *names holds the
 * strings the records point to; free both with ls_dnsd_records_free. */
int ls_dnsd_records(const struct ls_netmap *nm, const struct ls_mnet_map *xl, size_t n_xl,
		    struct ls_dns_record **out, size_t *n);
void ls_dnsd_records_free(struct ls_dns_record *r, size_t n);

/* Parses "nameserver" lines of a resolv.conf text into "ADDR:53" strings (skipping
 * 127.77.x.x, ours). */
int ls_dnsd_parse_resolv_conf(const char *text, char ***out, size_t *n);

/* The default listen address of a slot ("127.77.S.1"). */
void ls_dnsd_default_listen(const struct ls_profile *p, char *out, size_t size);

int ls_dnsd_start(const struct ls_profile *p, const struct ls_dnsd_opts *o, struct ls_dnsd **out);
/* New netmap or mappings: the records are rebuilt (suffix too). */
void ls_dnsd_update(struct ls_dnsd *d, const struct ls_netmap *nm, const struct ls_mnet_map *xl, size_t n_xl);
/* {"listen", "suffix", "upstreams", "records", "queries", "answered", "nxdomain",
 *  "forwarded", "failed", "integration", "instructions"} */
json_t *ls_dnsd_status(struct ls_dnsd *d);
void ls_dnsd_stop(struct ls_dnsd *d);

#endif
