// SPDX-License-Identifier: MIT
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum ls_log_level ls_log_level = LS_LOG_INFO;
static const char *log_name = "lightscale";

void ls_log_init(const char *name)
{
	const char *env = getenv("LIGHTSCALE_LOG");

	if (name)
		log_name = name;
	if (!env || !*env)
		return;
	if (!strcasecmp(env, "err") || !strcasecmp(env, "error") || !strcmp(env, "0"))
		ls_log_level = LS_LOG_ERR;
	else if (!strcasecmp(env, "warn") || !strcasecmp(env, "warning") || !strcmp(env, "1"))
		ls_log_level = LS_LOG_WARN;
	else if (!strcasecmp(env, "info") || !strcmp(env, "2"))
		ls_log_level = LS_LOG_INFO;
	else if (!strcasecmp(env, "debug") || !strcmp(env, "3"))
		ls_log_level = LS_LOG_DEBUG;
	else
		fprintf(stderr, "%s: LIGHTSCALE_LOG=`%s' is not one of err, warn, info, debug; using info\n",
			log_name, env);
}

void ls_vlog(enum ls_log_level level, const char *fmt, va_list ap)
{
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char ts[32];
	struct timespec now;
	struct tm tm;
	size_t n;

	if (level > ls_log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	flockfile(stderr);
	fprintf(stderr, "%s.%03ldZ %s[%d] %s: ", ts, now.tv_nsec / 1000000, log_name, (int)getpid(),
		tag[level]);
	vfprintf(stderr, fmt, ap);
	n = strlen(fmt);
	if (n == 0 || fmt[n - 1] != '\n')
		fputc('\n', stderr);
	funlockfile(stderr);
}

void ls_log(enum ls_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ls_vlog(level, fmt, ap);
	va_end(ap);
}
