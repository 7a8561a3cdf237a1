// SPDX-License-Identifier: MIT
#include "dns.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

#include "bytes.h"

#define HDR_LEN 12
#define FLAG_QR 0x8000
#define FLAG_OPCODE 0x7800
#define FLAG_AA 0x0400
#define FLAG_TC 0x0200
#define FLAG_RD 0x0100
#define FLAG_RA 0x0080

/* Reads a (possibly compressed) name at off into out (lowercase, dotted). Returns the
 * offset just past the name in the original position, or -EINVAL. */
static int read_name(const uint8_t *pkt, size_t len, size_t off, char *out)
{
	size_t o = off, n = 0;
	int end = -1, jumps = 0;

	for (;;) {
		uint8_t l;

		if (o >= len)
			return -EINVAL;
		l = pkt[o];
		if ((l & 0xc0) == 0xc0) {
			size_t target;

			if (o + 1 >= len || ++jumps > 16)
				return -EINVAL;
			target = (size_t)((l & 0x3f) << 8 | pkt[o + 1]);
			if (target >= o) /* only backwards: no loops */
				return -EINVAL;
			if (end < 0)
				end = (int)(o + 2);
			o = target;
			continue;
		}
		if (l & 0xc0)
			return -EINVAL; /* extended label types are not supported */
		o++;
		if (l == 0)
			break;
		if (o + l > len || n + l + 1 > LS_DNS_MAX_NAME)
			return -EINVAL;
		if (n)
			out[n++] = '.';
		for (uint8_t i = 0; i < l; i++) {
			char c = (char)pkt[o + i];

			if (c == '.' || c == '\0')
				return -EINVAL;
			out[n++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		o += l;
	}
	out[n] = '\0';
	return end >= 0 ? end : (int)o;
}

int ls_dns_parse_query(const uint8_t *pkt, size_t len, struct ls_dns_query *q)
{
	int off;

	if (!pkt || len < HDR_LEN + 5 || len > 65535)
		return -EINVAL;
	memset(q, 0, sizeof(*q));
	q->id = ls_get_be16(pkt);
	q->flags = ls_get_be16(pkt + 2);
	if (q->flags & FLAG_QR)
		return -EINVAL; /* a response, not a query */
	if (ls_get_be16(pkt + 4) != 1 || ls_get_be16(pkt + 6) != 0 || ls_get_be16(pkt + 8) != 0)
		return -EINVAL;
	/* pkt+10: ARCOUNT may carry an EDNS OPT record; it is ignored */
	off = read_name(pkt, len, HDR_LEN, q->name);
	if (off < 0 || (size_t)off + 4 > len)
		return -EINVAL;
	q->qtype = ls_get_be16(pkt + off);
	q->qclass = ls_get_be16(pkt + off + 2);
	q->question_len = (size_t)off + 4;
	return 0;
}

bool ls_dns_name_under(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	if (s == 0)
		return true;
	if (n < s || strcasecmp(name + n - s, suffix))
		return false;
	return n == s || name[n - s - 1] == '.';
}

static int reply_header(const uint8_t *pkt, const struct ls_dns_query *q, int rcode, uint16_t ancount, uint8_t *out,
			size_t out_size)
{
	uint16_t flags;

	if (out_size < q->question_len)
		return -ENOSPC;
	memcpy(out, pkt, q->question_len);
	flags = (uint16_t)(FLAG_QR | (q->flags & (FLAG_OPCODE | FLAG_RD)) | FLAG_RA | (rcode & 0xf));
	if (rcode == LS_DNS_RCODE_OK || rcode == LS_DNS_RCODE_NXDOMAIN)
		flags |= FLAG_AA;
	ls_put_be16(out + 2, flags);
	ls_put_be16(out + 6, ancount);
	ls_put_be16(out + 8, 0);
	ls_put_be16(out + 10, 0);
	return (int)q->question_len;
}

int ls_dns_error(const uint8_t *pkt, const struct ls_dns_query *q, int rcode, uint8_t *out, size_t out_size)
{
	return reply_header(pkt, q, rcode, 0, out, out_size);
}

int ls_dns_answer(const uint8_t *pkt, const struct ls_dns_query *q, const struct ls_dns_record *records,
		  size_t n_records, uint8_t *out, size_t out_size)
{
	bool name_exists = false;
	uint16_t ancount = 0;
	int off;

	if (q->qclass != LS_DNS_CLASS_IN)
		return ls_dns_error(pkt, q, LS_DNS_RCODE_NOTIMP, out, out_size);
	for (size_t i = 0; i < n_records; i++)
		if (!strcasecmp(records[i].name, q->name))
			name_exists = true;
	off = reply_header(pkt, q, name_exists ? LS_DNS_RCODE_OK : LS_DNS_RCODE_NXDOMAIN, 0, out, out_size);
	if (off < 0)
		return off;
	for (size_t i = 0; i < n_records; i++) {
		const struct ls_dns_record *r = &records[i];
		size_t rdlen = r->type == LS_DNS_TYPE_A ? 4 : 16;

		if (strcasecmp(r->name, q->name) || (q->qtype != r->type && q->qtype != LS_DNS_TYPE_ANY))
			continue;
		if ((size_t)off + 12 + rdlen > out_size || (size_t)off + 12 + rdlen > LS_DNS_MAX_UDP) {
			ls_put_be16(out + 2, ls_get_be16(out + 2) | FLAG_TC);
			break;
		}
		ls_put_be16(out + off, 0xc000 | HDR_LEN); /* the question's name */
		ls_put_be16(out + off + 2, r->type);
		ls_put_be16(out + off + 4, LS_DNS_CLASS_IN);
		ls_put_be32(out + off + 6, r->ttl);
		ls_put_be16(out + off + 10, (uint16_t)rdlen);
		memcpy(out + off + 12, r->addr, rdlen);
		off += 12 + (int)rdlen;
		ancount++;
	}
	ls_put_be16(out + 6, ancount);
	return off;
}

int ls_dns_build_query(uint16_t id, const char *name, uint16_t type, uint8_t *out, size_t out_size)
{
	size_t off = HDR_LEN;
	const char *p = name;

	if (out_size < HDR_LEN + 1 + 4 || strlen(name) > LS_DNS_MAX_NAME)
		return -EINVAL;
	memset(out, 0, HDR_LEN);
	ls_put_be16(out, id);
	ls_put_be16(out + 2, FLAG_RD);
	ls_put_be16(out + 4, 1);
	while (*p) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		if (l == 0 || l > 63 || off + 1 + l + 1 + 4 > out_size)
			return -EINVAL;
		out[off++] = (uint8_t)l;
		memcpy(out + off, p, l);
		off += l;
		p += l;
		if (*p == '.')
			p++;
	}
	out[off++] = 0;
	ls_put_be16(out + off, type);
	ls_put_be16(out + off + 2, LS_DNS_CLASS_IN);
	return (int)(off + 4);
}
