/* SPDX-License-Identifier: MIT */
/* The `lightscale` command line: one dispatch table (cli.c), one file per subcommand
 * family (cli_*.c). Every subcommand takes --profile and --state-dir; every command
 * that prints state takes --json and builds one JSON object that both outputs print. */
#ifndef LS_CLI_H
#define LS_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#define LS_DEFAULT_STATE_DIR "/var/lib/lightscale"
#define LS_DEFAULT_PROFILE "default"

/* Options every subcommand shares. */
struct ls_cli {
	const char *prog;      /* "lightscale" */
	const char *cmd;       /* subcommand name */
	const char *profile;   /* --profile, default "default" */
	const char *state_dir; /* --state-dir, default /var/lib/lightscale (or $LIGHTSCALE_STATE_DIR) */
	bool json;             /* --json */
};

/* Long options every subcommand accepts; append to a subcommand's own table. */
#define LS_CLI_COMMON_OPTS                                    \
	{ "profile", required_argument, NULL, 0x1001 },       \
	{ "state-dir", required_argument, NULL, 0x1002 },     \
	{ "json", no_argument, NULL, 0x1003 },                \
	{ "help", no_argument, NULL, 'h' }

/* Handles the common option c (returns 1 when it was one, 0 otherwise). */
int ls_cli_common_opt(struct ls_cli *cli, int c, const char *arg);
/* Prints "lightscale CMD: unknown option ..." style usage errors; returns 1 (exit code). */
int ls_cli_usage_error(const struct ls_cli *cli, const char *help, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prints doc (or the JSON document with --json) and frees it; text(doc, stdout) renders
 * the text form. Returns 0. */
int ls_cli_print(const struct ls_cli *cli, json_t *doc, void (*text)(json_t *doc, FILE *f));

void ls_cli_text_kv(json_t *doc, FILE *f);

typedef int (*ls_cmd_fn)(struct ls_cli *cli, int argc, char **argv);

int ls_cli_main(int argc, char **argv);

/* Subcommands (cli_*.c). */
int ls_cmd_init(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_register(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_heartbeat(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_netmap(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_status(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_wg_up(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_wg_down(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_wg_userspace(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_dns(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_relay(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_exit_node(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_agent(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_bpf_status(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_routes_cli(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_app_route(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_ui(struct ls_cli *cli, int argc, char **argv);
int ls_cmd_l2(struct ls_cli *cli, int argc, char **argv);



struct ls_profile;
struct ls_ctl;
/* Loads cli->profile, printing what is wrong and what to do. 0 or 1 (exit code). */
int ls_cli_profile(const struct ls_cli *cli, struct ls_profile *p);
struct ls_netmap;
/* The profile's netmap: from its running agent, else the cached one. 0, or -errno with
 * err saying why (no agent and no cache). */
int ls_cli_netmap(const struct ls_cli *cli, const struct ls_profile *p, struct ls_netmap **nm,
		  char *err, size_t err_size);
/* A control client for the profile (URLs, machine key). 0 or 1. */
int ls_cli_ctl(const struct ls_cli *cli, const struct ls_profile *p, struct ls_ctl *c);
/* ls_cli_profile, then ls_cli_ctl for it (the profile is freed when that fails). 0 or 1. */
int ls_cli_profile_ctl(const struct ls_cli *cli, struct ls_profile *p, struct ls_ctl *c);
/* app-route add (cli_app.c), also behind `exit-node use NAME --cgroup CG'. 0 or 1. */
int ls_cli_app_add(struct ls_cli *cli, struct ls_profile *p, const char *cgroup, const char *exit);
/* Parses a plain getopt loop with only the common options; returns -1 to continue,
 * or the exit code. */
int ls_cli_simple_opts(struct ls_cli *cli, int argc, char **argv, const char *help);
/* The netmap ls_cli_netmap finds, or NULL when there is none (for commands that work
 * without one). */
struct ls_netmap *ls_cli_netmap_or_null(const struct ls_cli *cli, const struct ls_profile *p);
/* The subcommand argv[optind] as its index in names (NULL-terminated). When it is missing
 * or not one of names, prints the usage error ("expected a, b or c", "unknown subcommand
 * `x' (a, b, c)") and returns -1. */
int ls_cli_subcommand(const struct ls_cli *cli, const char *help, int argc, char **argv,
		      const char *const *names);
#endif
