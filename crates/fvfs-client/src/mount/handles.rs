//! Open files of the mount and where their bytes come from.
//!
//! Invariants: every handle (`fh`) names one inode; all handles of an inode share one
//! [`OpenFile`], which lives while at least one handle is open. An `OpenFile` with a
//! temporary file holds the inode's whole current content locally (pending writes
//! included): reads and writes of every handle of that inode go to it until the last
//! close, and after it while its upload is pending (the daemon could not take it: see
//! `spool.rs`). Without one, reads come from the [`Manifest`] the handle fetched at open
//! (close-to-open consistency). Blocks are used only after their BLAKE3 matches their id
//! (verified by the client on download and by the disk cache on every hit).

use crate::cache::BlockCache;
use crate::client::Client;
use crate::mount::errno::block_errno;
use bytes::Bytes;
use fvfs_fuse::Errno;
use fvfs_types::api::{Manifest, Piece};
use lru::LruCache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One open of a file.
#[derive(Debug)]
pub struct Handle {
    pub ino: u64,
    pub write: bool,
    pub append: bool,
    /// The content at open time (None for handles that never need it, e.g. after O_TRUNC).
    pub manifest: Option<Arc<Manifest>>,
}

/// The state an inode's open handles share.
#[derive(Debug, Default)]
pub struct OpenFile {
    /// The whole current content, once a handle wrote or truncated.
    pub temp: Option<File>,
    /// The temporary file differs from the server's content.
    pub dirty: bool,
    /// Times set explicitly while dirty, applied again after the upload (which sets mtime).
    pub atime_ns: Option<i64>,
    pub mtime_ns: Option<i64>,
    /// When the local copy last changed (write, truncate): its mtime and ctime until the
    /// upload, after which the daemon's times take over.
    pub changed_ns: Option<i64>,
    /// The version (`changed_ns`) and path saved in the spool, once an upload failed.
    pub spooled: Option<(Option<i64>, String)>,
}

/// An inode's open-handle count and shared state.
type Shared = (usize, Arc<Mutex<OpenFile>>);

#[derive(Default)]
pub struct Handles {
    next: AtomicU64,
    handles: Mutex<HashMap<u64, Arc<Handle>>>,
    /// ino → (open handles, shared state).
    files: Mutex<HashMap<u64, Shared>>,
}

impl Handles {
    /// Registers a new handle and returns its number.
    pub fn open(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        {
            let mut files = self.files.lock();
            let e = files.entry(h.ino).or_default();
            e.0 += 1;
        }
        self.handles.lock().insert(fh, Arc::new(h));
        fh
    }

    pub fn get(&self, fh: u64) -> Option<Arc<Handle>> {
        self.handles.lock().get(&fh).cloned()
    }

    /// The shared state of an inode with open handles.
    pub fn file(&self, ino: u64) -> Option<Arc<Mutex<OpenFile>>> {
        self.files.lock().get(&ino).map(|e| e.1.clone())
    }

    /// Forgets handle `fh`; the inode's shared state goes with its last handle unless
    /// `keep` (its upload is pending).
    pub fn close(&self, fh: u64, keep: bool) -> Option<Arc<Handle>> {
        let h = self.handles.lock().remove(&fh)?;
        let mut files = self.files.lock();
        if let Some(e) = files.get_mut(&h.ino) {
            e.0 -= 1;
            if e.0 == 0 && !keep {
                files.remove(&h.ino);
            }
        }
        Some(h)
    }

    /// Inodes without open handles whose shared state is kept (pending uploads).
    pub fn idle(&self) -> Vec<(u64, Arc<Mutex<OpenFile>>)> {
        self.files
            .lock()
            .iter()
            .filter(|(_, e)| e.0 == 0)
            .map(|(ino, e)| (*ino, e.1.clone()))
            .collect()
    }

    /// Drops the kept state of `ino` if no handle is open and it has nothing left to
    /// upload. Returns whether it went.
    pub fn drop_if_done(&self, ino: u64) -> bool {
        let mut files = self.files.lock();
        let done = files
            .get(&ino)
            .is_some_and(|e| e.0 == 0 && e.1.try_lock().is_some_and(|st| !st.dirty));
        if done {
            files.remove(&ino);
        }
        done
    }

    /// Every inode with open handles and its shared state.
    pub fn all(&self) -> Vec<(u64, Arc<Mutex<OpenFile>>)> {
        self.files
            .lock()
            .iter()
            .map(|(ino, e)| (*ino, e.1.clone()))
            .collect()
    }

    /// Open handles of `ino`.
    #[cfg(test)]
    pub fn count(&self, ino: u64) -> usize {
        self.files.lock().get(&ino).map_or(0, |e| e.0)
    }
}

