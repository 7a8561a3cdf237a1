// SPDX-License-Identifier: MIT
/*
 * The server's TLS keys and their staged rotation; the admin API /v1/admin/tls.
 *
 * Files in the state directory (managed keys; --tls-cert serves a given pair instead, and
 * `tls rotate --cert F --key F' stages an operator's pair there, for either kind):
 *   tls.key, tls.crt, tls.pin                the key served now
 *   tls-next.key, tls-next.crt, tls-next.pin the staged key (`tls rotate')
 *   tls-prev.key, tls-prev.crt               the key served before the last switch
 *   server.id                                this server's id in tls_pins.server_id
 *
 * Every key is endorsed by the deployment's identity key (tls_pins, lib/tlsid.h) and
 * published (every network's version moves: every netmap carries the endorsed set) in
 * the transaction that records it, before any server serves it:
 *
 *   rotate    makes tls-next.*, endorses it as `next', publishes
 *   activate  (the admin API, SIGHUP, or the next start) checks that the staged key is
 *             endorsed as `next', serves it from the next TLS handshake on (the certificate
 *             callback; established connections keep theirs), marks it `active' and this
 *             server's previous key `retiring' until retire_at
 *   withdraw  removes a pin that no server serves; retiring pins are withdrawn at retire_at
 *
 * Pinned agents follow the published set (userspace/trust.c) and so keep working across
 * the switch; a client that never saw the new pin is refused by its pinning.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <sodium.h>

#include "lightscale/api.h"
#include "log.h"
#include "server.h"
#include "tlsid.h"
#include "util.h"

#define MAX_CHAIN 8
#define DEFAULT_RETIRE_AFTER 86400 /* s a replaced key stays published */
#define ENDORSE_YEARS 10

struct lsc_tls_cert {
	gnutls_pcert_st pcert[MAX_CHAIN];
	unsigned n;
	gnutls_privkey_t key;
	char pin[LS_PIN_STRLEN];
};

struct lsc_tls {
	char dir[4096];
	char listen[256];
	char host[256];
	bool managed;          /* self-signed key made and rotated in dir */
	char cert_file[4096];  /* --tls-cert, when not managed */
	char server_id[40];
	struct lsc_tls_cert *cur;
	struct lsc_tls_cert *old[32]; /* replaced ones, freed at exit */
	size_t n_old;
	uint64_t next_tick_ms;
};

/* the certificate callback has no user pointer: one server per process */
static struct lsc_tls *cb_tls;

static void cert_free(struct lsc_tls_cert *c)
{
	unsigned i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		gnutls_pcert_deinit(&c->pcert[i]);
	if (c->key)
		gnutls_privkey_deinit(c->key);
	free(c);
}

static void path_of(const struct lsc_tls *t, const char *name, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", t->dir, name);
}

/* the pin of a private key's public half */
static int key_pin(gnutls_privkey_t key, char pin[LS_PIN_STRLEN])
{
	gnutls_pubkey_t pub = NULL;
	int ret = -EINVAL;

	if (gnutls_pubkey_init(&pub) < 0)
		return -ENOMEM;
	if (gnutls_pubkey_import_privkey(pub, key, 0, 0) >= 0)
		ret = ls_tls_pin_of_pubkey(pub, pin);
	gnutls_pubkey_deinit(pub);
	return ret;
}

/* Loads a certificate chain and its key; refuses a key that is not the certificate's. */
static int cert_load(const char *crt_path, const char *key_path, struct lsc_tls_cert **out)
{
	struct lsc_tls_cert *c = calloc(1, sizeof(*c));
	char *crt = NULL, *key = NULL, kpin[LS_PIN_STRLEN];
	size_t clen = 0, klen = 0;
	gnutls_datum_t cd, kd;
	int ret, gr;

	if (!c)
		return -ENOMEM;
	if ((ret = ls_read_file(crt_path, &crt, &clen, 1 << 20)) ||
	    (ret = ls_read_file(key_path, &key, &klen, 1 << 20))) {
		pr_err("tls: cannot read %s or %s: %s", crt_path, key_path, strerror(-ret));
		goto cleanup;
	}
	cd.data = (unsigned char *)crt;
	cd.size = (unsigned)clen;
	kd.data = (unsigned char *)key;
	kd.size = (unsigned)klen;
	c->n = MAX_CHAIN;
	gr = gnutls_pcert_list_import_x509_raw(c->pcert, &c->n, &cd, GNUTLS_X509_FMT_PEM, 0);
	if (gr < 0 || !c->n) {
		pr_err("tls: %s: %s", crt_path, gr < 0 ? gnutls_strerror(gr) : "no certificate");
		c->n = 0;
		ret = -EINVAL;
		goto cleanup;
	}
	if (gnutls_privkey_init(&c->key) < 0) {
		ret = -ENOMEM;
		goto cleanup;
	}
	gr = gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
	if (gr < 0) {
		pr_err("tls: %s: %s", key_path, gnutls_strerror(gr));
		ret = -EINVAL;
		goto cleanup;
	}
	if ((ret = ls_tls_pin_from_cert_pem(crt, clen, c->pin)) || (ret = key_pin(c->key, kpin)))
		goto cleanup;
	if (strcmp(kpin, c->pin)) {
		pr_err("tls: the key %s (%s) is not the key of the certificate %s (%s)", key_path, kpin,
		       crt_path, c->pin);
		ret = -EINVAL;
		goto cleanup;
	}
	*out = c;
	c = NULL;
cleanup:
	if (key) {
		ls_memzero(key, klen);
		free(key);
	}
	free(crt);
	cert_free(c);
	return ret;
}

