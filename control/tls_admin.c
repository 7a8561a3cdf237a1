// SPDX-License-Identifier: MIT
/* Admin API for the deployment's TLS keys: /v1/admin/tls. Being written this session
 * (staged certificate rotation); until then every path answers 404. */
#include "lightscale/api.h"
#include "server.h"

void lsc_tls_admin(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *method,
		   const char *sub)
{
	(void)s;
	(void)db;
	(void)method;
	lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no admin resource /v1/admin/tls%s", sub);
}
