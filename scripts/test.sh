#!/usr/bin/env bash
# The fvfs test command: system packages, tools, build, unit + integration tests, and the
# POSIX suites (pjdfstest, fsx) against a real mount backed by the S3 test server, pjdfstest
# on the client mount (fvfsc mount) and the API fuzzed from its OpenAPI spec (schemathesis).
#
#   scripts/test.sh                          # skips the parts that need root + /dev/fuse
#   FVFS_REQUIRE_PRIVILEGED=1 scripts/test.sh   # CI: those parts must run (as root)
#
# Knobs: FVFS_SKIP_SUITES=1 (stop after cargo test), FVFS_LINT=1 (also cargo fmt --check and
# cargo clippy -D warnings), and those of scripts/lib.sh, scripts/pjdfstest.sh, scripts/fsx.sh.
# Exit status: 0 when every step passed or was skipped, 1 otherwise.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$FVFS_ROOT"

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if [[ -d $CARGO_BIN && :$PATH: != *":$CARGO_BIN:"* ]]; then
	export PATH="$CARGO_BIN:$PATH"
fi
command -v cargo >/dev/null || fvfs_die "cargo is not on PATH; install the Rust toolchain (https://rustup.rs)"

PJDFSTEST_VERSION=0.2.2
FSX_VERSION=0.3.2
DUCKDB_VERSION=1.5.6

STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
failed=0
record() { # record NAME RESULT SECONDS
	STEP_NAMES+=("$1")
	STEP_RESULTS+=("$2")
	STEP_SECONDS+=("$3")
	[[ $2 != FAIL* ]] || failed=1
}

# run_step NAME CMD...: run CMD, record PASS / FAIL / SKIP (exit 77) with its duration.
run_step() {
	local name="$1" start rc
	shift
	echo
	fvfs_log "==== $name: $*"
	start=$SECONDS
	set +e
	("$@") # a subshell: a step that calls fvfs_die fails the step, not the whole run
	rc=$?
	set -e
	case $rc in
	0) record "$name" PASS $((SECONDS - start)) ;;
	"$FVFS_SKIP_RC") record "$name" SKIP $((SECONDS - start)) ;;
	*) record "$name" "FAIL (exit $rc)" $((SECONDS - start)) ;;
	esac
	fvfs_log "==== $name: ${STEP_RESULTS[-1]} in ${STEP_SECONDS[-1]}s"
	return "$rc"
}

summary() {
	echo
	echo "==================== fvfs test summary ===================="
	local i
	for i in "${!STEP_NAMES[@]}"; do
		printf '  %-28s %-16s %6ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
	done
	echo "==========================================================="
	if ((failed)); then
		echo "RESULT: FAILED"
	else
		echo "RESULT: OK"
	fi
}