static int cert_cb(gnutls_session_t sess, const gnutls_datum_t *req_ca_dn, int nreqs,
		   const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length, gnutls_pcert_st **pcert,
		   unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
	(void)sess;
	(void)req_ca_dn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (!cb_tls || !cb_tls->cur)
		return -1;
	*pcert = cb_tls->cur->pcert;
	*pcert_length = cb_tls->cur->n;
	*pkey = cb_tls->cur->key;
	return 0;
}

void *lsc_tls_cert_callback(void)
{
	return (void *)cert_cb;
}

/* serves c from the next handshake on; the replaced one lives until exit */
static void cert_switch(struct lsc_tls *t, struct lsc_tls_cert *c)
{
	char path[4200], line[LS_PIN_STRLEN + 2];

	if (t->cur) {
		if (t->n_old == ARRAY_SIZE(t->old)) {
			cert_free(t->old[0]);
			memmove(t->old, t->old + 1, (t->n_old - 1) * sizeof(t->old[0]));
			t->n_old--;
		}
		t->old[t->n_old++] = t->cur;
	}
	t->cur = c;
	snprintf(line, sizeof(line), "%s\n", c->pin);
	path_of(t, "tls.pin", path, sizeof(path));
	ls_write_file_atomic(path, line, strlen(line), 0644);
}

/* ---- the database ---- */

/* every network's version moves: every netmap (long-polls are woken by the NOTIFY)
 * carries the endorsed pins as they are now */
static bool publish(PGconn *db)
{
	PGresult *res = lsc_exec0(db, "WITH v AS (UPDATE networks SET version = version + 1 "
				      "RETURNING id, version) "
				      "SELECT pg_notify('" LSC_NOTIFY_CHANNEL "', v.id || ' ' || v.version) FROM v");
	bool ok = lsc_res_ok(db, res, "publish TLS pins");

	PQclear(res);
	return ok;
}

/* records pin (endorsed now by the identity key) in state; 1 when the row is new or
 * changed, 0 when it was there already like that, -EIO */
static int endorse(struct lsc_server *s, PGconn *db, const char *pin, const char *state)
{
	struct lsc_tls *t = s->tlsk;
	uint64_t not_after = (uint64_t)ls_unix_time() + ENDORSE_YEARS * 365ull * 86400;
	char nb[24], sigb[100], now[24];
	uint8_t sig[64];
	const char *p[7] = {pin, nb, sigb, t->listen, t->server_id, state, now};
	PGresult *res;
	int ret;

	ls_tls_endorse(sig, pin, not_after, s->identity_sk);
	ls_b64_encode(sigb, sizeof(sigb), sig, sizeof(sig));
	snprintf(nb, sizeof(nb), "%" PRIu64, not_after);
	snprintf(now, sizeof(now), "%" PRId64, ls_unix_time());
	if (s->schema_version < 8) {
		res = lsc_exec(db, "INSERT INTO tls_pins (pin, not_after, sig, server) VALUES "
				   "($1, $2::bigint, $3, $4) ON CONFLICT (pin) DO NOTHING",
			       4, p);
	} else {
		/* an existing row keeps its endorsement unless it does not verify */
		res = lsc_exec(db,
			       "INSERT INTO tls_pins (pin, not_after, sig, server, server_id, state, "
			       "  activated_at) VALUES ($1, $2::bigint, $3, $4, $5, $6, "
			       "  CASE WHEN $6 = 'active' THEN $7::bigint END) "
			       "ON CONFLICT (pin) DO UPDATE SET state = $6, server_id = $5, server = $4, "
			       "  retire_at = NULL, activated_at = CASE WHEN $6 = 'active' AND "
			       "  tls_pins.state <> 'active' THEN $7::bigint ELSE tls_pins.activated_at END "
			       "WHERE tls_pins.state IS DISTINCT FROM $6 OR tls_pins.server_id IS DISTINCT FROM $5",
			       7, p);
	}
	if (!lsc_res_ok(db, res, "endorse TLS key")) {
		PQclear(res);
		return -EIO;
	}
	ret = atoi(PQcmdTuples(res)) > 0;
	PQclear(res);
	return ret;
}

