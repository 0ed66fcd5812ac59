//! Plain data types shared by every layer: inode numbers, file kinds, block ids, the
//! filesystem settings written at format time, the API's models and the one error
//! vocabulary ([`error::ErrorCode`]) from which errnos and HTTP statuses are derived.
//!
//! Invariants: this crate depends on nothing of fvfs and does no I/O. A `BlockId` is
//! always the BLAKE3 hash of a block's *plain* (uncompressed) bytes.

pub mod api;
pub mod error;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Inode number. The root directory is [`ROOT_INO`]; numbers are never reused.
pub type Ino = u64;
/// The root directory's inode number.
pub const ROOT_INO: Ino = 1;
/// Files are cut into chunks of this many bytes by offset; a slice never crosses a chunk.
pub const CHUNK_SIZE: u64 = 64 << 20;
/// The longest name a directory entry may have (bytes), as on ext4.
pub const NAME_MAX: usize = 255;
/// The format version this build writes and understands.
pub const FORMAT_VERSION: u32 = 1;

/// What kind of object an inode is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl FileKind {
    /// The stable number stored in the metadata (`inodes.kind`).
    pub fn code(self) -> i64 {
        match self {
            FileKind::File => 1,
            FileKind::Dir => 2,
            FileKind::Symlink => 3,
            FileKind::Fifo => 4,
            FileKind::Socket => 5,
            FileKind::CharDev => 6,
            FileKind::BlockDev => 7,
        }
    }
    pub fn from_code(c: i64) -> Option<FileKind> {
        Some(match c {
            1 => FileKind::File,
            2 => FileKind::Dir,
            3 => FileKind::Symlink,
            4 => FileKind::Fifo,
            5 => FileKind::Socket,
            6 => FileKind::CharDev,
            7 => FileKind::BlockDev,
            _ => return None,
        })
    }
    /// The `S_IFMT` bits of this kind.
    pub fn s_ifmt(self) -> u32 {
        match self {
            FileKind::File => 0o100000,
            FileKind::Dir => 0o040000,
            FileKind::Symlink => 0o120000,
            FileKind::Fifo => 0o010000,
            FileKind::Socket => 0o140000,
            FileKind::CharDev => 0o020000,
            FileKind::BlockDev => 0o060000,
        }
    }
    /// The kind named by the `S_IFMT` bits of `mode`, if any.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & 0o170000 {
            0o100000 | 0 => FileKind::File,
            0o040000 => FileKind::Dir,
            0o120000 => FileKind::Symlink,
            0o010000 => FileKind::Fifo,
            0o140000 => FileKind::Socket,
            0o020000 => FileKind::CharDev,
            0o060000 => FileKind::BlockDev,
            _ => return None,
        })
    }
}

/// Content address of a block: BLAKE3 of its plain bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlockId(pub [u8; 32]);

impl BlockId {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<BlockId> {
        let v = hex::decode(s).ok()?;
        Some(BlockId(v.try_into().ok()?))
    }
    pub fn from_slice(b: &[u8]) -> Option<BlockId> {
        Some(BlockId(b.try_into().ok()?))
    }
}

impl fmt::Debug for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockId({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for BlockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// How a block's bytes are stored in an object. Stored in `blocks.codec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    /// The object holds the plain bytes.
    Raw,
    /// The object is one zstd frame of the plain bytes.
    Zstd,
}

impl Codec {
    pub fn code(self) -> i64 {
        match self {
            Codec::Raw => 0,
            Codec::Zstd => 1,
        }
    }
    pub fn from_code(c: i64) -> Option<Codec> {
        match c {
            0 => Some(Codec::Raw),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// Compression chosen at format time for new blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Compression::None),
            "zstd" => Ok(Compression::Zstd),
            _ => Err(format!(
                "unknown compression {s:?}: expected \"none\" or \"zstd\""
            )),
        }
    }
}

/// FastCDC parameters in bytes. Invariant: `min <= avg <= max`, all within FastCDC's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdcParams {
    pub min: u32,
    pub avg: u32,
    pub max: u32,
}

impl Default for CdcParams {
    fn default() -> Self {
        CdcParams {
            min: 256 << 10,
            avg: 1 << 20,
            max: 4 << 20,
        }
    }
}

