// SPDX-License-Identifier: MIT
/* The local UI: status page and JSON on a Unix socket (and optionally loopback TCP). */
#include <netinet/in.h>
#include <microhttpd.h>

#include "localui.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "exitsel.h"
#include "l2seg.h"
#include "log.h"
#include "perapp.h"
#include "prefix.h"
#include "status.h"
#include "util.h"

struct ls_localui {
	const struct ls_profile *prof;
	struct MHD_Daemon *unix_d, *tcp_d;
	int unix_fd;
	char sock_path[PATH_MAX];
	char listen[LS_ENDPOINT_STRLEN]; /* TCP address, "" when off */
	char host_ok[2][LS_ENDPOINT_STRLEN + 16]; /* Host headers accepted over TCP */
	struct ls_localui_door {
		struct ls_localui *ui;
		bool tcp; /* the Host header is checked */
	} door_unix, door_tcp; /* each daemon's handler argument */
};

/* ---- where ---------------------------------------------------------------------------- */

int ls_localui_path(const char *profile, char *out, size_t size)
{
	const char *dir = getenv("LIGHTSCALE_RUN_DIR");

	if ((size_t)snprintf(out, size, "%s/%s/ui.sock", dir ? dir : LS_RUN_DIR, profile) >= size)
		return -ENAMETOOLONG;
	return 0;
}

int ls_localui_listen(const struct ls_profile *p, char *out, size_t size)
{
	char path[PATH_MAX], *buf = NULL;
	size_t len;
	json_t *doc;
	const char *s;

	out[0] = '\0';
	ls_profile_file(p, LS_LOCALUI_FILE, path, sizeof(path));
	if (ls_read_file(path, &buf, &len, 1 << 16))
		return 0;
	doc = json_loadb(buf, len, 0, NULL);
	free(buf);
	s = json_string_value(json_object_get(doc, "listen"));
	if (s)
		snprintf(out, size, "%s", s);
	json_decref(doc);
	return 0;
}

static bool loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
	return false;
}

int ls_localui_set_listen(const struct ls_profile *p, const char *addr, char *err, size_t err_size)
{
	char path[PATH_MAX];
	json_t *doc;
	int ret;

	ls_profile_file(p, LS_LOCALUI_FILE, path, sizeof(path));
	if (!addr || !*addr || !strcmp(addr, "off")) {
		doc = json_object();
	} else {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (ls_endpoint_parse(addr, &ss, &sl)) {
			snprintf(err, err_size, "invalid address `%s' (ADDR:PORT, e.g. 127.0.0.1:8765 or [::1]:8765)", addr);
			return -EINVAL;
		}
		if (!loopback(&ss)) {
			snprintf(err, err_size, "`%s' is not a loopback address: the UI serves this machine only", addr);
			return -EINVAL;
		}
		doc = json_pack("{s:s}", "listen", addr);
	}
	ret = ls_profile_save_json(p, LS_LOCALUI_FILE, doc);
	json_decref(doc);
	if (ret)
		snprintf(err, err_size, "cannot write %s: %s", path, strerror(-ret));
	return ret;
}

/* ---- what ----------------------------------------------------------------------------- */

/* Everything the UI shows, from the agent's local API and the profile. */
static json_t *gather(const struct ls_localui *ui)
{
	json_t *st = NULL, *dns = NULL, *apps, *doc;
	char pol[16];
	int r = ls_localapi_query(ui->prof->name, "status", &st);

	doc = json_pack("{s:s}", "profile", ui->prof->name);
	if (r || !json_is_object(st)) {
		json_decref(st);
		json_object_set_new(doc, "status", json_null());
		json_object_set_new(doc, "error", json_sprintf("no agent answers for profile '%s' (%s): start it with "
								"lightscale agent --profile %s",
								ui->prof->name, strerror(r ? -r : EBADMSG), ui->prof->name));
	} else {
		json_object_set_new(doc, "status", st);
	}
	if (ls_localapi_query(ui->prof->name, "dns", &dns) == 0 && !json_object_get(dns, "error"))
		json_object_set_new(doc, "dns", dns);
	else {
		json_object_set_new(doc, "dns", json_null());
		json_decref(dns);
	}
	apps = ls_perapp_status(ui->prof, NULL);
	json_object_set(doc, "app_routes", json_object_get(apps, "app_routes") ?: json_array());
	json_decref(apps);
	apps = ls_l2seg_status(ui->prof, NULL);
	json_object_set(doc, "l2_segments", json_object_get(apps, "segments") ?: json_array());
	json_decref(apps);
	ls_exitsel_policy(ui->prof, pol, sizeof(pol));
	json_object_set_new(doc, "exit_policy", json_pack("{s:s}", "auto", pol));
	json_object_set_new(doc, "ui", json_pack("{s:s, s:o}", "socket", ui->sock_path, "listen",
						 ui->listen[0] ? json_string(ui->listen) : json_null()));
	return doc;
}