/* is pin endorsed (a verifying signature by the identity) in state? */
static bool endorsed_as(struct lsc_server *s, PGconn *db, const char *pin, const char *state,
			char *why, size_t whylen)
{
	const char *p[1] = {pin};
	PGresult *res = lsc_exec(db, "SELECT not_after, sig, state, coalesce(server_id, '') "
				     "FROM tls_pins WHERE pin = $1", 1, p);
	uint8_t sig[64];
	bool ok = false;

	if (!lsc_res_ok(db, res, "read TLS pin")) {
		snprintf(why, whylen, "the database cannot be read");
	} else if (PQntuples(res) != 1) {
		snprintf(why, whylen, "%s is not endorsed (not in the database): run `tls rotate'", pin);
	} else if (ls_b64_decode(sig, sizeof(sig), PQgetvalue(res, 0, 1)) != 64 ||
		   !ls_tls_endorsement_valid(sig, pin, strtoull(PQgetvalue(res, 0, 0), NULL, 10),
					     s->identity_pk)) {
		snprintf(why, whylen, "the endorsement of %s does not verify with identity %s", pin,
			 s->identity_b64);
	} else if ((uint64_t)ls_unix_time() >= strtoull(PQgetvalue(res, 0, 0), NULL, 10)) {
		snprintf(why, whylen, "the endorsement of %s has expired", pin);
	} else if (state && strcmp(PQgetvalue(res, 0, 2), state)) {
		snprintf(why, whylen, "%s is `%s', not `%s'", pin, PQgetvalue(res, 0, 2), state);
	} else if (PQgetvalue(res, 0, 3)[0] && strcmp(PQgetvalue(res, 0, 3), s->tlsk->server_id)) {
		snprintf(why, whylen, "%s belongs to server %s, not this one (%s)", pin,
			 PQgetvalue(res, 0, 3), s->tlsk->server_id);
	} else {
		ok = true;
	}
	PQclear(res);
	return ok;
}

static int audit(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *type, json_t *ev)
{
	struct lsc_req dummy = {.srv = s, .uri = (char *)"(tls)"};
	int ret;

	json_object_set_new(ev, "server_id", json_string(s->tlsk->server_id));
	ret = lsc_audit_append(r ? r : &dummy, db, type, ev);
	json_decref(ev);
	if (!r)
		free(dummy.reply);
	return ret ? -EIO : 0;
}

/* ---- staging and switching ---- */

static bool have_staged(const struct lsc_tls *t)
{
	char c[4200], k[4200];

	path_of(t, "tls-next.crt", c, sizeof(c));
	path_of(t, "tls-next.key", k, sizeof(k));
	return access(c, R_OK) == 0 && access(k, R_OK) == 0;
}

/* DIR/tls.* -> tls-prev.*, tls-next.* -> tls.* */
static int switch_files(const struct lsc_tls *t)
{
	static const char *const ext[] = {"crt", "key"};
	char a[4200], b[4200];
	size_t i;

	for (i = 0; i < 2; i++) {
		snprintf(a, sizeof(a), "%s/tls.%s", t->dir, ext[i]);
		snprintf(b, sizeof(b), "%s/tls-prev.%s", t->dir, ext[i]);
		if (rename(a, b) < 0 && errno != ENOENT)
			return -errno;
	}
	for (i = 0; i < 2; i++) {
		snprintf(a, sizeof(a), "%s/tls-next.%s", t->dir, ext[i]);
		snprintf(b, sizeof(b), "%s/tls.%s", t->dir, ext[i]);
		if (rename(a, b) < 0)
			return -errno;
	}
	path_of(t, "tls-next.pin", a, sizeof(a));
	unlink(a);
	return 0;
}

/* Activates the staged key: checks it is endorsed as `next' (published), records the
 * switch (this server's other active keys retire after retire_after s) and serves it.
 * r may be NULL (SIGHUP, start); the error is in why. 0, -ENOENT (nothing staged),
 * -EPERM (not endorsed), -EIO. */
