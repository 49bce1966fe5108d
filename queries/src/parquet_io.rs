//! Parquet files written atomically (temporary name, then rename) with ZSTD and metadata.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::tables::SCHEMA_VERSION;
use crate::{Error, Result};

/// Rows per row group: Parquet's default. A per-neuron filter still reads little of a file,
/// through the page index (pages of 20,000 rows) rather than row groups; whole-lake scans pay
/// less per row group than at the earlier 64 Ki rows (with the dictionary limit below, all
/// derived tables 7% faster on the default lake and on the generated 100 M-row lake, the
/// explorer's neuron page as fast; `pipeline bench analyze`, `pipeline bench serve`).
pub const ROW_GROUP_ROWS: usize = 1024 * 1024;

/// Largest dictionary of the activations' `value` column in a row group, in bytes (16 Ki f32
/// values). Recorded activations are nearly all distinct, and a dictionary of them only adds
/// an index to every value: past this size the writer stores the rest of the row group plain
/// (the default lake 232 → 166 MB). Values from few levels (a generated lake, quantised
/// values) keep their dictionary.
pub const VALUE_DICTIONARY_BYTES: usize = 64 * 1024;

/// Writer properties shared by every table: ZSTD, dictionaries, statistics for pruning, and
/// the schema version plus caller metadata in the footer.
pub fn writer_properties(metadata: &[(&str, String)]) -> WriterProperties {
    let mut kv = vec![KeyValue::new(
        "schema_version".into(),
        SCHEMA_VERSION.to_string(),
    )];
    kv.extend(
        metadata
            .iter()
            .map(|(k, v)| KeyValue::new((*k).into(), v.clone())),
    );
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        // Sorted ids (token_index within a neuron) are small deltas.
        .set_column_encoding("token_index".into(), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled("token_index".into(), false)
        .set_column_dictionary_page_size_limit("value".into(), VALUE_DICTIONARY_BYTES)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_key_value_metadata(Some(kv))
        .build()
}

/// A Parquet file being written under a temporary name; [`AtomicParquet::finish`] renames it.
/// Dropping it unfinished removes the temporary file, so no partial file is ever visible.
pub struct AtomicParquet {
    writer: Option<ArrowWriter<File>>,
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
}

impl AtomicParquet {
    /// Starts writing `path` (parents are created).
    pub fn create(path: &Path, schema: SchemaRef, metadata: &[(&str, String)]) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(Error::io(parent))?;
        }
        let tmp = crate::durable::temp_path(path);
        let file = File::create(&tmp).map_err(Error::io(&tmp))?;
        let writer = ArrowWriter::try_new(file, schema, Some(writer_properties(metadata)))
            .map_err(Error::parquet(&tmp))?;
        Ok(Self {
            writer: Some(writer),
            tmp,
            path: path.to_owned(),
            rows: 0,
        })
    }

    /// Appends a batch; full row groups are flushed to disk as they fill.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        let writer = self.writer.as_mut().expect("writer is open until finish");
        writer.write(batch).map_err(Error::parquet(&self.tmp))
    }

    /// Rows buffered in memory and not yet flushed (the recorder's memory accounting).
    pub fn buffered_rows(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.in_progress_rows())
    }

    /// Closes the file, flushes it to disk and renames it into place (durably, see
    /// [`crate::durable`]); returns the rows written. On failure the temporary file is removed.
    pub fn finish(mut self) -> Result<usize> {
        let writer = self.writer.take().expect("writer is open until finish");
        let done = writer
            .into_inner()
            .map_err(Error::parquet(&self.tmp))
            .and_then(|file| file.sync_all().map_err(Error::io(&self.tmp)))
            .and_then(|()| crate::durable::commit(&self.tmp, &self.path));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        done.map(|()| self.rows)
    }
}

