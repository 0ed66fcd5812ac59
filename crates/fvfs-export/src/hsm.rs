//! `hsm.parquet`: one row per HSM catalog entry (`fvfsd hsm ls`), by catalog id.

use crate::columns::{Batch, Leaf, Output, Shape};
use crate::namespace::{micros, text};
use crate::Result;
use fvfs_engine::hsm::{HsmDir, HsmFile};
use parquet::data_type::{BoolType, ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::writer::SerializedRowGroupWriter;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub const HSM_FILE: &str = "hsm.parquet";

/// The schema of `hsm.parquet` (docs/FORMAT.md, "Parquet export").
pub const HSM_SCHEMA: &str = "
message hsm {
  REQUIRED INT64 id;
  REQUIRED BYTE_ARRAY dir (STRING);
  OPTIONAL BYTE_ARRAY path (STRING);
  REQUIRED BYTE_ARRAY recorded_path (STRING);
  REQUIRED BYTE_ARRAY state (STRING);
  REQUIRED BOOLEAN pinned;
  REQUIRED INT64 size;
  REQUIRED INT32 block_count;
  REQUIRED INT64 mtime (TIMESTAMP(MICROS,true));
  REQUIRED BYTE_ARRAY hash (STRING);
  REQUIRED INT64 archived_at (TIMESTAMP(MICROS,true));
  OPTIONAL INT64 last_recall (TIMESTAMP(MICROS,true));
}";

struct Rows {
    n: usize,
    bytes: usize,
    id: Leaf<i64>,
    dir: Leaf<ByteArray>,
    path: Leaf<ByteArray>,
    recorded_path: Leaf<ByteArray>,
    state: Leaf<ByteArray>,
    pinned: Leaf<bool>,
    size: Leaf<i64>,
    block_count: Leaf<i32>,
    mtime: Leaf<i64>,
    hash: Leaf<ByteArray>,
    archived_at: Leaf<i64>,
    last_recall: Leaf<i64>,
}

impl Rows {
    fn new() -> Rows {
        use Shape::*;
        Rows {
            n: 0,
            bytes: 0,
            id: Leaf::new("id", Required),
            dir: Leaf::new("dir", Required),
            path: Leaf::new("path", Optional),
            recorded_path: Leaf::new("recorded_path", Required),
            state: Leaf::new("state", Required),
            pinned: Leaf::new("pinned", Required),
            size: Leaf::new("size", Required),
            block_count: Leaf::new("block_count", Required),
            mtime: Leaf::new("mtime", Required),
            hash: Leaf::new("hash", Required),
            archived_at: Leaf::new("archived_at", Required),
            last_recall: Leaf::new("last_recall", Optional),
        }
    }

    fn push(&mut self, row: &HsmFile, now_at: Option<&Path>, dirs: &[HsmDir]) {
        let dir = dirs
            .iter()
            .find(|d| d.id == row.dir)
            .map(|d| d.path.as_str())
            .unwrap_or("");
        self.n += 1;
        self.bytes += 256 + row.path.len();
        self.id.push(row.id as i64);
        self.dir.push(ByteArray::from(dir));
        self.path
            .push_opt(now_at.map(|p| text(p.as_os_str().as_bytes())));
        self.recorded_path.push(text(&row.path));
        self.state.push(ByteArray::from(row.state.name()));
        self.pinned.push(row.pinned);
        self.size.push(row.size as i64);
        self.block_count.push(row.blocks.len() as i32);
        self.mtime.push(micros(row.mtime_ns));
        self.hash
            .push(ByteArray::from(hex::encode(row.hash).into_bytes()));
        self.archived_at.push(micros(row.archived_at));
        self.last_recall.push_opt(row.last_recall.map(micros));
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
        self.id.write::<Int64Type>(rg)?;
        self.dir.write::<ByteArrayType>(rg)?;
        self.path.write::<ByteArrayType>(rg)?;
        self.recorded_path.write::<ByteArrayType>(rg)?;
        self.state.write::<ByteArrayType>(rg)?;
        self.pinned.write::<BoolType>(rg)?;
        self.size.write::<Int64Type>(rg)?;
        self.block_count.write::<Int32Type>(rg)?;
        self.mtime.write::<Int64Type>(rg)?;
        self.hash.write::<ByteArrayType>(rg)?;
        self.archived_at.write::<Int64Type>(rg)?;
        self.last_recall.write::<Int64Type>(rg)?;
        self.n = 0;
        self.bytes = 0;
        Ok(())
    }
}

/// Writes the catalog rows (each with the path its file is at now, None when gone, as
/// [`fvfs_engine::hsm::list`] returns them) to `path`, atomically; `dirs` name the
/// managed directories. Returns the rows.
pub fn write_hsm(rows: &[(HsmFile, Option<PathBuf>)], dirs: &[HsmDir], path: &Path) -> Result<u64> {
    let mut out = Output::create(path, HSM_SCHEMA, "hsm")?;
    let mut batch = Rows::new();
    for (row, now_at) in rows {
        batch.push(row, now_at.as_deref(), dirs);
        out.flush(&mut batch, false)?;
    }
    out.flush(&mut batch, true)?;
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fvfs_engine::hsm::HsmState;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    fn row(id: u64, state: HsmState, last_recall: Option<i64>) -> HsmFile {
        HsmFile {
            id,
            dir: 7,
            path: format!("sub/f{id}").into_bytes(),
            handle: vec![],
            state,
            pinned: id == 2,
            size: 1 << 40,
            mtime_ns: 5_999,
            ctime_ns: 6,
            hash: [0x5a; 32],
            blocks: vec![],
            resident: vec![],
            archived_at: 1_700_000_000_000_000_001,
            last_recall,
        }
    }

    #[test]
    fn catalog_rows_read_back_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HSM_FILE);
        let dirs = vec![HsmDir {
            id: 7,
            path: "/data".into(),
            added: 0,
        }];
        let rows = vec![
            (
                row(1, HsmState::Archived, None),
                Some(PathBuf::from("/data/sub/f1")),
            ),
            (row(2, HsmState::Released, Some(42_000)), None),
        ];
        assert_eq!(write_hsm(&rows, &dirs, &path).unwrap(), 2);
        let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        let got: Vec<Vec<Field>> = r
            .get_row_iter(None)
            .unwrap()
            .map(|r| {
                r.unwrap()
                    .get_column_iter()
                    .map(|(_, f)| f.clone())
                    .collect()
            })
            .collect();
        let s = |v: &str| Field::Str(v.into());
        assert_eq!(
            got[0],
            [
                Field::Long(1),
                s("/data"),
                s("/data/sub/f1"),
                s("sub/f1"),
                s("archived"),
                Field::Bool(false),
                Field::Long(1 << 40),
                Field::Int(0),
                Field::TimestampMicros(5),
                s(&"5a".repeat(32)),
                Field::TimestampMicros(1_700_000_000_000_000),
                Field::Null,
            ]
        );
        assert_eq!(got[1][2], Field::Null);
        assert_eq!(got[1][4], s("released"));
        assert_eq!(got[1][5], Field::Bool(true));
        assert_eq!(got[1][11], Field::TimestampMicros(42));

        assert_eq!(write_hsm(&[], &dirs, &path).unwrap(), 0);
        let r = SerializedFileReader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(r.metadata().file_metadata().num_rows(), 0);
        assert_eq!(r.metadata().file_metadata().schema().get_fields().len(), 12);
    }
}
