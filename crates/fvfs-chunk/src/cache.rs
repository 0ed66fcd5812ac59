//! Block caches: [`MemCache`] (decoded blocks in RAM) and [`DiskCache`] (stored
//! blocks in a local directory).
//!
//! Invariants:
//! - both are byte-limited LRUs; an entry larger than the limit is simply not cached;
//! - the caches never verify content: callers decode and verify what they get back
//!   (and remove a bad entry);
//! - a disk-cache failure (full disk, permission, I/O error) never fails the caller:
//!   writes are best effort with one rate-limited warning, reads of a broken entry
//!   are misses;
//! - on disk, an entry is `DIR/{hex[0..2]}/{hex[2..4]}/{hex}` and appears only
//!   complete (written to `DIR/tmp/` then renamed); the index is rebuilt at open by
//!   scanning the directory, ordered by modification time, which a hit refreshes.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use fvfs_types::BlockId;
use lru::LruCache;
use parking_lot::Mutex;

use crate::error::ChunkError;

/// Byte-limited LRU of decoded (plain) blocks.
pub struct MemCache {
    inner: Mutex<MemInner>,
    limit: u64,
}

struct MemInner {
    lru: LruCache<BlockId, Bytes>,
    bytes: u64,
    /// The last get or insert: an idle cache is emptied (`clear_if_idle`).
    used: Instant,
}

impl MemCache {
    /// A cache holding at most `limit` bytes of block data (0 disables it).
    pub fn new(limit: u64) -> MemCache {
        MemCache {
            inner: Mutex::new(MemInner {
                lru: LruCache::unbounded(),
                bytes: 0,
                used: Instant::now(),
            }),
            limit,
        }
    }

    /// The block, marking it most recently used.
    pub fn get(&self, id: &BlockId) -> Option<Bytes> {
        let mut g = self.inner.lock();
        g.used = Instant::now();
        g.lru.get(id).cloned()
    }

    /// Empties the cache when nothing used it for `idle`: an idle process holds no block
    /// data (the kernel's page cache and the disk cache still serve re-reads). Returns
    /// the bytes dropped.
    pub fn clear_if_idle(&self, idle: Duration) -> u64 {
        let mut g = self.inner.lock();
        if g.bytes == 0 || g.used.elapsed() < idle {
            return 0;
        }
        let dropped = g.bytes;
        g.lru.clear();
        g.bytes = 0;
        dropped
    }

    /// Caches a block, evicting least recently used ones to stay within the limit.
    pub fn insert(&self, id: BlockId, data: Bytes) {
        let len = data.len() as u64;
        if len > self.limit {
            return;
        }
        let mut g = self.inner.lock();
        g.used = Instant::now();
        if let Some(old) = g.lru.put(id, data) {
            g.bytes -= old.len() as u64;
        }
        g.bytes += len;
        while g.bytes > self.limit {
            match g.lru.pop_lru() {
                Some((_, v)) => g.bytes -= v.len() as u64,
                None => break,
            }
        }
    }

    /// Drops a block if cached.
    pub fn remove(&self, id: &BlockId) {
        let mut g = self.inner.lock();
        if let Some(v) = g.lru.pop(id) {
            g.bytes -= v.len() as u64;
        }
    }

