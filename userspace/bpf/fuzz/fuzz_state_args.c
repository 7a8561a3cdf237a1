// SPDX-License-Identifier: MIT
/*
 * libFuzzer harness for the desired-state parsers of liblsbpf: --map VIRTUAL=REAL,
 * filter rules (SRC|DST|PROTO|PORTS), the netmap's filter JSON, routes, return-route
 * guidance and per-interface SNAT addresses (IF=ADDR). Each input line
 * goes to one parser chosen by its first byte. Nothing may crash or leak; what is
 * accepted must be well-formed (mappings of equal family and length).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "userspace/bpf/lsbpf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		ls_log_level = LS_LOG_ERR - 1; /* errors are expected: keep the output clean */
		quiet = 1;
	}
	char *buf = malloc(size + 1), *save = NULL;
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = 0;
	struct lsbpf_state *s = lsbpf_state_new();
	for (char *line = strtok_r(buf, "\n", &save); line && s; line = strtok_r(NULL, "\n", &save)) {
		char *f[4] = {}, *s2 = NULL, out[256];
		switch (line[0] % 6) {
		case 5:
			lsbpf_state_add_iface_snat_arg(s, line + 1);
			break;
		case 4: {
			json_t *j = json_loads(line + 1, 0, NULL);
			if (j)
				lsbpf_state_add_filter_json(s, j);
			json_decref(j);
			break;
		}
		case 0:
			lsbpf_state_add_map_arg(s, line + 1);
			break;
		case 1:
			for (int i = 0; i < 4; i++)
				f[i] = strtok_r(i ? NULL : line + 1, "|", &s2);
			if (f[0] && f[1])
				lsbpf_state_add_rule(s, f[0], f[1], f[2], f[3]);
			break;
		case 2:
			lsbpf_state_add_route(s, line + 1, 1, 1, 0, line);
			break;
		case 3:
			for (int i = 0; i < 2; i++)
				f[i] = strtok_r(i ? NULL : line + 1, " ", &s2);
			if (f[0] && f[1])
				lsbpf_return_route(f[0], f[1], out, sizeof(out));
			break;
		}
	}
	for (size_t i = 0; s && i < s->n_ifaces; i++)
		if (!s->ifaces[i].ifname[0] || strlen(s->ifaces[i].ifname) >= 16 ||
		    (s->ifaces[i].snat4.family && s->ifaces[i].snat4.family != 2) ||
		    (s->ifaces[i].snat6.family && s->ifaces[i].snat6.family != 10))
			abort();
	for (size_t i = 0; s && i < s->n_xlates; i++)
		if (s->xlates[i].virt.family != s->xlates[i].real.family || s->xlates[i].virt.len != s->xlates[i].real.len)
			abort();
	lsbpf_state_free(s);
	free(buf);
	return 0;
}
