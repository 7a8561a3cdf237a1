// SPDX-License-Identifier: MIT
/* lightscale ui [--listen ADDR:PORT|off] | ui serve: the local status page (localui.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "localui.h"
#include "profile.h"

static const char ui_help[] =
	"Usage: lightscale ui [--profile P] [--json]\n"
	"       lightscale ui --listen 127.0.0.1:PORT|[::1]:PORT|off [--profile P]\n"
	"       lightscale ui serve [--profile P]\n"
	"\n"
	"The agent serves a read-only status page and JSON for its profile: interface, peers\n"
	"(paths, handshakes, traffic), routes, exit node and app routes, DNS. Always on a Unix\n"
	"socket, /run/lightscale/P/ui.sock (root only):\n"
	"  curl --unix-socket /run/lightscale/P/ui.sock http://lightscale/api/status\n"
	"and, when configured with --listen (kept in the profile, ui.json; off by default), on\n"
	"a loopback TCP address for a browser; the agent picks it up when it starts. Pages: /\n"
	"(HTML, refreshes itself), /api/status, /api/peers, /api/routes, /api/exit-node, /api/dns.\n"
	"\n"
	"`ui' prints where it is and whether it answers. `ui serve' runs the same server as its\n"
	"own process (in the foreground, until SIGTERM) for an agent that does not serve it;\n"
	"it reads the agent's local API like `lightscale status'.\n";

static bool sock_live(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return ok;
}

static void ui_text(json_t *doc, FILE *f)
{
	const char *listen = json_string_value(json_object_get(doc, "listen"));

	fprintf(f, "socket: unix:%s (%s)\n", json_string_value(json_object_get(doc, "socket")),
		json_is_true(json_object_get(doc, "serving")) ? "serving" : "not serving: is the agent running?");
	fprintf(f, "tcp:    %s\n", listen ? json_string_value(json_object_get(doc, "url")) : "off (ui --listen 127.0.0.1:PORT)");
	fprintf(f, "try:    %s\n", json_string_value(json_object_get(doc, "curl")));
}

static volatile sig_atomic_t stop;

static void on_sig(int sig)
{
	(void)sig;
	stop = 1;
}

int ls_cmd_ui(struct ls_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		LS_CLI_COMMON_OPTS,
		{ 0 },
	};
	const char *listen_arg = NULL;
	struct ls_profile p;
	char sock[512], listen[128], err[512];
	int c, ret = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (ls_cli_common_opt(cli, c, optarg))
			continue;
		if (c == 'l') {
			listen_arg = optarg;
		} else if (c == 'h') {
			fputs(ui_help, stdout);
			return 0;
		} else {
			return ls_cli_usage_error(cli, ui_help, "invalid option");
		}
	}
	if (optind < argc && strcmp(argv[optind], "serve"))
		return ls_cli_usage_error(cli, ui_help, "unknown subcommand `%s' (serve)", argv[optind]);
	if (ls_cli_profile(cli, &p))
		return 1;
	ls_localui_path(p.name, sock, sizeof(sock));
	if (listen_arg) {
		if (ls_localui_set_listen(&p, listen_arg, err, sizeof(err))) {
			fprintf(stderr, "%s %s: %s\n", cli->prog, cli->cmd, err);
			ret = 1;
		} else {
			printf("ui tcp: %s (the agent uses it from its next start)\n", strcmp(listen_arg, "off") ? listen_arg : "off");
		}
	} else if (optind < argc) {
		struct ls_localui *ui = NULL;
		struct sigaction sa = { .sa_handler = on_sig };

		if (sock_live(sock)) {
			fprintf(stderr, "%s %s: %s is served already (by the agent?)\n", cli->prog, cli->cmd, sock);
			ls_profile_free(&p);
			return 1;
		}
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		if ((ret = ls_localui_start(&p, &ui))) {
			fprintf(stderr, "%s %s: cannot serve on %s: %s\n", cli->prog, cli->cmd, sock, strerror(-ret));
			ls_profile_free(&p);
			return 1;
		}
		printf("serving unix:%s\n", sock);
		fflush(stdout);
		while (!stop)
			pause();
		ls_localui_stop(ui);
	} else {
		json_t *doc;
		char curl[700];

		ls_localui_listen(&p, listen, sizeof(listen));
		snprintf(curl, sizeof(curl), "curl --unix-socket %s http://lightscale/api/status", sock);
		doc = json_pack("{s:s, s:s, s:b, s:o, s:o, s:s}", "profile", p.name, "socket", sock, "serving",
				sock_live(sock), "listen", listen[0] ? json_string(listen) : json_null(), "url",
				listen[0] ? json_sprintf("http://%s/", listen) : json_null(), "curl", curl);
		ret = ls_cli_print(cli, doc, ui_text);
	}
	ls_profile_free(&p);
	return ret ? 1 : 0;
}
