// SPDX-License-Identifier: MIT
/*
 * `lightscale-control serve`: one thread, one epoll loop.
 *
 *   epoll ─┬─ libmicrohttpd's epoll fd (external-epoll mode; MHD_run when ready)
 *          ├─ the LISTEN connection's socket (NOTIFY lsc_netmap "<network> <version>")
 *          └─ signalfd (SIGTERM, SIGINT: stop)
 *
 * A long-poll is a suspended MHD connection on its network's waiter list, with a deadline
 * checked by a sweep; a NOTIFY (from any server sharing the database) makes the network
 * sync its snapshot once and answer every waiter behind the new version. Requests run
 * their queries synchronously on one request connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lightscale/api.h"
#include "log.h"
#include "server.h"
#include "tlsid.h"
#include "ctlclient.h"
#include <sodium.h>
#include "util.h"

#define TAG_MHD 1
#define TAG_LDB 2
#define TAG_SIG 3
#define TAG_DB 4

/* ---- replies ---- */

void lsc_reply(struct lsc_req *r, unsigned status, char *body, size_t len)
{
	free(r->reply);
	r->reply = body;
	r->reply_len = len;
	r->status = status;
	r->have_reply = true;
}

void lsc_reply_json(struct lsc_req *r, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (!s) {
		lsc_reply(r, 500, strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}"),
			  58);
		return;
	}
	lsc_reply(r, status, s, strlen(s));
}

void lsc_reply_error(struct lsc_req *r, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_debug("%s -> %u %s: %s", r->uri, status, code, msg);
	lsc_reply_json(r, status, json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

const char *lsc_req_header(struct lsc_req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

/* ---- database connections ---- */

static void notice(void *arg, const char *msg)
{
	pr_debug("database: %.*s", (int)strcspn(msg, "\n"), msg);
}

static PGconn *db_connect(const char *dsn)
{
	/* a default connect timeout; the DSN's own connect_timeout wins (expanded after) */
	static const char *const keys[] = {"connect_timeout", "dbname", NULL};
	const char *vals[] = {"5", dsn, NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);

	if (PQstatus(c) != CONNECTION_OK) {
		pr_warn("database: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice, NULL);
	return c;
}

/* The idle request connection is watched in the loop: anything readable on it is the
 * server going away (shutdown, a terminated backend), found before a request fails. */
static void db_watch(struct lsc_server *s)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_DB};

	if (!s->db || s->epfd < 0 || s->db_fd >= 0)
		return;
	s->db_fd = PQsocket(s->db);
	if (s->db_fd >= 0 && epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->db_fd, &ev) < 0)
		s->db_fd = -1;
}

static void db_drop(struct lsc_server *s)
{
	if (s->db_fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->db_fd, NULL);
	s->db_fd = -1;
	if (s->db)
		PQfinish(s->db);
	s->db = NULL;
}

/* the request connection, reconnected (at most once a second) when lost */
static PGconn *db_ensure(struct lsc_server *s)
{
	if (s->db && PQstatus(s->db) != CONNECTION_OK) {
		pr_warn("database: the request connection was lost; reconnecting");
		db_drop(s);
	}
	if (!s->db && ls_now_ms() >= s->db_retry_ms) {
		s->db = db_connect(s->dsn);
		if (!s->db)
			s->db_retry_ms = ls_now_ms() + 1000;
		db_watch(s);
	}
	return s->db;
}

static void db_readable(struct lsc_server *s)
{
	if (PQconsumeInput(s->db) && PQstatus(s->db) == CONNECTION_OK)
		return;
	pr_warn("database: the request connection was closed by the server; reconnecting");
	db_drop(s);
	s->db_retry_ms = 0;
}

PGconn *lsc_db(struct lsc_req *r)
{
	struct lsc_server *s = r->srv;

	db_ensure(s);
	if (!s->db)
		lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "the database is unreachable");
	return s->db;
}

void lsc_db_failed(struct lsc_req *r, PGresult *res, const char *what)
{
	struct lsc_server *s = r->srv;

	lsc_res_ok(s->db, res, what);
	if (!s->db || PQstatus(s->db) != CONNECTION_OK)
		lsc_reply_error(r, 503, LS_ERR_UNAVAILABLE, "the database is unreachable");
	else
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "database error (%s)", what);
	if (s->db && PQtransactionStatus(s->db) == PQTRANS_INERROR)
		lsc_exec_ok(s->db, "ROLLBACK");
}

