/* SPDX-License-Identifier: MIT */
/* Logging for every Lightscale binary. The level comes from LIGHTSCALE_LOG
 * (err, warn, info, debug; default info). Never log private keys or tokens. */
#ifndef LS_LOG_H
#define LS_LOG_H

#include <stdarg.h>

enum ls_log_level {
	LS_LOG_ERR = 0,
	LS_LOG_WARN = 1,
	LS_LOG_INFO = 2,
	LS_LOG_DEBUG = 3,
};

extern enum ls_log_level ls_log_level;

/* Reads LIGHTSCALE_LOG; name prefixes every line (e.g. "lightscale-control"). */
void ls_log_init(const char *name);
void ls_log(enum ls_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ls_vlog(enum ls_log_level level, const char *fmt, va_list ap);

#define pr_err(...) ls_log(LS_LOG_ERR, __VA_ARGS__)
#define pr_warn(...) ls_log(LS_LOG_WARN, __VA_ARGS__)
#define pr_info(...) ls_log(LS_LOG_INFO, __VA_ARGS__)
#define pr_debug(...)                                     \
	do {                                              \
		if (ls_log_level >= LS_LOG_DEBUG)         \
			ls_log(LS_LOG_DEBUG, __VA_ARGS__); \
	} while (0)

#endif
