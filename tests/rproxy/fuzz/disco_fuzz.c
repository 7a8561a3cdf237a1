/* SPDX-License-Identifier: MIT */
/* libFuzzer harness: the sealed ping/pong decoder of direct path discovery
 * (relayproxy.h, ls_disco_*), the raw UDP parser and the replay window.
 *
 *   1. Any input, as a datagram: ls_disco_peek/ls_disco_open with a pair key never read
 *      out of bounds, and never accept (that would be a forgery).
 *   2. A message sealed from the input's fields, then changed as the input says (one
 *      byte xor-ed, or cut short): it opens, with the same fields, exactly when
 *      nothing changed.
 *   3. The input as a sequence of seqs through a replay window: nothing accepted twice.
 * Run: $(BUILD)/fuzz/disco_fuzz -max_total_time=60 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "userspace/relayproxy.h"

static uint8_t a_priv[32], a_pub[32], b_priv[32], b_pub[32], key_ab[32], key_ba[32];

static void init(void)
{
	static int done;

	if (done)
		return;
	if (sodium_init() < 0)
		abort();
	memset(a_priv, 0x11, sizeof(a_priv));
	memset(b_priv, 0x22, sizeof(b_priv));
	crypto_scalarmult_base(a_pub, a_priv);
	crypto_scalarmult_base(b_pub, b_priv);
	if (ls_disco_key(key_ab, a_priv, a_pub, b_pub) || ls_disco_key(key_ba, b_priv, b_pub, a_pub) ||
	    memcmp(key_ab, key_ba, 32))
		abort();
	done = 1;
}

static uint64_t take64(const uint8_t *d, size_t n, size_t off)
{
	uint64_t v = 0;

	for (size_t i = 0; i < 8; i++)
		v = v << 8 | (off + i < n ? d[off + i] : 0);
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_disco_msg m, d;
	uint8_t buf[LS_DISCO_LEN];
	int ret;

	init();
	/* 1 */
	ret = ls_disco_peek(data, size, &d);
	if (ret != 0 && ret != -EBADMSG && ret != -EPROTO)
		abort();
	if (ret == 0 && (size != LS_DISCO_LEN || (d.type != LS_DISCO_PING && d.type != LS_DISCO_PONG)))
		abort();
	if (ls_disco_open(data, size, key_ba, &d) == 0)
		abort();
	for (int fam = 0; fam < 2; fam++) {
		struct sockaddr_storage src = { 0 }, dst;
		const uint8_t *pl;
		size_t plen;

		if (ls_raw_udp_parse(fam ? AF_INET6 : AF_INET, data, size, 51820, &src, &dst, &pl, &plen) == 0 &&
		    (pl < data || pl + plen > data + size))
			abort();
	}
	/* 2: fields from bytes 0..16, the change from bytes 17..19 */
	memset(&m, 0, sizeof(m));
	m.type = size && (data[0] & 1) ? LS_DISCO_PONG : LS_DISCO_PING;
	m.txid = take64(data, size, 1);
	m.seq = take64(data, size, 9);
	memcpy(m.from, a_pub, 32);
	memcpy(m.to, b_pub, 32);
	ls_disco_seal(&m, key_ab, buf);
	{
		size_t pos = size > 17 ? data[17] % LS_DISCO_LEN : 0, len = LS_DISCO_LEN;
		uint8_t x = size > 18 ? data[18] : 0;
		bool cut = size > 19 && (data[19] & 1);

		buf[pos] ^= x;
		if (cut)
			len = size > 19 ? data[19] % LS_DISCO_LEN : 0;
		ret = ls_disco_open(buf, len, key_ba, &d);
		if (!x && !cut) {
			if (ret || d.type != m.type || d.txid != m.txid || d.seq != m.seq || memcmp(d.from, a_pub, 32) ||
			    memcmp(d.to, b_pub, 32))
				abort();
		} else if (ret == 0) {
			abort();
		}
	}
	/* 3: each 8 bytes a seq (small steps around a base, so the window matters) */
	{
		struct ls_disco_replay r = { 0 };
		uint64_t seen[64];
		size_t n_seen = 0;

		for (size_t off = 0; off + 2 <= size && n_seen < 64; off += 2) {
			uint64_t s = 1000000 + (uint64_t)(data[off] << 8 | data[off + 1]) % 200;
			bool ok = ls_disco_replay_ok(&r, s), dup = false;

			for (size_t i = 0; i < n_seen; i++)
				dup |= seen[i] == s;
			if (ok && dup)
				abort(); /* accepted twice */
			if (ok) {
				ls_disco_replay_mark(&r, s);
				seen[n_seen++] = s;
				if (ls_disco_replay_ok(&r, s))
					abort();
			}
		}
	}
	return 0;
}
