# shellcheck shell=bash
# Shared helpers for the fvfs test and benchmark scripts. Source it, do not run it:
#
#   . "$(dirname "$0")/lib.sh"
#
# It provides: messages (fvfs_log / fvfs_die / fvfs_skip), privilege checks, the S3 test
# server (fvfs_start_s3), format (fvfs_format), mount (fvfs_mount, fvfs_wait_for_mount) and a
# teardown (fvfs_teardown) that is safe to call from an EXIT trap, any number of times.
#
# Environment knobs (all optional):
#   FVFS_REQUIRE_PRIVILEGED=1  missing root or /dev/fuse is an error instead of a SKIP
#   FVFS_SKIP_BUILD=1          do not run `cargo build --bins` (scripts/test.sh already built)
#   FVFS_TMPDIR=DIR            parent of the scratch directories (default /var/tmp)
#   FVFS_KEEP_TMP=1            keep the scratch directory after the run (for debugging)
#   FVFS_LOG_NAME=NAME         teardown copies the daemon logs to target/NAME-{fvfsd,s3}.log
#   FVFS_MOUNT_TIMEOUT=S       seconds to wait for a mount to go live (default 60)
#   FVFS_S3_TIMEOUT=S          seconds to wait for the S3 server's endpoint line (default 30)
#   FVFS_PROFILE=release       use target/release binaries (built with --release)
#   CARGO_TARGET_DIR           honoured when locating the binaries

# Exit status a script uses to say "skipped" (the automake convention).
FVFS_SKIP_RC=77

# Repository root (scripts/..), absolute.
FVFS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export FVFS_ROOT

# Some S3 clients fail to load the CA bundle this variable points at on dev machines;
# the test server is plain HTTP on 127.0.0.1 anyway.
unset AWS_CA_BUNDLE

fvfs_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
fvfs_warn() { printf '[%s] WARNING: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fvfs_die() {
	printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2
	exit 1
}
# fvfs_skip REASON: print a visible SKIP line and exit with FVFS_SKIP_RC.
fvfs_skip() {
	printf '[%s] SKIP: %s\n' "$(date +%H:%M:%S)" "$*"
	exit "$FVFS_SKIP_RC"
}

fvfs_target_dir() { printf '%s\n' "${CARGO_TARGET_DIR:-$FVFS_ROOT/target}"; }
# FVFS_PROFILE=release selects target/release (and `cargo build --release`); default debug.
fvfs_bin_dir() {
	if [[ ${FVFS_PROFILE:-debug} == release ]]; then
		printf '%s/release\n' "$(fvfs_target_dir)"
	else
		printf '%s/debug\n' "$(fvfs_target_dir)"
	fi
}

# fvfs_privileged_ok: true when we are root and /dev/fuse exists.
fvfs_privileged_ok() { [[ $(id -u) -eq 0 && -c /dev/fuse ]]; }

# fvfs_require_privileged WHAT: the privileged part WHAT needs root and /dev/fuse. Returns
# when they are there; otherwise fails (FVFS_REQUIRE_PRIVILEGED=1) or SKIPs (exit 77).
fvfs_require_privileged() {
	local what="$1" why=""
	[[ $(id -u) -eq 0 ]] || why="not running as root"
	[[ -c /dev/fuse ]] || why="${why:+$why and }/dev/fuse is missing"
	[[ -z $why ]] && return 0
	if [[ ${FVFS_REQUIRE_PRIVILEGED:-0} == 1 ]]; then
		fvfs_die "$what needs root and /dev/fuse, but $why (FVFS_REQUIRE_PRIVILEGED=1)"
	fi
	fvfs_skip "$what: $why (set FVFS_REQUIRE_PRIVILEGED=1 to make this an error)"
}

# fvfs_build_bins: make sure target/debug/{fvfsd,fvfs-s3-server} are built and current.
fvfs_build_bins() {
	if [[ ${FVFS_SKIP_BUILD:-0} != 1 ]]; then
		local profile=()
		[[ ${FVFS_PROFILE:-debug} != release ]] || profile=(--release)
		fvfs_log "building binaries: cargo build --bins ${profile[*]}"
		(cd "$FVFS_ROOT" && cargo build --bins "${profile[@]}") || fvfs_die "cargo build --bins failed"
	fi
	local b
	for b in fvfsd fvfsc fvfs-s3-server; do
		[[ -x "$(fvfs_bin_dir)/$b" ]] || fvfs_die "$(fvfs_bin_dir)/$b is missing (cargo build --bins)"
	done
	FVFSD="$(fvfs_bin_dir)/fvfsd"
	FVFS_S3_SERVER="$(fvfs_bin_dir)/fvfs-s3-server"
}