json_t *ls_localui_api(const char *path, json_t *doc)
{
	json_t *st = json_object_get(doc, "status");

	if (!strcmp(path, "/api/status"))
		return json_incref(doc);
	if (!strcmp(path, "/api/peers"))
		return json_incref(json_object_get(st, "peers") ?: json_array());
	if (!strcmp(path, "/api/routes"))
		return json_pack("{s:O?, s:O?, s:O?, s:O?}", "table", json_object_get(st, "table"), "routes",
				 json_object_get(st, "routes"), "refused_routes", json_object_get(st, "refused_routes"),
				 "multinet", json_object_get(st, "multinet"));
	if (!strcmp(path, "/api/exit-node"))
		return json_pack("{s:O?, s:O?, s:O, s:O}", "exit_node", json_object_get(st, "exit_node"), "exit_reason",
				 json_object_get(st, "exit_reason"), "app_routes", json_object_get(doc, "app_routes"),
				 "exit_policy", json_object_get(doc, "exit_policy"));
	if (!strcmp(path, "/api/dns"))
		return json_pack("{s:O}", "dns", json_object_get(doc, "dns"));
	return NULL;
}

/* ---- the page ------------------------------------------------------------------------- */

struct buf {
	FILE *f;
	char *s;
	size_t len;
};

static void esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

/* Any JSON value as escaped text ("-" for null). */
static void val(FILE *f, json_t *v)
{
	if (!v || json_is_null(v)) {
		fputs("-", f);
	} else if (json_is_string(v)) {
		esc(f, json_string_value(v));
	} else if (json_is_array(v)) {
		size_t i;
		json_t *e;

		json_array_foreach(v, i, e) {
			if (i)
				fputs(", ", f);
			val(f, e);
		}
		if (!json_array_size(v))
			fputs("-", f);
	} else {
		char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);

		esc(f, s);
		free(s);
	}
}

static void row(FILE *f, const char *k, json_t *v)
{
	fprintf(f, "<tr><th>");
	esc(f, k);
	fprintf(f, "</th><td>");
	val(f, v);
	fprintf(f, "</td></tr>\n");
}

/* A cell <td>...</td> for each of obj's members keys (NULL-terminated). */
static void cells(FILE *f, json_t *obj, const char *const *keys)
{
	for (; *keys; keys++) {
		fputs("<td>", f);
		val(f, json_object_get(obj, *keys));
		fputs("</td>", f);
	}
}

