#!/usr/bin/env bash
# Fuzz the HTTP API from its own OpenAPI spec (/v1/openapi.json) with schemathesis (PyPI):
# every operation, generated valid and invalid inputs, against a real `fvfsd serve` on the
# S3 test server on loopback. Fails on any 5xx answer or a dead daemon.
#
#   scripts/schemathesis.sh
#
# Knobs: SCHEMATHESIS_MAX_EXAMPLES (default 60 per operation), SCHEMATHESIS_MAX_TIME
# (seconds, default 300), SCHEMATHESIS_VERSION (default 4.32.5), plus those of scripts/lib.sh.
# Output: target/schemathesis.log, target/schemathesis-serve.log (the daemon).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
if ! command -v schemathesis >/dev/null; then
	fvfs_log "installing schemathesis $VERSION from PyPI: python3 -m pip install schemathesis==$VERSION"
	fvfs_pip_install "schemathesis==$VERSION"
fi
command -v schemathesis >/dev/null || fvfs_die "schemathesis installed but not on PATH"
fvfs_build_bins

export FVFS_LOG_NAME=schemathesis
trap fvfs_teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fvfs_mktemp schemathesis
fvfs_start_s3
fvfs_format --storage "$(fvfs_s3_location st)"
fvfs_serve

# Something to find: a few files and directories the fuzzer's paths may hit.
FVFSC="$(fvfs_bin_dir)/fvfsc"
echo hello | "$FVFSC" put - /a.txt >/dev/null
"$FVFSC" mkdir /dir >/dev/null
head -c 100000 /dev/urandom | "$FVFSC" put - /dir/b.bin >/dev/null

LOG="$(fvfs_target_dir)/schemathesis.log"
JUNIT="$(fvfs_target_dir)/schemathesis-junit.xml"
rm -f "$JUNIT"
fvfs_log "schemathesis $VERSION against $FVFS_URL (log $LOG)"
set +e
NO_COLOR=1 timeout --kill-after=30 "$((${SCHEMATHESIS_MAX_TIME:-300} + 120))" \
	schemathesis run "$FVFS_URL/v1/openapi.json" \
	--header "Authorization: Bearer $FVFS_TOKEN" \
	--checks not_a_server_error \
	--max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-60}" \
	--max-time "${SCHEMATHESIS_MAX_TIME:-300}" \
	--request-timeout 60 \
	--workers 2 \
	--seed 7734 \
	--suppress-health-check=all \
	--report junit --report-junit-path "$JUNIT" \
	--no-color >"$LOG" 2>&1
rc=$?
set -e
tail -n 40 "$LOG"
kill -0 "$FVFS_SERVE_PID" 2>/dev/null || fvfs_die "fvfsd serve died during the fuzzing; see target/schemathesis-serve.log"
# The daemon must still answer after the run.
curl_status="$("$FVFSC" status --json >/dev/null 2>&1 && echo ok || echo fail)"
[[ $curl_status == ok ]] || fvfs_die "fvfsd no longer answers after the fuzzing"
# Verdict from the JUnit report: a <failure> is a check that failed (a 5xx); an <error> is
# the fuzzer's own trouble (a health check, an internal exception of hypothesis), reported
# but not counted against the API.
[[ -s $JUNIT ]] || fvfs_die "schemathesis wrote no report (exit $rc); see $LOG"
cases="$(grep -A1 'Test cases:' "$LOG" | grep -oE '[0-9]+ generated, [0-9]+ passed' | head -1 || true)"
failures="$(grep -c '<failure' "$JUNIT" || true)"
errors="$(grep -c '<error' "$JUNIT" || true)"
echo "SCHEMATHESIS ${cases:-? generated} failures=$failures fuzzer_errors=$errors exit=$rc"
if ((errors > 0)); then
	fvfs_warn "schemathesis reported $errors error(s) of its own (not API failures); see $LOG"
fi
((failures == 0)) || fvfs_die "schemathesis found $failures failing operation(s) (5xx answers); see $LOG"
grep -qE 'Server error|not_a_server_error' <(sed -n '/FAILURES/,$p' "$LOG") &&
	fvfs_die "schemathesis reports server errors; see $LOG"
fvfs_log "schemathesis: no 5xx, daemon alive"