static int activate(struct lsc_server *s, struct lsc_req *r, PGconn *db, int64_t retire_after,
		    char *why, size_t whylen, json_t **result)
{
	struct lsc_tls *t = s->tlsk;
	struct lsc_tls_cert *c = NULL;
	char crt[4200], key[4200], now[24], ra[24];
	const char *p[4];
	const char *prev = t->cur ? t->cur->pin : "";
	PGresult *res;
	json_t *ev;
	int ret;

	if (!have_staged(t)) {
		snprintf(why, whylen, "no staged TLS key in %.300s (run `lightscale-control tls rotate' first)",
			 t->dir);
		return -ENOENT;
	}
	path_of(t, "tls-next.crt", crt, sizeof(crt));
	path_of(t, "tls-next.key", key, sizeof(key));
	ret = cert_load(crt, key, &c);
	if (ret) {
		snprintf(why, whylen, "the staged key %.200s / %.200s does not load: %s", crt, key, strerror(-ret));
		return -EINVAL;
	}
	if (!lsc_exec_ok(db, "BEGIN")) {
		snprintf(why, whylen, "the database is unreachable");
		ret = -EIO;
		goto cleanup;
	}
	if (!endorsed_as(s, db, c->pin, "next", why, whylen)) {
		pr_err("tls: refusing the staged key: %s", why);
		lsc_exec_ok(db, "ROLLBACK");
		ret = -EPERM;
		goto cleanup;
	}
	snprintf(now, sizeof(now), "%" PRId64, ls_unix_time());
	snprintf(ra, sizeof(ra), "%" PRId64, ls_unix_time() + retire_after);
	p[0] = t->server_id;
	p[1] = c->pin;
	p[2] = now;
	p[3] = ra;
	res = lsc_exec(db,
		       "UPDATE tls_pins SET state = CASE WHEN pin = $2 THEN 'active' ELSE 'retiring' END, "
		       "  activated_at = CASE WHEN pin = $2 THEN $3::bigint ELSE activated_at END, "
		       "  retire_at = CASE WHEN pin = $2 THEN NULL ELSE $4::bigint END "
		       "WHERE pin = $2 OR (server_id = $1 AND state = 'active')",
		       4, p);
	ev = json_pack("{s:s, s:s, s:I}", "pin", c->pin, "previous", prev, "retire_at",
		       (json_int_t)(ls_unix_time() + retire_after));
	if (!lsc_res_ok(db, res, "activate TLS key") || !publish(db) ||
	    audit(s, r, db, "tls_activate", ev) || !lsc_exec_ok(db, "COMMIT")) {
		PQclear(res);
		if (PQtransactionStatus(db) != PQTRANS_IDLE)
			lsc_exec_ok(db, "ROLLBACK");
		snprintf(why, whylen, "the database refused the switch");
		ret = -EIO;
		goto cleanup;
	}
	PQclear(res);
	ret = switch_files(t);
	if (ret)
		pr_err("tls: the switch is recorded but %s/tls-next.* could not replace tls.*: %s", t->dir,
		       strerror(-ret));
	if (result)
		*result = json_pack("{s:s, s:s, s:s, s:I}", "server_id", t->server_id, "pin", c->pin,
				    "previous", prev, "retire_at",
				    (json_int_t)(ls_unix_time() + retire_after));
	pr_info("tls: serving the staged key %s from the next handshake on (%s retires in %" PRId64 " s)",
		c->pin, prev[0] ? prev : "none", retire_after);
	if (!t->managed) {
		/* a restart serves --tls-cert again: the operator installs the new pair there */
		pr_warn("tls: install %s/tls.crt and tls.key as --tls-cert %s and its --tls-key before "
			"the next restart", t->dir, t->cert_file);
		if (result && *result)
			json_object_set_new(*result, "install",
					    json_pack("{s:s+, s:s+, s:s}", "cert", t->dir, "/tls.crt", "key",
						      t->dir, "/tls.key", "as", t->cert_file));
	}
	cert_switch(t, c);
	c = NULL;
	ret = 0;
cleanup:
	cert_free(c);
	return ret;
}

int lsc_tls_start(struct lsc_server *s, const struct lsc_serve_opts *o)
{
	struct lsc_tls *t = calloc(1, sizeof(*t));
	struct lsc_tls_cert *c = NULL;
	const char *names[2] = {"localhost", NULL};
	char path[4200], crt[4200], key[4200], *id = NULL, why[512];
	size_t len;
	int ret, changed = 0;

	if (!t)
		return -ENOMEM;
	s->tlsk = t;
	cb_tls = t;
	snprintf(t->dir, sizeof(t->dir), "%s", o->state_dir);
	snprintf(t->listen, sizeof(t->listen), "%s", o->listen);
	/* the certificate names the listen address (without the port) */
	snprintf(t->host, sizeof(t->host), "%s", o->listen);
	if (t->host[0] == '[') {
		memmove(t->host, t->host + 1, strlen(t->host));
		t->host[strcspn(t->host, "]")] = '\0';
	} else if (strrchr(t->host, ':')) {
		*strrchr(t->host, ':') = '\0';
	}
	names[1] = t->host;
	t->managed = !o->tls_cert;
	snprintf(t->cert_file, sizeof(t->cert_file), "%s", o->tls_cert ? o->tls_cert : "");

	/* this server's id (tls_pins.server_id): made once */
	path_of(t, "server.id", path, sizeof(path));
	if (ls_read_file(path, &id, &len, 256) == 0 && len >= 16) {
		id[strcspn(id, "\r\n")] = '\0';
		snprintf(t->server_id, sizeof(t->server_id), "%.32s", id);
	} else {
		uint8_t rnd[16];
		char line[40];

		randombytes_buf(rnd, sizeof(rnd));
		ls_hex_encode(t->server_id, rnd, sizeof(rnd));
		snprintf(line, sizeof(line), "%.32s\n", t->server_id);
		ret = ls_write_file_atomic(path, line, strlen(line), 0644);
		if (ret) {
			pr_err("cannot write %s: %s", path, strerror(-ret));
			free(id);
			return ret;
		}
	}
	free(id);

	if (t->managed) {
		ret = ls_tls_ensure_selfsigned(t->dir, names, 2);
		if (ret) {
			pr_err("cannot make a TLS certificate in %s: %s", t->dir, strerror(-ret));
			return ret;
		}
		path_of(t, "tls.crt", crt, sizeof(crt));
		path_of(t, "tls.key", key, sizeof(key));
	} else {
		snprintf(crt, sizeof(crt), "%s", o->tls_cert);
		snprintf(key, sizeof(key), "%s", o->tls_key ? o->tls_key : "");
	}
	ret = cert_load(crt, key, &c);
	if (ret) {
		pr_err("cannot load the TLS key and certificate (%s, %s)", key, crt);
		return ret;
	}
	cert_switch(t, c);
	if (!s->have_identity || s->schema_version < 4) {
		pr_warn("tls: no identity key or schema %d < 4: the TLS key %s is not endorsed",
			s->schema_version, c->pin);
		return 0;
	}
	/* a key staged by `tls rotate' before the restart is served now, once endorsed */
	if (t->managed && s->schema_version >= 8 && have_staged(t)) {
		ret = activate(s, NULL, s->db, DEFAULT_RETIRE_AFTER, why, sizeof(why), NULL);
		if (ret)
			pr_err("tls: not switching to the staged key: %s", why);
	}
	/* the served key, endorsed and published before the first handshake */
	if (!lsc_exec_ok(s->db, "BEGIN"))
		return -EIO;
	changed = endorse(s, s->db, t->cur->pin, "active");
	if (changed > 0 && s->schema_version >= 8) {
		const char *p[2] = {t->server_id, t->cur->pin};
		char ra[24];
		PGresult *res;

		/* another key of this server marked active was replaced by hand: it retires */
		snprintf(ra, sizeof(ra), "%" PRId64, ls_unix_time() + DEFAULT_RETIRE_AFTER);
		res = lsc_exec(s->db, "UPDATE tls_pins SET state = 'retiring', retire_at = $3::bigint "
				      "WHERE server_id = $1 AND state = 'active' AND pin <> $2",
			       3, (const char *[]){p[0], p[1], ra});
		bool replaced = lsc_res_ok(s->db, res, "retire replaced TLS keys") && atoi(PQcmdTuples(res)) > 0;

		PQclear(res);
		if (audit(s, NULL, s->db, "tls_endorse",
			  json_pack("{s:s, s:s}", "pin", t->cur->pin, "state", "active")))
			changed = -EIO;
		else if (replaced)
			pr_warn("tls: serving %s, which was not staged: pinned nodes that have not seen it "
				"in a netmap refuse this server (use `tls rotate' and `tls activate')",
				t->cur->pin);
	}
	if (changed < 0 || (changed > 0 && !publish(s->db)) || !lsc_exec_ok(s->db, "COMMIT")) {
		if (PQtransactionStatus(s->db) != PQTRANS_IDLE)
			lsc_exec_ok(s->db, "ROLLBACK");
		return -EIO;
	}
	pr_info("TLS key %s endorsed by the identity key", t->cur->pin);
	return 0;
}

