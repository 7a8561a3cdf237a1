// SPDX-License-Identifier: MIT
/* libFuzzer: TURN datagrams from a server (Data indications, ChannelData) through
 * ls_turn_parse_data, which runs the TURN attribute parser.
 *   make fuzz BUILD=build/x && build/x/fuzz/turn_fuzz -max_total_time=60 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "turnclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage peer;
	const uint8_t *payload;
	size_t plen;
	uint8_t *buf = malloc(size ? size : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	if (ls_turn_parse_data(NULL, buf, size, &peer, &payload, &plen) == 0) {
		/* The payload lies inside the datagram. */
		if (payload < buf || payload + plen > buf + size)
			abort();
	}
	free(buf);
	return 0;
}
