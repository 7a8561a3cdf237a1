// SPDX-License-Identifier: MIT
/* libFuzzer harness: DNS query parser and answer builder. */
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct ls_dns_record rec[] = {
		{ .name = "a.home.ls", .type = LS_DNS_TYPE_A, .addr = { 100, 64, 0, 1 }, .ttl = 5 },
		{ .name = "a.home.ls", .type = LS_DNS_TYPE_AAAA, .addr = { 0xfd }, .ttl = 5 },
	};
	struct ls_dns_query q;
	uint8_t out[LS_DNS_MAX_UDP];

	if (ls_dns_parse_query(data, size, &q) == 0) {
		ls_dns_answer(data, &q, rec, 2, out, sizeof(out));
		ls_dns_error(data, &q, LS_DNS_RCODE_SERVFAIL, out, sizeof(out));
		ls_dns_name_under(q.name, "home.ls");
	}
	return 0;
}
