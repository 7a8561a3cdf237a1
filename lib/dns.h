/* SPDX-License-Identifier: MIT */
/*
 * DNS for split DNS (RFC 1035 wire format): the agent answers names under each network's
 * suffix from its netmap and forwards everything else to the host's resolvers.
 *
 * ls_dns_parse_query reads a query datagram (one question, no answers); ls_dns_answer
 * builds the reply to it from a table of records. Every length is checked before it is
 * read; compression pointers are followed only backwards and at most 16 times.
 */
#ifndef LS_DNS_H
#define LS_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LS_DNS_MAX_NAME 255 /* presentation form, without the trailing dot */
#define LS_DNS_MAX_UDP 512

enum {
	LS_DNS_TYPE_A = 1,
	LS_DNS_TYPE_PTR = 12,
	LS_DNS_TYPE_AAAA = 28,
	LS_DNS_TYPE_ANY = 255,
	LS_DNS_CLASS_IN = 1,
	LS_DNS_RCODE_OK = 0,
	LS_DNS_RCODE_FORMERR = 1,
	LS_DNS_RCODE_SERVFAIL = 2,
	LS_DNS_RCODE_NXDOMAIN = 3,
	LS_DNS_RCODE_NOTIMP = 4,
};

struct ls_dns_query {
	uint16_t id;
	uint16_t flags;
	uint16_t qtype, qclass;
	char name[LS_DNS_MAX_NAME + 1]; /* lowercase, no trailing dot; "" for the root */
	size_t question_len;            /* bytes of header + question, echoed in the reply */
};

struct ls_dns_record {
	const char *name; /* lowercase FQDN without the trailing dot */
	uint16_t type;    /* A or AAAA */
	uint8_t addr[16];
	uint32_t ttl;
};

/* 0, or -EINVAL for anything that is not a well-formed single-question query. */
int ls_dns_parse_query(const uint8_t *pkt, size_t len, struct ls_dns_query *q);

/* Is name equal to suffix or under it ("a.home.ls" is under "home.ls")? */
bool ls_dns_name_under(const char *name, const char *suffix);

/* Builds the reply to q (whose wire form is pkt) into out: the matching records from
 * records[], or NXDOMAIN when the name has none of any type, or an empty NOERROR answer
 * when the name exists with another type. Returns the reply length, or -ENOSPC. */
int ls_dns_answer(const uint8_t *pkt, const struct ls_dns_query *q, const struct ls_dns_record *records,
		  size_t n_records, uint8_t *out, size_t out_size);
/* An error reply (FORMERR, SERVFAIL, NOTIMP...) to q. */
int ls_dns_error(const uint8_t *pkt, const struct ls_dns_query *q, int rcode, uint8_t *out, size_t out_size);

/* Builds a query for name/type (for tests and the forwarder's health checks). */
int ls_dns_build_query(uint16_t id, const char *name, uint16_t type, uint8_t *out, size_t out_size);

#endif