# ---- privileges: decided up front, so that CI fails in seconds rather than after the build
privileged=1
if ! fvfs_privileged_ok; then
	privileged=0
	why=""
	[[ $(id -u) -eq 0 ]] || why="not running as root"
	[[ -c /dev/fuse ]] || why="${why:+$why and }/dev/fuse is missing"
	if [[ ${FVFS_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
		fvfs_die "FVFS_REQUIRE_PRIVILEGED=1 but $why: the FUSE tests and POSIX suites cannot run"
	fi
	echo "SKIP: privileged parts (FUSE integration tests, pjdfstest, fsx): $why"
fi
suites=$privileged
if [[ ${FVFS_SKIP_SUITES:-0} == 1 ]]; then
	suites=0
fi

# ---- system packages (Debian names)
have_libacl_dev() {
	if command -v dpkg-query >/dev/null; then
		dpkg-query -W -f='${Status}' libacl1-dev 2>/dev/null | grep -q 'install ok installed'
	else
		compgen -G '/usr/lib*/libacl.so' >/dev/null || compgen -G '/usr/lib/*/libacl.so' >/dev/null
	fi
}
system_packages() {
	local missing=()
	command -v fusermount3 >/dev/null || missing+=(fuse3)
	have_libacl_dev || missing+=(libacl1-dev)
	command -v cc >/dev/null || missing+=(build-essential)
	command -v pkg-config >/dev/null || missing+=(pkg-config)
	command -v ip >/dev/null || missing+=(iproute2) # network namespaces for the mDNS test
	# The ACL and fidelity tests judge the mount with tools no one here wrote.
	command -v rsync >/dev/null || missing+=(rsync)
	command -v setfacl >/dev/null || missing+=(acl)
	command -v setfattr >/dev/null || missing+=(attr)
	# The HSM tests tier files of a loop-mounted ext4 image they make.
	command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
	command -v losetup >/dev/null || missing+=(mount)
	# The HSM keeper tests count and stop keeper processes.
	command -v pgrep >/dev/null || missing+=(procps)
	# The music tests encode their audio fixtures (FLAC, MP3, Vorbis, Opus, AAC).
	command -v ffmpeg >/dev/null || missing+=(ffmpeg)
	# The music origin tests serve SFTP with Debian's sshd (and OpenDAL's sftp uses ssh).
	[[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
	command -v ssh >/dev/null || missing+=(openssh-client)
	if ((${#missing[@]} == 0)); then
		fvfs_log "system packages present: fuse3 (fusermount3), libacl1-dev, a C compiler, pkg-config, iproute2, rsync, acl, attr, e2fsprogs, mount, procps, ffmpeg, openssh-server, openssh-client"
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		fvfs_die "missing system packages: ${missing[*]}. Install them with:  sudo apt-get install -y ${missing[*]}"
	fi
	command -v apt-get >/dev/null ||
		fvfs_die "missing system packages (${missing[*]}) and no apt-get here; install their equivalents"
	echo "Installing missing system packages with apt-get: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -q || fvfs_die "apt-get update failed"
	timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" ||
		fvfs_die "apt-get install ${missing[*]} failed"
}
run_step "system packages" system_packages || {
	summary
	exit 1
}

# ---- cargo-installed test tools
cargo_tools() {
	local spec name version
	for spec in "pjdfstest@$PJDFSTEST_VERSION" "fsx@$FSX_VERSION"; do
		name="${spec%@*}"
		version="${spec#*@}"
		if command -v "$name" >/dev/null; then
			fvfs_log "$name present: $(command -v "$name")"
			continue
		fi
		echo "Installing $name $version: cargo install --locked $name --version $version"
		timeout 1800 cargo install --locked "$name" --version "$version" ||
			fvfs_die "cargo install $name failed"
		command -v "$name" >/dev/null || fvfs_die "$name installed but not on PATH (add $CARGO_BIN to PATH)"
	done
}
# ---- PyPI test tools: wsgidav (a WebDAV server on loopback for the WebDAV tier test) and
# duckdb (reads back `fvfsd export --parquet` in crates/fvfsd/tests/export.rs)
python_tools() {
	if command -v wsgidav >/dev/null || python3 -c 'import wsgidav, cheroot' 2>/dev/null; then
		fvfs_log "wsgidav present"
	else
		echo "Installing wsgidav and cheroot from PyPI (WebDAV test server): python3 -m pip install wsgidav cheroot"
		fvfs_pip_install wsgidav cheroot
	fi
	if python3 -c 'import duckdb' 2>/dev/null; then
		fvfs_log "duckdb present"
	else
		echo "Installing duckdb $DUCKDB_VERSION from PyPI (reads the Parquet export): python3 -m pip install duckdb==$DUCKDB_VERSION"
		fvfs_pip_install "duckdb==$DUCKDB_VERSION"
	fi
}
run_step "install wsgidav + duckdb" python_tools || true

if ((suites)); then
	run_step "install pjdfstest + fsx" cargo_tools || true
else
	echo "SKIP: installing pjdfstest and fsx (the POSIX suites will not run)"
	record "install pjdfstest + fsx" SKIP 0
fi

# ---- a private PostgreSQL cluster on loopback (scripts/pg.sh): the metadata engine for
# several hosts, tested with the same suites as SQLite. FVFS_TEST_PG names it to the tests.
PG_URL_FILE="$(fvfs_target_dir)/pg.url"
mkdir -p "$(dirname "$PG_URL_FILE")"
start_postgres() { "$FVFS_ROOT/scripts/pg.sh" start >"$PG_URL_FILE"; }
if run_step "postgresql (private cluster)" start_postgres; then
	FVFS_TEST_PG="$(tail -1 "$PG_URL_FILE")"
	export FVFS_TEST_PG
	fvfs_log "FVFS_TEST_PG=$FVFS_TEST_PG"
fi

# ---- build and test
if ! run_step "cargo build" cargo build --workspace --all-targets; then
	summary
	exit 1
fi
# rustfmt and clippy are rustup components a minimal toolchain may lack.
lint_components() {
	local missing=()
	cargo fmt --version >/dev/null 2>&1 || missing+=(rustfmt)
	cargo clippy --version >/dev/null 2>&1 || missing+=(clippy)
	((${#missing[@]} == 0)) && return 0
	command -v rustup >/dev/null || fvfs_die "cargo ${missing[*]} missing and no rustup to add them"
	echo "Installing rustup components: ${missing[*]}"
	timeout 900 rustup component add "${missing[@]}" || fvfs_die "rustup component add ${missing[*]} failed"
}
if [[ ${FVFS_LINT:-0} == 1 ]]; then
	if run_step "rustfmt + clippy components" lint_components; then
		run_step "cargo fmt --check" cargo fmt --all -- --check || true
		run_step "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings || true
	fi
fi
run_step "fvfsc dependencies" "$FVFS_ROOT/scripts/check-client-deps.sh" || true
# The integration tests read FVFS_REQUIRE_PRIVILEGED themselves (fail instead of skip).
# --no-fail-fast: every test binary runs, so one failure does not hide the others.
run_step "cargo test" cargo test --workspace --no-fail-fast || true
# The same metadata, model and daemon tests on PostgreSQL (fvfs_meta::testing): the
# store's own tests, the POSIX reference model, and the daemon's engine-neutral tests.
# --workspace in both: the test binaries are the ones "cargo test" built (selecting
# packages with -p would unify features differently and rebuild their dependencies).
pg_tests() {
	export FVFS_TEST_META=postgres
	# A fiftieth of the model's cases: each operation is a few round trips to the server
	# (1,000 cases took 700 s here, docs/BENCHMARKS.md "Issue 14").
	export FVFS_MODEL_CASES="${FVFS_MODEL_CASES_PG:-200}"
	local rc=0
	cargo test --workspace --no-fail-fast --lib -- sql:: postgres:: || rc=1
	cargo test --workspace --no-fail-fast --test model --test dump --test gc --test postgres \
		--test trash --test compact || rc=1
	return "$rc"
}
if [[ -n ${FVFS_TEST_PG:-} ]]; then
	run_step "cargo test (PostgreSQL metadata)" pg_tests || true
elif [[ ${FVFS_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
	record "cargo test (PostgreSQL metadata)" "FAIL (no PostgreSQL cluster)" 0
else
	record "cargo test (PostgreSQL metadata)" SKIP 0
fi

# ---- POSIX suites on a real mount (the binaries were built above)
export FVFS_SKIP_BUILD=1
if ((suites)); then
	if command -v pjdfstest >/dev/null; then
		run_step "pjdfstest" "$FVFS_ROOT/scripts/pjdfstest.sh" || true
		# The README's shape too: a local hot tier in front of S3 (the write journal).
		run_step "pjdfstest (hot tier)" env FVFS_HOT_TIER=1 "$FVFS_ROOT/scripts/pjdfstest.sh" || true
		if [[ -n ${FVFS_TEST_PG:-} ]]; then
			run_step "pjdfstest (PostgreSQL metadata)" env FVFS_TEST_META=postgres "$FVFS_ROOT/scripts/pjdfstest.sh" || true
		else
			record "pjdfstest (PostgreSQL metadata)" "FAIL (no PostgreSQL cluster)" 0
		fi
	else
		record "pjdfstest" "FAIL (not installed)" 0
	fi
	if command -v pjdfstest >/dev/null; then
		run_step "pjdfstest (fvfsc mount)" "$FVFS_ROOT/scripts/pjdfstest-client.sh" || true
	else
		record "pjdfstest (fvfsc mount)" "FAIL (not installed)" 0
	fi
	if command -v fsx >/dev/null; then
		# fsx runs beside the schemathesis step below (each with a daemon of its own): the
		# run's wall clock pays for the longer of the two, not their sum.
		FSX_LOG="$(fvfs_target_dir)/fsx-step.log"
		echo
		fvfs_log "==== fsx: $FVFS_ROOT/scripts/fsx.sh (beside schemathesis; output at the end, $FSX_LOG)"
		FSX_START=$SECONDS
		("$FVFS_ROOT/scripts/fsx.sh" >"$FSX_LOG" 2>&1) &
		FSX_PID=$!
	else
		record "fsx" "FAIL (not installed)" 0
	fi
else
	echo "SKIP: pjdfstest and fsx (need root and /dev/fuse, or FVFS_SKIP_SUITES=1 was set)"
	record "pjdfstest" SKIP 0
	record "pjdfstest (hot tier)" SKIP 0
	record "pjdfstest (PostgreSQL metadata)" SKIP 0
	record "pjdfstest (fvfsc mount)" SKIP 0
	record "fsx" SKIP 0
fi
# ---- the HTTP API fuzzed from its own OpenAPI spec (no root needed)
if [[ ${FVFS_SKIP_SUITES:-0} != 1 ]]; then
	run_step "schemathesis (API fuzz)" "$FVFS_ROOT/scripts/schemathesis.sh" || true
else
	record "schemathesis (API fuzz)" SKIP 0
fi

if [[ -n ${FSX_PID:-} ]]; then
	set +e
	wait "$FSX_PID"
	rc=$?
	set -e
	echo
	cat "$FSX_LOG"
	case $rc in
	0) record "fsx" PASS $((SECONDS - FSX_START)) ;;
	"$FVFS_SKIP_RC") record "fsx" SKIP $((SECONDS - FSX_START)) ;;
	*) record "fsx" "FAIL (exit $rc)" $((SECONDS - FSX_START)) ;;
	esac
	fvfs_log "==== fsx: ${STEP_RESULTS[-1]} in ${STEP_SECONDS[-1]}s"
fi

summary
exit "$failed"
