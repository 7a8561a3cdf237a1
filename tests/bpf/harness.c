// SPDX-License-Identifier: MIT
/* Table-test harness for the BPF programs (see harness.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include "tests/bpf/harness.h"

static int tap_n;

int h_ok(bool cond, const char *fmt, ...)
{
	va_list ap;
	printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	return cond ? 0 : 1;
}

void h_plan_done(void)
{
	printf("1..%d\n", tap_n);
}

static uint32_t sum16(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (p[i] << 8) | p[i + 1];
	if (len & 1)
		sum += p[len - 1] << 8;
	return sum;
}

static uint16_t fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static int addr(int fam, const char *s, uint8_t *out)
{
	if (inet_pton(fam == 4 ? AF_INET : AF_INET6, s, out) != 1) {
		fprintf(stderr, "bad test address %s\n", s);
		exit(2);
	}
	return fam == 4 ? 4 : 16;
}

static uint32_t pseudo(int fam, const uint8_t *ip, int proto, size_t l4len)
{
	uint32_t s = 0;
	if (fam == 4)
		s = sum16(ip + 12, 8, 0);
	else
		s = sum16(ip + 8, 32, 0);
	s += proto;
	s += (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff);
	return s;
}

/* Builds the IP packet (no L2) at buf; returns its length. */
static size_t build_ip(const struct pk *p, uint8_t *buf, size_t cap)
{
	uint8_t l4[2048];
	size_t l4len = 0, hl = p->fam == 4 ? 20 : 40;
	bool has_l4 = p->frag != 2;

	memset(l4, 0, sizeof(l4));
	if (has_l4 && p->proto == 6) {
		put16(l4, htons(p->sport));
		put16(l4 + 2, htons(p->dport));
		uint32_t seq = htonl(1000);
		memcpy(l4 + 4, &seq, 4);
		l4[12] = 5 << 4;
		l4[13] = p->tcp_flags ? p->tcp_flags : 0x10;
		put16(l4 + 14, htons(65535));
		l4len = 20;
	} else if (has_l4 && p->proto == 17) {
		put16(l4, htons(p->sport));
		put16(l4 + 2, htons(p->dport));
		l4len = 8;
	} else if (has_l4 && (p->proto == 1 || p->proto == 58)) {
		l4[0] = p->type;
		l4[1] = p->code;
		if (!p->inner)
			put16(l4 + 4, htons(p->sport));
		l4len = 8;
	}
	if (p->inner) {
		size_t n = build_ip(p->inner, l4 + l4len, sizeof(l4) - l4len);
		size_t ihl = p->inner->fam == 4 ? 20 : 40;
		if (p->inner_l4 && ihl + p->inner_l4 < n)
			n = ihl + p->inner_l4;
		l4len += n;
	}
	if (p->stun) {
		uint8_t *m = l4 + l4len;
		memset(m, 0, 20);
		put16(m, htons(0x0001));
		uint32_t ck = htonl(p->stun_cookie ? p->stun_cookie : 0x2112A442);
		memcpy(m + 4, &ck, 4);
		for (int i = 8; i < 20; i++)
			m[i] = (uint8_t)(i * 13);
		put16(m + 2, htons(p->payload & ~3));
		l4len += 20;
	}
	for (int i = 0; i < p->payload; i++)
		l4[l4len++] = (uint8_t)(i * 7 + 3);
	if (has_l4 && p->proto == 17)
		put16(l4 + 4, htons(l4len));

	memset(buf, 0, hl);
	if (p->fam == 4) {
		buf[0] = p->bad_ihl ? 0x44 : 0x45;
		put16(buf + 2, htons(hl + l4len));
		put16(buf + 4, htons(0x1234));
		uint16_t fo = p->frag == 1 ? 0x2000 : p->frag == 2 ? (1480 / 8) : 0;
		put16(buf + 6, htons(fo));
		buf[8] = 64;
		buf[9] = p->proto;
		addr(4, p->src, buf + 12);
		addr(4, p->dst, buf + 16);
		put16(buf + 10, fold(sum16(buf, 20, 0)));
	} else {
		buf[0] = 0x60;
		put16(buf + 4, htons(l4len + (p->frag ? 8 : 0)));
		buf[6] = p->frag ? 44 : p->proto;
		buf[7] = 64;
		addr(6, p->src, buf + 8);
		addr(6, p->dst, buf + 24);
		if (p->frag) {
			uint8_t *fh = buf + 40;
			memset(fh, 0, 8);
			fh[0] = p->proto;
			put16(fh + 2, htons(p->frag == 1 ? 1 : (1480 & ~7)));
			fh[4] = 0x12;
			hl += 8;
		}
	}
	/* L4 checksum over what is present (for a first fragment: as if it were whole) */
	if (has_l4) {
		uint32_t s = 0;
		int off = -1;
		if (p->proto == 6)
			off = 16;
		else if (p->proto == 17)
			off = 6;
		else if (p->proto == 1 || p->proto == 58)
			off = 2;
		if (off >= 0) {
			if (p->proto != 1)
				s = pseudo(p->fam, buf, p->proto, l4len);
			uint16_t c = fold(sum16(l4, l4len, s));
			if (p->proto == 17 && c == 0)
				c = 0xffff;
			if (p->proto == 17 && p->udp_csum0 && p->fam == 4)
				c = 0;
			put16(l4 + off, c);
		}
	}
	if (hl + l4len > cap)
		exit(3);
	memcpy(buf + hl, l4, l4len);
	return hl + l4len;
}

