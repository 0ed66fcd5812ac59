//! Consistency check of a filesystem (`fvfsd fsck`): every block row's object exists on
//! every tier its bitmask names and hashes to its id, refcounts equal the slice references
//! plus the holder rows, link counts equal the names, no entry, slice or holder row points
//! at nothing. `repair` fixes what is safe to fix: counts, dangling entries, slice
//! references to blocks that have no row (those ranges then read as zeros, and the
//! affected inodes are reported) and holder rows whose block has no row.

use crate::Result;
use futures::StreamExt;
use fvfs_chunk::BlockStore;
use fvfs_meta::{Holder, MetaStore};
use fvfs_types::{BlockId, Ino};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct FsckReport {
    pub blocks_checked: u64,
    /// Live blocks whose object is missing from the tier.
    pub missing: Vec<BlockId>,
    /// Live blocks whose object does not hash to its id.
    pub corrupt: Vec<BlockId>,
    /// (block, stored refcount, counted references)
    pub refcounts: Vec<(BlockId, u64, u64)>,
    /// (inode, slice, block) references to blocks with no row.
    pub dangling_refs: Vec<(Ino, u64, BlockId)>,
    /// (inode, stored nlink, counted)
    pub nlinks: Vec<(Ino, u32, u32)>,
    /// (parent, name, inode)
    pub dangling_dentries: Vec<(Ino, Vec<u8>, Ino)>,
    /// (holder, block) rows of holders whose block has no row.
    pub dangling_holds: Vec<(Holder, BlockId)>,
    /// Inodes whose data is damaged (missing or corrupt blocks).
    pub damaged_inodes: Vec<Ino>,
    /// Holders whose payload is damaged (missing or corrupt blocks).
    pub damaged_holders: Vec<Holder>,
    pub repaired: Vec<String>,
}

impl FsckReport {
    /// One line per problem found, as `fvfsd fsck` prints them (the kind first).
    pub fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for id in &self.missing {
            out.push(format!("MISSING  block {id}: its object is not in storage"));
        }
        for id in &self.corrupt {
            out.push(format!(
                "CORRUPT  block {id}: its object does not hash to its id"
            ));
        }
        if !self.damaged_inodes.is_empty() {
            let d = &self.damaged_inodes;
            out.push(format!("damaged inodes (missing or corrupt data): {d:?}"));
        }
        for (ino, slice, id) in &self.dangling_refs {
            out.push(format!(
                "DANGLING inode {ino} slice {slice} references block {id} that has no row"
            ));
        }
        for (h, id) in &self.dangling_holds {
            let key = String::from_utf8_lossy(&h.key);
            out.push(format!(
                "DANGLING holder {}:{key:?} holds block {id} that has no row",
                h.kind
            ));
        }
        if !self.damaged_holders.is_empty() {
            let d = &self.damaged_holders;
            out.push(format!("damaged holders (missing or corrupt data): {d:?}"));
        }
        for (id, stored, counted) in &self.refcounts {
            out.push(format!(
                "REFCOUNT block {id}: stored {stored}, referenced {counted}"
            ));
        }
        for (ino, stored, counted) in &self.nlinks {
            out.push(format!(
                "NLINK    inode {ino}: stored {stored}, counted {counted}"
            ));
        }
        for (parent, name, ino) in &self.dangling_dentries {
            let name = String::from_utf8_lossy(name);
            out.push(format!(
                "DENTRY   {name:?} in directory {parent} points at missing inode {ino}"
            ));
        }
        out
    }

    pub fn problems(&self) -> usize {
        self.missing.len()
            + self.corrupt.len()
            + self.refcounts.len()
            + self.dangling_refs.len()
            + self.dangling_holds.len()
            + self.nlinks.len()
            + self.dangling_dentries.len()
    }
}

/// Progress callback: (blocks done, blocks total).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Sync);

pub async fn fsck(
    meta: &Arc<dyn MetaStore>,
    store: &Arc<BlockStore>,
    repair: bool,
    progress: Progress<'_>,
) -> Result<FsckReport> {
    let mut r = FsckReport::default();
    let stats = meta.stats()?;
    let total = stats.blocks + stats.garbage_blocks;
    let mut after = None;
    loop {
        let page = meta.blocks_page(after, 1024)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let results: Vec<_> = futures::stream::iter(page.into_iter().filter(|b| b.refcount > 0))
            .map(|b| {
                let store = store.clone();
                async move {
                    // Every tier the row says holds the block must hold a good copy.
                    let n = store.tiers().len();
                    let mut res = Ok(());
                    for t in (0..n).filter(|t| b.tiers & (1 << t) != 0) {
                        if let Err(e) = store.verify_on(&b.id, b.codec, t).await {
                            res = Err(e);
                            break;
                        }
                    }
                    if b.tiers == 0 {
                        res = store.verify(&b.id, b.codec).await;
                    }
                    (b.id, res)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
        for (id, res) in results {
            r.blocks_checked += 1;
            match res {
                Ok(()) => {}
                Err(e) if e.is_not_found() => r.missing.push(id),
                Err(e) if e.is_corrupt() => r.corrupt.push(id),
                Err(e) => return Err(e.into()),
            }
        }
        progress(r.blocks_checked, total);
    }
    for id in r.missing.iter().chain(r.corrupt.iter()) {
        for ino in meta.inodes_referencing(id, 16)? {
            if !r.damaged_inodes.contains(&ino) {
                r.damaged_inodes.push(ino);
            }
        }
        for h in meta.holders_of(id)? {
            if !r.damaged_holders.contains(&h) {
                r.damaged_holders.push(h);
            }
        }
    }
    r.dangling_refs = meta.dangling_block_refs()?;
    r.dangling_holds = meta.dangling_holds()?;
    r.refcounts = meta.refcount_mismatches()?;
    r.nlinks = meta.nlink_mismatches()?;
    r.dangling_dentries = meta.dangling_dentries()?;
    if repair {
        for (parent, name, ino) in &r.dangling_dentries {
            meta.remove_dentry(*parent, name)?;
            r.repaired.push(format!(
                "removed entry {:?} in directory {parent} pointing at missing inode {ino}",
                String::from_utf8_lossy(name)
            ));
        }
        let mut dropped: Vec<BlockId> = Vec::new();
        for (ino, _, id) in &r.dangling_refs {
            if !dropped.contains(id) {
                let n = meta.drop_slices_referencing(id)?;
                dropped.push(*id);
                r.repaired.push(format!(
                    "dropped {n} slice(s) of inode {ino} referencing unknown block {id}: that range now reads as zeros"
                ));
            }
        }
        if !r.dangling_holds.is_empty() {
            let n = meta.drop_dangling_holds()?;
            r.repaired.push(format!(
                "dropped {n} holder row(s) of blocks that have no row"
            ));
        }
        // Counts last: the repairs above change them.
        for (id, _, counted) in meta.refcount_mismatches()? {
            meta.set_refcount(&id, counted)?;
            r.repaired
                .push(format!("set refcount of block {id} to {counted}"));
        }
        for (ino, _, counted) in meta.nlink_mismatches()? {
            meta.set_nlink(ino, counted)?;
            r.repaired
                .push(format!("set link count of inode {ino} to {counted}"));
        }
    }
    Ok(r)
}
