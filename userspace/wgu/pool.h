/* SPDX-License-Identifier: MIT */
/* A tiny fork-join pool: lsw_pool_run() runs fn(arg, part, nparts) for every
 * part at once, part 0 in the caller and the others in helper threads, and
 * returns when all are done. Used to spread encryption and decryption of a
 * batch over the cores. One caller at a time per pool. */
#ifndef LSW_POOL_H
#define LSW_POOL_H

typedef void (*lsw_pool_fn)(void *arg, int part, int nparts);

struct lsw_pool;

/* nparts >= 1 (1: no helper threads). Returns 0 or -errno. */
int lsw_pool_create(struct lsw_pool **out, int nparts);
int lsw_pool_parts(const struct lsw_pool *p);
void lsw_pool_run(struct lsw_pool *p, lsw_pool_fn fn, void *arg);

#endif
