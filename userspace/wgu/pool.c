// SPDX-License-Identifier: MIT
#include "userspace/wgu/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct lsw_pool {
	pthread_mutex_t lock;
	pthread_cond_t go, done;
	unsigned long generation;
	int nparts, pending;
	lsw_pool_fn fn;
	void *arg;
};

struct helper {
	struct lsw_pool *p;
	int part;
};

static void *helper_main(void *a)
{
	struct helper h = *(struct helper *)a;
	struct lsw_pool *p = h.p;
	unsigned long seen = 0;

	free(a);
	for (;;) {
		lsw_pool_fn fn;
		void *arg;

		pthread_mutex_lock(&p->lock);
		while (p->generation == seen)
			pthread_cond_wait(&p->go, &p->lock);
		seen = p->generation;
		fn = p->fn;
		arg = p->arg;
		pthread_mutex_unlock(&p->lock);

		fn(arg, h.part, p->nparts);

		pthread_mutex_lock(&p->lock);
		if (--p->pending == 0)
			pthread_cond_signal(&p->done);
		pthread_mutex_unlock(&p->lock);
	}
	return NULL;
}

int lsw_pool_create(struct lsw_pool **out, int nparts)
{
	struct lsw_pool *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	if (nparts < 1)
		nparts = 1;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->go, NULL);
	pthread_cond_init(&p->done, NULL);
	p->nparts = 1;
	for (int i = 1; i < nparts; i++) {
		struct helper *h = malloc(sizeof(*h));
		pthread_t t;

		if (!h)
			break;
		h->p = p;
		h->part = i;
		if (pthread_create(&t, NULL, helper_main, h)) {
			free(h);
			break;
		}
		pthread_detach(t);
		p->nparts++;
	}
	*out = p;
	return 0;
}

int lsw_pool_parts(const struct lsw_pool *p)
{
	return p ? p->nparts : 1;
}

void lsw_pool_run(struct lsw_pool *p, lsw_pool_fn fn, void *arg)
{
	if (!p || p->nparts == 1) {
		fn(arg, 0, 1);
		return;
	}
	pthread_mutex_lock(&p->lock);
	p->fn = fn;
	p->arg = arg;
	p->pending = p->nparts - 1;
	p->generation++;
	pthread_cond_broadcast(&p->go);
	pthread_mutex_unlock(&p->lock);

	fn(arg, 0, p->nparts);

	pthread_mutex_lock(&p->lock);
	while (p->pending)
		pthread_cond_wait(&p->done, &p->lock);
	pthread_mutex_unlock(&p->lock);
}
