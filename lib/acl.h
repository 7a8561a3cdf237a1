/* SPDX-License-Identifier: MIT */
/*
 * ACL policy per network: parse and validate, evaluate, and compile per node into the
 * packet filter of its netmap and into peer visibility.
 *
 * Policy document (JSON):
 * {
 *   "groups": {"admins": ["laptop", "tag:ops"]},
 *   "rules": [
 *     {"src": ["group:admins", "tag:web", "100.64.0.0/10"], "dst": ["tag:db", "host:nas"],
 *      "ports": ["5432", "8000-8100"], "proto": "tcp"}
 *   ],
 *   "visibility": "acl",           "acl" (default): a node sees only peers a rule connects
 *                                   it with, in either direction; "all": every peer
 *   "auto_approve": {              routes approved without an admin (route approval on):
 *     "routes": {"10.0.0.0/8": ["tag:router"]},   a route inside the prefix, by a node
 *                                                 a selector names
 *     "exit_node": ["tag:exit"]                   0.0.0.0/0 and ::/0 of these nodes
 *   }
 * }
 * Selectors (src and dst): "*" (every node), "tag:NAME", "group:NAME", "host:NAME" (a node's
 * DNS label), a bare node label, or a CIDR prefix (IPv4/IPv6; in dst it also matches
 * advertised routes). "ports" defaults to ["*"]; a port is "N" or "N-M". "proto" is one of
 * "tcp", "udp", "icmp", "any" (default "any"; ports must be "*" unless tcp or udp).
 * Without a policy every node may reach every other (allow all); with one, only what a rule
 * allows passes (default deny). Replies to allowed flows pass (the data plane tracks flows).
 *
 * Validation errors name the rule index and field: "rules[2].ports[0]: `70000' is not a
 * port or range (0-65535)". A policy that fails validation is never half-applied.
 */
#ifndef LS_ACL_H
#define LS_ACL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "prefix.h"

enum ls_acl_proto {
	LS_ACL_PROTO_ANY = 0,
	LS_ACL_PROTO_TCP = 6,
	LS_ACL_PROTO_UDP = 17,
	LS_ACL_PROTO_ICMP = 1, /* ICMP and ICMPv6 */
};

enum ls_sel_kind {
	LS_SEL_ALL,
	LS_SEL_TAG,
	LS_SEL_GROUP,
	LS_SEL_HOST,
	LS_SEL_PREFIX,
};

struct ls_acl_sel {
	enum ls_sel_kind kind;
	char *name;             /* tag, group or host name */
	struct ls_prefix prefix; /* LS_SEL_PREFIX */
};

struct ls_port_range {
	uint16_t from, to;
};

struct ls_acl_rule {
	struct ls_acl_sel *src;
	size_t n_src;
	struct ls_acl_sel *dst;
	size_t n_dst;
	struct ls_port_range *ports; /* n_ports == 0 means every port */
	size_t n_ports;
	enum ls_acl_proto proto;
};

struct ls_acl_group {
	char *name;
	struct ls_acl_sel *members; /* tags, hosts, prefixes (no nested groups) */
	size_t n_members;
};

struct ls_acl_auto_route {
	struct ls_prefix prefix;
	struct ls_acl_sel *by;
	size_t n_by;
};

struct ls_acl_policy {
	struct ls_acl_group *groups;
	size_t n_groups;
	struct ls_acl_auto_route *auto_routes;
	size_t n_auto_routes;
	struct ls_acl_sel *auto_exit;
	size_t n_auto_exit;
	struct ls_acl_rule *rules;
	size_t n_rules;
	bool visibility_all;
};

/* A node as the ACL sees it. */
struct ls_acl_node {
	int64_t id;
	const char *name;        /* DNS label */
	const char *const *tags; /* without the "tag:" prefix */
	size_t n_tags;
	const struct ls_prefix *addrs; /* overlay addresses (/32, /128) */
	size_t n_addrs;
	const struct ls_prefix *routes; /* approved advertised routes */
	size_t n_routes;
};

/* Parses and validates a policy. On error returns -EINVAL and writes a message naming the
 * rule index and field into err (when err is non-NULL). The caller frees with
 * ls_acl_policy_free. */
int ls_acl_parse(const char *json, size_t len, struct ls_acl_policy **out, char *err, size_t err_size);
int ls_acl_parse_json(json_t *doc, struct ls_acl_policy **out, char *err, size_t err_size);
void ls_acl_policy_free(struct ls_acl_policy *p);

/* Does the policy allow src to open a flow to dst at port/proto? (A NULL policy allows
 * everything.) When it does, *rule_index gets the first rule that allows it (-1 with a
 * NULL policy). dst_addr is the destination address (one of dst's addresses or inside one
 * of its routes); pass NULL to mean "any of dst's overlay addresses". */
bool ls_acl_allows(const struct ls_acl_policy *p, const struct ls_acl_node *src,
		   const struct ls_acl_node *dst, const struct ls_prefix *dst_addr, uint16_t port,
		   enum ls_acl_proto proto, int *rule_index);

/* Should `self` see `peer` in its netmap? Symmetric: true when a rule lets either open any
 * flow to the other, or with no policy or visibility "all". */
bool ls_acl_visible(const struct ls_acl_policy *p, const struct ls_acl_node *self,
		    const struct ls_acl_node *peer);

/* Compiles the packet filter enforced on `self`'s overlay ingress: a JSON array of
 * {"src": [CIDR...], "dst": [CIDR...], "ports": ["N" | "N-M"...], "proto": "tcp"|...}
 * holding only the rules that concern self, with selectors resolved against nodes[].
 * With a NULL policy returns [{"src": ["0.0.0.0/0", "::/0"], "dst": [...self...],
 * "ports": [], "proto": "any"}]. Returns a new reference, NULL on allocation failure. */
json_t *ls_acl_compile_filter(const struct ls_acl_policy *p, const struct ls_acl_node *self,
			      const struct ls_acl_node *nodes, size_t n_nodes);

/* Does an auto_approve rule approve `route' advertised by `node'? (A default route is an
 * exit: only "exit_node" approves it.) False with a NULL policy. */
bool ls_acl_auto_approves(const struct ls_acl_policy *p, const struct ls_acl_node *node,
			  const struct ls_prefix *route);

const char *ls_acl_proto_name(enum ls_acl_proto proto);
int ls_acl_proto_parse(const char *s, enum ls_acl_proto *out);

#endif
