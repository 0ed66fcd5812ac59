//! Blocking [`RangeSource`]s over origins, for tag reading and the view's reads:
//! [`OriginFile`] (one file on one origin) and [`FailoverFile`] (one file held by
//! several origins, read with [`OriginSet`]'s failover).
//!
//! Both hold a tokio runtime [`Handle`] and block on the async read, so they must be
//! called from a blocking thread (`spawn_blocking`, a plain thread): called from an
//! async task, `Handle::block_on` panics.
//!
//! Invariants (those of [`RangeSource`]): `len` is the length the file was opened
//! with; a read asks the origin for exactly `min(len, self.len - offset)` bytes and
//! returns those or an error: a file that shrank since the scan yields
//! [`OriginError::Short`] (`InvalidData`), never a short read.

use bytes::Bytes;
use tokio::runtime::Handle;

use super::error::OriginError;
use super::handle::Origin;
use super::set::OriginSet;
use crate::source::RangeSource;

/// A [`RangeSource`] read of `len` bytes at `offset` of a file of `total` bytes: the
/// count cut at the end of the file, then `read(count)` (an exact ranged read) run to
/// completion on `rt`.
fn read_cut<F>(
    rt: &Handle,
    total: u64,
    offset: u64,
    len: u64,
    read: impl FnOnce(u64) -> F,
) -> std::io::Result<Bytes>
where
    F: std::future::Future<Output = Result<Bytes, OriginError>>,
{
    let want = len.min(total.saturating_sub(offset));
    if want == 0 {
        return Ok(Bytes::new());
    }
    rt.block_on(read(want)).map_err(OriginError::into_io)
}

/// One file on one origin, as a blocking [`RangeSource`].
pub struct OriginFile {
    origin: Origin,
    path: String,
    len: u64,
    rt: Handle,
}

impl Origin {
    /// `path` of length `len` (from a scan) as a blocking [`RangeSource`].
    pub fn file(&self, path: &str, len: u64, rt: Handle) -> OriginFile {
        OriginFile {
            origin: self.clone(),
            path: path.to_string(),
            len,
            rt,
        }
    }

    /// `path` as a blocking [`RangeSource`], its length taken from a stat now.
    pub async fn open_file(&self, path: &str, rt: Handle) -> Result<OriginFile, OriginError> {
        let len = self.stat(path).await?.size;
        Ok(self.file(path, len, rt))
    }
}

impl RangeSource for OriginFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        read_cut(&self.rt, self.len, offset, len, |want| {
            self.origin.read_range(&self.path, offset, want)
        })
    }
}

/// One file held by several origins (`(origin id, path)` candidates, the same bytes
/// matched by content hash), as a blocking [`RangeSource`] with failover.
pub struct FailoverFile {
    set: OriginSet,
    candidates: Vec<(String, String)>,
    len: u64,
    rt: Handle,
}

impl OriginSet {
    /// The file of length `len` held by `candidates`, as a blocking [`RangeSource`].
    pub fn file(&self, candidates: Vec<(String, String)>, len: u64, rt: Handle) -> FailoverFile {
        FailoverFile {
            set: self.clone(),
            candidates,
            len,
            rt,
        }
    }
}

impl RangeSource for FailoverFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_range(&self, offset: u64, len: u64) -> std::io::Result<Bytes> {
        read_cut(&self.rt, self.len, offset, len, |want| {
            self.set.read_range_any(&self.candidates, offset, want)
        })
    }
}
