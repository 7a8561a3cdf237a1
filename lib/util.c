// SPDX-License-Identifier: MIT
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int ls_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *p = data;
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0) {
		ret = -errno;
		goto cleanup;
	}
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto cleanup;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto cleanup;
	}
cleanup:
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int ls_read_file(const char *path, char **out, size_t *len, size_t max)
{
	struct stat st;
	char *buf = NULL;
	size_t cap, n = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto cleanup;
	}
	if (S_ISREG(st.st_mode) && (size_t)st.st_size > max) {
		ret = -EFBIG;
		goto cleanup;
	}
	/* /proc and /sys files report size 0, and some (proc_do_large_bitmap behind
	 * ip_local_reserved_ports) answer only a read at offset 0: start with a page */
	cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
	buf = malloc(cap);
	if (!buf) {
		ret = -ENOMEM;
		goto cleanup;
	}
	for (;;) {
		ssize_t r;

		if (n + 1 >= cap) {
			char *nb;

			if (cap > max + 1) {
				ret = -EFBIG;
				goto cleanup;
			}
			cap *= 2;
			nb = realloc(buf, cap);
			if (!nb) {
				ret = -ENOMEM;
				goto cleanup;
			}
			buf = nb;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto cleanup;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		ret = -EFBIG;
		goto cleanup;
	}
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	buf = NULL;
cleanup:
	free(buf);
	close(fd);
	return ret;
}

int ls_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, path, len + 1);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int ls_parse_duration(const char *s, int64_t *seconds)
{
	int64_t total = 0;
	int parts = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*s) {
		char *end;
		long long v;
		int64_t mul;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno || v < 0)
			return -EINVAL;
		switch (*end) {
		case '\0':
			if (parts)
				return -EINVAL; /* "1h30" is ambiguous */
			mul = 1;
			break;
		case 's': mul = 1; end++; break;
		case 'm': mul = 60; end++; break;
		case 'h': mul = 3600; end++; break;
		case 'd': mul = 86400; end++; break;
		case 'w': mul = 7 * 86400; end++; break;
		default:
			return -EINVAL;
		}
		if (v > INT64_MAX / mul || total > INT64_MAX - v * mul)
			return -EINVAL;
		total += v * mul;
		parts++;
		s = end;
	}
	*seconds = total;
	return 0;
}

void ls_format_duration(char *buf, size_t size, int64_t seconds)
{
	static const struct { int64_t secs; char unit; } units[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};
	size_t off = 0;

	if (seconds <= 0) {
		snprintf(buf, size, "0s");
		return;
	}
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]) && off < size; i++) {
		if (seconds >= units[i].secs) {
			int n = snprintf(buf + off, size - off, "%lld%c",
					 (long long)(seconds / units[i].secs), units[i].unit);
			if (n < 0)
				return;
			off += (size_t)n;
			seconds %= units[i].secs;
		}
	}
}

uint64_t ls_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t ls_unix_time(void)
{
	return (int64_t)time(NULL);
}
