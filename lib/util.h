/* SPDX-License-Identifier: MIT */
/* Small helpers shared by every binary: files, durations, time. */
#ifndef LS_UTIL_H
#define LS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Writes data to path through a temporary file and rename(2), with the given
 * mode, fsync'd: a crash leaves the old file or the new one, never a torn one.
 * Returns 0 or -errno. */
int ls_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* Reads a whole file (at most max bytes) into a NUL-terminated malloc'd buffer.
 * Returns 0 or -errno (-EFBIG when larger than max). */
int ls_read_file(const char *path, char **out, size_t *len, size_t max);
/* mkdir -p with mode for the created directories. Returns 0 or -errno. */
int ls_mkdir_p(const char *path, mode_t mode);

/* Parses "90", "90s", "15m", "12h", "7d", "1h30m" into seconds. 0 or -EINVAL. */
int ls_parse_duration(const char *s, int64_t *seconds);
/* Formats seconds as e.g. "1h30m" into buf. */
void ls_format_duration(char *buf, size_t size, int64_t seconds);

uint64_t ls_now_ms(void);        /* CLOCK_MONOTONIC */
int64_t ls_unix_time(void);      /* CLOCK_REALTIME seconds */

#endif
