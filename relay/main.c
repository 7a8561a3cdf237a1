// SPDX-License-Identifier: MIT
/* lightscale-relay: STUN server, UDP relay and stream relay for Lightscale nodes. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "prefix.h"
#include "relay.h"
#include "stun.h"
#include "util.h"

#ifndef LS_VERSION
#define LS_VERSION "0.1"
#endif

static const char usage_text[] =
	"NAME\n"
	"    lightscale-relay - STUN server, UDP relay and stream relay for Lightscale nodes\n"
	"\n"
	"SYNOPSIS\n"
	"    lightscale-relay serve [--stun ADDR:PORT]... [--udp ADDR:PORT]... [--stream ADDR:PORT]...\n"
	"                           [--config FILE] [--control PATH|none] [--allowed-keys FILE]\n"
	"                           [--foreground] [--log-file FILE] [--pid-file FILE] [--SETTING VALUE]...\n"
	"    lightscale-relay status [--control PATH] [--json]\n"
	"    lightscale-relay stun-query SERVER:PORT [--bind ADDR:PORT] [--timeout DURATION] [--json]\n"
	"    lightscale-relay help | --help | --version\n"
	"\n"
	"DESCRIPTION\n"
	"    One process, one epoll loop, non-blocking sockets. It serves:\n"
	"\n"
	"    STUN (RFC 8489, Binding only) on every UDP socket: a Binding request is answered with\n"
	"    XOR-MAPPED-ADDRESS and FINGERPRINT, for IPv4 and IPv6. Anything malformed is dropped\n"
	"    and counted.\n"
	"\n"
	"    The UDP relay (--udp; best effort, not TURN): a node registers its WireGuard public\n"
	"    key with a proof signed by its Ed25519 machine key and refreshes it before the\n"
	"    lifetime ends; datagrams it sends to another key are forwarded to the address that\n"
	"    key registered from, naming the sender's key. Datagrams for unknown keys, or from\n"
	"    unregistered addresses, are counted and dropped.\n"
	"\n"
	"    The stream relay (--stream; TCP, DERP-like): a node proves its key over a nonce the\n"
	"    relay sends, then exchanges framed packets and probes (signalling such as \"send me\n"
	"    UDP now\") with other nodes by key. A second connection with the same key replaces\n"
	"    the first. Each connection has a bounded write queue: frames for a slow reader are\n"
	"    dropped and counted; the relay never waits for one client. Packets cross between the\n"
	"    two relays when the destination is only on the other one.\n"
	"\n"
	"    Who may use a key: a proof must verify, the allowed keys file (when given) must\n"
	"    list the machine key (for that WireGuard key, when it names one), and a key that\n"
	"    is on the relay stays with the machine key that proved it until its registration\n"
	"    expires or its connection ends; another machine key claiming it is refused.\n"
	"\n"
	"    The formats are in include/lightscale/wire.h; clients use lib/relayclient.h.\n"
	"\n"
	"COMMANDS\n"
	"    serve        Run the relay. Without any listen option it listens on udp [::]:3478\n"
	"                 (relay and STUN) and stream [::]:3478 (TCP). Without --foreground it\n"
	"                 detaches once every socket is bound (errors are reported first).\n"
	"    status       Ask a running relay, through its control socket, for its listeners,\n"
	"                 gauges, counters and the keys on it now (public keys and addresses,\n"
	"                 the first 1000 of each relay). --json prints the relay's document.\n"
	"    stun-query   Send a STUN Binding request and print the mapped (public) address.\n"
	"\n"
	"OPTIONS (serve)\n"
	"    --stun ADDR:PORT      a UDP socket answering STUN only (repeatable)\n"
	"    --udp ADDR:PORT       a UDP relay socket, also answering STUN (repeatable)\n"
	"    --stream ADDR:PORT    a TCP stream relay socket (repeatable)\n"
	"                          ADDR:PORT, [V6ADDR]:PORT, or PORT for [::]:PORT (both IPv4 and\n"
	"                          IPv6). Port 0 picks a free port (see status). Listen options on\n"
	"                          the command line replace those of the config file.\n"
	"    --config FILE         read settings from FILE first (see CONFIG FILE)\n"
	"    --control PATH        status socket (default /run/lightscale/relay.sock; none: off)\n"
	"    --allowed-keys FILE   accept only these Ed25519 keys (default: any valid signature)\n"
	"    --foreground          do not detach; log to stderr\n"
	"    --log-file FILE       where a detached relay logs (default: nowhere)\n"
	"    --pid-file FILE       write the relay's PID here\n"
	"    --udp-lifetime DUR    registration lifetime (default 90s; clients refresh at a third)\n"
	"    --clock-skew DUR      allowed difference between a UDP proof's time and ours (60s)\n"
	"    --keepalive DUR       how often stream clients are told to ping (25s)\n"
	"    --idle-timeout DUR    close a stream connection silent this long (75s)\n"
	"    --hello-timeout DUR   time to finish the stream hello (10s)\n"
	"    --max-udp N           registrations (65536)    --max-stream N   connections (16384)\n"
	"    --queue-limit BYTES   write queue per stream connection (1M; K and M suffixes)\n"
	"    --proof-rate N        signatures checked per source address per second (20, bursts\n"
	"                          of twice that; IPv6 by /64; 0: no limit); more are dropped\n"
	"                          and counted\n"
	"    --proof-rate-total N  signatures checked per second in all (10000); 0: no limit\n"
	"\n"
	"OPTIONS (status, stun-query)\n"
	"    --control PATH        the relay's control socket (default /run/lightscale/relay.sock)\n"
	"    --json                print JSON instead of text\n"
	"    --bind ADDR:PORT      query from this local address (default: any, same family)\n"
	"    --timeout DURATION    give up after this long (default 3s)\n"
	"\n"
	"CONFIG FILE\n"
	"    Lines of `setting = value'; `#' starts a comment. Settings are the long options\n"
	"    without dashes: stun, udp, stream (repeatable), control, allowed-keys, log-file,\n"
	"    pid-file, udp-lifetime, clock-skew, keepalive, idle-timeout, hello-timeout, max-udp,\n"
	"    max-stream, queue-limit, proof-rate, proof-rate-total. Command-line options\n"
	"    override the file.\n"
	"\n"
	"ALLOWED KEYS FILE\n"
	"    One `ED25519_PUBKEY [WG_PUBKEY]' per line, base64 as `wg' prints keys. A machine key\n"
	"    alone may speak for any WireGuard key; with a WireGuard key, only for that one.\n"
	"\n"
	"SIGNALS\n"
	"    SIGUSR1 logs every counter; SIGHUP reloads the allowed keys file (a bad file is\n"
	"    reported and the old list kept); SIGINT and SIGTERM tell stream clients and exit.\n"
	"\n"
	"ENVIRONMENT\n"
	"    LIGHTSCALE_LOG        err, warn, info (default) or debug\n"
	"\n"
	"EXIT STATUS\n"
	"    0 on success; 1 on a runtime failure (cannot bind, relay unreachable, no STUN\n"
	"    answer); 2 on a usage error.\n"
	"\n"
	"EXAMPLES\n"
	"    lightscale-relay serve --foreground --udp 3478 --stream 3478\n"
	"    lightscale-relay serve --config /etc/lightscale/relay.conf\n"
	"    lightscale-relay status --json | jq .counters\n"
	"    lightscale-relay stun-query 203.0.113.10:3478 --json   # addresses are numeric\n"
	"\n"
	"FILES\n"
	"    /etc/lightscale/relay.conf      settings (relay/relay.conf.example in the source)\n"
	"    /run/lightscale/relay.sock      the status socket\n"
	"    relay/lightscale-relay.service  a systemd unit (runs with --foreground)\n";

static int __attribute__((format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "lightscale-relay: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry `lightscale-relay --help'.\n");
	return 2;
}

static const char *arg_value(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int write_pid(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	return ls_write_file_atomic(path, buf, (size_t)n, 0644);
}

static int detach(const char *log_file)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	setsid();
	if (chdir("/") < 0)
		return -errno;
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (!log_file || !*log_file)
			dup2(fd, 2);
		close(fd);
	}
	if (log_file && *log_file) {
		fd = open(log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
	}
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	static struct lsr_server srv;
	struct lsr_config cfg;
	char err[1024];
	bool cli_listen = false;
	int r;

	lsr_config_defaults(&cfg);
	/* The config file first, so that options override it. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config")) {
			const char *v = arg_value(argc, argv, &i);

			if (!v)
				return usage_error("option `%s' needs a value", "--config");
			if (lsr_config_load(&cfg, v, err, sizeof(err))) {
				fprintf(stderr, "lightscale-relay: %s\n", err);
				return 2;
			}
		} else if (!strcmp(argv[i], "--stun") || !strcmp(argv[i], "--udp") ||
			   !strcmp(argv[i], "--stream")) {
			cli_listen = true;
		}
	}
	if (cli_listen)
		cfg.n_listen = 0;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *v;

		if (!strcmp(opt, "--foreground")) {
			cfg.foreground = true;
			continue;
		}
		if (strncmp(opt, "--", 2) || !opt[2])
			return usage_error("unexpected argument `%s'", opt);
		v = arg_value(argc, argv, &i);
		if (!v)
			return usage_error("option `%s' needs a value", opt);
		if (!strcmp(opt, "--config"))
			continue;
		if (lsr_config_set(&cfg, opt + 2, v, err, sizeof(err))) {
			fprintf(stderr, "lightscale-relay: %s\nTry `lightscale-relay --help'.\n", err);
			return 2;
		}
	}
	if (cfg.n_listen == 0) {
		lsr_config_add_listen(&cfg, LSR_LISTEN_UDP, "[::]:3478");
		lsr_config_add_listen(&cfg, LSR_LISTEN_STREAM, "[::]:3478");
	}
	if (ls_crypto_init()) {
		pr_err("libsodium failed to initialise");
		return 1;
	}
	r = lsr_server_init(&srv, &cfg);
	if (r) {
		lsr_server_free(&srv);
		return 1;
	}
	if (!cfg.foreground && detach(cfg.log_file)) {
		pr_err("cannot detach: %s", strerror(errno));
		lsr_server_free(&srv);
		return 1;
	}
	if (cfg.pid_file[0] && (r = write_pid(cfg.pid_file)))
		pr_warn("cannot write pid file `%s': %s", cfg.pid_file, strerror(-r));
	pr_info("lightscale-relay %s running (auth: %s)", LS_VERSION,
		cfg.allowed_keys[0] ? cfg.allowed_keys : "any signed key");
	r = lsr_server_run(&srv);
	lsr_server_free(&srv);
	if (cfg.pid_file[0])
		unlink(cfg.pid_file);
	return r ? 1 : 0;
}

/* Text from the same document --json prints: "section.key value" lines. */
static void print_text(json_t *doc)
{
	const char *k;
	json_t *v;
	size_t i;
	json_t *l;

	printf("uptime %llds\n", (long long)json_integer_value(json_object_get(doc, "uptime_s")));
	printf("auth %s\n", json_string_value(json_object_get(doc, "auth")) ?: "?");
	json_array_foreach(json_object_get(doc, "listeners"), i, l)
		printf("listen %s %s\n", json_string_value(json_object_get(l, "kind")) ?: "?",
		       json_string_value(json_object_get(l, "address")) ?: "?");
	json_object_foreach(json_object_get(doc, "udp"), k, v)
		printf("udp.%s %lld\n", k, (long long)json_integer_value(v));
	json_object_foreach(json_object_get(doc, "stream"), k, v)
		printf("stream.%s %lld\n", k, (long long)json_integer_value(v));
	json_object_foreach(json_object_get(doc, "counters"), k, v)
		printf("counter %s %lld\n", k, (long long)json_integer_value(v));
	json_array_foreach(json_object_get(doc, "udp_peers"), i, l)
		printf("peer udp %s %s expires %llds rx %lld tx %lld\n",
		       json_string_value(json_object_get(l, "key")) ?: "?",
		       json_string_value(json_object_get(l, "address")) ?: "?",
		       (long long)json_integer_value(json_object_get(l, "expires_s")),
		       (long long)json_integer_value(json_object_get(l, "rx_packets")),
		       (long long)json_integer_value(json_object_get(l, "tx_packets")));
	json_array_foreach(json_object_get(doc, "stream_peers"), i, l)
		printf("peer stream %s %s queued %lld dropped %lld idle %llds\n",
		       json_string_value(json_object_get(l, "key")) ?: "?",
		       json_string_value(json_object_get(l, "address")) ?: "?",
		       (long long)json_integer_value(json_object_get(l, "queued_bytes")),
		       (long long)json_integer_value(json_object_get(l, "dropped_frames")),
		       (long long)json_integer_value(json_object_get(l, "idle_s")));
	if (json_object_get(doc, "peers_left_out"))
		printf("peers left out %lld\n", (long long)json_integer_value(json_object_get(doc, "peers_left_out")));
}

