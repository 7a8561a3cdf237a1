// SPDX-License-Identifier: MIT
/* lightscale-control: the control plane server and its admin commands. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "keys.h"
#include "log.h"

static const char usage_main[] =
	"Usage: lightscale-control COMMAND [ARGS]\n"
	"\n"
	"The Lightscale control plane: hands out node identities and netmaps over HTTPS,\n"
	"keeps its state in PostgreSQL.\n"
	"\n"
	"Commands:\n"
	"  serve                 run the server (with its own PostgreSQL unless --db)\n"
	"  network create|list|show     manage networks\n"
	"  token create|list|revoke     manage enrollment tokens\n"
	"  node list|show|delete        inspect and remove nodes\n"
	"  device list|approve|reject   registrations without a token (approval links)\n"
	"  tls status|rotate|activate|withdraw  the servers' TLS keys (staged rotation)\n"
	"  help [COMMAND]        show the manual of a command\n"
	"  version               print the version and schema version\n"
	"\n"
	"Run `lightscale-control help COMMAND' or `lightscale-control COMMAND --help'.\n";

static const char usage_serve[] =
	"Usage: lightscale-control serve --listen ADDR:PORT --state-dir DIR [--db DSN]\n"
	"                                [--config FILE] [--pg-user USER] [--pg-bin DIR]\n"
	"                                [--identity-key FILE] [--tls-cert F --tls-key F]\n"
	"                                [--insecure-http]\n"
	"\n"
	"Runs the control plane: the node API (/v1/register, /v1/heartbeat, /v1/netmap),\n"
	"the admin API (/v1/admin/...) and /v1/health, over HTTPS on ADDR:PORT.\n"
	"\n"
	"Without --db it runs its own PostgreSQL cluster in DIR/pg: created with initdb on\n"
	"the first start, served on a Unix socket in DIR/run, stopped on SIGTERM/SIGINT and\n"
	"reused on the next start. Started as root, the cluster runs as --pg-user (default\n"
	"postgres). A cluster left running by a killed server is adopted. With --db it uses\n"
	"that PostgreSQL server; any libpq connection string works, including multi-host\n"
	"ones (\"host=a,b target_session_attrs=read-write dbname=lightscale\"). Several\n"
	"servers may share one database: changes made through any of them wake the\n"
	"long-polls of all.\n"
	"\n"
	"At start the schema migrations built into this binary are applied in one\n"
	"transaction; a database with a newer schema than the binary knows is refused.\n"
	"The first start writes an admin key to DIR/admin.key (mode 0600) and the URL it\n"
	"listens on to DIR/control.url; the admin commands read both.\n"
	"\n"
	"The deployment's Ed25519 identity key signs the heads of the audit log (key\n"
	"transparency). The first server makes DIR/identity.key (mode 0600) and records its\n"
	"public half in the database; every other server of that database must be given\n"
	"the same key (--identity-key, or a copy in its DIR) and refuses to start otherwise.\n"
	"\n"
	"Options:\n"
	"  --listen ADDR:PORT    address to listen on, e.g. 0.0.0.0:8080 or [::]:8080;\n"
	"                        port 0 picks a free port (see DIR/control.url)\n"
	"  --state-dir DIR       state directory (default " LSC_DEFAULT_STATE_DIR ")\n"
	"  --db DSN              external PostgreSQL (libpq connection string or URI)\n"
	"  --config FILE         JSON config: relays, DNS resolvers, rate limits, max_wait\n"
	"  --pg-user USER        user for the embedded cluster when run as root\n"
	"  --pg-bin DIR          PostgreSQL server binaries (default: newest\n"
	"                        /usr/lib/postgresql/N/bin)\n"
	"  --identity-key FILE   the deployment's identity key (default DIR/identity.key)\n"
	"  --tls                 HTTPS (the default; accepted for scripts that say so)\n"
	"  --tls-cert F --tls-key F  serve HTTPS with this certificate and key instead of\n"
	"                        the self-signed one\n"
	"  --insecure-http       plain HTTP: no server authentication at all (a warning is\n"
	"                        logged); only behind another TLS terminator or in tests\n"
	"\n"
	"HTTPS: with no --tls-cert, a key (ECDSA P-256) and a self-signed certificate are\n"
	"made in DIR/tls.key, DIR/tls.crt on the first start and kept. The key's pin\n"
	"(SHA-256 of its SubjectPublicKeyInfo, DIR/tls.pin in the form sha256//BASE64\n"
	"form) is endorsed by the identity key in the database and published in every\n"
	"netmap; `token create' gives enrollment strings TOKEN@IDENTITY@PINS, so nodes pin\n"
	"exactly the deployment's servers from their first request. The admin commands pin\n"
	"DIR/tls.pin. A new or rotated key is published before it is served: see\n"
	"`lightscale-control help tls'. SIGHUP switches to a staged key (tls rotate) and\n"
	"reloads the TLS state from the database.\n"
	"\n"
	"Environment: LIGHTSCALE_LOG=err|warn|info|debug; LIGHTSCALE_PG_FAST=1 runs the\n"
	"embedded cluster without fsync (tests only).\n";

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : NULL;

	ls_log_init("lightscale-control");
	if (ls_crypto_init()) {
		fprintf(stderr, "lightscale-control: cannot initialise libsodium\n");
		return 1;
	}
	if (!cmd || !strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
		fputs(usage_main, cmd ? stdout : stderr);
		return cmd ? 0 : 2;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("lightscale-control 0.1 (API v1, schema %d)\n", lsc_schema_latest());
		return 0;
	}
	if (!strcmp(cmd, "help") && argc > 2 && !strcmp(argv[2], "serve")) {
		fputs(usage_serve, stdout);
		return 0;
	}
	if (!strcmp(cmd, "help") && argc <= 2) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(cmd, "serve")) {
		static const struct option opts[] = {
			{"listen", required_argument, NULL, 'l'},
			{"state-dir", required_argument, NULL, 's'},
			{"db", required_argument, NULL, 'd'},
			{"config", required_argument, NULL, 'c'},
			{"pg-user", required_argument, NULL, 'u'},
			{"pg-bin", required_argument, NULL, 'b'},
			{"identity-key", required_argument, NULL, 'i'},
			{"tls", no_argument, NULL, 'T'},
			{"insecure-http", no_argument, NULL, 'H'},
			{"tls-cert", required_argument, NULL, 'C'},
			{"tls-key", required_argument, NULL, 'K'},
			{"help", no_argument, NULL, 'h'},
			{0},
		};
		struct lsc_serve_opts o = {.state_dir = LSC_DEFAULT_STATE_DIR, .tls = true};
		bool insecure = false, tls_flag = false;
		int c;

		optind = 2;
		while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
			switch (c) {
			case 'l': o.listen = optarg; break;
			case 's': o.state_dir = optarg; break;
			case 'd': o.db = optarg; break;
			case 'c': o.config = optarg; break;
			case 'u': o.pg_user = optarg; break;
			case 'b': o.pg_bin = optarg; break;
			case 'i': o.identity_key = optarg; break;
			case 'T': o.tls = true; tls_flag = true; break;
			case 'H': o.tls = false; insecure = true; break;
			case 'C': o.tls_cert = optarg; tls_flag = true; break;
			case 'K': o.tls_key = optarg; break;
			case 'h': fputs(usage_serve, stdout); return 0;
			default: fputs(usage_serve, stderr); return 2;
			}
		}
		if (optind < argc) {
			fprintf(stderr, "lightscale-control serve: unexpected argument `%s'\n", argv[optind]);
			return 2;
		}
		if (insecure && (tls_flag || o.tls_cert || o.tls_key)) {
			fprintf(stderr, "lightscale-control serve: --insecure-http contradicts --tls, --tls-cert, --tls-key\n");
			return 2;
		}
		if (!insecure)
			o.tls = true;
		if (!!o.tls_cert != !!o.tls_key) {
			fprintf(stderr, "lightscale-control serve: --tls-cert and --tls-key go together\n");
			return 2;
		}
		if (!o.listen) {
			fprintf(stderr, "lightscale-control serve: --listen ADDR:PORT is required\n");
			return 2;
		}
		o.pg_fast = getenv("LIGHTSCALE_PG_FAST") && !strcmp(getenv("LIGHTSCALE_PG_FAST"), "1");
		return lsc_serve(&o) ? 1 : 0;
	}
	if (!strcmp(cmd, "help"))
		return lsc_cli_main(argc - 2, argv + 2, "help");
	return lsc_cli_main(argc - 1, argv + 1, cmd);
}
