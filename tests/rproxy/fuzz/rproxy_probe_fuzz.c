/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: the relay proxy's probe payload decoder and address parser, and
 * the direct path discovery's raw UDP parser (agent.c; the sealed ping/pong decoder has
 * its own harness, disco_fuzz.c). A decoded probe must encode again and decode to the
 * same thing; a parsed raw datagram's payload lies inside the input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/relayproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_rproxy_probe p, q;
	struct sockaddr_storage ss;
	char buf[LSR_MAX_PROBE + 1], *s;
	socklen_t len;
	int n;

	if (ls_rproxy_probe_decode(data, size, &p) == 0) {
		n = ls_rproxy_probe_encode(&p, buf, sizeof(buf));
		/* Re-encoding may be longer only by escaping; it must never be invalid. */
		if (n == -EINVAL)
			abort();
		if (n > 0) {
			if (ls_rproxy_probe_decode((const uint8_t *)buf, (size_t)n, &q))
				abort();
			if (q.ts_ms != p.ts_ms || q.reply != p.reply || q.n_endpoints != p.n_endpoints ||
			    strcmp(q.turn, p.turn))
				abort();
			for (size_t i = 0; i < p.n_endpoints; i++)
				if (strcmp(p.endpoints[i], q.endpoints[i]))
					abort();
		}
	}
	{
		struct sockaddr_storage src, dst;
		const uint8_t *pl;
		size_t plen;

		for (int fam = 0; fam < 2; fam++) {
			memset(&src, 0, sizeof(src));
			if (ls_raw_udp_parse(fam ? AF_INET6 : AF_INET, data, size, 51820, &src, &dst, &pl, &plen) == 0 &&
			    (pl < data || pl + plen > data + size))
				abort();
		}
	}
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	ls_rproxy_parse_addr(s, &ss, &len);
	free(s);
	return 0;
}
