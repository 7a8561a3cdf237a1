// SPDX-License-Identifier: MIT
/* libFuzzer harness for the receive path: any datagram, fed to a device that
 * has a peer and a live session, must be dropped or handled without a crash.
 * The first byte picks the message type so every parser is reached. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "userspace/wgu/device.h"

static int udp_send(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso)
{
	return 0;
}

static int tun_write(void *ctx, uint8_t *pkt, size_t len)
{
	return 0;
}

static const struct lsw_device_ops ops = { .udp_send = udp_send, .tun_write = tun_write };
static struct lsw_device dev;
static struct lsw_endpoint src;

static void init(void)
{
	uint8_t priv[32], ppriv[32], ppub[32], a[4] = { 10, 0, 0, 0 };
	struct lsw_peer *p;

	ls_crypto_init();
	lsw_dev_init(&dev, &ops, NULL);
	ls_wg_genkey(priv);
	lsw_dev_set_private_key(&dev, priv);
	ls_wg_genkey(ppriv);
	ls_wg_pubkey(ppub, ppriv);
	p = lsw_dev_add_peer(&dev, ppub);
	lsw_aip_insert(&dev.aip, AF_INET, a, 8, p);
	src.in4.sin_family = AF_INET;
	src.in4.sin_port = htons(51820);
	src.len = sizeof(src.in4);
	p->endpoint = src;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[LSW_HEADROOM + 65536];
	static int ready;

	if (!ready) {
		init();
		ready = 1;
	}
	if (size > 65536)
		return 0;
	memcpy(buf + LSW_HEADROOM, data, size);
	if (size >= 4) {
		buf[LSW_HEADROOM] = (uint8_t)(1 + data[0] % 4);
		buf[LSW_HEADROOM + 1] = buf[LSW_HEADROOM + 2] = buf[LSW_HEADROOM + 3] = 0;
	}
	dev.force_under_load = size > 0 && (data[size - 1] & 1);
	lsw_dev_rx(&dev, buf + LSW_HEADROOM, size, &src);
	return 0;
}