static int ldb_open(struct lsc_server *s)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_LDB};
	struct lsc_net *n;

	s->ldb = db_connect(s->dsn);
	if (!s->ldb)
		return -EIO;
	if (!lsc_exec_ok(s->ldb, "LISTEN " LSC_NOTIFY_CHANNEL)) {
		PQfinish(s->ldb);
		s->ldb = NULL;
		return -EIO;
	}
	PQsetnonblocking(s->ldb, 1);
	s->ldb_fd = PQsocket(s->ldb);
	if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->ldb_fd, &ev) < 0) {
		PQfinish(s->ldb);
		s->ldb = NULL;
		s->ldb_fd = -1;
		return -errno;
	}
	/* anything may have changed while we were not listening: resync every waiter */
	for (n = s->nets; n; n = n->next)
		n->dirty = true;
	return 0;
}

static void ldb_close(struct lsc_server *s)
{
	if (s->ldb_fd >= 0)
		epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->ldb_fd, NULL);
	s->ldb_fd = -1;
	if (s->ldb)
		PQfinish(s->ldb);
	s->ldb = NULL;
	s->ldb_retry_ms = ls_now_ms() + 1000;
}

static void ldb_read(struct lsc_server *s)
{
	PGnotify *nt;

	if (!PQconsumeInput(s->ldb) || PQstatus(s->ldb) != CONNECTION_OK) {
		pr_warn("database: the LISTEN connection was lost; reconnecting");
		ldb_close(s);
		return;
	}
	while ((nt = PQnotifies(s->ldb))) {
		char id[40];
		long long v = 0;
		struct lsc_net *n;

		if (sscanf(nt->extra, "%36s %lld", id, &v) == 2) {
			n = lsc_net_find(s, id, false);
			if (n) {
				if (v > n->known_version)
					n->known_version = v;
				n->dirty = true;
			}
		}
		PQfreemem(nt);
	}
}

static void process_dirty(struct lsc_server *s)
{
	struct lsc_net *n;

	for (n = s->nets; n; n = n->next) {
		int ret;

		if (!n->dirty)
			continue;
		n->dirty = false;
		if (!n->n_waiters)
			continue; /* synced lazily by the next request */
		db_ensure(s);
		ret = lsc_net_sync(s, n);
		if (ret == 0)
			lsc_net_wake(s, n);
		else if (ret == -EIO)
			n->dirty = true; /* database unavailable: retry on the next turn */
	}
}

/* ---- libmicrohttpd glue ---- */

static void *uri_log(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct lsc_req *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->srv = cls;
	r->conn = conn;
	r->uri = strdup(uri ? uri : "/");
	return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		      enum MHD_RequestTerminationCode toe)
{
	struct lsc_req *r = *con_cls;

	if (!r)
		return;
	if (r->waiting)
		lsc_waiter_remove(r);
	free(r->uri);
	free(r->reply);
	lsc_buf_free(&r->body);
	free(r);
	*con_cls = NULL;
}

/* Netmap signatures by body hash: every waiter of one change gets the same delta, signed
 * once (an Ed25519 signature costs ~20 times the SHA-256 of a delta). The key is the whole
 * signed message (context + SHA-256 of the body) and the identity key. */
#define SIG_CACHE 8
static struct {
	uint8_t msg[52], pk[32];
	char sig[100];
	bool used;
} sig_cache[SIG_CACHE];
static unsigned sig_cache_next;