void lsc_tls_reload(struct lsc_server *s)
{
	char why[512];
	int ret;

	if (!s->tlsk) {
		pr_info("SIGHUP: serving plain HTTP, nothing to reload");
		return;
	}
	if (!s->tlsk->managed || s->schema_version < 8 || !s->have_identity) {
		pr_info("SIGHUP: the TLS key is not managed here (--tls-cert) or the schema is older than 8");
		return;
	}
	if (!s->db) {
		pr_warn("SIGHUP: the database is unreachable; not switching the TLS key");
		return;
	}
	ret = activate(s, NULL, s->db, DEFAULT_RETIRE_AFTER, why, sizeof(why), NULL);
	if (ret == -ENOENT)
		pr_info("SIGHUP: no staged TLS key; still serving %s", s->tlsk->cur->pin);
	else if (ret)
		pr_err("SIGHUP: not switching the TLS key: %s", why);
}

/* retiring pins past retire_at are withdrawn (every 2 s) */
void lsc_tls_tick(struct lsc_server *s, uint64_t now_ms)
{
	PGresult *res;
	bool ok;

	if (!s->tlsk || s->schema_version < 8 || !s->db || PQstatus(s->db) != CONNECTION_OK ||
	    now_ms < s->tlsk->next_tick_ms)
		return;
	s->tlsk->next_tick_ms = now_ms + 2000;
	if (!lsc_exec_ok(s->db, "BEGIN"))
		return;
	res = lsc_exec0(s->db, "DELETE FROM tls_pins WHERE state = 'retiring' AND retire_at <= "
			       "extract(epoch from now()) RETURNING pin");
	ok = lsc_res_ok(s->db, res, "withdraw retired TLS pins");
	if (ok && PQntuples(res) > 0) {
		json_t *pins = json_array();

		for (int i = 0; i < PQntuples(res); i++) {
			pr_info("tls: withdrew the retired pin %s", PQgetvalue(res, i, 0));
			json_array_append_new(pins, json_string(PQgetvalue(res, i, 0)));
		}
		ok = publish(s->db) && !audit(s, NULL, s->db, "tls_withdraw", json_pack("{s:o}", "pins", pins));
	}
	PQclear(res);
	if (!ok || !lsc_exec_ok(s->db, "COMMIT"))
		lsc_exec_ok(s->db, "ROLLBACK");
}

void lsc_tls_free(struct lsc_server *s)
{
	struct lsc_tls *t = s->tlsk;
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->n_old; i++)
		cert_free(t->old[i]);
	cert_free(t->cur);
	if (cb_tls == t)
		cb_tls = NULL;
	free(t);
	s->tlsk = NULL;
}

/* ---- the admin API ---- */

