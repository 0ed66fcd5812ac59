//! What several engine tests share: a filesystem formatted on the metadata engine
//! `FVFS_TEST_META` names, with one durable local-directory tier, and a new regular file.

use fvfs_chunk::{BlockStore, BlockStoreConfig};
use fvfs_tier::{Tier, TierSpec};
use fvfs_types::{CdcParams, Compression, Settings, TierSettings, FORMAT_VERSION, ROOT_INO};
use fvfs_vfs::{Attr, Ctx, Vfs};
use std::path::Path;
use std::sync::Arc;

/// Formats a filesystem whose only tier is the directory `tier` (made if missing), its
/// metadata beside it in `dir`; returns the metadata store and the block store.
pub fn one_tier(
    dir: &Path,
    tier: &Path,
    uuid: &str,
) -> (Arc<dyn fvfs_meta::MetaStore>, Arc<BlockStore>) {
    std::fs::create_dir_all(tier).unwrap();
    let loc = tier.display().to_string();
    let meta = fvfs_meta::open(&fvfs_meta::testing::meta_url(dir), true).unwrap();
    let settings = Settings {
        uuid: uuid.parse().unwrap(),
        name: "t".into(),
        format_version: FORMAT_VERSION,
        cdc: CdcParams::default(),
        compression: Compression::Zstd,
        storage: vec![loc.clone()],
        created: 0,
        tiers: vec![TierSettings {
            name: "t0".into(),
            location: loc.clone(),
            high_watermark: None,
            low_watermark: None,
            durable: true,
            keep_copy: false,
        }],
    };
    meta.format(&settings, 0, 0, fvfs_vfs::now_ns()).unwrap();
    let t = Tier::open(&TierSpec::parse(&loc).unwrap()).unwrap();
    let cfg = BlockStoreConfig {
        compression: Compression::Zstd,
        mem_cache_bytes: 0,
        disk_cache: None,
        upload_concurrency: 4,
    };
    let store = Arc::new(BlockStore::with_tiers(vec![t], 0, cfg).unwrap());
    (meta, store)
}

/// Creates regular file `name` in the root (0644, as root), open read-write.
pub fn create(vfs: &Vfs, name: &[u8]) -> (Attr, u64) {
    vfs.create(Ctx::root(), ROOT_INO, name, 0o644, 0, libc::O_RDWR)
        .unwrap()
}
