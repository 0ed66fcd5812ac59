#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests: `initdb` and `pg_ctl` in a directory of its
# own, listening on 127.0.0.1 only, trust authentication for the local `fvfs` role.
#
#   scripts/pg.sh start     # installs Debian's postgresql if initdb is missing, creates
#                           # the cluster once, starts it; prints the server URL
#   scripts/pg.sh stop
#   scripts/pg.sh url       # the URL of a running cluster
#
# Knobs: FVFS_PG_DIR (default /tmp/fvfs-pg), FVFS_PG_PORT (default 54329).
# Tests take the URL from FVFS_TEST_PG and make a schema of their own in it.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_DIR="${FVFS_PG_DIR:-/tmp/fvfs-pg}"
PG_PORT="${FVFS_PG_PORT:-54329}"
URL="postgres://fvfs@127.0.0.1:$PG_PORT/fvfs"

pg_bin() { # the directory of initdb/pg_ctl (Debian keeps them off PATH)
	local d
	if command -v initdb >/dev/null; then
		dirname "$(readlink -f "$(command -v initdb)")"
		return
	fi
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x $d/initdb ]] && {
			echo "$d"
			return
		}
	done
	return 1
}

# As root, the cluster belongs to the `postgres` user (initdb refuses to run as root).
as_owner() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

install() {
	pg_bin >/dev/null && return 0
	if [[ $(id -u) -ne 0 ]]; then
		[[ ${FVFS_REQUIRE_PRIVILEGED:-0} == 1 ]] &&
			fvfs_die "PostgreSQL is not installed. Install it with:  sudo apt-get install -y postgresql"
		fvfs_skip "PostgreSQL is not installed (sudo apt-get install -y postgresql); its tests will not run"
	fi
	fvfs_log "installing Debian's postgresql (the tests need a real server)"
	export DEBIAN_FRONTEND=noninteractive
	timeout 600 apt-get update -q || fvfs_die "apt-get update failed"
	timeout 900 apt-get install -y -q --no-install-recommends postgresql ||
		fvfs_die "apt-get install postgresql failed"
	pg_bin >/dev/null || fvfs_die "postgresql installed but no initdb found"
}

running() { [[ -f $PG_DIR/data/postmaster.pid ]] && as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; }

start() {
	install
	BIN="$(pg_bin)"
	running || boot
	as_owner "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U fvfs -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'fvfs'" | grep -q 1 ||
		as_owner "$BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U fvfs -d postgres -qc "CREATE DATABASE fvfs" ||
		fvfs_die "cannot create the fvfs database"
	echo "$URL"
}

boot() {
	mkdir -p "$PG_DIR"
	[[ $(id -u) -ne 0 ]] || chown postgres: "$PG_DIR"
	if [[ ! -f $PG_DIR/data/PG_VERSION ]]; then
		fvfs_log "initdb $PG_DIR/data"
		as_owner "$BIN/initdb" -D "$PG_DIR/data" -U fvfs --auth=trust --encoding=UTF8 --locale=C >"$PG_DIR/initdb.log" 2>&1 ||
			fvfs_die "initdb failed: $(tail -5 "$PG_DIR/initdb.log")"
	fi
	# Loopback only, a socket directory of our own, fsync on (the tests judge durability).
	as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=300" start >/dev/null ||
		fvfs_die "pg_ctl start failed: $(tail -5 "$PG_DIR/server.log")"
}

stop() {
	BIN="$(pg_bin)" || return 0
	if running; then as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" -m fast stop >/dev/null; fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url)
	BIN="$(pg_bin)" || fvfs_die "PostgreSQL is not installed"
	running || fvfs_die "the test cluster is not running (scripts/pg.sh start)"
	echo "$URL"
	;;
*) fvfs_die "usage: scripts/pg.sh start|stop|url" ;;
esac