/* rotation: rotate or activate; operator_pair: rotate was given {"cert_file", "key_file"} */
static bool need_tls(struct lsc_server *s, struct lsc_req *r, bool rotation, bool operator_pair)
{
	if (!s->tlsk) {
		lsc_reply_error(r, 409, LS_ERR_CONFLICT,
				"this server serves plain HTTP (--insecure-http): it has no TLS key");
		return false;
	}
	if (rotation && !s->tlsk->managed && !operator_pair && !have_staged(s->tlsk)) {
		lsc_reply_error(r, 409, LS_ERR_CONFLICT,
				"this server serves --tls-cert %.300s: stage the new pair with `tls rotate "
				"--cert F --key F' (endorsed and published before it is served), then `tls "
				"activate' and install it as --tls-cert/--tls-key before the next restart",
				s->tlsk->cert_file);
		return false;
	}
	if (rotation && (s->schema_version < 8 || !s->have_identity)) {
		lsc_reply_error(r, 409, LS_ERR_CONFLICT, "staged rotation needs schema 8 and an identity key");
		return false;
	}
	return true;
}

static void tls_status(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	struct lsc_tls *t = s->tlsk;
	char staged[LS_PIN_STRLEN] = "", path[4200];
	json_t *pins = json_array(), *srv;
	PGresult *res;
	int i;

	if (t && have_staged(t)) {
		path_of(t, "tls-next.crt", path, sizeof(path));
		if (ls_tls_pin_from_cert_file(path, staged))
			staged[0] = '\0';
	}
	res = lsc_exec0(db, s->schema_version >= 8
				    ? "SELECT pin, not_after, sig, server, coalesce(server_id, ''), state, "
				      "  coalesce(activated_at, 0), coalesce(retire_at, 0), "
				      "  floor(extract(epoch from created_at))::bigint FROM tls_pins "
				      "ORDER BY created_at, pin"
				    : "SELECT pin, not_after, sig, server, '', 'active', 0, 0, "
				      "  floor(extract(epoch from created_at))::bigint FROM tls_pins "
				      "ORDER BY created_at, pin");
	if (!lsc_res_ok(db, res, "tls status")) {
		json_decref(pins);
		lsc_db_failed(r, res, "tls status");
		return;
	}
	for (i = 0; i < PQntuples(res); i++) {
		uint8_t sig[64];
		const char *pin = PQgetvalue(res, i, 0);
		uint64_t na = strtoull(PQgetvalue(res, i, 1), NULL, 10);
		bool valid = s->have_identity && ls_b64_decode(sig, sizeof(sig), PQgetvalue(res, i, 2)) == 64 &&
			     ls_tls_endorsement_valid(sig, pin, na, s->identity_pk);
		json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:I, s:b}", "pin", pin, "state",
				      PQgetvalue(res, i, 5), "server_id", PQgetvalue(res, i, 4), "server",
				      PQgetvalue(res, i, 3), "endorsed", valid, "not_after", (json_int_t)na,
				      "created_at", (json_int_t)strtoll(PQgetvalue(res, i, 8), NULL, 10),
				      "served_here", t && t->cur && !strcmp(t->cur->pin, pin));

		if (!strcmp(PQgetvalue(res, i, 5), "next")) {
			/* how many active nodes made a request since it was published (and so hold a
			 * netmap that carries it): activate once that is all of them */
			const char *q[1] = {PQgetvalue(res, i, 8)};
			PGresult *c = lsc_exec(db, "SELECT count(*) FILTER (WHERE last_seen >= to_timestamp($1::bigint)), "
						   "count(*) FROM nodes WHERE status = 'active'", 1, q);

			if (lsc_res_ok(db, c, "tls status nodes")) {
				json_object_set_new(o, "nodes_seen_since", json_integer(strtoll(PQgetvalue(c, 0, 0), NULL, 10)));
				json_object_set_new(o, "nodes", json_integer(strtoll(PQgetvalue(c, 0, 1), NULL, 10)));
			}
			PQclear(c);
		}
		if (strtoll(PQgetvalue(res, i, 6), NULL, 10))
			json_object_set_new(o, "activated_at",
					    json_integer(strtoll(PQgetvalue(res, i, 6), NULL, 10)));
		if (strtoll(PQgetvalue(res, i, 7), NULL, 10))
			json_object_set_new(o, "retire_at", json_integer(strtoll(PQgetvalue(res, i, 7), NULL, 10)));
		json_array_append_new(pins, o);
	}
	PQclear(res);
	srv = t ? json_pack("{s:s, s:s, s:b, s:s?}", "id", t->server_id, "serving", t->cur ? t->cur->pin : "",
			    "managed", t->managed, "staged", staged[0] ? staged : NULL)
		: json_pack("{s:n, s:b}", "serving", "managed", 0);
	lsc_reply_json(r, 200, json_pack("{s:o, s:s, s:o}", "server", srv, "identity",
					 s->have_identity ? s->identity_b64 : "", "pins", pins));
}

/* copies the operator's pair (paths on this host) to crt and key (0600), after checking
 * that it loads and is not the key served now; its pin in pin. 0 or -errno, why set. */
