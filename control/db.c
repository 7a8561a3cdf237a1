// SPDX-License-Identifier: MIT
/* Database helpers and the schema migration runner. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "log.h"

int lsc_schema_latest(void)
{
	return lsc_n_migrations ? lsc_migrations[lsc_n_migrations - 1].version : 0;
}

uint64_t lsc_query_count;

PGresult *lsc_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
	lsc_query_count++;
	return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

PGresult *lsc_exec0(PGconn *c, const char *sql)
{
	lsc_query_count++;
	return PQexec(c, sql);
}

bool lsc_res_ok(PGconn *c, PGresult *res, const char *what)
{
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return true;
	pr_err("database: %s: %s", what,
	       res ? PQresultErrorMessage(res) : PQerrorMessage(c));
	return false;
}

bool lsc_exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = lsc_exec0(c, sql);
	bool ok = lsc_res_ok(c, r, sql);

	PQclear(r);
	return ok;
}

bool lsc_unique_violation(PGresult *res)
{
	const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return st && !strcmp(st, "23505");
}

int lsc_db_migrate(PGconn *c, int target, int *version, char *err, size_t errlen)
{
	int cur = 0, latest = lsc_schema_latest(), ret = 0, n_done = 0, *done = NULL;
	PGresult *r = NULL;
	size_t i;

	if (target <= 0 || target > latest)
		target = latest;
	if (!lsc_exec_ok(c, "BEGIN")) {
		snprintf(err, errlen, "cannot start the migration transaction: %s",
			 PQerrorMessage(c));
		return -EIO;
	}
	/* one migrating server at a time; the others wait and then see the new version */
	if (!lsc_exec_ok(c, "SELECT pg_advisory_xact_lock(7271001)") ||
	    !lsc_exec_ok(c, "CREATE TABLE IF NOT EXISTS lsc_schema ("
			    " version integer PRIMARY KEY,"
			    " name text NOT NULL,"
			    " applied_at timestamptz NOT NULL DEFAULT now())")) {
		snprintf(err, errlen, "cannot create lsc_schema: %s", PQerrorMessage(c));
		ret = -EIO;
		goto rollback;
	}
	/* every migration not recorded yet is applied, in order, also one numbered below the
	 * newest recorded (two branches' migrations landing in either order) */
	r = PQexec(c, "SELECT version FROM lsc_schema ORDER BY version");
	if (!lsc_res_ok(c, r, "schema version")) {
		snprintf(err, errlen, "cannot read the schema version: %s", PQerrorMessage(c));
		ret = -EIO;
		goto rollback;
	}
	n_done = PQntuples(r);
	done = calloc((size_t)n_done + 1, sizeof(*done));
	if (!done) {
		ret = -ENOMEM;
		goto rollback;
	}
	for (int k = 0; k < n_done; k++) {
		bool known = false;

		done[k] = atoi(PQgetvalue(r, k, 0));
		for (i = 0; i < lsc_n_migrations && !known; i++)
			known = lsc_migrations[i].version == done[k];
		if (!known) {
			if (done[k] > latest)
				snprintf(err, errlen,
					 "the database schema is version %d, newer than this "
					 "lightscale-control knows (%d): run a newer lightscale-control",
					 done[k], latest);
			else
				snprintf(err, errlen,
					 "the database has schema migration %d, which this "
					 "lightscale-control does not know: run a newer lightscale-control",
					 done[k]);
			ret = -EPROTO;
			goto rollback;
		}
		if (done[k] > cur)
			cur = done[k];
	}
	PQclear(r);
	r = NULL;
	for (i = 0; i < lsc_n_migrations; i++) {
		const struct lsc_migration *m = &lsc_migrations[i];
		char v[16];
		const char *p[2] = {v, m->name};
		bool applied = false;

		for (int k = 0; k < n_done && !applied; k++)
			applied = done[k] == m->version;
		if (applied || m->version > target)
			continue;
		r = PQexec(c, m->sql);
		if (!lsc_res_ok(c, r, m->name)) {
			snprintf(err, errlen, "migration %s failed: %s", m->name,
				 PQresultErrorMessage(r));
			ret = -EIO;
			goto rollback;
		}
		PQclear(r);
		snprintf(v, sizeof(v), "%d", m->version);
		r = lsc_exec(c, "INSERT INTO lsc_schema (version, name) VALUES ($1, $2)", 2, p);
		if (!lsc_res_ok(c, r, "record migration")) {
			snprintf(err, errlen, "cannot record migration %s", m->name);
			ret = -EIO;
			goto rollback;
		}
		PQclear(r);
		r = NULL;
		pr_info("schema: applied migration %s", m->name);
		if (m->version > cur)
			cur = m->version;
	}
	free(done);
	done = NULL;
	if (!lsc_exec_ok(c, "COMMIT")) {
		snprintf(err, errlen, "cannot commit the migrations: %s", PQerrorMessage(c));
		return -EIO;
	}
	*version = cur;
	return 0;
rollback:
	free(done);
	PQclear(r);
	lsc_exec_ok(c, "ROLLBACK");
	return ret;
}
