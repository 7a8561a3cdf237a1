/* SPDX-License-Identifier: MIT */
/* The cross-platform WireGuard UAPI (the protocol `wg` speaks to
 * /var/run/wireguard/IF.sock): get=1, set=1, and our own stats=1. */
#ifndef LSW_UAPI_H
#define LSW_UAPI_H

#include <stddef.h>

#include "userspace/wgu/device.h"

struct lsw_buf {
	char *s;
	size_t len, cap;
};

void lsw_buf_appendf(struct lsw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void lsw_buf_free(struct lsw_buf *b);

/* Handles one request: its lines up to (not including) the blank line that
 * ends it. Appends the whole answer, ending in "errno=-E\n\n" (0 or a
 * negative errno, as wireguard-go answers), to out. A set
 * request is checked completely before anything is applied: a bad line
 * changes nothing. Returns 0 or the -errno it answered with. */
int lsw_uapi_request(struct lsw_device *d, const char *req, size_t len, struct lsw_buf *out);

/* Parses "1.2.3.4:51820" or "[fd00::1]:51820" into ep. 0 or -EINVAL. */
int lsw_parse_endpoint(const char *s, struct lsw_endpoint *ep);
/* Formats an endpoint as the UAPI and `wg` print it. */
void lsw_format_endpoint(const struct lsw_endpoint *ep, char *buf, size_t size);

#endif
