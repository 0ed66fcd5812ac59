//! The client's on-disk cache of blocks, keyed by content id: `<dir>/<aa>/<64-hex id>`
//! where `aa` is the first two hex digits of the id.
//!
//! Invariants: a file in the cache is only ever trusted after its bytes hash (BLAKE3) to
//! its name; a file that does not is deleted on sight. Files appear whole: they are
//! written to a temporary sibling and renamed into place. The total size of the indexed
//! files stays at or under the byte limit after every `put`: the least recently used
//! entries go first. Recency survives restarts through the files' modification times
//! (set on every hit), from which the index is rebuilt by a directory scan at open.

use bytes::Bytes;
use lru::LruCache;
use parking_lot::Mutex;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Default byte limit of the cache: 1 GiB.
pub const DEFAULT_LIMIT: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot use the block cache at {path}: {error}")]
    Io { path: PathBuf, error: io::Error },
}

/// A thread-safe, size-bounded cache of verified blocks on disk.
pub struct BlockCache {
    dir: PathBuf,
    limit: u64,
    inner: Mutex<Index>,
}

/// The in-memory index: id → size in bytes, least recently used first.
struct Index {
    lru: LruCache<String, u64>,
    total: u64,
}

/// `$XDG_CACHE_HOME/fvfsc/blocks`, else `~/.cache/fvfsc/blocks`.
pub fn default_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("fvfsc").join("blocks"))
}