char *ls_localui_html(json_t *doc)
{
	json_t *st = json_object_get(doc, "status"), *p, *r, *dns = json_object_get(doc, "dns");
	char *out = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	fputs("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"5\">\n<title>Lightscale ",
	      f);
	esc(f, json_string_value(json_object_get(doc, "profile")));
	fputs("</title>\n<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.2em}"
	      "th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}"
	      ".err{color:#a00}</style></head><body>\n<h1>Lightscale: profile ",
	      f);
	esc(f, json_string_value(json_object_get(doc, "profile")));
	fputs("</h1>\n", f);
	if (json_is_string(json_object_get(doc, "error"))) {
		fputs("<p class=\"err\" id=\"error\">", f);
		esc(f, json_string_value(json_object_get(doc, "error")));
		fputs("</p>\n", f);
	}
	if (json_is_object(st)) {
		json_t *net = json_object_get(st, "network"), *ex = json_object_get(st, "exit_node");

		fputs("<h2>Interface</h2>\n<table id=\"interface\">\n", f);
		row(f, "interface", json_object_get(st, "interface"));
		row(f, "up", json_object_get(st, "up"));
		row(f, "engine", json_object_get(st, "engine"));
		row(f, "network", json_object_get(net, "name"));
		row(f, "netmap version", json_object_get(st, "netmap_version"));
		row(f, "addresses", json_object_get(st, "addresses"));
		row(f, "listen port", json_object_get(st, "listen_port"));
		row(f, "public key", json_object_get(st, "public_key"));
		fputs("</table>\n<h2>Exit node</h2>\n<table id=\"exit\">\n", f);
		row(f, "exit node", json_object_get(ex, "name"));
		row(f, "why", json_object_get(st, "exit_reason"));
		row(f, "auto picks by", json_object_get(json_object_get(doc, "exit_policy"), "auto"));
		row(f, "default route owner", json_object_get(json_object_get(st, "multinet"), "default_owner"));
		fputs("</table>\n", f);
		fputs("<h2>Peers</h2>\n<table id=\"peers\">\n<tr><th>name</th><th>addresses</th><th>endpoint</th><th>path</th>"
		      "<th>last handshake</th><th>received</th><th>sent</th><th>online</th><th>exit</th></tr>\n",
		      f);
		json_array_foreach(json_object_get(st, "peers"), i, p) {
			json_t *path = json_object_get(p, "path");

			fputs("<tr class=\"peer\">", f);
			cells(f, p, (const char *const[]){ "name", "addresses", NULL });
			fputs("<td class=\"endpoint\">", f);
			val(f, json_object_get(p, "endpoint"));
			fputs("</td><td>", f);
			val(f, json_is_object(path) ? json_object_get(path, "path") : NULL);
			if (json_is_string(json_object_get(path, "relay"))) {
				fputs(" via ", f);
				val(f, json_object_get(path, "relay"));
			}
			fputs("</td>", f);
			cells(f, p,
			      (const char *const[]){ "last_handshake", "rx_bytes", "tx_bytes", "online", "is_exit", NULL });
			fputs("</tr>\n", f);
		}
		fputs("</table>\n<h2>Routes</h2>\n<table id=\"routes\">\n<tr><th>destination</th><th>device</th></tr>\n", f);
		json_array_foreach(json_object_get(st, "routes"), i, r) {
			fputs("<tr>", f);
			cells(f, r, (const char *const[]){ "dst", "dev", NULL });
			fputs("</tr>\n", f);
		}
		fputs("</table>\n", f);
	}
	fputs("<h2>App routes</h2>\n<table id=\"app-routes\">\n<tr><th>cgroup</th><th>exit</th><th>state</th>"
	      "<th>sockets marked</th></tr>\n",
	      f);
	json_array_foreach(json_object_get(doc, "app_routes"), i, r) {
		fputs("<tr>", f);
		cells(f, r, (const char *const[]){ "cgroup", "exit", "state", "sockets_marked", NULL });
		fputs("</tr>\n", f);
	}
	fputs("</table>\n<h2>L2 segments</h2>\n<table id=\"l2\">\n<tr><th>segment</th><th>VNI</th><th>state</th>"
	      "<th>peers</th></tr>\n",
	      f);
	json_array_foreach(json_object_get(doc, "l2_segments"), i, r) {
		fputs("<tr>", f);
		cells(f, r, (const char *const[]){ "name", "vni", NULL });
		fputs("<td>", f);
		if (json_is_string(json_object_get(r, "error")))
			val(f, json_object_get(r, "error"));
		else
			fputs(json_is_true(json_object_get(r, "up")) ? "up" : "down", f);
		fputs("</td><td>", f);
		{
			json_t *pe;
			size_t k;

			json_array_foreach(json_object_get(r, "peers"), k, pe) {
				if (k)
					fputs(", ", f);
				val(f, json_object_get(pe, "name"));
			}
		}
		fputs("</td></tr>\n", f);
	}
	fputs("</table>\n<h2>DNS</h2>\n<table id=\"dns\">\n", f);
	if (json_is_object(dns)) {
		row(f, "resolver", json_object_get(dns, "listen"));
		row(f, "suffix", json_object_get(dns, "suffix"));
		row(f, "upstreams", json_object_get(dns, "upstreams"));
		row(f, "queries", json_object_get(dns, "queries"));
		row(f, "integration", json_object_get(dns, "integration"));
	} else {
		row(f, "resolver", NULL);
	}
	fputs("</table>\n<p>JSON: <a href=\"/api/status\">/api/status</a>, <a href=\"/api/peers\">/api/peers</a>, "
	      "<a href=\"/api/routes\">/api/routes</a>, <a href=\"/api/exit-node\">/api/exit-node</a>, "
	      "<a href=\"/api/dns\">/api/dns</a>. Read-only.</p>\n</body></html>\n",
	      f);
	fclose(f);
	return out;
}

/* ---- HTTP ----------------------------------------------------------------------------- */

static enum MHD_Result reply(struct MHD_Connection *c, unsigned int code, const char *type, char *body)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type", type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, "Allow", "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static char *json_body(json_t *doc)
{
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	char *nl = s ? realloc(s, strlen(s) + 2) : NULL;

	if (!nl) {
		free(s);
		return NULL;
	}
	strcat(nl, "\n");
	return nl;
}

static char *err_body(const char *msg)
{
	json_t *d = json_pack("{s:s}", "error", msg);
	char *s = json_body(d);

	json_decref(d);
	return s;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned int code, const char *msg)
{
	return reply(c, code, "application/json", err_body(msg));
}