# fvfs_mktemp NAME: create the scratch directory FVFS_WORK (on disk, not tmpfs by default).
fvfs_mktemp() {
	local parent="${FVFS_TMPDIR:-/var/tmp}"
	mkdir -p "$parent"
	FVFS_WORK="$(mktemp -d "$parent/fvfs-$1.XXXXXX")"
	# mktemp makes it 0700: the POSIX suites switch to other users, who must reach the mount.
	chmod 0755 "$FVFS_WORK"
	fvfs_log "scratch directory: $FVFS_WORK"
}

# fvfs_wait_for_file_line FILE PATTERN TIMEOUT PID: wait until FILE has a line matching
# PATTERN (grep -E); fail early if PID dies. Prints the line.
fvfs_wait_for_file_line() {
	local file="$1" pattern="$2" timeout="$3" pid="$4" deadline line
	deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		if line="$(grep -E -m1 "$pattern" "$file" 2>/dev/null)"; then
			printf '%s\n' "$line"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# fvfs_start_s3: start fvfs-s3-server on FVFS_WORK/s3 (port 0). Sets FVFS_S3_PID,
# FVFS_S3_ENDPOINT, FVFS_S3_BUCKET and exports AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
fvfs_start_s3() {
	export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID_TEST:-fvfs-test-key}"
	export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY_TEST:-fvfs-test-secret}"
	export AWS_REGION=us-east-1
	mkdir -p "$FVFS_WORK/s3"
	fvfs_log "starting S3 test server on $FVFS_WORK/s3"
	"$FVFS_S3_SERVER" --root "$FVFS_WORK/s3" --bucket fvfs --port 0 \
		--access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
		>"$FVFS_WORK/s3.out" 2>"$FVFS_WORK/s3.log" </dev/null &
	FVFS_S3_PID=$!
	local line
	if ! line="$(fvfs_wait_for_file_line "$FVFS_WORK/s3.out" '^endpoint=' "${FVFS_S3_TIMEOUT:-30}" "$FVFS_S3_PID")"; then
		cat "$FVFS_WORK/s3.out" "$FVFS_WORK/s3.log" >&2 || true
		fvfs_die "fvfs-s3-server did not print its endpoint line within ${FVFS_S3_TIMEOUT:-30}s"
	fi
	FVFS_S3_ENDPOINT="$(sed -E 's/.*endpoint=([^ ]+).*/\1/' <<<"$line")"
	FVFS_S3_BUCKET="fvfs"
	if [[ $line == *bucket=* ]]; then
		FVFS_S3_BUCKET="$(sed -E 's/.*bucket=([^ ]+).*/\1/' <<<"$line")"
	fi
	[[ $FVFS_S3_ENDPOINT == http://* ]] || fvfs_die "cannot parse the S3 endpoint from: $line"
	fvfs_log "S3 server pid $FVFS_S3_PID at $FVFS_S3_ENDPOINT (bucket $FVFS_S3_BUCKET)"
}

# fvfs_s3_location PREFIX: the --storage location of PREFIX in the test bucket.
fvfs_s3_location() {
	printf 's3://%s/%s?endpoint=%s&region=us-east-1&path_style=true\n' \
		"$FVFS_S3_BUCKET" "$1" "$FVFS_S3_ENDPOINT"
}

# fvfs_meta_url: the metadata URL of a fresh filesystem: FVFS_WORK/meta.db, or with
# FVFS_TEST_META=postgres a new schema of its own in the server FVFS_TEST_PG names
# (scripts/pg.sh start prints it), as the Rust tests do (fvfs_meta::testing).
fvfs_meta_url() {
	if [[ ${FVFS_TEST_META:-sqlite} != postgres ]]; then
		echo "sqlite://$FVFS_WORK/meta.db"
		return
	fi
	[[ -n ${FVFS_TEST_PG:-} ]] || fvfs_die "FVFS_TEST_META=postgres needs FVFS_TEST_PG (scripts/pg.sh start prints it)"
	local schema="fvfs_sh_$$_$RANDOM"
	psql "$FVFS_TEST_PG" -qc "CREATE SCHEMA $schema" >/dev/null || fvfs_die "cannot create schema $schema in $FVFS_TEST_PG"
	echo "$FVFS_TEST_PG?options=-csearch_path%3D$schema"
}

# fvfs_format [EXTRA FORMAT ARGS...]: format a fresh filesystem (fvfs_meta_url). Sets
# FVFS_META. Pass the --storage arguments.
fvfs_format() {
	FVFS_META="$(fvfs_meta_url)"
	fvfs_log "fvfsd format --meta $FVFS_META $*"
	timeout 120 "$FVFSD" format --meta "$FVFS_META" "$@" </dev/null ||
		fvfs_die "fvfsd format failed"
}

# fvfs_mount MOUNTPOINT: mount FVFS_META on MOUNTPOINT. The daemon runs in --foreground under
# our control (so we know its pid, FVFS_MOUNT_PID, and its log, FVFS_WORK/mount.log); returns
# once the mount is live.
fvfs_mount() {
	FVFS_MNT="$1"
	mkdir -p "$FVFS_MNT" "$FVFS_WORK/cache"
	fvfs_log "fvfsd mount --meta $FVFS_META --cache-dir $FVFS_WORK/cache --foreground $FVFS_MNT"
	RUST_LOG="${RUST_LOG:-warn}" "$FVFSD" mount --meta "$FVFS_META" --cache-dir "$FVFS_WORK/cache" \
		--foreground "$FVFS_MNT" >"$FVFS_WORK/mount.log" 2>&1 </dev/null &
	FVFS_MOUNT_PID=$!
	fvfs_wait_for_mount "$FVFS_MNT" "${FVFS_MOUNT_TIMEOUT:-60}" "$FVFS_MOUNT_PID" || {
		tail -n 50 "$FVFS_WORK/mount.log" >&2 || true
		fvfs_die "the mount on $FVFS_MNT did not go live within ${FVFS_MOUNT_TIMEOUT:-60}s"
	}
	fvfs_log "mounted $FVFS_MNT (daemon pid $FVFS_MOUNT_PID, log $FVFS_WORK/mount.log)"
}

# fvfs_is_fvfs_mount DIR: true when DIR is a FUSE mount point.
fvfs_is_fuse_mount() {
	local fstype
	fstype="$(findmnt -n -o FSTYPE --mountpoint "$1" 2>/dev/null | tail -n1)" || return 1
	[[ $fstype == fuse* ]]
}

# fvfs_wait_for_mount DIR TIMEOUT [PID]: wait until DIR is a live FUSE mount that answers
# stat; fail early if PID (the daemon) exits.
fvfs_wait_for_mount() {
	local dir="$1" timeout="$2" pid="${3:-}" deadline
	deadline=$((SECONDS + timeout))
	while ((SECONDS < deadline)); do
		if fvfs_is_fuse_mount "$dir" && timeout 10 stat "$dir" >/dev/null 2>&1; then
			return 0
		fi
		if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
			fvfs_warn "the mount daemon (pid $pid) exited before the mount went live"
			return 1
		fi
		sleep 0.2
	done
	return 1
}

# fvfs_wait_pid PID TIMEOUT: wait up to TIMEOUT seconds for PID to exit. True when it did.
fvfs_wait_pid() {
	local pid="$1" deadline=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
	wait "$pid" 2>/dev/null || true
	return 0
}

# fvfs_stop_pid PID NAME: SIGTERM, wait 15 s, then SIGKILL.
fvfs_stop_pid() {
	local pid="$1" name="$2"
	kill -0 "$pid" 2>/dev/null || {
		wait "$pid" 2>/dev/null || true
		return 0
	}
	kill -TERM "$pid" 2>/dev/null || true
	if ! fvfs_wait_pid "$pid" 15; then
		fvfs_warn "$name (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		fvfs_wait_pid "$pid" 5 || fvfs_warn "$name (pid $pid) is still alive"
	fi
}

# fvfs_unmount DIR: unmount DIR if it is mounted (umount, then fusermount3 -u, then lazy).
fvfs_unmount() {
	local dir="$1"
	fvfs_is_fuse_mount "$dir" || return 0
	fvfs_log "unmounting $dir"
	timeout 60 umount "$dir" 2>/dev/null ||
		timeout 60 fusermount3 -u "$dir" 2>/dev/null ||
		{
			fvfs_warn "clean unmount of $dir failed; lazy unmount"
			timeout 30 umount -l "$dir" 2>/dev/null || timeout 30 fusermount3 -uz "$dir" 2>/dev/null || true
		}
}

# fvfs_teardown: unmount, stop the daemon and the S3 server, remove the scratch directory.
# Idempotent; meant for `trap fvfs_teardown EXIT`. Keeps the exit status of the script.
# A script may define fvfs_on_teardown for its own cleanup; it runs first.
fvfs_teardown() {
	local rc=$?
	set +e
	if declare -F fvfs_on_teardown >/dev/null; then
		fvfs_on_teardown # a script's own cleanup, run first
	fi
	fvfs_stop_serve
	if [[ -n ${FVFS_MNT:-} ]]; then
		fvfs_unmount "$FVFS_MNT"
	fi
	if [[ -n ${FVFS_MOUNT_PID:-} ]]; then
		# After umount the daemon exits by itself; give it time to flush, then stop it.
		if ! fvfs_wait_pid "$FVFS_MOUNT_PID" 60; then
			fvfs_warn "fvfsd (pid $FVFS_MOUNT_PID) did not exit within 60s after unmount"
			fvfs_stop_pid "$FVFS_MOUNT_PID" fvfsd
		fi
		FVFS_MOUNT_PID=""
	fi
	if [[ -n ${FVFS_S3_PID:-} ]]; then
		fvfs_stop_pid "$FVFS_S3_PID" fvfs-s3-server
		FVFS_S3_PID=""
	fi
	if [[ -n ${FVFS_WORK:-} && -d $FVFS_WORK ]]; then
		if [[ -n ${FVFS_LOG_NAME:-} ]]; then
			mkdir -p "$(fvfs_target_dir)"
			cp -f "$FVFS_WORK/mount.log" "$(fvfs_target_dir)/$FVFS_LOG_NAME-fvfsd.log" 2>/dev/null
			cp -f "$FVFS_WORK/s3.log" "$(fvfs_target_dir)/$FVFS_LOG_NAME-s3.log" 2>/dev/null
			cp -f "$FVFS_WORK/serve.log" "$(fvfs_target_dir)/$FVFS_LOG_NAME-serve.log" 2>/dev/null
			cp -f "$FVFS_WORK/client.log" "$(fvfs_target_dir)/$FVFS_LOG_NAME-client.log" 2>/dev/null
		fi
		if [[ ${FVFS_KEEP_TMP:-0} == 1 || $rc -ne 0 && $rc -ne $FVFS_SKIP_RC ]]; then
			# Keep the data and metadata of a failed run for fsck and post-mortems.
			fvfs_log "kept scratch directory $FVFS_WORK (logs: mount.log, s3.log)"
		elif fvfs_is_fuse_mount "${FVFS_MNT:-/nonexistent}"; then
			fvfs_warn "$FVFS_MNT is still mounted; not removing $FVFS_WORK"
		else
			rm -rf "$FVFS_WORK"
		fi
		FVFS_WORK=""
	fi
	FVFS_MNT=""
	return "$rc"
}

# fvfs_umount_and_wait: unmount FVFS_MNT and wait for the daemon to exit (it flushes first).
fvfs_umount_and_wait() {
	fvfs_unmount "$FVFS_MNT"
	if ! fvfs_wait_pid "$FVFS_MOUNT_PID" 120; then
		fvfs_warn "fvfsd (pid $FVFS_MOUNT_PID) did not exit within 120s after unmount"
		fvfs_stop_pid "$FVFS_MOUNT_PID" fvfsd
	fi
	FVFS_MOUNT_PID=""
}

# fvfs_remount: unmount and mount FVFS_META again on FVFS_MNT (a fresh daemon process).
fvfs_remount() {
	local mnt="$FVFS_MNT"
	fvfs_umount_and_wait
	cp -f "$FVFS_WORK/mount.log" "$FVFS_WORK/mount.log.$(date +%s)" 2>/dev/null || true
	fvfs_mount "$mnt"
}

# fvfs_setup_fs NAME PREFIX: the common "S3 server + format + mount" used by the suites.
# With FVFS_HOT_TIER=1 a local directory tier sits in front of S3 (the README's shape: fsync
# and close acknowledged from the write journal); otherwise S3 is the only tier.
# Sets FVFS_WORK, FVFS_MNT (= FVFS_WORK/mnt), FVFS_MOUNT_PID, FVFS_S3_*. Installs the trap.
fvfs_setup_fs() {
	local name="$1" prefix="$2"
	shift 2
	trap fvfs_teardown EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	fvfs_mktemp "$name"
	fvfs_start_s3
	if [[ ${FVFS_HOT_TIER:-0} == 1 ]]; then
		fvfs_format --tier "hot=$FVFS_WORK/hot" --tier "s3=$(fvfs_s3_location "$prefix")" "$@"
	else
		fvfs_format --storage "$(fvfs_s3_location "$prefix")" "$@"
	fi
	fvfs_mount "$FVFS_WORK/mnt"
}

# fvfs_serve [EXTRA SERVE ARGS...]: start `fvfsd serve --no-mount --port 0` on FVFS_META (the
# HTTP API on 127.0.0.1, its state beside the metadata in FVFS_WORK); with FVFS_SERVE_MOUNT=DIR
# the daemon also mounts the filesystem at DIR (ready once the api line is printed);
# FVFS_SERVE_DAEMON holds extra `[daemon]` lines (e.g. "allow_devices = true"). Sets FVFS_SERVE_PID,
# FVFS_URL (from the daemon's `api <url>` line) and FVFS_TOKEN (the admin token written at
# format); the daemon's log is FVFS_WORK/serve.log.
fvfs_serve() {
	local mount=(--no-mount)
	if [[ -n ${FVFS_SERVE_MOUNT:-} ]]; then
		# The daemon's own FUSE mount at FVFS_SERVE_MOUNT (mDNS off: a benchmark, not a LAN).
		mkdir -p "$FVFS_SERVE_MOUNT"
		printf '[daemon]\nmount_path = "%s"\nmdns = false\n%s\n' "$FVFS_SERVE_MOUNT" "${FVFS_SERVE_DAEMON:-}" >"$FVFS_WORK/serve.toml"
		mount=(--config "$FVFS_WORK/serve.toml")
	elif [[ -n ${FVFS_SERVE_DAEMON:-} ]]; then
		printf '[daemon]\n%s\n' "$FVFS_SERVE_DAEMON" >"$FVFS_WORK/serve.toml"
		mount=(--no-mount --config "$FVFS_WORK/serve.toml")
	fi
	fvfs_log "fvfsd serve --meta $FVFS_META ${mount[*]} --bind 127.0.0.1 --port 0 $*"
	RUST_LOG="${RUST_LOG:-warn}" "$FVFSD" serve --meta "$FVFS_META" "${mount[@]}" --bind 127.0.0.1 --port 0 "$@" \
		>"$FVFS_WORK/serve.out" 2>"$FVFS_WORK/serve.log" </dev/null &
	FVFS_SERVE_PID=$!
	local line
	if ! line="$(fvfs_wait_for_file_line "$FVFS_WORK/serve.out" '^api ' 60 "$FVFS_SERVE_PID")"; then
		cat "$FVFS_WORK/serve.out" "$FVFS_WORK/serve.log" >&2 || true
		fvfs_die "fvfsd serve did not print its api line within 60s"
	fi
	FVFS_URL="${line#api }"
	[[ -r $FVFS_WORK/admin.token ]] || fvfs_die "no admin token at $FVFS_WORK/admin.token"
	FVFS_TOKEN="$(tr -d '[:space:]' <"$FVFS_WORK/admin.token")"
	export FVFSD_URL="$FVFS_URL" FVFS_TOKEN
	fvfs_log "fvfsd serve pid $FVFS_SERVE_PID at $FVFS_URL"
}

# fvfs_client_mount MOUNTPOINT: `fvfsc mount` of the daemon started by fvfs_serve. Sets
# FVFS_CLIENT_PID (log FVFS_WORK/client.log); returns once the mount is live.
fvfs_client_mount() {
	FVFS_CLIENT_MNT="$1"
	mkdir -p "$FVFS_CLIENT_MNT" "$FVFS_WORK/client-cache"
	fvfs_log "fvfsc mount $FVFS_CLIENT_MNT (cache $FVFS_WORK/client-cache)"
	RUST_LOG="${RUST_LOG:-warn}" "$(fvfs_bin_dir)/fvfsc" --url "$FVFS_URL" --token "$FVFS_TOKEN" \
		mount --foreground --cache-dir "$FVFS_WORK/client-cache" "$FVFS_CLIENT_MNT" \
		>"$FVFS_WORK/client.log" 2>&1 </dev/null &
	FVFS_CLIENT_PID=$!
	fvfs_wait_for_mount "$FVFS_CLIENT_MNT" "${FVFS_MOUNT_TIMEOUT:-60}" "$FVFS_CLIENT_PID" || {
		tail -n 50 "$FVFS_WORK/client.log" >&2 || true
		fvfs_die "fvfsc mount on $FVFS_CLIENT_MNT did not go live"
	}
}

# fvfs_stop_serve: unmount the client mount (if any), then SIGTERM the daemon and wait.
fvfs_stop_serve() {
	if [[ -n ${FVFS_CLIENT_MNT:-} ]]; then
		fvfs_unmount "$FVFS_CLIENT_MNT"
		[[ -z ${FVFS_CLIENT_PID:-} ]] || fvfs_stop_pid "$FVFS_CLIENT_PID" fvfsc
		FVFS_CLIENT_MNT="" FVFS_CLIENT_PID=""
	fi
	if [[ -n ${FVFS_SERVE_PID:-} ]]; then
		fvfs_stop_pid "$FVFS_SERVE_PID" "fvfsd serve"
		FVFS_SERVE_PID=""
	fi
}

# fvfs_pjdfstest_config FILE FEATURE...: write a pjdfstest 0.2.2 configuration (schema:
# its src/config.rs) enabling FEATUREs, with the two dummy users the suite switches to
# (nobody/nogroup, daemon/daemon) and no remounting.
fvfs_pjdfstest_config() {
	local file="$1" f
	shift
	{
		echo "# Written by scripts/lib.sh (fvfs_pjdfstest_config). Schema: pjdfstest 0.2.2 src/config.rs."
		echo "[features]"
		for f in "$@"; do echo "$f = {}"; done
		printf '\n[settings]\nnaptime = 0.01\nallow_remount = false\n'
		printf '\n[dummy_auth]\nentries = [["nobody", "nogroup"], ["daemon", "daemon"]]\n'
	} >"$file"
}

# fvfs_pip_install PKG...: install Python packages for the test tools (wsgidav, schemathesis).
# A fresh Debian has neither python3 nor pip: as root with apt-get they are installed first.
# Debian's system Python refuses `pip install` outside a venv (PEP 668); these are test
# tools of a throwaway machine, so the install is retried with --break-system-packages.
fvfs_pip_install() {
	if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
		[[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null ||
			fvfs_die "python3 with pip is needed for $*: install python3-pip"
		fvfs_log "installing python3-pip with apt-get (for $*)"
		export DEBIAN_FRONTEND=noninteractive
		timeout 600 apt-get update -q >/dev/null || fvfs_die "apt-get update failed"
		timeout 900 apt-get install -y -q --no-install-recommends python3 python3-pip >/dev/null ||
			fvfs_die "apt-get install python3-pip failed"
	fi
	timeout 900 python3 -m pip install --quiet "$@" ||
		timeout 900 python3 -m pip install --quiet --break-system-packages "$@" ||
		fvfs_die "pip install $* failed"
	# pip puts console scripts in ~/.local/bin for a user install.
	if [[ -d $HOME/.local/bin && :$PATH: != *":$HOME/.local/bin:"* ]]; then
		export PATH="$HOME/.local/bin:$PATH"
	fi
}
