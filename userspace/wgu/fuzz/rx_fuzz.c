// SPDX-License-Identifier: MIT
/* libFuzzer harness for the receive path. The first input byte picks a mode:
 *   0: the rest is a raw datagram (its type forced to 1..4 so every message
 *      parser is reached), for a device with a peer and a live session;
 *   1: the rest is a plaintext, sealed as a valid data message of that
 *      session, so the inner-packet checks and TUN coalescing are reached;
 *   2: the rest is a virtio header and a packet as read from the TUN device,
 *      for the super-packet splitter.
 * Nothing may crash, leak or read out of bounds. */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "userspace/wgu/device.h"
#include "userspace/wgu/gro.h"
#include "userspace/wgu/tun.h"

static struct lsw_device da, db;
static struct lsw_endpoint ea, eb;
static struct lsw_gro gro;
static uint8_t wire[LSW_HEADROOM + 4096];
static size_t wire_len;
static struct lsw_device *wire_to;

static int udp_send(void *ctx, const struct lsw_endpoint *ep, const struct iovec *iov, int n, size_t gso)
{
	/* Keep the last message only: enough to complete a handshake in init. */
	if (n && iov[n - 1].iov_len <= sizeof(wire) - LSW_HEADROOM) {
		memcpy(wire + LSW_HEADROOM, iov[n - 1].iov_base, iov[n - 1].iov_len);
		wire_len = iov[n - 1].iov_len;
		wire_to = ctx == &da ? &db : &da;
	}
	return 0;
}

static int sink(void *ctx, const uint8_t *buf, size_t len)
{
	return 0;
}

static int tun_write(void *ctx, uint8_t *pkt, size_t len)
{
	return lsw_gro_add(&gro, pkt, len, sink, NULL);
}

static const struct lsw_device_ops ops = { .udp_send = udp_send, .tun_write = tun_write };

static void deliver(void)
{
	while (wire_len) {
		size_t len = wire_len;
		struct lsw_device *to = wire_to;

		wire_len = 0;
		lsw_dev_rx(to, wire + LSW_HEADROOM, len, to == &db ? &ea : &eb);
	}
}

static void init(void)
{
	uint8_t ka[32], kb[32], pa[32], pb[32], net[4] = { 10, 0, 0, 0 }, pkt[LSW_HEADROOM + 64 + LSW_TAILROOM] = { 0 };
	struct lsw_peer *p;
	struct lsw_pkt pk = { .data = pkt + LSW_HEADROOM, .len = 20 };

	ls_crypto_init();
	lsw_dev_init(&da, &ops, &da);
	lsw_dev_init(&db, &ops, &db);
	ls_wg_genkey(ka);
	ls_wg_genkey(kb);
	ls_wg_pubkey(pa, ka);
	ls_wg_pubkey(pb, kb);
	lsw_dev_set_private_key(&da, ka);
	lsw_dev_set_private_key(&db, kb);
	ea.in4.sin_family = eb.in4.sin_family = AF_INET;
	ea.in4.sin_port = htons(1);
	eb.in4.sin_port = htons(2);
	ea.len = eb.len = sizeof(ea.in4);
	p = lsw_dev_add_peer(&da, pb);
	p->endpoint = eb;
	lsw_aip_insert(&da.aip, AF_INET, net, 8, p);
	p = lsw_dev_add_peer(&db, pa);
	p->endpoint = ea;
	lsw_aip_insert(&db.aip, AF_INET, net, 8, p);
	/* An IPv4 header to 10.0.0.2 starts the handshake; deliver it all. */
	pk.data[0] = 0x45;
	pk.data[3] = 20;
	pk.data[16] = 10;
	pk.data[19] = 2;
	lsw_dev_tx(&da, &pk, 1);
	deliver();
	deliver();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[LSW_HEADROOM + 65536 + LSW_TAILROOM];
	static uint8_t arena_buf[1 << 20];
	static struct lsw_pkt segs[256];
	static int ready;
	struct lsw_keypair *kp;
	struct lsw_msg_data *m;

	if (!ready) {
		init();
		ready = 1;
	}
	if (size < 1 || size > 65000)
		return 0;
	switch (data[0] % 3) {
	case 0:
		memcpy(buf + LSW_HEADROOM, data + 1, size - 1);
		if (size - 1 >= 4) {
			buf[LSW_HEADROOM] = (uint8_t)(1 + data[1] % 4);
			buf[LSW_HEADROOM + 1] = buf[LSW_HEADROOM + 2] = buf[LSW_HEADROOM + 3] = 0;
		}
		db.force_under_load = data[size - 1] & 1;
		lsw_dev_rx(&db, buf + LSW_HEADROOM, size - 1, &ea);
		break;
	case 1:
		kp = da.peers->kp_cur;
		if (!kp)
			return 0;
		m = (struct lsw_msg_data *)(buf + LSW_HEADROOM);
		m->h.type = LSW_MSG_DATA;
		memset(m->h.reserved, 0, 3);
		m->receiver = htole32(kp->remote_index);
		m->counter = htole64(kp->send_counter);
		lsw_aead_encrypt(m->encrypted, data + 1, size - 1, NULL, 0, kp->send_counter, kp->keys.send);
		kp->send_counter++;
		lsw_dev_rx(&db, buf + LSW_HEADROOM, LSW_DATA_OVERHEAD + size - 1, &ea);
		if (data[size - 1] & 1)
			lsw_gro_flush(&gro, sink, NULL);
		break;
	case 2:
		if (size - 1 >= sizeof(struct lsw_vnet_hdr)) {
			struct lsw_vnet_hdr vh;
			struct lsw_arena a = { .buf = arena_buf, .cap = sizeof(arena_buf) };

			memcpy(&vh, data + 1, sizeof(vh));
			lsw_tun_split(&vh, data + 1 + sizeof(vh), size - 1 - sizeof(vh), &a, segs, 256);
		}
		break;
	}
	return 0;
}