size_t pk_build(const struct pk *p, uint8_t *buf, size_t cap)
{
	static const uint8_t dmac[6] = { 2, 0, 0, 0, 0, 2 }, smac[6] = { 2, 0, 0, 0, 0, 1 };
	memcpy(buf, dmac, 6);
	memcpy(buf + 6, smac, 6);
	if (p->not_ip) {
		put16(buf + 12, htons(0x0806));
		memset(buf + 14, 0xaa, 28);
		return 42;
	}
	put16(buf + 12, htons(p->fam == 4 ? 0x0800 : 0x86dd));
	size_t n = 14 + build_ip(p, buf + 14, cap - 14);
	if (p->truncate && (size_t)p->truncate < n)
		n = p->truncate;
	return n;
}

static bool l4_ok(int fam, const uint8_t *ip, int proto, const uint8_t *l4, size_t l4len)
{
	uint32_t s = proto == 1 ? 0 : pseudo(fam, ip, proto, l4len);
	if (proto == 17 && fam == 4 && l4len >= 8 && l4[6] == 0 && l4[7] == 0)
		return true;
	return fold(sum16(l4, l4len, s)) == 0;
}

bool pk_csum_ok(const uint8_t *buf, size_t len)
{
	uint16_t et;
	memcpy(&et, buf + 12, 2);
	const uint8_t *ip = buf + 14;
	size_t iplen = len - 14;
	if (et == htons(0x0800)) {
		if (fold(sum16(ip, 20, 0)) != 0)
			return false;
		if ((ip[6] & 0x1f) || ip[7])
			return true; /* later fragment: no L4 header */
		const uint8_t *l4 = ip + 20;
		size_t l4len = iplen - 20;
		if (!l4_ok(4, ip, ip[9], l4, l4len))
			return false;
		if (ip[9] == 1 && l4len >= 28 && l4[0] != 0 && l4[0] != 8 && (l4[8] >> 4) == 4)
			return fold(sum16(l4 + 8, 20, 0)) == 0; /* quoted header */
		return true;
	}
	if (et == htons(0x86dd)) {
		int nh = ip[6];
		const uint8_t *l4 = ip + 40;
		if (nh == 44) {
			if (ntohs(*(uint16_t *)(l4 + 2)) & ~7)
				return true;
			nh = l4[0];
			l4 += 8;
		}
		return l4_ok(6, ip, nh, l4, len - (l4 - buf));
	}
	return true;
}

