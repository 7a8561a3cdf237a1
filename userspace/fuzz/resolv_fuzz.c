// SPDX-License-Identifier: MIT
/* libFuzzer harness: the resolv.conf reader the split-DNS resolver takes its upstreams
 * from, and the record builder on a netmap parsed from the same input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "userspace/dnsd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char **v = NULL;
	size_t n = 0;
	struct ls_netmap *nm = NULL;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (ls_dnsd_parse_resolv_conf(text, &v, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			free(v[i]);
		free(v);
	}
	if (ls_netmap_parse(text, size, &nm, NULL, 0) == 0 && nm) {
		struct ls_mnet_map xl = { 0 };
		struct ls_dns_record *r = NULL;
		size_t nr = 0;

		ls_prefix_parse("10.200.0.0/16", &xl.virt, false);
		ls_prefix_parse("192.168.0.0/16", &xl.real, false);
		if (ls_dnsd_records(nm, &xl, 1, &r, &nr) == 0)
			ls_dnsd_records_free(r, nr);
		ls_netmap_free(nm);
	}
	free(text);
	return 0;
}
