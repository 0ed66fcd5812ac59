//! From uploaded blocks to the slices a commit records: a file's bytes are chunks of
//! `CHUNK_SIZE`, each chunk a stack of slices, each slice a run of consecutive blocks.
//!
//! Invariant: a slice never crosses a chunk boundary, and the blocks of a slice are
//! contiguous in the file.

use crate::tiering::Uploaded;
use fvfs_meta::{BlockRef, NewBlock, NewSlice};
use fvfs_types::CHUNK_SIZE;

/// Groups uploaded blocks (file offset, upload), consecutive by offset, into slices (one
/// run of blocks per chunk) and the block rows to insert for those the upload created.
pub(crate) fn slices_of(blocks: &[(u64, Uploaded)]) -> (Vec<NewSlice>, Vec<NewBlock>) {
    let mut slices: Vec<NewSlice> = Vec::new();
    let mut new_blocks = Vec::new();
    for (at, up) in blocks {
        let chunk = at / CHUNK_SIZE;
        let pos = (at % CHUNK_SIZE) as u32;
        let r = BlockRef {
            id: up.meta.id,
            len: up.meta.size,
        };
        match slices.last_mut() {
            Some(s) if s.chunk == chunk && s.pos + s.len == pos => {
                s.len += r.len;
                s.blocks.push(r);
            }
            _ => slices.push(NewSlice {
                chunk,
                pos,
                len: r.len,
                zero: false,
                blocks: vec![r],
            }),
        }
        if up.new {
            new_blocks.push(up.new_block());
        }
    }
    (slices, new_blocks)
}
