// SPDX-License-Identifier: MIT
/* libFuzzer harness for the UAPI parser: any request text gets an errno answer
 * and leaves the device consistent (a get afterwards always succeeds). */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "keys.h"
#include "userspace/wgu/uapi.h"

static int udp_send(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso)
{
	return 0;
}

static int tun_write(void *ctx, uint8_t *pkt, size_t len)
{
	return 0;
}

static const struct lsw_device_ops ops = { .udp_send = udp_send, .tun_write = tun_write };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lsw_device dev;
	static int ready;
	struct lsw_buf out = { 0 };

	if (!ready) {
		ls_crypto_init();
		lsw_dev_init(&dev, &ops, NULL);
		ready = 1;
	}
	lsw_uapi_request(&dev, (const char *)data, size, &out);
	assert(out.len >= 9 && !memcmp(out.s + out.len - 2, "\n\n", 2));
	lsw_buf_free(&out);
	assert(lsw_uapi_request(&dev, "get=1\n", 6, &out) == 0);
	lsw_buf_free(&out);
	/* Keep the state small so the fuzzer stays fast. */
	if (dev.npeers > 64)
		lsw_uapi_request(&dev, "set=1\nreplace_peers=true\n", 25, &out);
	lsw_buf_free(&out);
	return 0;
}
