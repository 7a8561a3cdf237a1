# TAP helpers for shell tests. Source it; call ok/fail/check; end with tap_done.
#   check "name" cmd args...    runs cmd, ok if it exits 0
#   ok "name" / fail "name" [detail]
_tap_n=0
_tap_failed=0
ok() { _tap_n=$((_tap_n + 1)); echo "ok $_tap_n - $1"; }
fail() {
	_tap_n=$((_tap_n + 1)); _tap_failed=$((_tap_failed + 1))
	echo "not ok $_tap_n - $1"
	shift
	local d
	for d in "$@"; do sed 's/^/# /' <<<"$d"; done
	return 0
}
check() {
	local name=$1; shift
	local out
	if out=$("$@" 2>&1); then ok "$name"; else fail "$name" "command: $*" "$out"; fi
}
# check_eq NAME EXPECTED ACTUAL
check_eq() {
	if [ "$2" = "$3" ]; then ok "$1"; else fail "$1" "expected: $2" "actual:   $3"; fi
}
tap_done() { [ "$_tap_failed" -eq 0 ]; }