/// Whether `id` is a block id: 64 lowercase hex digits.
pub fn valid_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl BlockCache {
    /// Opens (creating it if needed) the cache at `dir`, rebuilds the index from the files
    /// found there (oldest use first) and evicts down to `limit`.
    pub fn open(dir: &Path, limit: u64) -> Result<BlockCache, CacheError> {
        let err = |error| CacheError::Io {
            path: dir.to_path_buf(),
            error,
        };
        fs::create_dir_all(dir).map_err(err)?;
        let mut found: Vec<(SystemTime, String, u64)> = Vec::new();
        for shard in fs::read_dir(dir).map_err(err)? {
            let shard = shard.map_err(err)?;
            let name = shard.file_name();
            let Some(prefix) = name.to_str() else {
                continue;
            };
            if prefix.len() != 2 || !shard.file_type().map_err(err)?.is_dir() {
                continue;
            }
            for f in fs::read_dir(shard.path()).map_err(err)? {
                let f = f.map_err(err)?;
                let name = f.file_name();
                let name = name.to_string_lossy();
                let Ok(meta) = f.metadata() else {
                    continue;
                };
                if valid_id(&name) && name.starts_with(prefix) && meta.is_file() {
                    let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    found.push((used, name.into_owned(), meta.len()));
                } else if name.starts_with(".tmp") {
                    // A write interrupted by a crash: never renamed into place.
                    let _ = fs::remove_file(f.path());
                }
            }
        }
        found.sort();
        let mut index = Index {
            lru: LruCache::unbounded(),
            total: 0,
        };
        for (_, id, len) in found {
            index.total += len;
            index.lru.put(id, len);
        }
        let cache = BlockCache {
            dir: dir.to_path_buf(),
            limit,
            inner: Mutex::new(index),
        };
        cache.evict(&mut cache.inner.lock());
        Ok(cache)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// True if the index knows `id` (no read, no verification, no LRU update): for
    /// readahead, which skips blocks already here.
    pub fn contains(&self, id: &str) -> bool {
        self.inner.lock().lru.peek(id).is_some()
    }

    /// Bytes currently indexed.
    pub fn used(&self) -> u64 {
        self.inner.lock().total
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(&id[..2]).join(id)
    }

    /// The block `id` if cached and intact. A cached file whose bytes do not hash to `id`
    /// is removed and reported as a miss. A valid file the index does not know (written by
    /// another process sharing the directory) joins the index.
    pub fn get(&self, id: &str) -> Option<Bytes> {
        if !valid_id(id) {
            return None;
        }
        let path = self.path(id);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(_) => {
                self.forget(id);
                return None;
            }
        };
        if blake3::hash(&data).to_hex().as_str() != id {
            tracing::warn!(block = id, "corrupt block in the cache: removed");
            let _ = fs::remove_file(&path);
            self.forget(id);
            return None;
        }
        {
            let mut index = self.inner.lock();
            if index.lru.get(id).is_none() {
                index.lru.put(id.to_string(), data.len() as u64);
                index.total += data.len() as u64;
                self.evict(&mut index);
            }
        }
        // The mtime records the last use so that the order survives a restart.
        if let Ok(f) = fs::File::open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(Bytes::from(data))
    }

    /// Stores `bytes` as block `id` (the caller has verified them) and evicts the least
    /// recently used blocks until the cache is under its limit. A block larger than the
    /// limit is not stored.
    pub fn put(&self, id: &str, bytes: &[u8]) -> io::Result<()> {
        if !valid_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a block id",
            ));
        }
        let len = bytes.len() as u64;
        if len > self.limit {
            return Ok(());
        }
        if self.inner.lock().lru.get(id).is_some() {
            return Ok(());
        }
        let shard = self.dir.join(&id[..2]);
        fs::create_dir_all(&shard)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp")
            .tempfile_in(&shard)?;
        tmp.write_all(bytes)?;
        tmp.persist(self.path(id)).map_err(|e| e.error)?;
        let mut index = self.inner.lock();
        if let Some(old) = index.lru.put(id.to_string(), len) {
            index.total -= old;
        }
        index.total += len;
        self.evict(&mut index);
        Ok(())
    }

    fn forget(&self, id: &str) {
        let mut index = self.inner.lock();
        if let Some(len) = index.lru.pop(id) {
            index.total -= len;
        }
    }

    fn evict(&self, index: &mut Index) {
        while index.total > self.limit {
            let Some((id, len)) = index.lru.pop_lru() else {
                break;
            };
            index.total -= len;
            if let Err(e) = fs::remove_file(self.path(&id)) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(block = %id, error = %e, "cannot evict a cached block");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8, len: usize) -> (String, Vec<u8>) {
        let data = vec![n; len];
        (blake3::hash(&data).to_hex().to_string(), data)
    }

    #[test]
    fn verifies_and_removes_corrupt_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(dir.path(), 1 << 20).unwrap();
        let (id, data) = block(1, 1000);
        assert!(cache.get(&id).is_none());
        cache.put(&id, &data).unwrap();
        assert_eq!(cache.get(&id).unwrap(), data);
        assert_eq!(cache.used(), 1000);
        let path = dir.path().join(&id[..2]).join(&id);
        fs::write(&path, b"garbage").unwrap();
        assert!(cache.get(&id).is_none());
        assert!(!path.exists());
        assert_eq!(cache.used(), 0);
        assert!(cache.put("nothex", b"x").is_err());
    }

    #[test]
    fn evicts_least_recently_used_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BlockCache::open(dir.path(), 3000).unwrap();
        let blocks: Vec<_> = (0..3).map(|n| block(n, 1000)).collect();
        for (id, data) in &blocks {
            cache.put(id, data).unwrap();
        }
        // Use block 0 so that block 1 is the least recently used.
        assert!(cache.get(&blocks[0].0).is_some());
        let (id3, data3) = block(3, 1000);
        cache.put(&id3, &data3).unwrap();
        assert!(cache.used() <= 3000);
        assert!(cache.get(&blocks[1].0).is_none());
        assert!(cache.get(&blocks[0].0).is_some());
        assert!(cache.get(&blocks[2].0).is_some());
        assert!(cache.get(&id3).is_some());
        // A file another process put there joins the index.
        let (id4, data4) = block(4, 500);
        let other = BlockCache::open(dir.path(), 3000).unwrap();
        other.put(&id4, &data4).unwrap();
        assert_eq!(cache.get(&id4).unwrap(), data4);
        assert!(cache.used() <= 3000);
        // Larger than the limit: not stored.
        let (big, data) = block(9, 4000);
        cache.put(&big, &data).unwrap();
        assert!(cache.get(&big).is_none());
    }

    #[test]
    fn survives_a_reopen_in_use_order() {
        let dir = tempfile::tempdir().unwrap();
        let blocks: Vec<_> = (0..3).map(|n| block(n, 100)).collect();
        {
            let cache = BlockCache::open(dir.path(), 10_000).unwrap();
            for (i, (id, data)) in blocks.iter().enumerate() {
                cache.put(id, data).unwrap();
                let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i as u64);
                let f = fs::File::open(dir.path().join(&id[..2]).join(id)).unwrap();
                f.set_modified(when).unwrap();
            }
            // A leftover of an interrupted write.
            fs::write(dir.path().join(&blocks[0].0[..2]).join(".tmpXYZ"), b"x").unwrap();
        }
        // Reopen with room for two: the oldest (block 0) goes.
        let cache = BlockCache::open(dir.path(), 200).unwrap();
        assert_eq!(cache.used(), 200);
        assert!(cache.get(&blocks[0].0).is_none());
        assert_eq!(cache.get(&blocks[1].0).unwrap(), blocks[1].1);
        assert_eq!(cache.get(&blocks[2].0).unwrap(), blocks[2].1);
        assert!(!dir.path().join(&blocks[0].0[..2]).join(".tmpXYZ").exists());
    }
}