    /// Bytes currently cached.
    pub fn bytes(&self) -> u64 {
        self.inner.lock().bytes
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.inner.lock().lru.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Minimum interval between two "disk cache write failed" warnings.
const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// A hit refreshes the file's mtime (its persistent LRU position) at most this often.
const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Directory of stored (encoded) blocks with a byte limit and LRU eviction. All
/// methods do blocking file I/O: call them from a blocking thread.
pub struct DiskCache {
    dir: PathBuf,
    limit: u64,
    index: Mutex<DiskIndex>,
    tmp_seq: AtomicU64,
    started: Instant,
    /// Milliseconds after `started` of the last warning, plus one (0 = never).
    last_warn: AtomicU64,
    /// Whether every entry already on disk is indexed; until then a block missing from
    /// the index is looked for on disk ([`DiskCache::open_scanning`]).
    scanned: AtomicBool,
}

struct DiskIndex {
    /// id → stored size.
    lru: LruCache<BlockId, u64>,
    bytes: u64,
}

fn fanout(dir: &Path, id: &BlockId) -> PathBuf {
    let hex = id.to_hex();
    dir.join(&hex[0..2]).join(&hex[2..4]).join(hex)
}

impl DiskCache {
    /// Opens (creating if needed) a cache in `dir` limited to `limit` bytes, indexing
    /// the entries already there, oldest first; stray temp files are deleted and the
    /// cache is trimmed to the limit.
    pub fn open(dir: &Path, limit: u64) -> Result<DiskCache, ChunkError> {
        let cache = DiskCache::open_unscanned(dir, limit)?;
        cache.index_existing()?;
        Ok(cache)
    }

    /// [`DiskCache::open`] without waiting for the index: the entries already on disk
    /// are indexed by a thread of its own (a large cache takes a walk of every file,
    /// which a mount must not wait for). Until it is done, a block missing from the
    /// index is read from disk if there and indexed then.
    pub fn open_scanning(dir: &Path, limit: u64) -> Result<Arc<DiskCache>, ChunkError> {
        let cache = Arc::new(DiskCache::open_unscanned(dir, limit)?);
        let bg = cache.clone();
        let spawned = std::thread::Builder::new()
            .name("fvfs-cache-scan".into())
            .spawn(move || {
                if let Err(e) = bg.index_existing() {
                    tracing::warn!(cache = %bg.dir.display(), error = %e, "cannot index the block cache; it fills again as blocks are read");
                    bg.scanned.store(true, Ordering::Release);
                }
            });
        if spawned.is_err() {
            cache.index_existing()?;
        }
        Ok(cache)
    }

    fn open_unscanned(dir: &Path, limit: u64) -> Result<DiskCache, ChunkError> {
        let ctx = |what: &str| format!("block cache {}: cannot {what}", dir.display());
        fs::create_dir_all(dir.join("tmp")).map_err(|e| ChunkError::io(ctx("create it"), e))?;
        if let Ok(rd) = fs::read_dir(dir.join("tmp")) {
            for e in rd.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
        Ok(DiskCache {
            dir: dir.to_path_buf(),
            limit,
            index: Mutex::new(DiskIndex {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
            tmp_seq: AtomicU64::new(0),
            started: Instant::now(),
            last_warn: AtomicU64::new(0),
            scanned: AtomicBool::new(false),
        })
    }

    /// Indexes the entries on disk that the index lacks, as older than every indexed
    /// one (oldest first among themselves), then trims the cache to its limit.
    fn index_existing(&self) -> Result<(), ChunkError> {
        let ctx = format!("block cache {}: cannot scan it", self.dir.display());
        let mut found = Vec::new();
        scan(&self.dir, &mut found).map_err(|e| ChunkError::io(ctx, e))?;
        // Newest first, each demoted to the old end: the oldest ends up evicted first.
        found.sort_by_key(|(mtime, _, _)| std::cmp::Reverse(*mtime));
        {
            let mut g = self.index.lock();
            for (_, id, len) in found {
                if !g.lru.contains(&id) {
                    g.lru.put(id, len);
                    g.lru.demote(&id);
                    g.bytes += len;
                }
            }
        }
        self.scanned.store(true, Ordering::Release);
        self.evict();
        Ok(())
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes currently cached.
    pub fn bytes(&self) -> u64 {
        self.index.lock().bytes
    }

    /// Number of cached blocks.
    pub fn len(&self) -> usize {
        self.index.lock().lru.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a block is indexed (no I/O, does not touch the LRU order).
    pub fn contains(&self, id: &BlockId) -> bool {
        self.index.lock().lru.contains(id)
    }

    /// The stored bytes of a block (unverified), marking it most recently used. A
    /// missing or unreadable file is a miss and leaves the index.
    pub fn get(&self, id: &BlockId) -> Option<Bytes> {
        let path = fanout(&self.dir, id);
        if self.index.lock().lru.get(id).is_none() {
            return self.get_unindexed(id, &path);
        }
        match fs::read(&path) {
            Ok(v) => {
                self.touch(&path);
                Some(Bytes::from(v))
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::debug!(block = %id, error = %e, "block cache read failed");
                }
                self.forget(id);
                None
            }
        }
    }

    /// While the entries on disk are being indexed: the block's file if it is there
    /// (indexed now, as most recently used).
    fn get_unindexed(&self, id: &BlockId, path: &Path) -> Option<Bytes> {
        if self.scanned.load(Ordering::Acquire) {
            return None;
        }
        let v = fs::read(path).ok()?;
        {
            let mut g = self.index.lock();
            if g.lru.put(*id, v.len() as u64).is_none() {
                g.bytes += v.len() as u64;
            }
        }
        self.touch(path);
        Some(Bytes::from(v))
    }

    /// Refreshes the mtime so the LRU order survives a restart (rate-limited per file).
    fn touch(&self, path: &Path) {
        let now = SystemTime::now();
        let Ok(f) = fs::File::options().write(true).open(path) else {
            return;
        };
        let fresh = f
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age < TOUCH_INTERVAL);
        if !fresh {
            let _ = f.set_modified(now);
        }
    }

    /// Caches the stored bytes of a block. Best effort: failures are logged (at most
    /// one warning a minute) and otherwise ignored.
    pub fn insert(&self, id: &BlockId, stored: &[u8]) {
        let len = stored.len() as u64;
        if len > self.limit {
            return;
        }
        if self.index.lock().lru.get(id).is_some() {
            return;
        }
        if let Err(e) = self.write_file(id, stored) {
            self.warn_write(id, &e);
            return;
        }
        {
            let mut g = self.index.lock();
            if let Some(old) = g.lru.put(*id, len) {
                g.bytes -= old;
            }
            g.bytes += len;
        }
        self.evict();
    }

    fn write_file(&self, id: &BlockId, stored: &[u8]) -> io::Result<()> {
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp =
            self.dir
                .join("tmp")
                .join(format!("{}.{}.{seq}", id.to_hex(), std::process::id()));
        let result = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(stored)?;
            let dest = fanout(&self.dir, id);
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&tmp, &dest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn warn_write(&self, id: &BlockId, e: &io::Error) {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.last_warn.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= WARN_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_warn
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                cache = %self.dir.display(),
                block = %id,
                error = %e,
                "cannot write to the block cache; continuing without caching (further failures silenced for a minute)"
            );
        } else {
            tracing::debug!(block = %id, error = %e, "block cache write failed");
        }
    }

    /// Removes a block (e.g. a copy found corrupt). Missing is fine.
    pub fn remove(&self, id: &BlockId) {
        self.forget(id);
        let _ = fs::remove_file(fanout(&self.dir, id));
    }

    fn forget(&self, id: &BlockId) {
        let mut g = self.index.lock();
        if let Some(len) = g.lru.pop(id) {
            g.bytes -= len;
        }
    }

    /// Deletes least recently used entries until within the limit.
    fn evict(&self) {
        loop {
            let victim = {
                let mut g = self.index.lock();
                if g.bytes <= self.limit {
                    return;
                }
                match g.lru.pop_lru() {
                    Some((id, len)) => {
                        g.bytes -= len;
                        id
                    }
                    None => return,
                }
            };
            let _ = fs::remove_file(fanout(&self.dir, &victim));
        }
    }
}

/// Collects `(mtime, id, size)` of every `DIR/xx/yy/<hex>` file whose name is a
/// valid id placed in the right fan-out directory; anything else is ignored.
fn scan(dir: &Path, out: &mut Vec<(SystemTime, BlockId, u64)>) -> io::Result<()> {
    let is_fan = |name: &str| name.len() == 2 && name.bytes().all(|b| b.is_ascii_hexdigit());
    for l1 in fs::read_dir(dir)?.flatten() {
        let n1 = l1.file_name();
        let Some(n1) = n1.to_str().filter(|n| is_fan(n)) else {
            continue;
        };
        let Ok(rd2) = fs::read_dir(l1.path()) else {
            continue;
        };
        for l2 in rd2.flatten() {
            let n2 = l2.file_name();
            let Some(n2) = n2.to_str().filter(|n| is_fan(n)) else {
                continue;
            };
            let Ok(rd3) = fs::read_dir(l2.path()) else {
                continue;
            };
            for f in rd3.flatten() {
                let name = f.file_name();
                let Some(id) = name.to_str().and_then(BlockId::from_hex) else {
                    continue;
                };
                let hex = id.to_hex();
                if hex[0..2] != *n1 || hex[2..4] != *n2 {
                    continue;
                }
                let Ok(meta) = f.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                out.push((mtime, id, meta.len()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u32) -> BlockId {
        BlockId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    #[test]
    fn an_idle_mem_cache_is_emptied() {
        let c = MemCache::new(1000);
        c.insert(id(1), Bytes::from(vec![1; 100]));
        assert_eq!(c.clear_if_idle(Duration::from_secs(60)), 0, "used just now");
        std::thread::sleep(Duration::from_millis(30));
        assert!(c.get(&id(1)).is_some());
        assert_eq!(
            c.clear_if_idle(Duration::from_millis(20)),
            0,
            "a get is a use"
        );
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(c.clear_if_idle(Duration::from_millis(20)), 100);
        assert_eq!((c.len(), c.bytes()), (0, 0));
        assert!(c.get(&id(1)).is_none());
    }

    #[test]
    fn mem_cache_lru_and_limit() {
        let c = MemCache::new(250);
        c.insert(id(1), Bytes::from(vec![1; 100]));
        c.insert(id(2), Bytes::from(vec![2; 100]));
        assert!(c.get(&id(1)).is_some()); // 1 is now most recent
        c.insert(id(3), Bytes::from(vec![3; 100])); // evicts 2
        assert!(c.get(&id(2)).is_none());
        assert!(c.get(&id(1)).is_some() && c.get(&id(3)).is_some());
        assert_eq!(c.bytes(), 200);
        c.insert(id(4), Bytes::from(vec![4; 1000])); // too big: ignored
        assert!(c.get(&id(4)).is_none());
        c.insert(id(1), Bytes::from(vec![1; 100])); // replace: no double count
        assert_eq!(c.bytes(), 200);
        c.remove(&id(1));
        assert_eq!(c.bytes(), 100);
        assert_eq!(c.len(), 1);
        let off = MemCache::new(0);
        off.insert(id(1), Bytes::from_static(b"x"));
        assert!(off.is_empty());
    }

    #[test]
    fn disk_cache_limit_lru_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 3000).expect("open");
        for n in 0..3 {
            c.insert(&id(n), &vec![n as u8; 1000]);
        }
        assert_eq!(c.bytes(), 3000);
        assert_eq!(c.get(&id(0)).expect("hit")[..], vec![0u8; 1000][..]);
        c.insert(&id(3), &[3u8; 1000]); // evicts 1, the least recently used
        assert!(c.get(&id(1)).is_none());
        assert!(!fanout(dir.path(), &id(1)).exists());
        assert!(c.contains(&id(0)) && c.contains(&id(2)) && c.contains(&id(3)));
        assert_eq!(c.bytes(), 3000);
        // A file in the right place: layout check.
        let hex = id(3).to_hex();
        assert!(dir
            .path()
            .join(&hex[0..2])
            .join(&hex[2..4])
            .join(&hex)
            .is_file());
        // Junk is ignored by the scan, temp files are cleaned.
        fs::write(dir.path().join("junk"), b"x").expect("junk");
        fs::write(dir.path().join("tmp").join("partial"), b"x").expect("tmp");
        drop(c);

        let c = DiskCache::open(dir.path(), 3000).expect("reopen");
        assert_eq!(c.len(), 3);
        assert_eq!(c.bytes(), 3000);
        assert!(c.get(&id(2)).is_some());
        assert!(!dir.path().join("tmp").join("partial").exists());
        drop(c);
        // Reopening with a smaller limit trims.
        let c = DiskCache::open(dir.path(), 1500).expect("reopen small");
        assert_eq!(c.len(), 1);
        assert_eq!(c.bytes(), 1000);
        c.remove(&c_first(&c));
        assert!(c.is_empty());
    }

    #[test]
    fn a_cache_indexed_in_the_background_serves_its_blocks_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 10_000).expect("open");
        for n in 0..5 {
            c.insert(&id(n), &[n as u8; 1000]);
        }
        drop(c);
        let c = DiskCache::open_scanning(dir.path(), 10_000).expect("reopen");
        // Served whether or not the scan got to it yet.
        assert_eq!(c.get(&id(3)).expect("hit")[..], [3u8; 1000][..]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !c.scanned.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "the scan never finished");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Each block counted once, the one read early included.
        assert_eq!((c.len(), c.bytes()), (5, 5000));
        assert!(c.get(&id(9)).is_none());
        // Blocks inserted before the scan ends keep their place as the newest.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir2.path(), 2000).expect("open");
        c.insert(&id(0), &[0u8; 1000]);
        drop(c);
        let c = DiskCache::open_unscanned(dir2.path(), 2000).expect("reopen");
        c.insert(&id(1), &[1u8; 1000]);
        c.insert(&id(2), &[2u8; 1000]);
        c.index_existing().expect("index");
        // Over the limit: the scanned (older) entry goes first.
        assert!(!c.contains(&id(0)));
        assert!(c.contains(&id(1)) && c.contains(&id(2)));
        assert_eq!(c.bytes(), 2000);
    }

    fn c_first(c: &DiskCache) -> BlockId {
        let g = c.index.lock();
        *g.lru.peek_lru().expect("one entry").0
    }

    #[test]
    fn disk_cache_lru_order_survives_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 10_000).expect("open");
        for n in 0..3 {
            c.insert(&id(n), &[1u8; 1000]);
        }
        // Make 0 old and 1 older on disk, then hit 1: it must become the newest.
        let old = SystemTime::now() - Duration::from_secs(3600);
        for (n, age) in [(0u32, 100u64), (1, 200), (2, 50)] {
            let f = fs::File::options()
                .write(true)
                .open(fanout(dir.path(), &id(n)))
                .expect("open");
            f.set_modified(old - Duration::from_secs(age))
                .expect("mtime");
        }
        assert!(c.get(&id(1)).is_some());
        drop(c);
        let c = DiskCache::open(dir.path(), 2000).expect("reopen");
        assert!(c.contains(&id(1)), "recently hit survives");
        assert!(c.contains(&id(2)));
        assert!(!c.contains(&id(0)), "oldest is evicted");
    }

    #[test]
    fn disk_cache_write_failure_is_not_fatal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let c = DiskCache::open(dir.path(), 10_000).expect("open");
        // Make the temp dir unusable: a file where the directory was.
        fs::remove_dir_all(dir.path().join("tmp")).expect("rm tmp");
        fs::write(dir.path().join("tmp"), b"not a dir").expect("block tmp");
        c.insert(&id(1), &[1u8; 100]);
        c.insert(&id(2), &[2u8; 100]);
        assert!(c.is_empty());
        assert!(c.get(&id(1)).is_none());
        // Oversize entries are skipped.
        fs::remove_file(dir.path().join("tmp")).expect("unblock");
        fs::create_dir(dir.path().join("tmp")).expect("tmp");
        c.insert(&id(3), &vec![0u8; 20_000]);
        assert!(c.is_empty());
        c.insert(&id(3), &[0u8; 10]);
        assert_eq!(c.len(), 1);
    }
}
