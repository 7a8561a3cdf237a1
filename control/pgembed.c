// SPDX-License-Identifier: MIT
/*
 * The embedded PostgreSQL cluster of `lightscale-control serve` without --db.
 *
 *   DIR/pg       the cluster (initdb into DIR/pg.init, renamed when complete)
 *   DIR/run      its Unix socket directory
 *   DIR/pg.log   its log
 *
 * As root it runs as an unprivileged user (--pg-user, default postgres). That user may
 * not be able to traverse DIR's parents (a state dir under /root), so postgres gets
 * its data and socket directories as /proc/self/fd/N: directory descriptors opened by
 * root before the user switch, which need no path traversal. A socket path longer than
 * sun_path allows is reached through a short symlink in /tmp. postgres runs in its own
 * session, so it outlives a `kill -9` of the server; the next start finds it through
 * postmaster.pid and adopts it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "control.h"
#include "log.h"
#include "util.h"

#define PG_DATA_FD 10
#define PG_RUN_FD 11

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static int find_bin_dir(char *out, size_t n, const char *given)
{
	const char *env = getenv("LIGHTSCALE_PG_BIN");
	char path[PATH_MAX];
	int v;

	if (given || env) {
		snprintf(out, n, "%s", given ? given : env);
		snprintf(path, sizeof(path), "%s/postgres", out);
		return access(path, X_OK) ? -ENOENT : 0;
	}
	for (v = 30; v >= 10; v--) {
		snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/postgres", v);
		if (!access(path, X_OK)) {
			snprintf(out, n, "/usr/lib/postgresql/%d/bin", v);
			return 0;
		}
	}
	return -ENOENT;
}

struct runas {
	bool switch_user;
	uid_t uid;
	gid_t gid;
	const char *name;
};

/* Forks a child that runs argv as the cluster user with the data (and run) directory on
 * PG_DATA_FD (PG_RUN_FD), output appended to logpath. new_session: setsid(). */
static pid_t spawn(const struct runas *ra, const char *data_dir, const char *run_dir,
		   const char *logpath, bool new_session, char *const argv[])
{
	pid_t pid;
	int logfd;

	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(logfd);
		return -errno;
	}
	if (pid == 0) {
		int dfd, rfd = -1, nullfd;

		sigset_t none;

		if (new_session)
			setsid();
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		dfd = open(data_dir, O_RDONLY | O_DIRECTORY);
		if (run_dir)
			rfd = open(run_dir, O_RDONLY | O_DIRECTORY);
		nullfd = open("/dev/null", O_RDONLY);
		if (dfd < 0 || (run_dir && rfd < 0) || nullfd < 0)
			_exit(126);
		if (dup2(dfd, PG_DATA_FD) < 0 || (rfd >= 0 && dup2(rfd, PG_RUN_FD) < 0) ||
		    dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
			_exit(126);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != PG_DATA_FD && fd != PG_RUN_FD)
				close(fd);
		if (chdir("/") < 0)
			_exit(126);
		if (ra->switch_user) {
			if (setgroups(0, NULL) < 0 || setgid(ra->gid) < 0 || setuid(ra->uid) < 0)
				_exit(126);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	close(logfd);
	return pid;
}

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int own_dir(const char *path, const struct runas *ra)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	if (ra->switch_user && chown(path, ra->uid, ra->gid) < 0)
		return -errno;
	if (chmod(path, 0700) < 0)
		return -errno;
	return 0;
}

static int rm_rf(const char *path)
{
	char *argv[] = {"/bin/rm", "-rf", (char *)path, NULL};
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execv(argv[0], argv);
		_exit(127);
	}
	return wait_child(pid) ? -EIO : 0;
}

static int initdb(struct lsc_pg *pg, const struct runas *ra)
{
	char tmp[PATH_MAX + 16], bin[PATH_MAX], logp[PATH_MAX];
	char *argv[16];
	int n = 0, rc;
	pid_t pid;

	snprintf(tmp, sizeof(tmp), "%s.init", pg->data_dir);
	snprintf(bin, sizeof(bin), "%s/initdb", pg->bin_dir);
	snprintf(logp, sizeof(logp), "%s/pg.log", pg->state_dir);
	if (!access(tmp, F_OK) && rm_rf(tmp))
		return -EIO;
	rc = own_dir(tmp, ra);
	if (rc)
		return rc;
	argv[n++] = bin;
	argv[n++] = "-D";
	argv[n++] = "/proc/self/fd/10";
	argv[n++] = "-U";
	argv[n++] = "lightscale";
	argv[n++] = "-A";
	argv[n++] = "trust";
	argv[n++] = "-E";
	argv[n++] = "UTF8";
	argv[n++] = "--locale=C";
	if (pg->fast)
		argv[n++] = "-N";
	argv[n] = NULL;
	pr_info("initdb: creating the cluster in %s (user %s)", pg->data_dir,
		ra->switch_user ? ra->name : "current");
	pid = spawn(ra, tmp, NULL, logp, false, argv);
	if (pid < 0)
		return (int)pid;
	rc = wait_child(pid);
	if (rc) {
		pr_err("initdb failed with status %d; see %s", rc, logp);
		return -EIO;
	}
	if (rename(tmp, pg->data_dir) < 0)
		return -errno;
	return 0;
}