static int stage_pair(struct lsc_tls *t, const char *cert_file, const char *key_file, const char *crt,
		      const char *key, char pin[LS_PIN_STRLEN], char *why, size_t whylen)
{
	struct lsc_tls_cert *c = NULL;
	char *a = NULL, *b = NULL;
	size_t al, bl;
	int ret;

	if (cert_file[0] != '/' || key_file[0] != '/') {
		snprintf(why, whylen, "`cert_file' and `key_file' must be absolute paths on the server's host");
		return -EINVAL;
	}
	ret = cert_load(cert_file, key_file, &c);
	if (ret) {
		snprintf(why, whylen, "the pair %.300s / %.300s does not load: %s", cert_file, key_file,
			 strerror(-ret));
		return ret;
	}
	snprintf(pin, LS_PIN_STRLEN, "%s", c->pin);
	cert_free(c);
	if (t->cur && !strcmp(pin, t->cur->pin)) {
		snprintf(why, whylen, "%.300s is the key served now (%s)", cert_file, pin);
		return -EEXIST;
	}
	ret = ls_read_file(cert_file, &a, &al, 1 << 20);
	if (!ret)
		ret = ls_read_file(key_file, &b, &bl, 1 << 20);
	if (!ret)
		ret = ls_write_file_atomic(key, b, bl, 0600);
	if (!ret)
		ret = ls_write_file_atomic(crt, a, al, 0644);
	if (ret) {
		snprintf(why, whylen, "cannot copy the pair to %.300s: %s", t->dir, strerror(-ret));
		unlink(key);
		unlink(crt);
	}
	if (b)
		ls_memzero(b, bl);
	free(a);
	free(b);
	return ret;
}

static void tls_rotate(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *cert_file,
		       const char *key_file)
{
	struct lsc_tls *t = s->tlsk;
	const char *names[2] = {"localhost", t->host};
	char crt[4200], key[4200], pinpath[4200], pin[LS_PIN_STRLEN], line[LS_PIN_STRLEN + 2], why[1024];
	int ret;

	path_of(t, "tls-next.crt", crt, sizeof(crt));
	path_of(t, "tls-next.key", key, sizeof(key));
	path_of(t, "tls-next.pin", pinpath, sizeof(pinpath));
	if (have_staged(t)) {
		if (ls_tls_pin_from_cert_file(crt, pin))
			snprintf(pin, sizeof(pin), "?");
		lsc_reply_error(r, 409, LS_ERR_CONFLICT,
				"a key is staged already (%s): activate it (tls activate) or remove %s/tls-next.*",
				pin, t->dir);
		return;
	}
	if (cert_file) {
		ret = stage_pair(t, cert_file, key_file, crt, key, pin, why, sizeof(why));
		if (ret) {
			if (ret == -EEXIST)
				lsc_reply_error(r, 409, LS_ERR_CONFLICT, "%s", why);
			else if (ret == -EINVAL || ret == -ENOENT || ret == -EACCES || ret == -EBADMSG)
				lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "%s", why);
			else
				lsc_reply_error(r, 500, LS_ERR_INTERNAL, "%s", why);
			return;
		}
		ret = 0;
	} else {
		ret = ls_tls_make_selfsigned(key, crt, names, 2);
		if (!ret)
			ret = ls_tls_pin_from_cert_file(crt, pin);
	}
	if (ret) {
		unlink(key);
		unlink(crt);
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "cannot make a key in %s: %s", t->dir, strerror(-ret));
		return;
	}
	/* endorsed and published in one transaction, before anything serves it */
	if (!lsc_exec_ok(db, "BEGIN")) {
		ret = -EIO;
	} else if (endorse(s, db, pin, "next") < 0 || !publish(db) ||
		   audit(s, r, db, "tls_rotate", json_pack("{s:s, s:s}", "pin", pin, "serving", t->cur->pin)) ||
		   !lsc_exec_ok(db, "COMMIT")) {
		if (PQtransactionStatus(db) != PQTRANS_IDLE)
			lsc_exec_ok(db, "ROLLBACK");
		ret = -EIO;
	}
	if (ret) {
		unlink(key);
		unlink(crt);
		if (!r->have_reply)
			lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "the database refused the endorsement");
		return;
	}
	snprintf(line, sizeof(line), "%s\n", pin);
	ls_write_file_atomic(pinpath, line, strlen(line), 0644);
	pr_info("tls: staged key %s endorsed and published (serving %s until it is activated)", pin,
		t->cur->pin);
	lsc_reply_json(r, 200, json_pack("{s:s, s:s, s:s, s:s}", "server_id", t->server_id, "pin", pin,
					 "state", "next", "serving", t->cur->pin));
}

static int64_t body_int(struct lsc_req *r, const char *name, int64_t def, int64_t max, bool *bad)
{
	json_error_t je;
	json_t *j, *v;
	int64_t out = def;

	if (!r->body.len)
		return def;
	j = json_loadb(r->body.p, r->body.len, 0, &je);
	if (!json_is_object(j)) {
		*bad = true;
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "the body must be a JSON object");
		json_decref(j);
		return def;
	}
	v = json_object_get(j, name);
	if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)) {
		*bad = true;
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "field `%s' must be an integer in 0..%" PRId64,
				name, max);
	} else if (v) {
		out = json_integer_value(v);
	}
	json_decref(j);
	return out;
}

