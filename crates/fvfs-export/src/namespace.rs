//! `namespace.parquet`: one row per name of the namespace (a file with several hard
//! links has a row per name, the same `ino`), in the walk's depth-first order.

use crate::columns::{Batch, Leaf, Output, Shape};
use crate::Result;
use fvfs_vfs::{FileKind, WalkEntry};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::writer::SerializedRowGroupWriter;
use std::fs::File;
use std::path::Path;

pub const NAMESPACE_FILE: &str = "namespace.parquet";

/// The schema of `namespace.parquet` (docs/FORMAT.md, "Parquet export").
pub const NAMESPACE_SCHEMA: &str = "
message namespace {
  REQUIRED BYTE_ARRAY path (STRING);
  REQUIRED INT64 ino;
  REQUIRED BYTE_ARRAY kind (STRING);
  REQUIRED INT64 size;
  REQUIRED INT64 mtime (TIMESTAMP(MICROS,true));
  REQUIRED INT32 mode;
  REQUIRED INT32 uid (INTEGER(32,false));
  REQUIRED INT32 gid (INTEGER(32,false));
  REQUIRED INT32 nlink;
  REQUIRED INT32 tier_mask (INTEGER(32,false));
  REQUIRED GROUP tiers (LIST) {
    REPEATED GROUP list {
      REQUIRED BYTE_ARRAY element (STRING);
    }
  }
  REQUIRED BOOLEAN pinned;
  REQUIRED GROUP blocks (LIST) {
    REPEATED GROUP list {
      REQUIRED BYTE_ARRAY element (STRING);
    }
  }
}";

/// The `kind` column's words.
pub(crate) fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::Socket => "socket",
        FileKind::CharDev => "char_dev",
        FileKind::BlockDev => "block_dev",
    }
}

/// A time column's value: nanoseconds since the epoch to microseconds, rounded down (the
/// unit every Parquet reader shows alike).
pub(crate) fn micros(ns: i64) -> i64 {
    ns.div_euclid(1000)
}

/// Text for a string column: names are bytes; invalid UTF-8 becomes U+FFFD.
pub(crate) fn text(bytes: &[u8]) -> ByteArray {
    ByteArray::from(String::from_utf8_lossy(bytes).into_owned().into_bytes())
}

struct Rows {
    n: usize,
    bytes: usize,
    path: Leaf<ByteArray>,
    ino: Leaf<i64>,
    kind: Leaf<ByteArray>,
    size: Leaf<i64>,
    mtime: Leaf<i64>,
    mode: Leaf<i32>,
    uid: Leaf<i32>,
    gid: Leaf<i32>,
    nlink: Leaf<i32>,
    tier_mask: Leaf<i32>,
    tiers: Leaf<ByteArray>,
    pinned: Leaf<bool>,
    blocks: Leaf<ByteArray>,
}

impl Rows {
    fn new() -> Rows {
        use Shape::*;
        Rows {
            n: 0,
            bytes: 0,
            path: Leaf::new("path", Required),
            ino: Leaf::new("ino", Required),
            kind: Leaf::new("kind", Required),
            size: Leaf::new("size", Required),
            mtime: Leaf::new("mtime", Required),
            mode: Leaf::new("mode", Required),
            uid: Leaf::new("uid", Required),
            gid: Leaf::new("gid", Required),
            nlink: Leaf::new("nlink", Required),
            tier_mask: Leaf::new("tier_mask", Required),
            tiers: Leaf::new("tiers", List),
            pinned: Leaf::new("pinned", Required),
            blocks: Leaf::new("blocks", List),
        }
    }