/// A part of a read: zeros, or a range of a block.
#[derive(Debug, PartialEq, Eq)]
pub enum Seg<'a> {
    Zeros(u64),
    Block { id: &'a str, from: u64, len: u64 },
}

/// Pieces sorted by file offset (the order `plan` expects).
pub fn sort_pieces(m: &mut Manifest) {
    m.pieces.sort_by_key(|p| p.offset);
}

/// What bytes `[off, off + len)` of a file of `size` bytes made of `pieces` (sorted by
/// offset) are: the read is cut at the end of the file.
pub fn plan(pieces: &[Piece], size: u64, off: u64, len: u64) -> Vec<Seg<'_>> {
    let end = off.saturating_add(len).min(size);
    let mut segs = Vec::new();
    let mut cur = off;
    let first = pieces.partition_point(|p| p.offset + p.len <= cur);
    for p in &pieces[first..] {
        if cur >= end {
            break;
        }
        if p.offset + p.len <= cur {
            continue;
        }
        if p.offset > cur {
            let z = p.offset.min(end) - cur;
            segs.push(Seg::Zeros(z));
            cur += z;
            if cur >= end {
                break;
            }
        }
        let stop = (p.offset + p.len).min(end);
        segs.push(Seg::Block {
            id: &p.id,
            from: p.block_offset + (cur - p.offset),
            len: stop - cur,
        });
        cur = stop;
    }
    if cur < end {
        segs.push(Seg::Zeros(end - cur));
    }
    segs
}

/// Bytes of decoded blocks kept in memory.
const MEM_LIMIT: u64 = 64 << 20;
/// Readahead: blocks after a read's end fetched in the background (at most this many, and
/// at most `READAHEAD_BYTES` of them), so a sequential reader finds them in the disk cache.
const READAHEAD_BLOCKS: usize = 4;
const READAHEAD_BYTES: u64 = 16 << 20;
/// How long a read waits for a block that readahead is already fetching.
const INFLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Where blocks come from: memory, then the disk cache, then the daemon.
pub struct Blocks {
    client: Client,
    rt: tokio::runtime::Handle,
    disk: Arc<BlockCache>,
    mem: Mutex<MemCache>,
    /// Blocks readahead is fetching now; a read of one waits for it instead of fetching
    /// it a second time.
    inflight: Arc<Mutex<std::collections::HashSet<String>>>,
}

struct MemCache {
    lru: LruCache<String, Bytes>,
    bytes: u64,
}

impl Blocks {
    pub fn new(client: Client, rt: tokio::runtime::Handle, disk: BlockCache) -> Blocks {
        Blocks {
            client,
            rt,
            disk: Arc::new(disk),
            inflight: Arc::default(),
            mem: Mutex::new(MemCache {
                lru: LruCache::unbounded(),
                bytes: 0,
            }),
        }
    }

    /// Block `id`'s plain bytes, verified.
    pub fn get(&self, id: &str) -> Result<Bytes, Errno> {
        if let Some(b) = self.mem.lock().lru.get(id) {
            return Ok(b.clone());
        }
        self.wait_inflight(id);
        let b = match self.disk.get(id) {
            Some(b) => b,
            None => {
                let b = self
                    .rt
                    .block_on(self.client.block(id))
                    .map_err(|e| block_errno(&e))?;
                if let Err(e) = self.disk.put(id, &b) {
                    tracing::warn!(block = id, error = %e, "cannot store a block in the cache");
                }
                b
            }
        };
        let mut mem = self.mem.lock();
        if mem.lru.put(id.to_string(), b.clone()).is_none() {
            mem.bytes += b.len() as u64;
        }
        while mem.bytes > MEM_LIMIT {
            match mem.lru.pop_lru() {
                Some((_, old)) => mem.bytes -= old.len() as u64,
                None => break,
            }
        }
        Ok(b)
    }

    /// The bytes of one segment of a plan.
    pub fn segment(&self, seg: &Seg<'_>, out: &mut Vec<u8>) -> Result<(), Errno> {
        match *seg {
            Seg::Zeros(n) => out.resize(out.len() + n as usize, 0),
            Seg::Block { id, from, len } => {
                let b = self.get(id)?;
                let (from, len) = (from as usize, len as usize);
                let Some(part) = b.get(from..from + len) else {
                    tracing::error!(block = id, "a manifest piece lies outside its block");
                    return Err(Errno::from_i32(libc::EIO));
                };
                out.extend_from_slice(part);
            }
        }
        Ok(())
    }