static enum MHD_Result serve(struct ls_localui *ui, struct MHD_Connection *c, const char *url, const char *method,
			     bool tcp)
{
	json_t *doc, *part;
	char *body;

	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return reply_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "read-only: GET only");
	if (tcp) {
		const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");

		if (!host || (strcasecmp(host, ui->host_ok[0]) && strcasecmp(host, ui->host_ok[1])))
			return reply_error(c, MHD_HTTP_FORBIDDEN, "Host must name this server's loopback address");
	}
	if (strcmp(url, "/") && strcmp(url, "/index.html") && strncmp(url, "/api/", 5))
		return reply_error(c, MHD_HTTP_NOT_FOUND, "not found (/, /api/status)");
	doc = gather(ui);
	if (!strncmp(url, "/api/", 5)) {
		part = ls_localui_api(url, doc);
		json_decref(doc);
		if (!part)
			return reply_error(c, MHD_HTTP_NOT_FOUND,
					   "not found (/api/status, /api/peers, /api/routes, /api/exit-node, /api/dns)");
		body = json_body(part);
		json_decref(part);
		return reply(c, MHD_HTTP_OK, "application/json", body);
	}
	body = ls_localui_html(doc);
	json_decref(doc);
	return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", body);
}

/* The handler of both daemons; cls is the daemon's door (Unix socket or TCP). */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	const struct ls_localui_door *door = cls;

	(void)version;
	(void)upload;
	(void)con_cls;
	if (*upload_size) {
		*upload_size = 0; /* a body is ignored; the answer is 405 anyway */
		return MHD_YES;
	}
	return serve(door->ui, c, url, method, door->tcp);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	pr_debug("ui: %s", msg);
}

int ls_localui_start(const struct ls_profile *p, struct ls_localui **out)
{
	struct ls_localui *ui = calloc(1, sizeof(*ui));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char dir[PATH_MAX];
	int ret;

	*out = NULL;
	if (!ui)
		return -ENOMEM;
	ui->prof = p;
	ui->unix_fd = -1;
	ui->door_unix = (struct ls_localui_door){ .ui = ui, .tcp = false };
	ui->door_tcp = (struct ls_localui_door){ .ui = ui, .tcp = true };
	if ((ret = ls_localui_path(p->name, ui->sock_path, sizeof(ui->sock_path))) ||
	    strlen(ui->sock_path) >= sizeof(sun.sun_path)) {
		ret = -ENAMETOOLONG;
		goto cleanup;
	}
	snprintf(dir, sizeof(dir), "%s", ui->sock_path);
	*strrchr(dir, '/') = '\0';
	if ((ret = ls_mkdir_p(dir, 0755)))
		goto cleanup;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", ui->sock_path);
	unlink(sun.sun_path);
	ui->unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ui->unix_fd < 0 || bind(ui->unix_fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(sun.sun_path, 0600) || listen(ui->unix_fd, 16)) {
		ret = -errno;
		goto cleanup;
	}
	ui->unix_d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request,
				      &ui->door_unix, MHD_OPTION_LISTEN_SOCKET, ui->unix_fd, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
				      MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
				      NULL, MHD_OPTION_END);
	if (!ui->unix_d) {
		ret = -EIO;
		goto cleanup;
	}
	ui->unix_fd = -1; /* the daemon owns it */
	ls_localui_listen(p, ui->listen, sizeof(ui->listen));
	if (ui->listen[0]) {
		struct sockaddr_storage ss;
		socklen_t sl;

		if (ls_endpoint_parse(ui->listen, &ss, &sl) || !loopback(&ss)) {
			pr_warn("ui: `%s' in %s/%s is not a loopback ADDR:PORT; TCP stays off", ui->listen, p->dir,
				LS_LOCALUI_FILE);
			ui->listen[0] = '\0';
		} else {
			uint16_t port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
								      : ((struct sockaddr_in6 *)&ss)->sin6_port);

			snprintf(ui->host_ok[0], sizeof(ui->host_ok[0]), "%s", ui->listen);
			snprintf(ui->host_ok[1], sizeof(ui->host_ok[1]), "localhost:%u", port);
			ui->tcp_d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
							     (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
						     port, NULL, NULL, on_request, &ui->door_tcp, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
						     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)10,
						     MHD_OPTION_CONNECTION_LIMIT, (unsigned int)32,
						     MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
			if (!ui->tcp_d) {
				pr_warn("ui: cannot listen on %s; only %s serves", ui->listen, ui->sock_path);
				ui->listen[0] = '\0';
			}
		}
	}
	pr_info("ui: http on unix:%s%s%s", ui->sock_path, ui->listen[0] ? " and http://" : "", ui->listen);
	*out = ui;
	return 0;
cleanup:
	pr_warn("ui: cannot serve on %s: %s", ui->sock_path, strerror(-ret));
	if (ui->unix_fd >= 0)
		close(ui->unix_fd);
	free(ui);
	return ret;
}

void ls_localui_stop(struct ls_localui *ui)
{
	if (!ui)
		return;
	if (ui->tcp_d)
		MHD_stop_daemon(ui->tcp_d);
	if (ui->unix_d)
		MHD_stop_daemon(ui->unix_d);
	unlink(ui->sock_path);
	free(ui);
}