    fn push(&mut self, e: &WalkEntry, tier_names: &[String]) {
        let a = &e.attr;
        let (mask, pinned, blocks) = match &e.tiers {
            Some(t) => (t.on_every_block(), t.pinned, t.blocks.as_slice()),
            None => (0, false, &[][..]),
        };
        self.n += 1;
        self.bytes += 64 + e.path.len() + 64 * blocks.len();
        self.path.push(text(&e.path));
        self.ino.push(a.ino as i64);
        self.kind.push(ByteArray::from(kind_name(a.kind)));
        self.size.push(a.size as i64);
        self.mtime.push(micros(a.mtime));
        self.mode.push(a.perm as i32);
        // Parquet stores UINT_32 in INT32's bits.
        self.uid.push(a.uid as i32);
        self.gid.push(a.gid as i32);
        self.nlink.push(a.nlink as i32);
        self.tier_mask.push(mask as i32);
        self.tiers.push_list(
            tier_names
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < 32 && mask & (1 << i) != 0)
                .map(|(_, n)| ByteArray::from(n.as_str())),
        );
        self.pinned.push(pinned);
        self.blocks.push_list(
            blocks
                .iter()
                .map(|b| ByteArray::from(b.id.to_hex().into_bytes())),
        );
    }
}

impl Batch for Rows {
    fn rows(&self) -> usize {
        self.n
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn write(&mut self, rg: &mut SerializedRowGroupWriter<'_, File>) -> Result<()> {
        self.path.write::<ByteArrayType>(rg)?;
        self.ino.write::<Int64Type>(rg)?;
        self.kind.write::<ByteArrayType>(rg)?;
        self.size.write::<Int64Type>(rg)?;
        self.mtime.write::<Int64Type>(rg)?;
        self.mode.write::<Int32Type>(rg)?;
        self.uid.write::<Int32Type>(rg)?;
        self.gid.write::<Int32Type>(rg)?;
        self.nlink.write::<Int32Type>(rg)?;
        self.tier_mask.write::<Int32Type>(rg)?;
        self.tiers.write::<ByteArrayType>(rg)?;
        self.pinned.write::<BoolType>(rg)?;
        self.blocks.write::<ByteArrayType>(rg)?;
        self.n = 0;
        self.bytes = 0;
        Ok(())
    }
}

/// Writes the entries of `walk` to `path` (atomically: see the crate comment), a row
/// group at a time; `tier_names` name the tier bits, hottest first. Returns the rows.
pub fn write_namespace(
    walk: impl Iterator<Item = fvfs_vfs::Result<WalkEntry>>,
    tier_names: &[String],
    path: &Path,
) -> Result<u64> {
    let mut out = Output::create(path, NAMESPACE_SCHEMA, "namespace")?;
    let mut rows = Rows::new();
    for e in walk {
        rows.push(&e?, tier_names);
        out.flush(&mut rows, false)?;
    }
    out.flush(&mut rows, true)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_types::{BlockId, Codec};
    use fvfs_vfs::{Attr, BlockRow, FileTiers};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::{Field, Row};

    fn attr(ino: u64, kind: FileKind, size: u64) -> Attr {
        Attr {
            ino,
            kind,
            perm: 0o4755,
            uid: 1000,
            gid: u32::MAX - 1,
            size,
            nlink: 1,
            atime: 0,
            mtime: 1_700_000_000_123_456_789,
            ctime: 0,
            rdev: 0,
            parent: 0,
            blocks: 0,
        }
    }

    fn block(b: u8, tiers: u32) -> BlockRow {
        BlockRow {
            id: BlockId([b; 32]),
            size: 10,
            stored_size: 10,
            codec: Codec::Raw,
            refcount: 1,
            tiers,
        }
    }

    fn read(path: &Path) -> Vec<Row> {
        let r = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        r.get_row_iter(None).unwrap().map(|r| r.unwrap()).collect()
    }

    fn strings(f: &Field) -> Vec<String> {
        let Field::ListInternal(l) = f else {
            panic!("not a list: {f:?}")
        };
        l.elements()
            .iter()
            .map(|e| match e {
                Field::Str(s) => s.clone(),
                other => panic!("not a string: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn rows_read_back_with_lists_levels_and_unsigned_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAMESPACE_FILE);
        let names = vec!["hot".to_string(), "s3".to_string()];
        let entries = vec![
            WalkEntry {
                path: b"/".to_vec(),
                attr: attr(1, FileKind::Dir, 0),
                tiers: None,
            },
            WalkEntry {
                path: b"/empty".to_vec(),
                attr: attr(2, FileKind::File, 0),
                tiers: Some(FileTiers {
                    blocks: vec![],
                    pinned: false,
                }),
            },
            WalkEntry {
                path: b"/a\xffb".to_vec(),
                attr: attr(3, FileKind::File, 20),
                tiers: Some(FileTiers {
                    blocks: vec![block(0xab, 0b11), block(0x01, 0b10)],
                    pinned: true,
                }),
            },
        ];
        let n = write_namespace(entries.into_iter().map(Ok), &names, &path).unwrap();
        assert_eq!(n, 3);
        let rows = read(&path);
        assert_eq!(rows.len(), 3);
        let cols: Vec<&str> = rows[0].get_column_iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            cols,
            [
                "path",
                "ino",
                "kind",
                "size",
                "mtime",
                "mode",
                "uid",
                "gid",
                "nlink",
                "tier_mask",
                "tiers",
                "pinned",
                "blocks"
            ]
        );
        let f = |r: &Row, i: usize| r.get_column_iter().nth(i).unwrap().1.clone();
        assert_eq!(f(&rows[0], 0), Field::Str("/".into()));
        assert_eq!(f(&rows[0], 2), Field::Str("dir".into()));
        assert_eq!(strings(&f(&rows[0], 12)), Vec::<String>::new());
        assert_eq!(f(&rows[2], 0), Field::Str("/a\u{fffd}b".into()));
        assert_eq!(f(&rows[2], 1), Field::Long(3));
        assert_eq!(f(&rows[2], 3), Field::Long(20));
        assert_eq!(
            f(&rows[2], 4),
            Field::TimestampMicros(1_700_000_000_123_456)
        );
        assert_eq!(f(&rows[2], 5), Field::Int(0o4755));
        assert_eq!(f(&rows[2], 6), Field::UInt(1000));
        assert_eq!(f(&rows[2], 7), Field::UInt(u32::MAX - 1));
        // Bit 1 is on both blocks, bit 0 on one only.
        assert_eq!(f(&rows[2], 9), Field::UInt(0b10));
        assert_eq!(strings(&f(&rows[2], 10)), ["s3"]);
        assert_eq!(f(&rows[2], 11), Field::Bool(true));
        assert_eq!(
            strings(&f(&rows[2], 12)),
            ["ab".repeat(32), "01".repeat(32)]
        );
        assert_eq!(strings(&f(&rows[1], 12)), Vec::<String>::new());
        assert_eq!(strings(&f(&rows[1], 10)), Vec::<String>::new());
    }

    #[test]
    fn times_round_down_to_microseconds() {
        assert_eq!(micros(1_999), 1);
        assert_eq!(micros(-1), -1);
        assert_eq!(micros(0), 0);
    }

    #[test]
    fn many_rows_span_row_groups_and_an_empty_walk_is_a_valid_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAMESPACE_FILE);
        let n = crate::ROW_GROUP_ROWS as u64 + 5;
        let walk = (0..n).map(|i| {
            Ok(WalkEntry {
                path: format!("/f{i}").into_bytes(),
                attr: attr(i + 2, FileKind::Fifo, 0),
                tiers: None,
            })
        });
        assert_eq!(write_namespace(walk, &[], &path).unwrap(), n);
        let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.metadata().num_row_groups(), 2);
        assert_eq!(r.metadata().file_metadata().num_rows(), n as i64);

        assert_eq!(write_namespace(std::iter::empty(), &[], &path).unwrap(), 0);
        assert!(read(&path).is_empty());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
    }

    #[test]
    fn a_failed_walk_leaves_the_previous_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAMESPACE_FILE);
        std::fs::write(&path, b"previous").unwrap();
        let walk = vec![Err(fvfs_vfs::VfsError::Internal("boom".into()))].into_iter();
        assert!(write_namespace(walk, &[], &path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"previous");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