impl CdcParams {
    /// Checks the limits FastCDC v2020 imposes (min 64 B..1 MiB, avg 256 B..4 MiB,
    /// max 1 KiB..16 MiB) and the ordering.
    pub fn validate(&self) -> Result<(), String> {
        let ok = (64..=1 << 20).contains(&self.min)
            && (256..=4 << 20).contains(&self.avg)
            && (1024..=16 << 20).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "invalid CDC sizes min={} avg={} max={}: need 64 B<=min<=1 MiB, 256 B<=avg<=4 MiB, 1 KiB<=max<=16 MiB and min<=avg<=max",
                self.min, self.avg, self.max
            ))
        }
    }
}

/// One storage tier of a filesystem, as recorded in its settings. Tiers are ordered
/// hottest first; a tier's index is its bit in every block's tier bitmask.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierSettings {
    /// Short name ("local", "nas", "s3", …), unique within the filesystem.
    pub name: String,
    /// Storage location (see fvfs-tier for the URL syntax). Never holds credentials.
    pub location: String,
    /// Eviction starts when the tier holds more than this many bytes.
    #[serde(default)]
    pub high_watermark: Option<u64>,
    /// Eviction stops below this many bytes.
    #[serde(default)]
    pub low_watermark: Option<u64>,
    /// The source of truth: every block is replicated here and never evicted from it.
    #[serde(default)]
    pub durable: bool,
    /// Also receives a copy of every block (a warm NAS tier that keeps everything).
    #[serde(default)]
    pub keep_copy: bool,
}

impl TierSettings {
    /// A tier with no watermarks, neither durable nor keep-copy.
    pub fn new(name: impl Into<String>, location: impl Into<String>) -> TierSettings {
        TierSettings {
            name: name.into(),
            location: location.into(),
            high_watermark: None,
            low_watermark: None,
            durable: false,
            keep_copy: false,
        }
    }
}

/// Settings of one filesystem, written once by `fvfsd format` into the metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub uuid: uuid::Uuid,
    pub name: String,
    pub format_version: u32,
    pub cdc: CdcParams,
    pub compression: Compression,
    /// Storage locations, hottest first (see fvfs-tier for the URL syntax).
    pub storage: Vec<String>,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// The tiers, hottest first. Empty in filesystems formatted before tiering: then
    /// `storage` lists the locations and the last one is durable.
    #[serde(default)]
    pub tiers: Vec<TierSettings>,
}

impl Settings {
    /// The tiers, hottest first, with exactly one durable tier.
    pub fn tier_list(&self) -> Vec<TierSettings> {
        let mut tiers = if self.tiers.is_empty() {
            self.storage
                .iter()
                .enumerate()
                .map(|(i, loc)| TierSettings::new(format!("tier{i}"), loc.clone()))
                .collect()
        } else {
            self.tiers.clone()
        };
        if !tiers.iter().any(|t| t.durable) {
            if let Some(last) = tiers.last_mut() {
                last.durable = true;
            }
        }
        tiers
    }

    /// The tiers' names, hottest first.
    pub fn tier_names(&self) -> Vec<String> {
        self.tier_list().into_iter().map(|t| t.name).collect()
    }

    /// Index of the durable tier.
    pub fn durable_tier(&self) -> usize {
        self.tier_list().iter().position(|t| t.durable).unwrap_or(0)
    }

    /// Bitmask of the tiers every block must reach: the durable tier and the tiers that
    /// keep a copy.
    pub fn replica_mask(&self) -> u32 {
        self.tier_list()
            .iter()
            .enumerate()
            .filter(|(_, t)| t.durable || t.keep_copy)
            .fold(0, |m, (i, _)| m | (1 << i))
    }
}

/// Checks a tier list: 1 to 32 tiers, unique names, at most one durable, watermarks
/// ordered, no watermark on the durable tier.
pub fn validate_tiers(tiers: &[TierSettings]) -> Result<(), String> {
    if tiers.is_empty() || tiers.len() > 32 {
        return Err(format!(
            "a filesystem needs 1 to 32 tiers, not {}",
            tiers.len()
        ));
    }
    let mut names = std::collections::HashSet::new();
    for t in tiers {
        if !names.insert(t.name.as_str()) {
            return Err(format!("two tiers are named {:?}", t.name));
        }
        if let (Some(h), Some(l)) = (t.high_watermark, t.low_watermark) {
            if l > h {
                return Err(format!(
                    "tier {:?}: low_watermark ({l}) is above high_watermark ({h})",
                    t.name
                ));
            }
        }
    }
    let durable = tiers.iter().filter(|t| t.durable).count();
    if durable > 1 {
        return Err("exactly one tier may be durable".into());
    }
    Ok(())
}