static int cmd_status(int argc, char **argv)
{
	const char *path = "/run/lightscale/relay.sock";
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	bool json = false;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	json_t *doc;
	json_error_t jerr;
	int fd, rc = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--control") && (path = arg_value(argc, argv, &i)))
			;
		else
			return usage_error("unexpected argument `%s'", argv[i]);
	}
	if (strlen(path) >= sizeof(sun.sun_path))
		return usage_error("control path `%s' is too long", path);
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		fprintf(stderr, "lightscale-relay: cannot reach the relay at `%s': %s\n", path,
			strerror(errno));
		goto cleanup;
	}
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (!nb)
				goto cleanup;
			buf = nb;
			cap += 65536;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n <= 0)
			break;
		len += n;
	}
	if (!buf)
		goto cleanup;
	buf[len] = '\0';
	doc = json_loads(buf, 0, &jerr);
	if (!doc) {
		fprintf(stderr, "lightscale-relay: the relay at `%s' sent something that is not JSON: %s\n",
			path, jerr.text);
		goto cleanup;
	}
	if (json) {
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
	} else {
		print_text(doc);
	}
	json_decref(doc);
	rc = 0;
cleanup:
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

static int cmd_stun_query(int argc, char **argv)
{
	const char *server_s = NULL, *bind_s = NULL;
	struct sockaddr_storage server, local, mapped;
	socklen_t slen, llen;
	int64_t timeout_ms = 3000;
	bool json = false;
	char s_ep[LS_ENDPOINT_STRLEN], m_ep[LS_ENDPOINT_STRLEN], l_ep[LS_ENDPOINT_STRLEN];
	uint64_t t0;
	int fd, r;

	for (int i = 1; i < argc; i++) {
		const char *v;

		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--bind") && (v = arg_value(argc, argv, &i))) {
			bind_s = v;
		} else if (!strcmp(argv[i], "--timeout") && (v = arg_value(argc, argv, &i))) {
			int64_t secs;

			if (ls_parse_duration(v, &secs) || secs <= 0 || secs > 60)
				return usage_error("invalid timeout `%s' (want 1s to 60s)", v);
			timeout_ms = secs * 1000;
		} else if (argv[i][0] != '-' && !server_s) {
			server_s = argv[i];
		} else {
			return usage_error("unexpected argument `%s'", argv[i]);
		}
	}
	if (!server_s)
		return usage_error("%s", "stun-query needs SERVER:PORT");
	if (ls_endpoint_parse(server_s, &server, &slen))
		return usage_error("invalid server `%s' (want ADDR:PORT or [V6ADDR]:PORT)", server_s);
	if (bind_s && ls_endpoint_parse(bind_s, &local, &llen)) {
		/* Port 0 is fine for a local address; ls_endpoint_parse wants 1..65535. */
		char tmp[LS_ENDPOINT_STRLEN + 8];
		size_t n = strlen(bind_s);

		if (n < 2 || strcmp(bind_s + n - 2, ":0") || n >= sizeof(tmp))
			return usage_error("invalid bind address `%s'", bind_s);
		snprintf(tmp, sizeof(tmp), "%.*s:1", (int)(n - 2), bind_s);
		if (ls_endpoint_parse(tmp, &local, &llen))
			return usage_error("invalid bind address `%s'", bind_s);
		((struct sockaddr_in *)&local)->sin_port = 0; /* same offset in sockaddr_in6 */
	}
	if (ls_crypto_init())
		return 1;
	fd = socket(server.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "lightscale-relay: socket: %s\n", strerror(errno));
		return 1;
	}
	if (bind_s && bind(fd, (struct sockaddr *)&local, llen) < 0) {
		fprintf(stderr, "lightscale-relay: cannot bind `%s': %s\n", bind_s, strerror(errno));
		close(fd);
		return 1;
	}
	t0 = ls_now_ms();
	r = ls_stun_query(fd, (struct sockaddr *)&server, slen, (int)timeout_ms, &mapped);
	llen = sizeof(local);
	getsockname(fd, (struct sockaddr *)&local, &llen);
	close(fd);
	if (r) {
		fprintf(stderr, "lightscale-relay: no STUN answer from %s: %s\n", server_s,
			r == -ETIMEDOUT ? "timed out" : r == -EPROTO ? "error response" : strerror(-r));
		return 1;
	}
	ls_endpoint_format((struct sockaddr *)&server, s_ep);
	ls_endpoint_format((struct sockaddr *)&mapped, m_ep);
	ls_endpoint_format((struct sockaddr *)&local, l_ep);
	if (json) {
		json_t *doc = json_pack("{s:s, s:s, s:s, s:I}", "server", s_ep, "local", l_ep, "mapped",
					m_ep, "rtt_ms", (json_int_t)(ls_now_ms() - t0));

		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(doc);
	} else {
		printf("server %s\nlocal %s\nmapped %s\n", s_ep, l_ep, m_ep);
	}
	return 0;
}

int main(int argc, char **argv)
{
	ls_log_init("lightscale-relay");
	if (argc < 2)
		return usage_error("%s", "a command is needed");
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("lightscale-relay %s (wire version %d)\n", LS_VERSION, LSR_VERSION);
		return 0;
	}
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(usage_text, stdout);
			return 0;
		}
	}
	if (!strcmp(argv[1], "serve"))
		return cmd_serve(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(argv[1], "stun-query"))
		return cmd_stun_query(argc - 1, argv + 1);
	return usage_error("unknown command `%s'", argv[1]);
}
