#!/usr/bin/env bash
# Lightscale test runner.
#
#   tests/run.sh TEST...
#
# A TEST is a program (a cmocka binary, a BPF table, a lab script). Each prints TAP lines:
# "ok N - name" and "not ok N - name" are counted; anything else is shown on failure only
# (or always with VERBOSE=1). A test that exits non-zero without reporting a failure counts
# as one failure; one that reports nothing at all counts as one failure too. A skip
# ("ok N # SKIP why") counts as a failure: every prerequisite of `make check` is installed
# by scripts/deps.sh, so a test that cannot run here is a test that did not pass.
# Each test gets TEST_TIMEOUT seconds (default 900); on expiry its whole process group gets
# SIGTERM (so its cleanup traps run), then SIGKILL 30 s later, and it counts as a failure.
# Logs go to $BUILD/test-logs/. The last line is "N passed, N failed".
set -u
BUILD=${BUILD:-build}
logs="$BUILD/test-logs"
mkdir -p "$logs"
export CMOCKA_MESSAGE_OUTPUT=TAP
export LIGHTSCALE_BUILD="$BUILD"

total_pass=0
total_fail=0
failed_tests=()

for t in "$@"; do
	name=$(basename "$t")
	log="$logs/$name.log"
	start=$(date +%s)
	runner=()
	[ -x "$t" ] || runner=(bash)
	timeout -k 30 "${TEST_TIMEOUT:-900}" "${runner[@]}" "$t" >"$log" 2>&1 </dev/null
	rc=$?
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "not ok 0 - $name timed out after ${TEST_TIMEOUT:-900} s" >>"$log"
	fi
	secs=$(($(date +%s) - start))
	pass=$(grep -cE '^ok [0-9]+' "$log")
	fail=$(grep -cE '^not ok [0-9]+' "$log")
	skip=$(grep -ciE '^ok [0-9]+[^#]*# *skip' "$log")
	pass=$((pass - skip))
	fail=$((fail + skip))
	if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		echo "not ok 0 - $name exited with status $rc" >>"$log"
		fail=1
	fi
	if [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
		echo "not ok 0 - $name reported no results" >>"$log"
		fail=1
	fi
	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	if [ "$fail" -ne 0 ]; then
		printf '  FAIL     %-28s %3d passed, %d failed (%ds)\n' "$name" "$pass" "$fail" "$secs"
		failed_tests+=("$name")
		sed 's/^/    | /' "$log" | tail -n 60
	else
		printf '  PASS     %-28s %3d passed (%ds)\n' "$name" "$pass" "$secs"
		[ "${VERBOSE:-0}" = 1 ] && sed 's/^/    | /' "$log"
	fi
done

if ((${#failed_tests[@]})); then
	echo "failed: ${failed_tests[*]} (logs in $logs/)"
fi
echo "$total_pass passed, $total_fail failed"
[ "$total_fail" -eq 0 ]