    /// Bytes `[off, off + len)` of the content `m` describes (short at the end of file).
    pub fn read(&self, m: &Manifest, off: u64, len: u64) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::with_capacity(len.min(m.size.saturating_sub(off)) as usize);
        for seg in plan(&m.pieces, m.size, off, len) {
            self.segment(&seg, &mut out)?;
        }
        self.read_ahead(m, off.saturating_add(len));
        Ok(out)
    }

    /// Waits (bounded) while readahead fetches `id`.
    fn wait_inflight(&self, id: &str) {
        let deadline = std::time::Instant::now() + INFLIGHT_WAIT;
        while self.inflight.lock().contains(id) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Starts background fetches of the blocks that follow `end` in `m` and are in neither
    /// cache. Each is verified (`Client::block`) and stored in the disk cache; a failure
    /// only costs the later read its own fetch.
    fn read_ahead(&self, m: &Manifest, end: u64) {
        let first = m.pieces.partition_point(|p| p.offset + p.len <= end);
        let mut bytes = 0u64;
        for p in m.pieces[first..].iter().take(READAHEAD_BLOCKS) {
            bytes += p.block_len;
            if bytes > READAHEAD_BYTES {
                break;
            }
            if self.mem.lock().lru.contains(&p.id) || self.disk.contains(&p.id) {
                continue;
            }
            if !self.inflight.lock().insert(p.id.clone()) {
                continue;
            }
            let (client, disk, inflight, id) = (
                self.client.clone(),
                self.disk.clone(),
                self.inflight.clone(),
                p.id.clone(),
            );
            self.rt.spawn(async move {
                match client.block(&id).await {
                    Ok(b) => {
                        let d = disk.clone();
                        let id2 = id.clone();
                        let stored = tokio::task::spawn_blocking(move || d.put(&id2, &b)).await;
                        if let Ok(Err(e)) = stored {
                            tracing::debug!(block = %id, error = %e, "readahead: cannot cache");
                        }
                    }
                    Err(e) => tracing::debug!(block = %id, error = %e, "readahead failed"),
                }
                inflight.lock().remove(&id);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(offset: u64, len: u64, id: &str) -> Piece {
        Piece {
            offset,
            len,
            id: id.into(),
            block_offset: 5,
            block_len: 100,
        }
    }

    #[test]
    fn plan_covers_holes_with_zeros_and_stops_at_eof() {
        let pieces = vec![piece(10, 10, "a"), piece(20, 5, "b"), piece(40, 10, "c")];
        assert_eq!(
            plan(&pieces, 60, 0, 100),
            vec![
                Seg::Zeros(10),
                Seg::Block {
                    id: "a",
                    from: 5,
                    len: 10
                },
                Seg::Block {
                    id: "b",
                    from: 5,
                    len: 5
                },
                Seg::Zeros(15),
                Seg::Block {
                    id: "c",
                    from: 5,
                    len: 10
                },
                Seg::Zeros(10),
            ]
        );
        assert_eq!(
            plan(&pieces, 60, 12, 10),
            vec![
                Seg::Block {
                    id: "a",
                    from: 7,
                    len: 8
                },
                Seg::Block {
                    id: "b",
                    from: 5,
                    len: 2
                },
            ]
        );
        assert_eq!(plan(&pieces, 60, 60, 10), vec![]);
        assert_eq!(plan(&pieces, 60, 26, 4), vec![Seg::Zeros(4)]);
        assert_eq!(plan(&[], 5, 0, 4096), vec![Seg::Zeros(5)]);
    }

    #[test]
    fn handles_of_an_inode_share_its_state() {
        let hs = Handles::default();
        let h = |ino| Handle {
            ino,
            write: true,
            append: false,
            manifest: None,
        };
        let a = hs.open(h(5));
        let b = hs.open(h(5));
        assert_ne!(a, b);
        let s = hs.file(5).unwrap();
        s.lock().dirty = true;
        assert!(hs.file(5).unwrap().lock().dirty);
        assert_eq!(hs.count(5), 2);
        hs.close(a, false).unwrap();
        assert!(hs.file(5).is_some());
        hs.close(b, false).unwrap();
        assert!(hs.file(5).is_none());
        assert!(hs.close(b, false).is_none());
        assert!(hs.get(a).is_none());
        // A pending upload keeps the state after the last close, until it is clean.
        let c = hs.open(h(6));
        hs.file(6).unwrap().lock().dirty = true;
        hs.close(c, true).unwrap();
        assert_eq!(hs.idle().len(), 1);
        assert!(!hs.drop_if_done(6));
        let d = hs.open(h(6));
        assert!(hs.file(6).unwrap().lock().dirty, "a new open shares it");
        hs.close(d, true).unwrap();
        hs.file(6).unwrap().lock().dirty = false;
        assert!(hs.drop_if_done(6));
        assert!(hs.file(6).is_none() && hs.idle().is_empty());
    }
}