static const char *body_str(struct lsc_req *r, const char *name, char *out, size_t n)
{
	json_t *j = r->body.len ? json_loadb(r->body.p, r->body.len, 0, NULL) : NULL;
	const char *v = json_string_value(json_object_get(j, name));

	if (v && strlen(v) < n)
		snprintf(out, n, "%s", v);
	else
		v = NULL;
	json_decref(j);
	return v ? out : NULL;
}

static void tls_withdraw(struct lsc_server *s, struct lsc_req *r, PGconn *db)
{
	char pin[LS_PIN_STRLEN + 8];
	const char *p[1] = {pin};
	PGresult *res;

	if (!body_str(r, "pin", pin, sizeof(pin)) || strncmp(pin, "sha256//", 8)) {
		lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST, "field `pin' must be a pin sha256//BASE64");
		return;
	}
	if (!lsc_exec_ok(db, "BEGIN")) {
		lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "the database is unreachable");
		return;
	}
	res = lsc_exec(db, "SELECT state, coalesce(server_id, ''), server FROM tls_pins WHERE pin = $1 FOR UPDATE",
		       1, p);
	if (!lsc_res_ok(db, res, "tls withdraw")) {
		lsc_db_failed(r, res, "tls withdraw");
		return;
	}
	if (PQntuples(res) != 1) {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no endorsed TLS key `%s'", pin);
	} else if (!strcmp(PQgetvalue(res, 0, 0), "active")) {
		lsc_reply_error(r, 409, LS_ERR_CONFLICT,
				"%s is served by server %s (%s): rotate and activate that server's key first",
				pin, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2));
	} else if (!strcmp(PQgetvalue(res, 0, 0), "next") && s->tlsk && !strcmp(PQgetvalue(res, 0, 1), s->tlsk->server_id) &&
		   have_staged(s->tlsk)) {
		lsc_reply_error(r, 409, LS_ERR_CONFLICT,
				"%s is staged on this server: remove %s/tls-next.* first", pin, s->tlsk->dir);
	}
	PQclear(res);
	if (r->have_reply) {
		lsc_exec_ok(db, "ROLLBACK");
		return;
	}
	res = lsc_exec(db, "DELETE FROM tls_pins WHERE pin = $1", 1, p);
	if (!lsc_res_ok(db, res, "tls withdraw") || !publish(db) ||
	    audit(s, r, db, "tls_withdraw", json_pack("{s:[s]}", "pins", pin)) || !lsc_exec_ok(db, "COMMIT")) {
		PQclear(res);
		if (!r->have_reply)
			lsc_db_failed(r, NULL, "tls withdraw");
		else if (PQtransactionStatus(db) != PQTRANS_IDLE)
			lsc_exec_ok(db, "ROLLBACK");
		return;
	}
	PQclear(res);
	pr_info("tls: withdrew %s", pin);
	lsc_reply_json(r, 200, json_pack("{s:s, s:b}", "pin", pin, "withdrawn", 1));
}

void lsc_tls_admin(struct lsc_server *s, struct lsc_req *r, PGconn *db, const char *method,
		   const char *sub)
{
	char why[512];
	json_t *res = NULL;
	bool bad = false;
	int64_t ra;
	int ret;

	if (!strcmp(sub, "") && !strcmp(method, "GET")) {
		tls_status(s, r, db);
	} else if (!strcmp(sub, "/rotate") && !strcmp(method, "POST")) {
		char cf[4096], kf[4096];
		const char *cert = body_str(r, "cert_file", cf, sizeof(cf)), *key = body_str(r, "key_file", kf, sizeof(kf));

		if (!cert != !key) {
			lsc_reply_error(r, 400, LS_ERR_BAD_REQUEST,
					"give both `cert_file' and `key_file' (or neither: a new self-signed key)");
			return;
		}
		if (need_tls(s, r, true, cert != NULL))
			tls_rotate(s, r, db, cert, key);
	} else if (!strcmp(sub, "/activate") && !strcmp(method, "POST")) {
		if (!need_tls(s, r, true, false))
			return;
		ra = body_int(r, "retire_after", DEFAULT_RETIRE_AFTER, 10ll * 366 * 86400, &bad);
		if (bad)
			return;
		ret = activate(s, r, db, ra, why, sizeof(why), &res);
		if (r->have_reply) {
			json_decref(res);
			return;
		}
		if (ret == -ENOENT)
			lsc_reply_error(r, 409, LS_ERR_CONFLICT, "%s", why);
		else if (ret == -EPERM)
			lsc_reply_error(r, 409, LS_ERR_CONFLICT, "refused: %s", why);
		else if (ret)
			lsc_reply_error(r, ret == -EIO ? 503 : 500, ret == -EIO ? LS_ERR_UNAVAILABLE : LS_ERR_INTERNAL,
					"%s", why);
		else
			lsc_reply_json(r, 200, res);
	} else if (!strcmp(sub, "/withdraw") && !strcmp(method, "POST")) {
		if (s->schema_version < 8)
			lsc_reply_error(r, 409, LS_ERR_CONFLICT, "withdrawing pins needs schema 8");
		else
			tls_withdraw(s, r, db);
	} else {
		lsc_reply_error(r, 404, LS_ERR_NOT_FOUND, "no admin resource %s /v1/admin/tls%s", method, sub);
	}
}
