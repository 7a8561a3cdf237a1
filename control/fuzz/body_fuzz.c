// SPDX-License-Identifier: MIT
/* libFuzzer harness for the request-body parsers of lightscale-control (control/body.c).
 * The first byte picks the parser; the rest is the body. Build: make fuzz; run:
 *   build/fuzz/control_body_fuzz -max_total_time=60 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "control/control.h"
#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	char err[512];

	if (!init) {
		ls_crypto_init();
		init = 1;
	}
	if (size < 1)
		return 0;
	switch (data[0] % 7) {
	case 0: {
		struct lsc_register_req r;

		if (lsc_parse_register((const char *)data + 1, size - 1, &r, err, sizeof(err)) == 0)
			lsc_register_req_free(&r);
		break;
	}
	case 1: {
		struct lsc_heartbeat_req r;

		if (lsc_parse_heartbeat((const char *)data + 1, size - 1, &r, err, sizeof(err)) == 0)
			lsc_heartbeat_req_free(&r);
		break;
	}
	case 2: {
		struct lsc_network_req r;

		if (lsc_parse_network((const char *)data + 1, size - 1, &r, err, sizeof(err)) == 0)
			lsc_network_req_free(&r);
		break;
	}
	case 4: {
		struct lsc_network_set_req r;

		lsc_parse_network_set((const char *)data + 1, size - 1, &r, err, sizeof(err));
		break;
	}
	case 5: {
		struct lsc_strv r;

		if (lsc_parse_routes((const char *)data + 1, size - 1, &r, err, sizeof(err)) == 0)
			lsc_strv_free(&r);
		break;
	}
	case 6: {
		char key[64];

		lsc_parse_rotate((const char *)data + 1, size - 1, key, err, sizeof(err));
		break;
	}
	default: {
		struct lsc_token_req r;

		if (lsc_parse_token((const char *)data + 1, size - 1, &r, err, sizeof(err)) == 0)
			lsc_token_req_free(&r);
		break;
	}
	}
	return 0;
}
