//! `fvfsd hsm export DEST`: every archived file recreated as a plain file from its payload
//! alone, the exit when the native disk is lost (or fvfs is left). A file goes to
//! `DEST/<managed directory without its leading />/<path last seen>`, is written to a
//! temporary name, checked against the archived BLAKE3 hash, given its archived mtime and
//! then renamed into place: a file in DEST is either whole and verified or absent.

use crate::error::{HsmError, Result};
use crate::Hsm;
use fvfs_meta::{hsm_holder_key, HsmState, HSM_HOLDER};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Blocks read per step.
const STEP: usize = 8;

/// What an export did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exported {
    pub files: u64,
    pub bytes: u64,
    /// Files that could not be exported, with why.
    pub failed: Vec<(PathBuf, String)>,
}

impl Hsm {
    /// Exports every archived or released file under `dest`; `progress(path)` after each.
    pub async fn export(&self, dest: &Path, progress: &(dyn Fn(&Path) + Sync)) -> Result<Exported> {
        let dirs = self.dirs()?;
        let mut out = Exported::default();
        for row in self.meta.hsm_list(None)? {
            if row.state == HsmState::Archiving {
                continue;
            }
            let Some(dir) = dirs.iter().find(|d| d.id == row.dir) else {
                continue;
            };
            let rel = String::from_utf8_lossy(&row.path).into_owned();
            let target = dest.join(dir.path.trim_start_matches('/')).join(&rel);
            match self.export_one(&row, &target).await {
                Ok(n) => {
                    out.files += 1;
                    out.bytes += n;
                    progress(&target);
                }
                Err(e) => out.failed.push((target, e.to_string())),
            }
        }
        Ok(out)
    }

    async fn export_one(&self, row: &fvfs_meta::HsmFile, target: &Path) -> Result<u64> {
        let parent = target.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| HsmError::io("create", parent, e))?;
        let tmp = target.with_file_name(format!(
            ".{}.fvfs-export",
            target
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let mut f = std::fs::File::create(&tmp).map_err(|e| HsmError::io("create", &tmp, e))?;
        let key = hsm_holder_key(row.id);
        let mut h = blake3::Hasher::new();
        let mut n = 0u64;
        for refs in row.blocks.chunks(STEP) {
            for part in self
                .tiering
                .read_held_blocks(HSM_HOLDER, &key, refs)
                .await?
            {
                h.update(&part);
                f.write_all(&part)
                    .map_err(|e| HsmError::io("write", &tmp, e))?;
                n += part.len() as u64;
            }
        }
        if *h.finalize().as_bytes() != row.hash {
            let _ = std::fs::remove_file(&tmp);
            return Err(HsmError::HashMismatch(target.to_path_buf()));
        }
        f.sync_all().map_err(|e| HsmError::io("fsync", &tmp, e))?;
        let mtime =
            std::time::UNIX_EPOCH + std::time::Duration::from_nanos(row.mtime_ns.max(0) as u64);
        f.set_modified(mtime)
            .map_err(|e| HsmError::io("set the mtime of", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, target).map_err(|e| HsmError::io("rename into", target, e))?;
        Ok(n)
    }
}
