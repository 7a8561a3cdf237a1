/* SPDX-License-Identifier: MIT */
/* Big-endian (network order) loads and stores on byte buffers of any alignment, for the
 * wire formats the project parses and builds (STUN, TURN, DNS, IP headers, audit hashes). */
#ifndef LS_BYTES_H
#define LS_BYTES_H

#include <stdint.h>

static inline uint16_t ls_get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t ls_get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void ls_put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void ls_put_be32(uint8_t *p, uint32_t v)
{
	ls_put_be16(p, (uint16_t)(v >> 16));
	ls_put_be16(p + 2, (uint16_t)v);
}

static inline void ls_put_be64(uint8_t *p, uint64_t v)
{
	ls_put_be32(p, (uint32_t)(v >> 32));
	ls_put_be32(p + 4, (uint32_t)v);
}

#endif
