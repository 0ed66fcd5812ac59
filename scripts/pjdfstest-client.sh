#!/usr/bin/env bash
# Run pjdfstest (every group) on `fvfsc mount`: the client's FUSE mount through the HTTP API
# of a real `fvfsd serve` on loopback, itself on the S3 test server. The verdict is the
# suite's own Summary line: 0 failed, and at least PJDFSTEST_CLIENT_MIN_PASSED passed (the
# whole suite only; with PJDFSTEST_CLIENT_GROUPS only 0 failed counts).
#
#   scripts/pjdfstest-client.sh              # needs root and /dev/fuse
#
# Knobs: PJDFSTEST_CLIENT_GROUPS (test name patterns; default all, e.g. "open:: rename::"),
# PJDFSTEST_CLIENT_MIN_PASSED (default 382), PJDFSTEST_TIMEOUT (default 900), plus those of
# scripts/lib.sh.
# Output: target/pjdfstest-client.log (the suite), target/pjdfstest-client-{serve,client}.log.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TIMEOUT="${PJDFSTEST_TIMEOUT:-900}"
MIN_PASSED="${PJDFSTEST_CLIENT_MIN_PASSED:-382}"
read -r -a GROUPS_ <<<"${PJDFSTEST_CLIENT_GROUPS:-}"

fvfs_require_privileged "pjdfstest on fvfsc mount"
command -v pjdfstest >/dev/null ||
	fvfs_die "pjdfstest is not on PATH: cargo install --locked pjdfstest (needs libacl1-dev)"
fvfs_build_bins
for u in "nobody:nogroup" "daemon:daemon"; do
	getent passwd "${u%%:*}" >/dev/null || fvfs_die "pjdfstest needs the user ${u%%:*} (scripts/pjdfstest.sh creates it)"
done

export FVFS_LOG_NAME=pjdfstest-client
trap fvfs_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Short paths: pjdfstest binds Unix sockets under -p, and sun_path holds 108 bytes.
fvfs_mktemp pjdc
fvfs_start_s3
fvfs_format --storage "$(fvfs_s3_location pjdc)"
# The admin token (fvfs_serve's FVFS_TOKEN) names the local caller as owner; the suite's
# mknod and set-id chmod cases need devices and set-id files allowed.
FVFS_SERVE_DAEMON="allow_devices = true" fvfs_serve
fvfs_client_mount "$FVFS_WORK/c"

CONFIG="$FVFS_WORK/pjdfstest.toml"
fvfs_pjdfstest_config "$CONFIG" posix_fallocate utime_now utimensat rename_ctime

TESTDIR="$FVFS_CLIENT_MNT/p"
mkdir -p "$TESTDIR"
chmod 0777 "$TESTDIR"
LOG="$(fvfs_target_dir)/pjdfstest-client.log"
fvfs_log "pjdfstest ${GROUPS_[*]:-(all groups)} on $TESTDIR (timeout ${TIMEOUT}s, log $LOG)"
start=$SECONDS
set +e
(cd / && NO_COLOR=1 CLICOLOR=0 timeout --kill-after=30 "$TIMEOUT" \
	pjdfstest -c "$CONFIG" -p "$TESTDIR" "${GROUPS_[@]}" </dev/null) >"$LOG" 2>&1
suite_rc=$?
set -e
elapsed=$((SECONDS - start))
clean="$(sed -E 's/\x1b\[[0-9;]*m//g' "$LOG")"
summary="$(grep -E '^Summary: ' <<<"$clean" | tail -n1 || true)"
[[ -n $summary ]] || {
	tail -n 30 "$LOG" >&2
	fvfs_die "pjdfstest printed no summary (exit $suite_rc after ${elapsed}s); see $LOG"
}
kill -0 "$FVFS_CLIENT_PID" 2>/dev/null || fvfs_die "fvfsc mount died during the suite"
kill -0 "$FVFS_SERVE_PID" 2>/dev/null || fvfs_die "fvfsd serve died during the suite"
failed="$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$summary")"
skipped="$(sed -E 's/.* ([0-9]+) skipped.*/\1/' <<<"$summary")"
passed="$(sed -E 's/.* ([0-9]+) passed.*/\1/' <<<"$summary")"
echo "PJDFSTEST-CLIENT passed=$passed failed=$failed skipped=$skipped seconds=$elapsed"
mapfile -t failures < <(grep -E '[[:space:]]FAILED$' <<<"$clean" | awk '{print $1}' | sort -u)
if ((${#failures[@]})); then
	fvfs_log "failed (${#failures[@]}): ${failures[*]}"
fi
((failed == 0)) || fvfs_die "pjdfstest on fvfsc mount: $summary"
if ((${#GROUPS_[@]} == 0)); then
	((passed >= MIN_PASSED)) ||
		fvfs_die "pjdfstest on fvfsc mount: $passed passed, fewer than the floor of $MIN_PASSED ($summary)"
fi
fvfs_log "pjdfstest on fvfsc mount PASSED ($summary)"
