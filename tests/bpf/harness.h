/* SPDX-License-Identifier: MIT */
/*
 * Table tests for the BPF programs: every case is {name, packet in, expected verdict,
 * expected packet out, expected counters}, run with bpf_prog_test_run_opts (no network).
 * Packets are built with correct checksums by pk_build; an expected output packet is
 * built the same way, so a byte-exact match also proves the incremental checksum updates
 * equal a recomputation (pk_csum_ok checks the output's checksums once more on its own).
 * Maps are filled through liblsbpf (lsbpf_apply), the same path the agent uses.
 */
#ifndef LS_TESTS_BPF_HARNESS_H
#define LS_TESTS_BPF_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "userspace/bpf/lsbpf.h"

#define VERDICT_NEXT (-1) /* TC_ACT_UNSPEC / TCX_NEXT */
#define VERDICT_SHOT 2    /* TC_ACT_SHOT */
#define VERDICT_XDP_PASS 2
#define VERDICT_XDP_DROP 1

struct pk {
	int fam;         /* 4 or 6 */
	int proto;       /* 6, 17, 1, 58 or another number (no L4 header built) */
	const char *src, *dst;
	uint16_t sport, dport; /* ICMP echo: sport is the id */
	uint8_t type, code;    /* ICMP */
	uint8_t tcp_flags;     /* default SYN|ACK-free 0x10 (ACK) when 0 */
	int payload;           /* payload bytes */
	int frag;              /* 0; 1: first fragment (MF); 2: later fragment (offset 1480) */
	const struct pk *inner;/* ICMP error: the quoted packet */
	int inner_l4;          /* bytes of the quoted L4 header+payload (0: all) */
	bool udp_csum0;        /* UDP over IPv4 without checksum */
	int truncate;          /* cut the frame to this many bytes after building (0: no) */
	bool bad_ihl;          /* IPv4 header length 4 (malformed) */
	bool not_ip;           /* an ARP frame instead */
	bool stun;             /* UDP payload starts with a STUN Binding request (20 bytes) */
	uint32_t stun_cookie;  /* 0: the real magic cookie 0x2112A442 */
};

struct cnt {
	int prog, reason, packets;
};

struct tcase {
	const char *name;
	const char *prog;     /* program name in the object */
	struct pk in;
	int verdict;
	const struct pk *out; /* NULL: unchanged */
	struct cnt cnt[4];    /* counters that must grow by exactly `packets` */
	uint32_t ingress_ifindex;
	uint32_t ifindex;
};

/* Frames with Ethernet (14 bytes) as BPF_PROG_TEST_RUN wants; returns the length. */
size_t pk_build(const struct pk *p, uint8_t *buf, size_t cap);
/* Recomputes every checksum of an Ethernet frame (IPv4 header, TCP/UDP/ICMP/ICMPv6, and
 * an ICMP error's quoted IPv4 header); true when all are right. */
bool pk_csum_ok(const uint8_t *buf, size_t len);

/* Opens the object with no pins and 14-byte L2 everywhere; exits on failure. */
struct lsbpf *h_open(void);
/* Runs a table; prints TAP lines (several per case); returns the number of failures. */
int h_run(struct lsbpf *b, const struct tcase *cases, size_t n);
/* Runs one packet through a program; returns the verdict, fills out/out_len. */
int h_run_one(struct lsbpf *b, const char *prog, const uint8_t *in, size_t len, uint8_t *out,
	      size_t *out_len, uint32_t ingress_ifindex, uint32_t ifindex);
void h_plan_done(void);
int h_ok(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
