// SPDX-License-Identifier: MIT
/* `lightscale wg-userspace`: run the engine for an interface, or show its counters. */
#include "userspace/wgu/wgu.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "userspace/wgu/engine.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: lightscale wg-userspace IFNAME [--foreground]\n"
		   "       lightscale wg-userspace --stats IFNAME [--json]\n"
		   "\n"
		   "Serves IFNAME with the built-in userspace WireGuard engine (a TUN device and\n"
		   "the UAPI socket %s/IFNAME.sock, so `wg` configures and shows it).\n"
		   "Daemonizes unless --foreground (or WG_PROCESS_FOREGROUND=1).\n"
		   "--stats prints the engine's packet and drop counters.\n",
		   LSW_SOCK_DIR);
}

static int print_stats(const char *ifname, bool json)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[8192];
	size_t len = 0;
	ssize_t r;
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s.sock", LSW_SOCK_DIR, ifname);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "lightscale wg-userspace: no engine serves `%s' (%s): %s\n", ifname, sun.sun_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (write(fd, "stats=1\n\n", 9) != 9) {
		close(fd);
		return 1;
	}
	while (len < sizeof(buf) - 1 && (r = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)r;
		buf[len] = 0;
		if (strstr(buf, "\n\n"))
			break;
	}
	close(fd);
	buf[len] = 0;
	if (json)
		printf("{\"interface\": \"%s\"", ifname);
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');

		if (!eq || !strncmp(line, "errno=", 6))
			continue;
		*eq = 0;
		if (json)
			printf(", \"%s\": %s", line, eq + 1);
		else
			printf("%s: %s\n", line, eq + 1);
	}
	if (json)
		printf("}\n");
	return 0;
}

int wgu_engine_alive(const char *ifname)
{
	return lsw_engine_check_socket(ifname) == -EADDRINUSE;
}

int wgu_cmd_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "stats", no_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool foreground = false, stats = false, json = false;
	const char *ifname, *env;
	int c, pfd[2], ret;
	pid_t pid;

	optind = 1;
	while ((c = getopt_long(argc, argv, "fsjh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			foreground = true;
			break;
		case 's':
			stats = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	ifname = argv[optind];
	if (!*ifname || strlen(ifname) >= IFNAMSIZ || strchr(ifname, '/') || !strcmp(ifname, ".") ||
	    !strcmp(ifname, "..")) {
		fprintf(stderr, "lightscale wg-userspace: invalid interface name `%s'\n", ifname);
		return 2;
	}
	ls_log_init("lightscale-wg");
	if (ls_crypto_init()) {
		fprintf(stderr, "lightscale wg-userspace: libsodium failed to initialise\n");
		return 1;
	}
	if (stats)
		return print_stats(ifname, json);

	if (lsw_engine_check_socket(ifname) == -EADDRINUSE) {
		fprintf(stderr, "lightscale wg-userspace: interface `%s' is already served by a live engine (%s/%s.sock)\n",
			ifname, LSW_SOCK_DIR, ifname);
		return 1;
	}
	env = getenv("WG_PROCESS_FOREGROUND");
	if (env && !strcmp(env, "1"))
		foreground = true;
	if (foreground)
		return lsw_engine_run(ifname, -1) ? 1 : 0;

	if (pipe2(pfd, O_CLOEXEC) < 0) {
		perror("pipe");
		return 1;
	}
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid > 0) {
		uint8_t status = 1;

		close(pfd[1]);
		if (read(pfd[0], &status, 1) != 1)
			status = 1;
		close(pfd[0]);
		if (status) {
			waitpid(pid, NULL, 0);
			return 1;
		}
		return 0;
	}
	/* The daemon: its own session, stdio away from the caller's terminal or pipe. */
	close(pfd[0]);
	setsid();
	{
		const char *logf = getenv("LIGHTSCALE_WG_LOG_FILE");
		int nul = open("/dev/null", O_RDWR | O_CLOEXEC), out = -1;

		if (logf && *logf)
			out = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (nul >= 0) {
			dup2(nul, 0);
			dup2(out >= 0 ? out : nul, 1);
			dup2(out >= 0 ? out : nul, 2);
		}
	}
	ret = lsw_engine_run(ifname, pfd[1]);
	_exit(ret ? 1 : 0);
}
