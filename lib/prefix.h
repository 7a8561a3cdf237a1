/* SPDX-License-Identifier: MIT */
/* IP prefixes (CIDR) and endpoints for IPv4 and IPv6: parse, format, compare, contain. */
#ifndef LS_PREFIX_H
#define LS_PREFIX_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LS_PREFIX_STRLEN 64   /* "ffff:...:ffff/128" plus NUL, with room */
#define LS_ENDPOINT_STRLEN 72 /* "[v6]:65535" */

struct ls_prefix {
	uint8_t family; /* AF_INET or AF_INET6 */
	uint8_t len;    /* prefix length */
	uint8_t pad[2];
	uint8_t addr[16]; /* network byte order; IPv4 in the first 4 bytes; host bits zero */
};

/* "192.168.1.0/24", "fd00::/8"; a bare address means /32 or /128. Host bits set
 * ("10.0.0.1/8") are refused unless allow_host_bits, in which case they are kept
 * (an interface address). 0 or -EINVAL. */
int ls_prefix_parse(const char *s, struct ls_prefix *p, bool allow_host_bits);
void ls_prefix_format(const struct ls_prefix *p, char out[LS_PREFIX_STRLEN]);
/* Address only, without "/len". */
void ls_prefix_format_addr(const struct ls_prefix *p, char out[LS_PREFIX_STRLEN]);
bool ls_prefix_equal(const struct ls_prefix *a, const struct ls_prefix *b);
/* Does outer contain inner (same family, outer->len <= inner->len, leading bits equal)? */
bool ls_prefix_contains(const struct ls_prefix *outer, const struct ls_prefix *inner);
bool ls_prefix_overlap(const struct ls_prefix *a, const struct ls_prefix *b);
/* Zeroes the host bits. */
void ls_prefix_mask(struct ls_prefix *p);
bool ls_prefix_is_default(const struct ls_prefix *p); /* 0.0.0.0/0 or ::/0 */
int ls_prefix_max_len(const struct ls_prefix *p);     /* 32 or 128 */
/* The host prefix (/32, /128) of an AF_INET/AF_INET6 socket address. 0, or -EAFNOSUPPORT
 * for another family (out untouched). */
int ls_prefix_from_sockaddr(const struct sockaddr *sa, struct ls_prefix *out);

/* Endpoints: "192.0.2.1:51820", "[2001:db8::1]:51820". 0 or -EINVAL. */
int ls_endpoint_parse(const char *s, struct sockaddr_storage *ss, socklen_t *len);
void ls_endpoint_format(const struct sockaddr *sa, char out[LS_ENDPOINT_STRLEN]);

#endif
