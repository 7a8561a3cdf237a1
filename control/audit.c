// SPDX-License-Identifier: MIT
/* The audit log (key transparency) on the server: the deployment's identity key, appends
 * to the hash chain (lib/audit.h) inside the caller's transaction, and signed heads. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "lightscale/api.h"
#include "keys.h"
#include "log.h"
#include "server.h"
#include "util.h"

/* Serialises appends across every server on the database. */
#define AUDIT_LOCK "7271003"

int lsc_identity_load(struct lsc_server *s, PGconn *db, const char *state_dir, const char *file)
{
	char path[4200], pkb[LS_KEY_B64_LEN + 8], *buf = NULL;
	uint8_t sk[64], pk[32];
	const char *p[1] = {pkb};
	PGresult *res;
	size_t len;
	int ret;

	if (file)
		snprintf(path, sizeof(path), "%s", file);
	else
		snprintf(path, sizeof(path), "%s/identity.key", state_dir);
	ret = ls_read_file(path, &buf, &len, 4096);
	if (ret == 0) {
		buf[strcspn(buf, "\r\n")] = '\0';
		if (sodium_base642bin(sk, sizeof(sk), buf, strlen(buf), NULL, &len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) ||
		    len != sizeof(sk)) {
			ls_memzero(buf, strlen(buf));
			free(buf);
			pr_err("`%s' is not an identity key (base64 of 64 bytes)", path);
			return -EINVAL;
		}
		ls_memzero(buf, strlen(buf));
		free(buf);
		crypto_sign_ed25519_sk_to_pk(pk, sk);
	} else if (ret == -ENOENT) {
		char line[128];

		/* another server of this database made the identity: it must be copied here */
		res = lsc_exec0(db, "SELECT public_key FROM identity WHERE id = 1");
		if (!lsc_res_ok(db, res, "identity")) {
			PQclear(res);
			return -EIO;
		}
		if (PQntuples(res) == 1) {
			pr_err("no identity key `%s', and this database belongs to the deployment of "
			       "identity %s: copy the identity.key of its first server here (or give "
			       "--identity-key)",
			       path, PQgetvalue(res, 0, 0));
			PQclear(res);
			return -ENOENT;
		}
		PQclear(res);
		ls_ed25519_keypair(pk, sk);
		sodium_bin2base64(line, sizeof(line), sk, sizeof(sk), sodium_base64_VARIANT_ORIGINAL);
		strcat(line, "\n");
		ret = ls_write_file_atomic(path, line, strlen(line), 0600);
		ls_memzero(line, sizeof(line));
		if (ret) {
			pr_err("cannot write %s: %s", path, strerror(-ret));
			return ret;
		}
	} else {
		pr_err("cannot read %s: %s", path, strerror(-ret));
		return ret;
	}
	sodium_bin2base64(pkb, sizeof(pkb), pk, sizeof(pk), sodium_base64_VARIANT_ORIGINAL);
	/* every server of a database shares one identity: the first one records it */
	res = lsc_exec(db,
		       "WITH i AS (INSERT INTO identity (id, public_key) VALUES (1, $1) "
		       "ON CONFLICT (id) DO NOTHING RETURNING public_key) "
		       "SELECT public_key FROM i UNION ALL SELECT public_key FROM identity WHERE id = 1",
		       1, p);
	if (!lsc_res_ok(db, res, "identity") || PQntuples(res) < 1) {
		PQclear(res);
		return -EIO;
	}
	if (strcmp(PQgetvalue(res, 0, 0), pkb)) {
		pr_err("the identity key in `%s' (%s) is not this deployment's (%s): copy the "
		       "identity.key of the first server (servers of one database share it)",
		       path, pkb, PQgetvalue(res, 0, 0));
		PQclear(res);
		ls_memzero(sk, sizeof(sk));
		return -EPERM;
	}
	PQclear(res);
	memcpy(s->identity_sk, sk, sizeof(sk));
	memcpy(s->identity_pk, pk, sizeof(pk));
	snprintf(s->identity_b64, sizeof(s->identity_b64), "%s", pkb);
	ls_memzero(sk, sizeof(sk));
	/* the public half beside it, for `lightscale-control audit verify' */
	snprintf(path, sizeof(path), "%s/identity.pub", state_dir);
	strcat(pkb, "\n");
	ls_write_file_atomic(path, pkb, strlen(pkb), 0644);
	pr_info("identity key %s", s->identity_b64);
	return 0;
}

int lsc_audit_append(struct lsc_req *r, PGconn *db, const char *type, const json_t *data)
{
	struct ls_audit_entry e = {0};
	uint8_t prev[LS_AUDIT_HASH_LEN] = {0};
	char seq[24], tm[24], hex[2 * LS_AUDIT_HASH_LEN + 1], *canon;
	const char *p[5];
	PGresult *res;
	int ret = -1;

	canon = ls_audit_canonical(data);
	if (!canon) {
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		return -1;
	}
	res = lsc_exec0(db, "SELECT pg_advisory_xact_lock(" AUDIT_LOCK ")");
	PQclear(res);
	res = lsc_exec0(db, "SELECT seq, encode(hash, 'hex') FROM audit_log ORDER BY seq DESC LIMIT 1");
	if (!lsc_res_ok(db, res, "audit head")) {
		lsc_db_failed(r, res, "audit head");
		goto cleanup;
	}
	e.seq = 1;
	if (PQntuples(res) == 1) {
		e.seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10) + 1;
		if (ls_hex_decode(prev, sizeof(prev), PQgetvalue(res, 0, 1)) != LS_AUDIT_HASH_LEN) {
			lsc_reply_error(r, 500, LS_ERR_INTERNAL, "audit entry %s has a bad hash",
					PQgetvalue(res, 0, 0));
			goto cleanup;
		}
	}
	PQclear(res);
	e.time = ls_unix_time();
	e.type = type;
	e.data = canon;
	ls_audit_hash(e.hash, &e, prev);
	ls_hex_encode(hex, e.hash, sizeof(e.hash));
	snprintf(seq, sizeof(seq), "%" PRIu64, e.seq);
	snprintf(tm, sizeof(tm), "%" PRId64, e.time);
	p[0] = seq;
	p[1] = tm;
	p[2] = type;
	p[3] = canon;
	p[4] = hex;
	res = lsc_exec(db,
		       "INSERT INTO audit_log (seq, time, type, data, hash) VALUES "
		       "($1::bigint, $2::bigint, $3, $4, decode($5, 'hex'))",
		       5, p);
	if (!lsc_res_ok(db, res, "audit append")) {
		lsc_db_failed(r, res, "audit append");
		goto cleanup;
	}
	ret = 0;
cleanup:
	PQclear(res);
	free(canon);
	return ret;
}

json_t *lsc_audit_head(struct lsc_server *s, PGconn *db)
{
	struct ls_audit_head h = {0};
	PGresult *res;
	json_t *j;

	res = lsc_exec0(db, "SELECT seq, encode(hash, 'hex') FROM audit_log ORDER BY seq DESC LIMIT 1");
	if (!lsc_res_ok(db, res, "audit head")) {
		PQclear(res);
		return NULL;
	}
	if (PQntuples(res) == 1) {
		h.seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
		if (ls_hex_decode(h.hash, sizeof(h.hash), PQgetvalue(res, 0, 1)) != LS_AUDIT_HASH_LEN) {
			PQclear(res);
			return NULL;
		}
	}
	PQclear(res);
	ls_audit_sign_head(&h, s->identity_sk);
	j = ls_audit_head_to_json(&h);
	if (j)
		json_object_set_new(j, "identity", json_string(s->identity_b64));
	return j;
}