struct lsbpf *h_open(void)
{
	/* line-buffered, so the library's error lines on stderr never split a TAP line */
	setvbuf(stdout, NULL, _IOLBF, 0);
	struct lsbpf_opts o = { .no_pin = true, .force_l2 = true, .overlay_l2 = 14, .lan_l2 = 14,
				.underlay_l2 = 14 };
	struct lsbpf *b;
	int r = lsbpf_open(&o, &b);
	if (r) {
		printf("not ok 1 - load the BPF object: %s\n", strerror(-r));
		exit(1);
	}
	return b;
}

int h_run_one(struct lsbpf *b, const char *prog, const uint8_t *in, size_t len, uint8_t *out,
	      size_t *out_len, uint32_t ingress_ifindex, uint32_t ifindex)
{
	int fd = lsbpf_prog_fd(b, prog);
	struct __sk_buff ctx = { .ingress_ifindex = ingress_ifindex, .ifindex = ifindex };
	DECLARE_LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = len, .data_out = out,
			    .data_size_out = *out_len, .repeat = 1);
	bool xdp = strstr(prog, "xdp") != NULL;

	if (fd < 0) {
		fprintf(stderr, "no program %s\n", prog);
		return -1000;
	}
	/* XDP: the frame arrives on ingress_ifindex (the device must exist in this netns) */
	struct xdp_md xctx = { .data_end = (__u32)len, .ingress_ifindex = ingress_ifindex };
	if (!xdp && (ingress_ifindex || ifindex)) {
		o.ctx_in = &ctx;
		o.ctx_size_in = sizeof(ctx);
	} else if (xdp && ingress_ifindex) {
		o.ctx_in = &xctx;
		o.ctx_size_in = sizeof(xctx);
	}
	int r = bpf_prog_test_run_opts(fd, &o);
	if (r) {
		fprintf(stderr, "test run of %s: %s\n", prog, strerror(errno));
		return -1000;
	}
	*out_len = o.data_size_out;
	return (int)o.retval;
}

int h_run(struct lsbpf *b, const struct tcase *cases, size_t n)
{
	int fails = 0, cfd = lsbpf_map_fd(b, "counters");

	for (size_t i = 0; i < n; i++) {
		const struct tcase *c = &cases[i];
		uint8_t in[4096], out[4096], want[4096];
		size_t len = pk_build(&c->in, in, sizeof(in)), olen = sizeof(out), wlen;
		struct ls_counter before[4], after;

		for (int k = 0; k < 4 && c->cnt[k].reason; k++)
			lsbpf_counter(cfd, c->cnt[k].prog, c->cnt[k].reason, &before[k]);
		int v = h_run_one(b, c->prog, in, len, out, &olen, c->ingress_ifindex, c->ifindex);
		if (c->out)
			wlen = pk_build(c->out, want, sizeof(want));
		else {
			memcpy(want, in, len);
			wlen = len;
		}
		fails += h_ok(v == c->verdict, "%s: verdict %d (want %d)", c->name, v, c->verdict);
		if (c->verdict != VERDICT_SHOT || !strstr(c->prog, "xdp")) {
			bool same = olen == wlen && !memcmp(out, want, wlen);
			if (!same) {
				for (size_t j = 0; j < olen && j < wlen; j++)
					if (out[j] != want[j]) {
						printf("# first difference at byte %zu: got %02x want %02x (len %zu/%zu)\n",
						       j, out[j], want[j], olen, wlen);
						break;
					}
			}
			fails += h_ok(same, "%s: packet out as expected", c->name);
			if (c->out && !c->in.truncate && !c->in.bad_ihl)
				fails += h_ok(pk_csum_ok(out, olen), "%s: checksums verify by recomputation", c->name);
		}
		for (int k = 0; k < 4 && c->cnt[k].reason; k++) {
			lsbpf_counter(cfd, c->cnt[k].prog, c->cnt[k].reason, &after);
			long long d = (long long)(after.packets - before[k].packets);
			fails += h_ok(d == c->cnt[k].packets, "%s: counter %s/%s +%lld (want +%d)", c->name,
				      lsbpf_prog_name(c->cnt[k].prog), lsbpf_reason_name(c->cnt[k].reason), d,
				      c->cnt[k].packets);
		}
	}
	return fails;
}