static void sign_netmap(struct lsc_server *s, const char *body, size_t len, char sigb64[100])
{
	uint8_t msg[52], sig[64];
	unsigned i;

	ls_netmap_sig_message(msg, body, len);
	for (i = 0; i < SIG_CACHE; i++)
		if (sig_cache[i].used && !memcmp(sig_cache[i].msg, msg, sizeof(msg)) &&
		    !memcmp(sig_cache[i].pk, s->identity_pk, 32)) {
			memcpy(sigb64, sig_cache[i].sig, 100);
			return;
		}
	crypto_sign_ed25519_detached(sig, NULL, msg, sizeof(msg), s->identity_sk);
	ls_b64_encode(sigb64, 100, sig, sizeof(sig));
	i = sig_cache_next++ % SIG_CACHE;
	memcpy(sig_cache[i].msg, msg, sizeof(msg));
	memcpy(sig_cache[i].pk, s->identity_pk, 32);
	memcpy(sig_cache[i].sig, sigb64, 100);
	sig_cache[i].used = true;
}

static enum MHD_Result queue(struct lsc_req *r)
{
	struct MHD_Response *resp;
	char sigb64[100];
	enum MHD_Result ret;

	sigb64[0] = '\0';
	if (r->sign_reply && r->status == 200 && r->srv && r->srv->have_identity)
		sign_netmap(r->srv, r->reply ? r->reply : "", r->reply_len, sigb64);
	resp = MHD_create_response_from_buffer(r->reply_len, r->reply, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	r->reply = NULL;
	MHD_add_response_header(resp, "Content-Type", r->html ? "text/html; charset=utf-8" : "application/json");
	if (r->html) {
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'");
		MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	}
	if (r->set_cookie[0])
		MHD_add_response_header(resp, "Set-Cookie", r->set_cookie);
	if (sigb64[0])
		MHD_add_response_header(resp, "X-Lightscale-Netmap-Signature", sigb64);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (r->status == 429 || r->status == 503)
		MHD_add_response_header(resp, "Retry-After", "1");
	ret = MHD_queue_response(r->conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

void lsc_resume(struct lsc_req *r)
{
	MHD_resume_connection(r->conn);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
			       const char *method, const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	struct lsc_server *s = cls;
	struct lsc_req *r = *con_cls;
	char *q;

	if (!r)
		return MHD_NO;
	if (!r->started) {
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
							     MHD_HTTP_HEADER_CONTENT_LENGTH);
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

		r->started = true;
		if (ci && ci->client_addr) {
			size_t sl = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
									   : sizeof(struct sockaddr_in);
			memcpy(&r->src, ci->client_addr, sl);
		}
		if (cl && strtoull(cl, NULL, 10) > LS_MAX_BODY) {
			lsc_reply_error(r, 413, LS_ERR_BODY_TOO_LARGE,
					"request body of %s bytes exceeds the limit of %d", cl,
					LS_MAX_BODY);
			return queue(r);
		}
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!r->too_large && r->body.len + *upload_data_size > LS_MAX_BODY) {
			r->too_large = true;
			lsc_buf_free(&r->body);
		}
		if (!r->too_large)
			lsc_buf_add(&r->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->have_reply) /* resumed long-poll, or a reply made earlier */
		return queue(r);
	if (r->too_large) {
		lsc_reply_error(r, 413, LS_ERR_BODY_TOO_LARGE, "request body exceeds the limit of %d bytes",
				LS_MAX_BODY);
		return queue(r);
	}
	if (r->body.oom) {
		lsc_reply_error(r, 500, LS_ERR_INTERNAL, "out of memory");
		return queue(r);
	}
	q = strchr(r->uri, '?');
	(void)url;
	{
		char path[1024];
		size_t n = q ? (size_t)(q - r->uri) : strlen(r->uri);

		if (n >= sizeof(path)) {
			lsc_reply_error(r, 414, LS_ERR_NOT_FOUND, "path too long");
			return queue(r);
		}
		memcpy(path, r->uri, n);
		path[n] = '\0';
		lsc_route(s, r, method, path);
	}
	if (r->have_reply)
		return queue(r);
	if (r->waiting) {
		MHD_suspend_connection(conn);
		return MHD_YES;
	}
	lsc_reply_error(r, 500, LS_ERR_INTERNAL, "no reply");
	return queue(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	pr_debug("microhttpd: %s", buf);
}

/* ---- serve ---- */

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_max < 1048576) {
		struct rlimit want = {1048576, 1048576};

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			return; /* root may raise the hard limit */
	}
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static int write_url_file(const char *state_dir, const struct sockaddr *sa, bool tls)
{
	char ep[LS_ENDPOINT_STRLEN], url[LS_ENDPOINT_STRLEN + 16], path[4200];

	ls_endpoint_format(sa, ep);
	snprintf(url, sizeof(url), "%s://%s\n", tls ? "https" : "http", ep);
	snprintf(path, sizeof(path), "%s/control.url", state_dir);
	pr_info("listening on %s", url);
	return ls_write_file_atomic(path, url, strlen(url), 0644);
}

/* ls_endpoint_parse, plus port 0 (any free port) */
static int listen_parse(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
	size_t n = strlen(s);
	char *tmp;
	int ret;

	if (n < 2 || strcmp(s + n - 2, ":0"))
		return ls_endpoint_parse(s, ss, sl);
	tmp = strdup(s);
	if (!tmp)
		return -ENOMEM;
	tmp[n - 1] = '1';
	ret = ls_endpoint_parse(tmp, ss, sl);
	free(tmp);
	if (ret)
		return ret;
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = 0;
	else
		((struct sockaddr_in6 *)ss)->sin6_port = 0;
	return 0;
}

int lsc_serve(const struct lsc_serve_opts *o)
{
	struct lsc_server srv = {0}, *s = &srv;
	struct lsc_pg pg = {0};
	struct sockaddr_storage ss;
	socklen_t sl;
	sigset_t mask;
	char err[512], lockpath[4200];
	const union MHD_DaemonInfo *di;
	struct epoll_event ev;
	int ret = 0, exit_ret = 0, lockfd = -1, mhd_epfd;
	uint64_t next_pg_check = 0;
	bool embedded = !o->db;

	s->epfd = s->sigfd = s->ldb_fd = s->db_fd = -1;
	lsc_config_defaults(&s->cfg);
	if (o->config && lsc_config_load(&s->cfg, o->config, err, sizeof(err))) {
		pr_err("config: %s", err);
		ret = -EINVAL;
		goto cleanup;
	}
	if (listen_parse(o->listen, &ss, &sl)) {
		pr_err("invalid listen address `%s' (want ADDR:PORT, [V6]:PORT)", o->listen);
		ret = -EINVAL;
		goto cleanup;
	}
	ret = ls_mkdir_p(o->state_dir, 0700);
	if (ret) {
		pr_err("cannot create the state directory `%s': %s", o->state_dir, strerror(-ret));
		goto cleanup;
	}
	snprintf(lockpath, sizeof(lockpath), "%s/serve.lock", o->state_dir);
	lockfd = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		pr_err("another lightscale-control serve uses the state directory `%s'", o->state_dir);
		ret = -EBUSY;
		goto cleanup;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP); /* switch to a staged TLS key */
	sigaddset(&mask, SIGCHLD); /* the embedded postmaster exiting */
	sigprocmask(SIG_BLOCK, &mask, NULL);
	s->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	if (embedded) {
		pg.fast = o->pg_fast;
		ret = lsc_pg_start(&pg, o->state_dir, o->pg_user, o->pg_bin);
		if (ret)
			goto cleanup;
		s->dsn = strdup(pg.dsn);
	} else {
		s->dsn = strdup(o->db);
	}
	s->db = db_connect(s->dsn);
	if (!s->db) {
		pr_err("cannot connect to the database");
		ret = -EIO;
		goto cleanup;
	}
	{
		const char *t = getenv("LIGHTSCALE_SCHEMA_TARGET"); /* tests: an older schema */

		ret = lsc_db_migrate(s->db, t ? atoi(t) : 0, &s->schema_version, err, sizeof(err));
	}
	if (ret) {
		pr_err("schema: %s", err);
		goto cleanup;
	}
	pr_info("schema version %d", s->schema_version);
	ret = lsc_admin_key_ensure(s->db, o->state_dir);
	if (ret)
		goto cleanup;
	if (s->schema_version >= 3) {
		ret = lsc_identity_load(s, s->db, o->state_dir, o->identity_key);
		if (ret)
			goto cleanup;
		s->have_identity = true;
	}
	s->tls = o->tls;
	if (o->tls) {
		/* the key is endorsed and published before the first handshake (tls_admin.c) */
		ret = lsc_tls_start(s, o);
		if (ret)
			goto cleanup;
	} else {
		pr_warn("serving plain HTTP (--insecure-http): nodes cannot authenticate this server "
			"and everything but signed requests can be read and changed on the way");
	}
	s->rl = lsc_rl_new();
	s->relays_json = json_dumps(s->cfg.relays, JSON_COMPACT);
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!s->rl || !s->relays_json || s->epfd < 0) {
		ret = -ENOMEM;
		goto cleanup;
	}
	ev.events = EPOLLIN;
	ev.data.u64 = TAG_SIG;
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->sigfd, &ev);
	db_watch(s);
	if (ldb_open(s)) {
		pr_err("cannot LISTEN on the database");
		ret = -EIO;
		goto cleanup;
	}

	/* HTTPS: the certificate callback serves the current key of tls_admin.c, so a switch
	 * (tls activate, SIGHUP) applies from the next handshake without a restart */
	s->mhd = MHD_start_daemon(
		MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG | MHD_USE_TURBO |
			(ss.ss_family == AF_INET6 ? MHD_USE_DUAL_STACK : 0) | (o->tls ? MHD_USE_TLS : 0),
		0, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_URI_LOG_CALLBACK, uri_log, s, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int)s->cfg.connection_limit,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int)0,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)60, MHD_OPTION_LISTEN_BACKLOG_SIZE,
		(unsigned int)4096, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)16384,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		/* with TLS: the certificate callback (ignored otherwise: MHD_OPTION_END first) */
		o->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, lsc_tls_cert_callback(),
		MHD_OPTION_END);
	if (!s->mhd) {
		pr_err("cannot listen on `%s': %s", o->listen, strerror(errno));
		ret = -EADDRINUSE;
		goto cleanup;
	}
	di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	mhd_epfd = di ? di->epoll_fd : -1;
	ev.events = EPOLLIN;
	ev.data.u64 = TAG_MHD;
	if (mhd_epfd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, mhd_epfd, &ev) < 0) {
		pr_err("cannot poll libmicrohttpd");
		ret = -EIO;
		goto cleanup;
	}
	{
		const union MHD_DaemonInfo *li = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
		struct sockaddr_storage bound;
		socklen_t bl = sizeof(bound);

		if (li && getsockname(li->listen_fd, (struct sockaddr *)&bound, &bl) == 0)
			write_url_file(o->state_dir, (struct sockaddr *)&bound, o->tls);
	}
	pr_info("serving (%s database, schema %d)", embedded ? "embedded" : "external",
		s->schema_version);

	while (!s->stop) {
		struct epoll_event evs[8];
		MHD_UNSIGNED_LONG_LONG mt = 0;
		uint64_t now = ls_now_ms();
		int timeout = 1000, n, i;

		if (MHD_get_timeout(s->mhd, &mt) == MHD_YES && mt < (MHD_UNSIGNED_LONG_LONG)timeout)
			timeout = (int)mt;
		if (s->n_waiters && timeout > 100)
			timeout = 100;
		if (!s->ldb && timeout > 200)
			timeout = 200;
		n = epoll_wait(s->epfd, evs, 8, timeout);
		if (n < 0 && errno != EINTR) {
			pr_err("epoll_wait: %s", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.u64 == TAG_SIG) {
				struct signalfd_siginfo si;

				while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGCHLD) {
						next_pg_check = 0;
						continue;
					}
					if (si.ssi_signo == SIGHUP) {
						db_ensure(s);
						lsc_tls_reload(s);
						continue;
					}
					pr_info("signal %u: stopping", si.ssi_signo);
					s->stop = true;
				}
			} else if (evs[i].data.u64 == TAG_LDB && s->ldb) {
				ldb_read(s);
			} else if (evs[i].data.u64 == TAG_DB && s->db) {
				db_readable(s);
			}
		}
		MHD_run(s->mhd);
		now = ls_now_ms();
		if (!s->ldb && now >= s->ldb_retry_ms && ldb_open(s))
			s->ldb_retry_ms = now + 1000;
		process_dirty(s);
		if (s->n_waiters && now >= s->next_sweep_ms) {
			lsc_waiters_sweep(s, now);
			s->next_sweep_ms = now + 100;
		}
		if (embedded && pg.pid > 0 && now >= next_pg_check) {
			int st;
			bool gone = pg.is_child ? waitpid(pg.pid, &st, WNOHANG) == pg.pid
						: kill(pg.pid, 0) < 0 && errno == ESRCH;

			if (gone) {
				pr_err("the embedded PostgreSQL (postmaster %d) exited; stopping (see %s/pg.log)",
				       (int)pg.pid, o->state_dir);
				pg.pid = 0;
				exit_ret = -EIO;
				s->stop = true;
			}
			next_pg_check = now + 1000;
		}
		lsc_tls_tick(s, now);
		if (now >= s->next_expiry_ms) {
			lsc_expiry_sweep(s);
			s->next_expiry_ms = now + 1000;
		}
		if (now >= s->next_flush_ms) {
			lsc_live_flush(s);
			s->next_flush_ms = now + (uint64_t)s->cfg.liveness_flush_ms;
		}
		if (now >= s->next_prune_ms && s->db && PQstatus(s->db) == CONNECTION_OK) {
			char q[160];

			snprintf(q, sizeof(q), "%d", 2 * LS_SIGN_MAX_SKEW + 60);
			{
				const char *p[1] = {q};
				PGresult *res = lsc_exec(s->db,
							 "DELETE FROM nonces WHERE seen_at < "
							 "now() - make_interval(secs => $1::int)",
							 1, p);

				lsc_res_ok(s->db, res, "prune nonces");
				PQclear(res);
			}
			/* the change log: keep delta_versions versions per network */
			snprintf(q, sizeof(q), "%d", s->cfg.delta_versions);
			{
				const char *p[1] = {q};
				PGresult *res = lsc_exec(
					s->db,
					"WITH p AS (UPDATE networks SET log_floor = version - $1::bigint "
					"  WHERE version - $1::bigint > log_floor RETURNING id, log_floor) "
					"DELETE FROM changes USING p WHERE changes.network_id = p.id "
					"  AND changes.version <= p.log_floor",
					1, p);

				lsc_res_ok(s->db, res, "prune change log");
				PQclear(res);
			}
			s->next_prune_ms = now + 60000;
		}
		MHD_run(s->mhd);
	}
	ret = exit_ret;
cleanup:
	if (s->mhd) {
		struct lsc_net *n;

		/* suspended connections must be resumed before the daemon stops */
		for (n = s->nets; n; n = n->next)
			while (n->waiters) {
				struct lsc_req *w = n->waiters;

				lsc_waiter_remove(w);
				lsc_reply_error(w, 503, LS_ERR_UNAVAILABLE, "the server is stopping");
				lsc_resume(w);
			}
		MHD_run(s->mhd);
		lsc_live_flush(s);
		MHD_stop_daemon(s->mhd);
	}
	lsc_nets_free(s);
	ldb_close(s);
	db_drop(s);
	if (embedded)
		lsc_pg_stop(&pg);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (lockfd >= 0)
		close(lockfd);
	lsc_rl_free(s->rl);
	free(s->relays_json);
	lsc_tls_free(s);
	free(s->live);
	free(s->dsn);
	lsc_config_free(&s->cfg);
	return ret;
}
