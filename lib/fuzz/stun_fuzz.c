// SPDX-License-Identifier: MIT
/* libFuzzer: the STUN codec (lib/stun.c) on arbitrary datagrams.
 *   make fuzz BUILD=build/x && build/x/fuzz/stun_fuzz -max_total_time=60 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage mapped;
	uint8_t txid[LS_STUN_TXID_LEN], out[128];
	/* An exact-size heap copy, so ASan catches any read past the end. */
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	(void)ls_stun_is_stun(buf, size);
	(void)ls_stun_parse_response(buf, size, NULL, &mapped);
	if (size >= LS_STUN_HDR_LEN)
		(void)ls_stun_parse_response(buf, size, buf + 8, &mapped);
	if (ls_stun_parse_request(buf, size, txid) == 0) {
		/* A request we accept gets an answer that our own client accepts. */
		struct sockaddr_in6 src = { .sin6_family = AF_INET6, .sin6_port = 4242 };
		int n;

		memcpy(&src.sin6_addr, txid, sizeof(txid) < 16 ? sizeof(txid) : 16);
		n = ls_stun_build_response(out, sizeof(out), txid, (struct sockaddr *)&src);
		if (n <= 0 || ls_stun_parse_response(out, (size_t)n, txid, &mapped) != 0)
			abort();
	}
	free(buf);
	return 0;
}