impl Drop for AtomicParquet {
    fn drop(&mut self) {
        if self.writer.is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes whole batches to `path` atomically.
pub fn write_parquet(
    path: &Path,
    schema: SchemaRef,
    batches: &[RecordBatch],
    metadata: &[(&str, String)],
) -> Result<usize> {
    let mut file = AtomicParquet::create(path, schema, metadata)?;
    for batch in batches {
        file.write(batch)?;
    }
    file.finish()
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = File::open(path).map_err(Error::io(path))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(Error::parquet(path))?
        .build()
        .map_err(Error::parquet(path))?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// The key-value metadata of a Parquet file.
pub fn read_metadata(path: &Path) -> Result<Vec<(String, String)>> {
    let file = File::open(path).map_err(Error::io(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(Error::parquet(path))?;
    let kv = builder.metadata().file_metadata().key_value_metadata();
    Ok(kv
        .map(|kv| {
            kv.iter()
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float32Array, UInt16Array, UInt32Array};
    use std::sync::Arc;

    #[test]
    fn round_trips_rows_and_metadata_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/part.parquet");
        let schema = crate::tables::activations::schema();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(UInt32Array::from(vec![0, 1, 2])),
                Arc::new(UInt16Array::from(vec![5, 5, 9])),
                Arc::new(Float32Array::from(vec![0.5, 1.5, -2.0])),
                Arc::new(BooleanArray::from(vec![false; 3])),
            ],
        )
        .unwrap();
        let rows = write_parquet(
            &path,
            schema,
            std::slice::from_ref(&batch),
            &[("run_id", "r1".into())],
        )
        .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(read_parquet(&path).unwrap(), vec![batch]);
        let meta = read_metadata(&path).unwrap();
        assert!(meta.contains(&("schema_version".into(), SCHEMA_VERSION.into())));
        assert!(meta.contains(&("run_id".into(), "r1".into())));
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("part.parquet")]);
    }

    #[test]
    fn an_unfinished_file_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.parquet");
        {
            let _w =
                AtomicParquet::create(&path, crate::tables::activations::schema(), &[]).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// The encodings of the data pages of the `value` column in each row group, and the
    /// values in its dictionary page (0 without one).
    fn value_pages(path: &Path) -> Vec<(Vec<Encoding>, usize)> {
        use parquet::column::page::Page;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let reader = SerializedFileReader::new(File::open(path).unwrap()).unwrap();
        (0..reader.metadata().num_row_groups())
            .map(|g| {
                let (mut data, mut dictionary) = (Vec::new(), 0);
                for page in reader
                    .get_row_group(g)
                    .unwrap()
                    .get_column_page_reader(2)
                    .unwrap()
                {
                    match page.unwrap() {
                        Page::DictionaryPage { num_values, .. } => dictionary = num_values as usize,
                        p => data.push(p.encoding()),
                    }
                }
                (data, dictionary)
            })
            .collect()
    }

    /// With row groups of a million rows, a neuron's rows are found by the page index: every
    /// row group's `neuron` column has pages whose [min, max] cover a few neurons each, in order.
    fn neuron_pages_are_indexed(path: &Path) {
        use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
        use parquet::file::page_index::column_index::ColumnIndexMetaData;
        let metadata = ParquetMetaDataReader::new()
            .with_page_index_policy(PageIndexPolicy::Required)
            .parse_and_finish(&File::open(path).unwrap())
            .unwrap();
        for group in metadata.column_index().expect("a page index") {
            let ColumnIndexMetaData::INT32(neuron) = &group[1] else {
                panic!("neuron pages without min/max: {:?}", group[1]);
            };
            let (min, max) = (neuron.min_values(), neuron.max_values());
            assert!(min.len() >= 5, "{} pages", min.len());
            for page in 0..min.len() {
                assert!(
                    max[page] - min[page] <= 5,
                    "page {page}: {}..{}",
                    min[page],
                    max[page]
                );
                if page > 0 {
                    assert!(min[page] >= max[page - 1], "pages out of order at {page}");
                }
            }
        }
    }

    #[test]
    fn activation_values_keep_a_dictionary_only_while_it_is_small() {
        let dir = tempfile::tempdir().unwrap();
        let rows = ROW_GROUP_ROWS + 100_000;
        for levels in [100, rows] {
            let path = dir.path().join(format!("{levels}.parquet"));
            let activations: Vec<_> = (0..rows)
                .map(|i| crate::tables::activations::ActivationRow {
                    neuron: (i / 5000) as u16,
                    token_index: i as u32,
                    value: 1.0 + (i % levels) as f32 / 1024.0,
                })
                .collect();
            let mut file =
                AtomicParquet::create(&path, crate::tables::activations::schema(), &[]).unwrap();
            for chunk in activations.chunks(100_000) {
                file.write(&crate::tables::activations::encode(chunk, false, false).unwrap())
                    .unwrap();
            }
            file.finish().unwrap();
            if levels == 100 {
                neuron_pages_are_indexed(&path);
            }
            let groups = value_pages(&path);
            assert_eq!(
                groups.len(),
                2,
                "{rows} rows in row groups of {ROW_GROUP_ROWS}"
            );
            for (data, dictionary) in groups {
                if levels == 100 {
                    // Few levels: every page an index into a dictionary of exactly them.
                    assert_eq!(dictionary, 100);
                    assert!(
                        data.iter().all(|e| *e == Encoding::RLE_DICTIONARY),
                        "{data:?}"
                    );
                } else {
                    // All distinct: the dictionary stops at its size limit and later pages are
                    // plain (a 1 MiB dictionary without the limit).
                    let limit = VALUE_DICTIONARY_BYTES / 4;
                    assert!(dictionary > 0 && dictionary <= limit + 1024, "{dictionary}");
                    assert_eq!(data.first(), Some(&Encoding::RLE_DICTIONARY), "{data:?}");
                    assert_eq!(data.last(), Some(&Encoding::PLAIN), "{data:?}");
                }
            }
        }
    }
}
