// SPDX-License-Identifier: MIT
/* `lightscale audit verify`: the agent's key-transparency check by hand (trust.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ctlclient.h"
#include "keys.h"
#include "profile.h"
#include "trust.h"
#include "util.h"

static const char audit_help[] =
	"Usage: lightscale audit verify [--profile NAME] [--state-dir DIR] [--json]\n"
	"\n"
	"Fetches the full netmap and checks it as the agent does: the audit head is signed by\n"
	"the deployment's identity key (trusted on first use), it extends the last head this\n"
	"node accepted (a rolled-back or forked log is refused), and every peer's WireGuard\n"
	"key is the one the audit log records. The accepted head is remembered in the\n"
	"profile's trust.json. Exit status: 0 verified, 3 refused, 1 error.\n";

static void audit_text(json_t *doc, FILE *f)
{
	if (json_is_true(json_object_get(doc, "ok")))
		fprintf(f, "audit: verified: head %lld signed by %s, %lld peer key(s) in the log\n",
			(long long)json_integer_value(json_object_get(doc, "head")),
			json_string_value(json_object_get(doc, "identity")),
			(long long)json_integer_value(json_object_get(doc, "peers")));
	else
		fprintf(f, "audit: REFUSED: %s\n", json_string_value(json_object_get(doc, "error")));
}

int ls_cmd_audit(struct ls_cli *cli, int argc, char **argv)
{
	struct ls_ctl_response resp = { 0 };
	struct ls_ctl_error err;
	struct ls_profile p;
	struct ls_ctl c;
	char msg[1024], path[4200], *st = NULL;
	json_t *doc, *tj = NULL;
	size_t len;
	int code = 1, ret = ls_cli_simple_opts(cli, argc, argv, audit_help);

	if (ret >= 0)
		return ret;
	if (optind >= argc || strcmp(argv[optind], "verify"))
		return ls_cli_usage_error(cli, audit_help, "which audit command? (verify)");
	if (optind + 1 < argc)
		return ls_cli_usage_error(cli, audit_help, "unexpected argument `%s'", argv[optind + 1]);
	if (ls_cli_profile_ctl(cli, &p, &c))
		return 1;
	ret = ls_ctl_netmap(&c, 0, 0, &resp, &err);
	if (ret) {
		ls_ctl_error_print(&err, "lightscale audit verify");
		goto cleanup;
	}
	ret = ls_trust_check_netmap(&c, p.dir, resp.json, msg, sizeof(msg));
	if (ret && ret != -EPERM) {
		fprintf(stderr, "lightscale audit verify: %s\n", msg);
		goto cleanup;
	}
	snprintf(path, sizeof(path), "%s/trust.json", p.dir);
	if (ls_read_file(path, &st, &len, 64 << 20) == 0)
		tj = json_loadb(st, len, 0, NULL);
	free(st);
	doc = json_pack("{s:b, s:O?, s:I, s:I}", "ok", ret == 0, "identity",
			json_object_get(tj, "identity"), "head",
			json_integer_value(json_object_get(json_object_get(tj, "head"), "seq")), "peers",
			(json_int_t)json_array_size(json_object_get(resp.json, "peers")));
	if (doc && ret)
		json_object_set_new(doc, "error", json_string(msg));
	json_decref(tj);
	ls_cli_print(cli, doc, audit_text);
	code = ret ? 3 : 0;
cleanup:
	ls_ctl_response_free(&resp);
	ls_ctl_free(&c);
	ls_profile_free(&p);
	return code;
}

static const char rotate_help[] =
	"Usage: lightscale rotate-key [--profile NAME] [--state-dir DIR] [--json]\n"
	"\n"
	"Replaces this node's WireGuard key: a new key is made, sent to the control plane in a\n"
	"request signed by the machine key, and kept in the profile (wg.key). A running agent\n"
	"follows it at its next netmap (the rotation wakes it) and its peers at theirs. The\n"
	"agent also rotates by itself when the network's key lifetime is nearly over.\n";

static void rotate_text(json_t *doc, FILE *f)
{
	fprintf(f, "new WireGuard public key %s\n", json_string_value(json_object_get(doc, "wg_key")));
}

int ls_cmd_rotate_key(struct ls_cli *cli, int argc, char **argv)
{
	struct ls_profile p;
	struct ls_ctl c;
	char msg[512], pub[LS_KEY_B64_LEN + 1];
	int ret = ls_cli_simple_opts(cli, argc, argv, rotate_help);

	if (ret >= 0)
		return ret;
	if (ls_cli_profile_ctl(cli, &p, &c))
		return 1;
	ret = ls_trust_rotate(&c, p.dir, pub, msg, sizeof(msg));
	ls_ctl_free(&c);
	ls_profile_free(&p);
	if (ret) {
		fprintf(stderr, "lightscale rotate-key: %s\n", msg);
		return 1;
	}
	return ls_cli_print(cli, json_pack("{s:s}", "wg_key", pub), rotate_text);
}

int ls_trust_wait_approval(struct ls_cli *cli, const json_t *reg)
{
	struct ls_profile p;
	struct ls_ctl c;
	int ret = 0;

	if (cli->json || !isatty(STDOUT_FILENO) || !json_string_value(json_object_get(reg, "approval_url")))
		return 0;
	if (ls_cli_profile_ctl(cli, &p, &c))
		return 1;
	printf("waiting for the approval (Ctrl-C stops waiting; the agent keeps asking)...\n");
	fflush(stdout);
	for (;;) {
		struct ls_ctl_response resp = { 0 };
		struct ls_ctl_error err;
		const char *st;

		if (ls_ctl_netmap(&c, 0, 0, &resp, &err)) {
			fprintf(stderr, "lightscale register: %s (%s)\n", err.message, err.code);
			ret = !strcmp(err.code, "node_revoked") ? 1 : 0;
			if (ret) {
				printf("the device was rejected\n");
				break;
			}
		} else {
			st = json_string_value(json_object_get(json_object_get(resp.json, "self"), "status"));
			if (st && strcmp(st, "pending")) {
				printf("the device is %s\n", st);
				ls_ctl_response_free(&resp);
				break;
			}
		}
		ls_ctl_response_free(&resp);
		sleep(2);
	}
	ls_ctl_free(&c);
	ls_profile_free(&p);
	return ret;
}
