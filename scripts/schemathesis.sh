#!/usr/bin/env bash
# Fuzz the HTTP API from its own OpenAPI spec (/v1/openapi.json) with schemathesis (PyPI):
# every operation, generated valid and invalid inputs, against a real `fvfsd serve` on the
# S3 test server on loopback. Every response is checked: no 5xx, and status code, content
# type, headers and body conform to the spec. The verdict is schemathesis's exit code, plus
# a floor on the number of generated cases and a daemon still alive and answering.
#
#   scripts/schemathesis.sh
#
# Knobs: SCHEMATHESIS_PHASES (default examples,coverage,fuzzing),
# SCHEMATHESIS_MAX_EXAMPLES (default 60 per operation), SCHEMATHESIS_MAX_TIME
# (seconds, default 150), SCHEMATHESIS_MIN_CASES (default 3000), SCHEMATHESIS_VERSION
# (default 4.32.5), plus those of scripts/lib.sh.
# Output: target/schemathesis.log, target/schemathesis-serve.log (the daemon).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
MIN_CASES="${SCHEMATHESIS_MIN_CASES:-3000}"
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
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
# No example database: with one, hypothesis (6.170) runs its Pareto optimiser, whose
# shrinker fails with an IndexError of its own on some operations; the seed keeps runs
# reproducible without it. One worker: with two, a CI run once ended with a schemathesis
# "Runtime Error" in its coverage phase (an exception inside the tool, not a failed check)
# that no local run reproduced; one worker keeps the run's order fixed by its seed and
# generates as many cases here (36,810 in 300 s, against 35,696 with two).
set +e
NO_COLOR=1 timeout --kill-after=30 "$((${SCHEMATHESIS_MAX_TIME:-150} + 120))" \
	schemathesis run "$FVFS_URL/v1/openapi.json" \
	--header "Authorization: Bearer $FVFS_TOKEN" \
	--checks "$CHECKS" \
	--max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-60}" \
	--max-time "${SCHEMATHESIS_MAX_TIME:-150}" \
	--phases "${SCHEMATHESIS_PHASES:-examples,coverage,fuzzing}" \
	--request-timeout 60 \
	--workers 1 \
	--seed 7734 \
	--suppress-health-check=all \
	--generation-database=none \
	--report junit --report-junit-path "$JUNIT" \
	--no-color >"$LOG" 2>&1
rc=$?
set -e
# The failures and errors in full (a tail would cut them), then the summary.
sed -n '/^=* \(FAILURES\|ERRORS\) =*$/,/^=* SUMMARY =*$/p' "$LOG"
tail -n 40 "$LOG"
kill -0 "$FVFS_SERVE_PID" 2>/dev/null || fvfs_die "fvfsd serve died during the fuzzing; see target/schemathesis-serve.log"
# The daemon must still answer after the run.
curl_status="$("$FVFSC" status --json >/dev/null 2>&1 && echo ok || echo fail)"
[[ $curl_status == ok ]] || fvfs_die "fvfsd no longer answers after the fuzzing"
# The verdict: schemathesis's own exit code (a failed check or an error of its own), a
# floor on the cases it generated (a run that generated little proves little).
cases="$(grep -A1 'Test cases:' "$LOG" | grep -oE '[0-9]+ generated' | grep -oE '[0-9]+' | head -1 || true)"
failures="$(grep -c '<failure' "$JUNIT" 2>/dev/null || true)"
errors="$(grep -c '<error' "$JUNIT" 2>/dev/null || true)"
echo "SCHEMATHESIS generated=${cases:-?} failures=${failures:-?} errors=${errors:-?} exit=$rc"
((rc == 0)) || fvfs_die "schemathesis failed (exit $rc: $failures failing check(s), $errors error(s)); see $LOG"
[[ $cases =~ ^[0-9]+$ ]] || fvfs_die "schemathesis printed no case count; see $LOG"
((cases >= MIN_CASES)) || fvfs_die "schemathesis generated $cases cases, fewer than the floor of $MIN_CASES; see $LOG"
fvfs_log "schemathesis: $cases cases, every check passed, daemon alive"
