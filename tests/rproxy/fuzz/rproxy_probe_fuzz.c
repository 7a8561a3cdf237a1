/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: the relay proxy's sealed probe decoder and address parser, and
 * the direct path discovery's raw UDP parser (agent.c; the sealed ping/pong decoder has
 * its own harness, disco_fuzz.c). The input goes to ls_disco_probe_open as it is (it
 * must not open: no key is known to the fuzzer) and, sealed here under a fixed key as a
 * probe's body, through the body decoder: a probe that opens must seal again and open to
 * the same thing. A parsed raw datagram's payload lies inside the input. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "userspace/relayproxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t from[32] = { 1 }, to[32] = { 2 }, key[32] = { 3 };
	struct ls_rproxy_probe p, q;
	struct sockaddr_storage ss;
	uint8_t buf[LS_DISCO_PROBE_MAX_LEN + 64], ad[8 + 64];
	unsigned long long clen;
	uint64_t seq, seq2;
	char *s;
	socklen_t len;
	int n;

	if (ls_disco_probe_open(data, size, from, to, key, &seq, &p) == 0)
		abort(); /* opened without the sender's seal */
	if (size <= LS_DISCO_PROBE_MAX_LEN - 32 - 16) {
		memcpy(buf, "\xffLSD\x03\x02\0\0", 8);
		memset(buf + 8, 0x5a, 24);
		memcpy(ad, buf, 8);
		memcpy(ad + 8, from, 32);
		memcpy(ad + 40, to, 32);
		crypto_aead_xchacha20poly1305_ietf_encrypt(buf + 32, &clen, data, size, ad, sizeof(ad), NULL, buf + 8, key);
		if (ls_disco_probe_open(buf, 32 + (size_t)clen, from, to, key, &seq, &p) == 0) {
			n = ls_disco_probe_seal(&p, seq, from, to, key, buf, sizeof(buf));
			if (n != 32 + (int)clen)
				abort(); /* the encoding is canonical */
			if (ls_disco_probe_open(buf, (size_t)n, from, to, key, &seq2, &q) || seq2 != seq)
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