/* A live postmaster from DIR/pg/postmaster.pid, or 0. */
static pid_t running_postmaster(struct lsc_pg *pg)
{
	char path[PATH_MAX + 32], exe[PATH_MAX], *buf = NULL;
	size_t len;
	long pid;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/postmaster.pid", pg->data_dir);
	if (ls_read_file(path, &buf, &len, 4096))
		return 0;
	pid = strtol(buf, NULL, 10);
	free(buf);
	if (pid <= 1 || kill((pid_t)pid, 0) < 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/exe", pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n <= 0)
		return 0;
	exe[n] = '\0';
	if (!strstr(exe, "postgres"))
		return 0;
	return (pid_t)pid;
}

static int connect_dir(struct lsc_pg *pg)
{
	uint8_t h[16];
	char link[64];

	if (strlen(pg->run_dir) + strlen("/.s.PGSQL.5432") < 100) {
		snprintf(pg->connect_dir, sizeof(pg->connect_dir), "%s", pg->run_dir);
		return 0;
	}
	/* sun_path holds 108 bytes: reach a deep socket directory through /tmp */
	crypto_generichash(h, sizeof(h), (const uint8_t *)pg->run_dir, strlen(pg->run_dir), NULL, 0);
	snprintf(link, sizeof(link), "/tmp/lsc-pg-%02x%02x%02x%02x%02x%02x", h[0], h[1], h[2], h[3],
		 h[4], h[5]);
	unlink(link);
	if (symlink(pg->run_dir, link) < 0)
		return -errno;
	snprintf(pg->connect_dir, sizeof(pg->connect_dir), "%s", link);
	pr_info("postgres: socket directory %s reached through %s", pg->run_dir, link);
	return 0;
}

static int wait_ready(struct lsc_pg *pg, int timeout_ms)
{
	char conninfo[PATH_MAX + 64];
	uint64_t end = ls_now_ms() + (uint64_t)timeout_ms;

	snprintf(conninfo, sizeof(conninfo), "host=%s dbname=postgres user=lightscale connect_timeout=2",
		 pg->connect_dir);
	while (ls_now_ms() < end) {
		if (PQping(conninfo) == PQPING_OK)
			return 0;
		if (pg->is_child) {
			int st;

			if (waitpid(pg->pid, &st, WNOHANG) == pg->pid) {
				pg->pid = 0;
				return -ECHILD;
			}
		} else if (kill(pg->pid, 0) < 0) {
			return -ESRCH;
		}
		sleep_ms(50);
	}
	return -ETIMEDOUT;
}

static int ensure_database(struct lsc_pg *pg)
{
	char conninfo[PATH_MAX + 64];
	PGconn *c;
	PGresult *r;
	int ret = 0;

	snprintf(conninfo, sizeof(conninfo), "host=%s dbname=postgres user=lightscale", pg->connect_dir);
	c = PQconnectdb(conninfo);
	if (PQstatus(c) != CONNECTION_OK) {
		pr_err("postgres: %s", PQerrorMessage(c));
		PQfinish(c);
		return -EIO;
	}
	r = PQexec(c, "SELECT 1 FROM pg_database WHERE datname = 'lightscale'");
	if (!lsc_res_ok(c, r, "find database")) {
		ret = -EIO;
	} else if (PQntuples(r) == 0) {
		if (!lsc_exec_ok(c, "CREATE DATABASE lightscale"))
			ret = -EIO;
	}
	PQclear(r);
	PQfinish(c);
	return ret;
}

int lsc_pg_start(struct lsc_pg *pg, const char *state_dir, const char *user, const char *bin_dir)
{
	char version[PATH_MAX + 32], bin[PATH_MAX], logp[PATH_MAX];
	struct runas ra = {0};
	pid_t running;
	int ret;

	memset(pg, 0, sizeof(*pg));
	pg->fast = getenv("LIGHTSCALE_PG_FAST") && !strcmp(getenv("LIGHTSCALE_PG_FAST"), "1");
	{
		char real[PATH_MAX];

		if (!realpath(state_dir, real))
			return -errno;
		if (strlen(real) >= sizeof(pg->state_dir))
			return -ENAMETOOLONG;
		memcpy(pg->state_dir, real, strlen(real) + 1);
	}
	snprintf(pg->data_dir, sizeof(pg->data_dir), "%s/pg", pg->state_dir);
	snprintf(pg->run_dir, sizeof(pg->run_dir), "%s/run", pg->state_dir);
	if (find_bin_dir(pg->bin_dir, sizeof(pg->bin_dir), bin_dir)) {
		pr_err("postgres: no server binaries found%s%s (use --pg-bin DIR)",
		       bin_dir ? " in " : "", bin_dir ? bin_dir : "");
		return -ENOENT;
	}
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam(user ? user : "postgres");

		if (!pw) {
			pr_err("postgres: no user `%s' to run the cluster as (use --pg-user)",
			       user ? user : "postgres");
			return -ENOENT;
		}
		if (pw->pw_uid == 0) {
			pr_err("postgres: refusing to run the cluster as root (user `%s')", pw->pw_name);
			return -EPERM;
		}
		ra.switch_user = true;
		ra.uid = pw->pw_uid;
		ra.gid = pw->pw_gid;
		ra.name = user ? user : "postgres";
	}
	snprintf(version, sizeof(version), "%s/PG_VERSION", pg->data_dir);
	if (access(version, F_OK)) {
		if (!access(pg->data_dir, F_OK)) {
			pr_err("postgres: %s exists but holds no cluster (no PG_VERSION); move it away",
			       pg->data_dir);
			return -EEXIST;
		}
		ret = initdb(pg, &ra);
		if (ret)
			return ret;
	}
	ret = own_dir(pg->run_dir, &ra);
	if (ret) {
		pr_err("postgres: cannot prepare %s: %s", pg->run_dir, strerror(-ret));
		return ret;
	}
	ret = connect_dir(pg);
	if (ret) {
		pr_err("postgres: cannot link a short socket path to %s: %s", pg->run_dir,
		       strerror(-ret));
		return ret;
	}
	running = running_postmaster(pg);
	if (running) {
		pr_info("postgres: adopting the running postmaster %d of %s", (int)running,
			pg->data_dir);
		pg->pid = running;
		pg->is_child = false;
	} else {
		char *argv[24];
		int n = 0;

		snprintf(bin, sizeof(bin), "%s/postgres", pg->bin_dir);
		snprintf(logp, sizeof(logp), "%s/pg.log", pg->state_dir);
		argv[n++] = bin;
		argv[n++] = "-D";
		argv[n++] = "/proc/self/fd/10";
		argv[n++] = "-k";
		argv[n++] = "/proc/self/fd/11";
		argv[n++] = "-c";
		argv[n++] = "listen_addresses=";
		argv[n++] = "-c";
		argv[n++] = "unix_socket_permissions=0700";
		argv[n++] = "-c";
		argv[n++] = "max_connections=200";
		if (pg->fast) {
			argv[n++] = "-c";
			argv[n++] = "fsync=off";
			argv[n++] = "-c";
			argv[n++] = "synchronous_commit=off";
			argv[n++] = "-c";
			argv[n++] = "full_page_writes=off";
		}
		argv[n] = NULL;
		pg->pid = spawn(&ra, pg->data_dir, pg->run_dir, logp, true, argv);
		if (pg->pid < 0) {
			ret = pg->pid;
			pg->pid = 0;
			return ret;
		}
		pg->is_child = true;
		pr_info("postgres: started postmaster %d on %s", (int)pg->pid, pg->data_dir);
	}
	ret = wait_ready(pg, 60000);
	if (ret) {
		pr_err("postgres: the cluster did not become ready (%s); see %s/pg.log",
		       strerror(-ret), pg->state_dir);
		lsc_pg_stop(pg);
		return ret;
	}
	ret = ensure_database(pg);
	if (ret) {
		lsc_pg_stop(pg);
		return ret;
	}
	snprintf(pg->dsn, sizeof(pg->dsn), "host=%s dbname=lightscale user=lightscale",
		 pg->connect_dir);
	return 0;
}

int lsc_pg_stop(struct lsc_pg *pg)
{
	uint64_t end;

	if (pg->pid <= 0)
		return 0;
	/* SIGINT: fast shutdown (abort sessions, checkpoint, exit) */
	kill(pg->pid, SIGINT);
	end = ls_now_ms() + 30000;
	while (ls_now_ms() < end) {
		if (pg->is_child) {
			int st;

			if (waitpid(pg->pid, &st, WNOHANG) == pg->pid)
				break;
		} else if (kill(pg->pid, 0) < 0) {
			break;
		}
		sleep_ms(50);
	}
	if (ls_now_ms() >= end) {
		pr_warn("postgres: postmaster %d did not stop in 30 s; sending SIGQUIT", (int)pg->pid);
		kill(pg->pid, SIGQUIT);
		if (pg->is_child)
			wait_child(pg->pid);
	}
	pr_info("postgres: stopped postmaster %d", (int)pg->pid);
	pg->pid = 0;
	if (strcmp(pg->connect_dir, pg->run_dir))
		unlink(pg->connect_dir); /* the short symlink to DIR/run */
	return 0;
}
