#!/usr/bin/env bash
# fvfsc links neither SQLite nor any storage SDK: it speaks HTTP to fvfsd only. Fails if
# `cargo tree` shows one among fvfsc's normal (non-dev) dependencies, or an fvfs crate of the
# engine (they link them); fvfs-types, fvfs-worker and fvfs-fuse (the FUSE layer over plain
# types) are allowed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tree="$(cargo tree -p fvfsc -e normal --prefix none --no-dedupe | awk '{print $1}' | sort -u)"
bad="$(grep -E '^(fvfs-(meta|tier|chunk|vfs|api|engine)|rusqlite|libsqlite3-sys|sqlx.*|opendal.*|aws-sdk-.*|aws-smithy-.*|s3s.*|postgres.*|tokio-postgres)$' <<<"$tree" || true)"
if [[ -n $bad ]]; then
	echo "fvfsc links forbidden crates: $(tr '\n' ' ' <<<"$bad")" >&2
	exit 1
fi
echo "fvfsc: $(wc -l <<<"$tree") crates, none of SQLite, OpenDAL, S3/AWS SDKs or PostgreSQL"
