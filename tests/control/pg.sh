# PostgreSQL and lightscale-control helpers for control-plane tests. Source it.
#
#   lsc_pg_start DIR        a throwaway cluster in DIR (initdb, postgres on a Unix socket in
#                           DIR/sock, no TCP); sets LSC_PG_SOCK and LSC_PG_PID
#   lsc_pg_stop             stops it (lsc_pg_restart starts it again)
#   lsc_psql DB SQL         runs SQL as the cluster superuser `lightscale'
#   lsc_serve NAME ARGS...  starts `lightscale-control serve --listen 127.0.0.1:0 ARGS` in the
#                           background, waits for DIR/control.url; sets SRV_PID_NAME, SRV_URL_NAME
#                           and, over HTTPS (the default), SRV_PIN_NAME (DIR/tls.pin) and adds
#                           it to LS_NODECLI_PINS (what ls-nodecli pins without --pin)
#                           (ARGS must contain --state-dir DIR)
#   lsc_curl DIR CURL-ARGS  curl trusting exactly the certificate of the server in DIR
#                           (DIR/tls.crt is self-signed: its own CA; no -k) and pinning it
#   lsc_stop NAME           SIGTERM and wait
#
# Run as root, the cluster runs as user postgres (initdb refuses root).
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
LSC_BIN=${LIGHTSCALE_BUILD:-build}/lightscale-control
LSC_NODECLI=${LIGHTSCALE_BUILD:-build}/tests/ls-nodecli
export LIGHTSCALE_PG_FAST=1

_lsc_as_pg() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --reuid=postgres --regid=postgres --clear-groups "$@"
	else
		"$@"
	fi
}

lsc_pg_start() {
	local dir=$1
	mkdir -p "$dir/data" "$dir/sock"
	chmod 711 "$(dirname "$dir")"
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/data" "$dir/sock"
	_lsc_as_pg "$PGBIN/initdb" -D "$dir/data" -U lightscale -A trust -N >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log"
		return 1
	}
	LSC_PG_DIR=$dir
	lsc_pg_restart
}

# lsc_pg_restart: start the cluster of the last lsc_pg_start again (after lsc_pg_stop)
lsc_pg_restart() {
	local dir=$LSC_PG_DIR
	_lsc_as_pg "$PGBIN/postgres" -D "$dir/data" -k "$dir/sock" -c listen_addresses= \
		-c fsync=off -c synchronous_commit=off -c max_connections=300 >>"$dir/pg.log" 2>&1 &
	LSC_PG_PID=$!
	LSC_PG_SOCK=$dir/sock
	for _ in $(seq 100); do
		"$PGBIN/pg_isready" -q -h "$LSC_PG_SOCK" && return 0
		sleep 0.1
	done
	cat "$dir/pg.log"
	return 1
}

lsc_pg_stop() {
	[ -n "${LSC_PG_PID:-}" ] || return 0
	# $! is a subshell that ignores SIGINT: signal the postmaster itself
	kill -INT "$(head -1 "$LSC_PG_DIR/data/postmaster.pid" 2>/dev/null)" 2>/dev/null
	wait "$LSC_PG_PID" 2>/dev/null
	LSC_PG_PID=
}

lsc_psql() {
	psql -X -q -t -A -h "$LSC_PG_SOCK" -U lightscale -d "$1" -c "$2"
}

lsc_serve() {
	local name=$1 dir="" a
	shift
	local prev=""
	for a in "$@"; do
		[ "$prev" = --state-dir ] && dir=$a
		prev=$a
	done
	mkdir -p "$dir"
	rm -f "$dir/control.url"
	"$LSC_BIN" serve --listen 127.0.0.1:0 "$@" >>"$dir/serve.log" 2>&1 &
	eval "SRV_PID_$name=$!"
	for _ in $(seq 300); do
		if [ -s "$dir/control.url" ]; then
			eval "SRV_URL_$name=$(cat "$dir/control.url")"
			if grep -q '^https://' "$dir/control.url" && [ -s "$dir/tls.pin" ]; then
				local pin
				pin=$(cat "$dir/tls.pin")
				eval "SRV_PIN_$name=\$pin"
				case ";${LS_NODECLI_PINS:-};" in *";$pin;"*) ;; *) LS_NODECLI_PINS=${LS_NODECLI_PINS:+$LS_NODECLI_PINS;}$pin ;; esac
				export LS_NODECLI_PINS
			fi
			return 0
		fi
		kill -0 "$(eval echo "\$SRV_PID_$name")" 2>/dev/null || break
		sleep 0.1
	done
	echo "# server $name did not start:"
	sed 's/^/#   /' "$dir/serve.log" | tail -20
	return 1
}

lsc_stop() {
	local pid
	pid=$(eval echo "\${SRV_PID_$1:-}")
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	eval "SRV_PID_$1="
}

lsc_curl() {
	local dir=$1
	shift
	if [ -s "$dir/tls.pin" ]; then
		curl --cacert "$dir/tls.crt" --pinnedpubkey "$(cat "$dir/tls.pin")" "$@"
	else
		curl "$@"
	fi
}

# millisecond clock
lsc_ms() { date +%s%3N; }
