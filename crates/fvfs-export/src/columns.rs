//! The writing side shared by both files: a leaf column's buffered values with their
//! definition and repetition levels ([`Leaf`]), a row group's worth of them ([`Batch`]),
//! and the output file ([`Output`]): written under a temporary name, renamed into place
//! when complete.
//!
//! Levels, for the three shapes used here (Parquet's Dremel encoding):
//! - `Required`: one value per row, no levels.
//! - `Optional` (max definition level 1): a row is definition 1 with a value, or 0 (null)
//!   without one.
//! - `List`, a REQUIRED 3-level LIST of REQUIRED elements (max definition 1, max
//!   repetition 1): a row of n > 0 elements is n values with definition levels 1 and
//!   repetition levels 0, 1, 1, …; an empty list is one level pair (0, 0) and no value.

use crate::{ExportError, Result};
use parquet::basic::Compression;
use parquet::data_type::DataType;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::parser::parse_message_type;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a leaf column's values map to rows (see the module comment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Required,
    Optional,
    List,
}

/// One leaf column's values for the row group being built.
pub(crate) struct Leaf<T> {
    /// The top-level column of the schema this leaf belongs to.
    name: &'static str,
    shape: Shape,
    values: Vec<T>,
    def: Vec<i16>,
    rep: Vec<i16>,
}

impl<T> Leaf<T> {
    pub(crate) fn new(name: &'static str, shape: Shape) -> Leaf<T> {
        Leaf {
            name,
            shape,
            values: Vec::new(),
            def: Vec::new(),
            rep: Vec::new(),
        }
    }

    /// The value of a required column.
    pub(crate) fn push(&mut self, v: T) {
        debug_assert_eq!(self.shape, Shape::Required, "{}", self.name);
        self.values.push(v);
    }

    /// The value of an optional column (None: null).
    pub(crate) fn push_opt(&mut self, v: Option<T>) {
        debug_assert_eq!(self.shape, Shape::Optional, "{}", self.name);
        match v {
            Some(v) => {
                self.def.push(1);
                self.values.push(v);
            }
            None => self.def.push(0),
        }
    }

    /// One row's list (possibly empty).
    pub(crate) fn push_list(&mut self, items: impl IntoIterator<Item = T>) {
        debug_assert_eq!(self.shape, Shape::List, "{}", self.name);
        let mut first = true;
        for v in items {
            self.def.push(1);
            self.rep.push(if first { 0 } else { 1 });
            self.values.push(v);
            first = false;
        }
        if first {
            self.def.push(0);
            self.rep.push(0);
        }
    }

    /// Writes this leaf as the row group's next column and empties it.
    pub(crate) fn write<D: DataType<T = T>>(
        &mut self,
        rg: &mut SerializedRowGroupWriter<'_, File>,
    ) -> Result<()> {
        let mut col = rg.next_column()?.ok_or_else(|| ExportError::Column {
            expected: self.name.to_string(),
            found: "(none: the schema has fewer columns)".into(),
        })?;
        let w = col.typed::<D>();
        let found = w.get_descriptor().path().parts()[0].clone();
        if found != self.name {
            return Err(ExportError::Column {
                expected: self.name.to_string(),
                found,
            });
        }
        match self.shape {
            Shape::Required => w.write_batch(&self.values, None, None)?,
            Shape::Optional => w.write_batch(&self.values, Some(&self.def), None)?,
            Shape::List => w.write_batch(&self.values, Some(&self.def), Some(&self.rep))?,
        };
        col.close()?;
        self.values.clear();
        self.def.clear();
        self.rep.clear();
        Ok(())
    }
}

/// The rows of one row group, column by column.
pub(crate) trait Batch {
    fn rows(&self) -> usize;
    /// About how many bytes the buffered values take.
    fn bytes(&self) -> usize;
    /// Writes every leaf in schema order and empties the batch.
    fn write(&mut self, rg: &mut SerializedRowGroupWriter<'_, File>) -> Result<()>;
}

/// A Parquet file being written: under a hidden temporary name in the target's
/// directory until [`Output::finish`] renames it into place. Dropped unfinished, it
/// removes the temporary file.
pub(crate) struct Output {
    writer: Option<SerializedFileWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    rows: u64,
    /// The temporary file became `path`.
    renamed: bool,
}

impl Output {
    /// Starts `path` with the schema `schema` (message-type text) and `kind` recorded in
    /// the file's key-value metadata (`fvfs.export`).
    pub(crate) fn create(path: &Path, schema: &str, kind: &str) -> Result<Output> {
        let schema = Arc::new(parse_message_type(schema)?);
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("fvfs {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                "fvfs.export".to_string(),
                format!("{kind} v1"),
            )]))
            .build();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(ExportError::io("create", &tmp))?;
        let mut out = Output {
            writer: None,
            tmp,
            path: path.to_path_buf(),
            rows: 0,
            renamed: false,
        };
        out.writer = Some(SerializedFileWriter::new(file, schema, Arc::new(props))?);
        Ok(out)
    }

    /// Writes `batch` as a row group when it is full (or, with `last`, when it has rows).
    pub(crate) fn flush(&mut self, batch: &mut impl Batch, last: bool) -> Result<()> {
        let n = batch.rows();
        let full = n >= crate::ROW_GROUP_ROWS || batch.bytes() >= crate::ROW_GROUP_BYTES;
        if n == 0 || !(full || last) {
            return Ok(());
        }
        let w = self.writer.as_mut().expect("an unfinished output");
        let mut rg = w.next_row_group()?;
        batch.write(&mut rg)?;
        rg.close()?;
        self.rows += n as u64;
        Ok(())
    }

    /// Writes the footer, fsyncs, renames into place and fsyncs the directory; returns
    /// the number of rows.
    pub(crate) fn finish(mut self) -> Result<u64> {
        let w = self.writer.take().expect("an unfinished output");
        let file = w.into_inner()?;
        file.sync_all()
            .map_err(ExportError::io("fsync", &self.tmp))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(ExportError::io("rename", &self.tmp))?;
        self.renamed = true;
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(ExportError::io("fsync", dir))?;
        Ok(self.rows)
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
