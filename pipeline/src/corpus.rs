//! Reading documents from the user's text: `.txt` (documents separated by blank lines),
//! `.jsonl` (one JSON object a line, text in a configurable field), `.parquet` (a text
//! column), each optionally gzip-compressed (`.gz`); a folder is read recursively in name order.

use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

/// A document and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Stable id: `<file>#<n>`, the n-th document (from 0) of the file, named by its path
    /// inside the corpus folder (a single-file corpus: the file's name).
    pub id: String,
    pub text: String,
}

/// Why a corpus cannot be read; each names the file and, where it helps, the line or offset.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error(
        "corpus path {0} does not exist; set `data.corpus` to a file or folder of .txt, .jsonl or .parquet"
    )]
    Missing(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not UTF-8 text (invalid byte at offset {offset}); convert it to UTF-8")]
    NotUtf8 { path: PathBuf, offset: usize },
    #[error("{path}:{line}: not valid JSON ({message})")]
    BadJson {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: no string field `{field}` (set `data.text_field`)")]
    MissingField {
        path: PathBuf,
        line: usize,
        field: String,
    },
    #[error("{path}: cannot read Parquet: {message}")]
    BadParquet { path: PathBuf, message: String },
    #[error("{path}: no string column `{field}` (set `data.text_field`); columns: {columns}")]
    MissingColumn {
        path: PathBuf,
        field: String,
        columns: String,
    },
    #[error("{0}: no .txt, .jsonl or .parquet files found")]
    NoFiles(PathBuf),
    #[error("the corpus at {0} has no text")]
    Empty(PathBuf),
}

/// Reads every document under `path` into memory (small corpora and tests; `prepare` streams
/// with [`stream_corpus`]).
pub fn read_corpus(path: &Path, text_field: &str) -> Result<Vec<Document>, CorpusError> {
    let docs = stream_corpus(path, text_field)?.collect::<Result<Vec<_>, _>>()?;
    if docs.is_empty() {
        return Err(CorpusError::Empty(path.to_owned()));
    }
    Ok(docs)
}

/// Every document under `path`, one at a time, so a corpus larger than memory can be read:
/// memory holds one document (one line of JSON, one Parquet record batch; a gzipped Parquet
/// file, which cannot be read without seeking, whole). Files are read in name order; an error
/// names the file and the line or byte offset.
pub fn stream_corpus(path: &Path, text_field: &str) -> Result<Documents, CorpusError> {
    if !path.exists() {
        return Err(CorpusError::Missing(path.to_owned()));
    }
    let mut files = Vec::new();
    collect(path, &mut files)?;
    if files.is_empty() {
        return Err(CorpusError::NoFiles(path.to_owned()));
    }
    Ok(Documents {
        root: path.to_owned(),
        field: text_field.to_owned(),
        files: files.into_iter(),
        current: None,
    })
}

/// The documents of a corpus, in order (see [`stream_corpus`]).
pub struct Documents {
    root: PathBuf,
    field: String,
    files: std::vec::IntoIter<PathBuf>,
    /// The file being read: its label, the texts it yields, and how many it has yielded.
    current: Option<(String, Texts, usize)>,
}

type Texts = Box<dyn Iterator<Item = Result<String, CorpusError>> + Send>;

impl Iterator for Documents {
    type Item = Result<Document, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((label, texts, i)) = &mut self.current {
                match texts.next() {
                    Some(Ok(text)) => {
                        *i += 1;
                        // Blank documents are skipped but keep their number, so ids do not
                        // shift when a blank line of JSON is filled in.
                        if text.trim().is_empty() {
                            continue;
                        }
                        return Some(Ok(Document {
                            id: format!("{label}#{}", *i - 1),
                            text,
                        }));
                    }
                    Some(Err(e)) => {
                        self.files = Vec::new().into_iter();
                        self.current = None;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            let file = self.files.next()?;
            match open_texts(&file, &self.field) {
                Ok(texts) => self.current = Some((label(&file, &self.root), texts, 0)),
                Err(e) => {
                    self.files = Vec::new().into_iter();
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The id prefix of a file: its path as seen from the corpus root (a single file: its name), so
/// the same corpus gives the same ids, split and results wherever it lives and whichever
/// directory the pipeline runs from.
fn label(file: &Path, root: &Path) -> String {
    match file.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => lower_name(file),
    }
}

fn lower_name(file: &Path) -> String {
    file.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_lowercase()
}

/// The texts of one file, by its format.
fn open_texts(file: &Path, field: &str) -> Result<Texts, CorpusError> {
    let name = lower_name(file);
    let stem = name.strip_suffix(".gz").unwrap_or(&name);
    if stem.ends_with(".parquet") {
        return parquet_texts(file, field);
    }
    let lines = Lines::open(file)?;
    if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
        Ok(Box::new(json_texts(
            lines,
            file.to_owned(),
            field.to_owned(),
        )))
    } else {
        Ok(Box::new(Paragraphs { lines }))
    }
}

/// The lines of a text file (gzip-decompressed if `.gz`), each checked to be UTF-8, without
/// their line ending (`\n` or `\r\n`, as `str::lines`).
struct Lines {
    path: PathBuf,
    reader: std::io::BufReader<Box<dyn Read + Send>>,
    /// Bytes read so far: the offset named when a line is not UTF-8.
    offset: usize,
    buf: Vec<u8>,
}

impl Lines {
    fn open(path: &Path) -> Result<Self, CorpusError> {
        let file = std::fs::File::open(path).map_err(|source| CorpusError::Io {
            path: path.to_owned(),
            source,
        })?;
        let gz = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        let inner: Box<dyn Read + Send> = if gz {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        Ok(Self {
            path: path.to_owned(),
            reader: std::io::BufReader::with_capacity(1 << 20, inner),
            offset: 0,
            buf: Vec::new(),
        })
    }
}

impl Iterator for Lines {
    type Item = Result<String, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::BufRead;
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Ok(0) => return None,
            Ok(_) => {}
            Err(source) => {
                return Some(Err(CorpusError::Io {
                    path: self.path.clone(),
                    source,
                }));
            }
        }
        let start = self.offset;
        self.offset += self.buf.len();
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        // A newline byte never occurs inside a multi-byte character, so checking line by line
        // finds the same first bad byte as checking the whole file.
        Some(match std::str::from_utf8(&self.buf) {
            Ok(line) => Ok(line.to_owned()),
            Err(e) => Err(CorpusError::NotUtf8 {
                path: self.path.clone(),
                offset: start + e.valid_up_to(),
            }),
        })
    }
}

/// Documents of a `.txt` file: runs of lines separated by one or more blank lines.
struct Paragraphs {
    lines: Lines,
}

impl Iterator for Paragraphs {
    type Item = Result<String, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut current: Option<String> = None;
        for line in self.lines.by_ref() {
            let line = match line {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
            if line.trim().is_empty() {
                if current.is_some() {
                    return current.map(Ok);
                }
            } else if let Some(doc) = &mut current {
                doc.push('\n');
                doc.push_str(&line);
            } else {
                current = Some(line);
            }
        }
        current.map(Ok)
    }
}

/// Texts of a JSON-lines file: the string field `field` of each non-blank line.
fn json_texts(
    lines: Lines,
    path: PathBuf,
    field: String,
) -> impl Iterator<Item = Result<String, CorpusError>> + Send {
    lines
        .enumerate()
        .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(move |(i, line)| {
            let line = line?;
            let value: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| CorpusError::BadJson {
                    path: path.clone(),
                    line: i + 1,
                    message: e.to_string(),
                })?;
            value
                .get(&field)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
                .ok_or_else(|| CorpusError::MissingField {
                    path: path.clone(),
                    line: i + 1,
                    field: field.clone(),
                })
        })
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    if path.is_file() {
        out.push(path.to_owned());
        return Ok(());
    }
    let io = |source| CorpusError::Io {
        path: path.to_owned(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_lowercase();
        let stem = name.strip_suffix(".gz").unwrap_or(&name).to_owned();
        if p.is_dir() {
            collect(&p, out)?;
        } else if [".txt", ".jsonl", ".ndjson", ".parquet"]
            .iter()
            .any(|e| stem.ends_with(e))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, CorpusError> {
    let io = |source| CorpusError::Io {
        path: path.to_owned(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
    {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io)?;
        return Ok(out);
    }
    Ok(raw)
}

/// Documents of a `.txt` file: runs of text separated by one or more blank lines.
pub fn split_paragraphs(text: &str) -> Vec<String> {
    let mut docs = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                docs.push(current.join("\n"));
                current.clear();
            }
        } else {
            current.push(line);
        }
    }
    if !current.is_empty() {
        docs.push(current.join("\n"));
    }
    docs
}

/// Texts of a Parquet file's string column `field`, one record batch at a time (nulls skipped).
fn parquet_texts(path: &Path, field: &str) -> Result<Texts, CorpusError> {
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let (reader, column) = if gz {
        // Parquet needs to seek; a gzipped file is decompressed into memory first.
        let bytes = bytes::Bytes::from(read_bytes(path)?);
        batches(ParquetRecordBatchReaderBuilder::try_new(bytes), path, field)?
    } else {
        let file = std::fs::File::open(path).map_err(|source| CorpusError::Io {
            path: path.to_owned(),
            source,
        })?;
        batches(ParquetRecordBatchReaderBuilder::try_new(file), path, field)?
    };
    Ok(Box::new(ParquetTexts {
        path: path.to_owned(),
        reader,
        column,
        pending: Vec::new().into_iter(),
    }))
}

fn bad_parquet(path: &Path, e: &dyn std::fmt::Display) -> CorpusError {
    CorpusError::BadParquet {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The batch reader and the index of the text column, or an error listing the columns.
fn batches<T: parquet::file::reader::ChunkReader + 'static>(
    builder: parquet::errors::Result<ParquetRecordBatchReaderBuilder<T>>,
    path: &Path,
    field: &str,
) -> Result<(ParquetRecordBatchReader, usize), CorpusError> {
    let builder = builder.map_err(|e| bad_parquet(path, &e))?;
    let schema = builder.schema().clone();
    let column = schema.index_of(field).ok().filter(|&i| {
        matches!(
            schema.field(i).data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        )
    });
    let Some(column) = column else {
        let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(CorpusError::MissingColumn {
            path: path.to_owned(),
            field: field.to_owned(),
            columns: columns.join(", "),
        });
    };
    let reader = builder.build().map_err(|e| bad_parquet(path, &e))?;
    Ok((reader, column))
}

struct ParquetTexts {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    column: usize,
    /// The rest of the current batch's texts.
    pending: std::vec::IntoIter<String>,
}

impl Iterator for ParquetTexts {
    type Item = Result<String, CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(text) = self.pending.next() {
                return Some(Ok(text));
            }
            let batch = match self.reader.next()? {
                Ok(b) => b,
                Err(e) => return Some(Err(bad_parquet(&self.path, &e))),
            };
            let col = match arrow::compute::cast(batch.column(self.column), &DataType::Utf8) {
                Ok(c) => c,
                Err(e) => return Some(Err(bad_parquet(&self.path, &e))),
            };
            let strings = col.as_string::<i32>();
            self.pending = (0..strings.len())
                .filter(|&i| strings.is_valid(i))
                .map(|i| strings.value(i).to_owned())
                .collect::<Vec<_>>()
                .into_iter();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_split_on_blank_lines() {
        assert_eq!(
            split_paragraphs("a b\nc\n\n\n d \n\ne\n"),
            vec!["a b\nc", " d ", "e"]
        );
    }

    #[test]
    fn streamed_paragraphs_equal_the_whole_text_split() {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in [
            "a b\nc\n\n\n d \n\ne\n",
            "one\r\ntwo\r\n\r\nthree\r",
            "  \n\t\nx\n \ny",
            "",
            "no newline at the end",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.path().join(format!("{i}.txt"));
            std::fs::write(&path, text).unwrap();
            let streamed: Vec<String> = Paragraphs {
                lines: Lines::open(&path).unwrap(),
            }
            .map(Result::unwrap)
            .collect();
            assert_eq!(streamed, split_paragraphs(text), "{text:?}");
        }
    }

    #[test]
    fn bad_inputs_name_file_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let latin1 = dir.path().join("latin1.txt");
        std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
        let err = read_corpus(&latin1, "text").unwrap_err().to_string();
        assert!(
            err.contains("latin1.txt") && err.contains("offset 3"),
            "{err}"
        );
        // Read line by line, the offset still counts from the start of the file.
        std::fs::write(&latin1, b"ok\r\n\ncaf\xe9").unwrap();
        let err = read_corpus(&latin1, "text").unwrap_err().to_string();
        assert!(err.contains("offset 8"), "{err}");

        let jsonl = dir.path().join("d.jsonl");
        std::fs::write(&jsonl, "{\"text\": \"ok\"}\n{\"body\": \"no\"}\n").unwrap();
        let err = read_corpus(&jsonl, "text").unwrap_err().to_string();
        assert!(err.contains("d.jsonl:2") && err.contains("`text`"), "{err}");

        std::fs::write(&jsonl, "{\"text\": \"ok\"}\nnot json\n").unwrap();
        let err = read_corpus(&jsonl, "text").unwrap_err().to_string();
        assert!(
            err.contains("d.jsonl:2") && err.contains("not valid JSON"),
            "{err}"
        );

        let pq = dir.path().join("x.parquet");
        std::fs::write(&pq, b"PAR1 garbage").unwrap();
        let err = read_corpus(&pq, "text").unwrap_err().to_string();
        assert!(
            err.contains("x.parquet") && err.contains("Parquet"),
            "{err}"
        );

        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "\n\n  \n").unwrap();
        assert!(matches!(
            read_corpus(&empty, "text"),
            Err(CorpusError::Empty(_))
        ));
        assert!(matches!(
            read_corpus(&dir.path().join("nope"), "text"),
            Err(CorpusError::Missing(_))
        ));
    }

    #[test]
    fn ids_do_not_depend_on_where_the_corpus_lives_or_how_its_path_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let corpus = dir.path().join("c");
        std::fs::create_dir_all(corpus.join("sub")).unwrap();
        std::fs::write(corpus.join("a.txt"), "one\n\ntwo").unwrap();
        std::fs::write(corpus.join("sub/b.txt"), "three").unwrap();
        let ids = |p: &Path| -> Vec<String> {
            read_corpus(p, "text")
                .unwrap()
                .into_iter()
                .map(|d| d.id)
                .collect()
        };
        let expected = vec!["a.txt#0", "a.txt#1", "sub/b.txt#0"];
        assert_eq!(ids(&corpus), expected);
        // The same folder under another name and path spelling.
        let moved = dir.path().join("elsewhere/deeper");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::rename(&corpus, &moved).unwrap();
        assert_eq!(ids(&moved.join("../deeper")), expected);
        // A single-file corpus: the file's name.
        assert_eq!(ids(&moved.join("sub/b.txt")), vec!["b.txt#0"]);
    }

    #[test]
    fn jsonl_and_gzip_text_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.jsonl"),
            "{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n",
        )
        .unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"three\n\nfour").unwrap();
        std::fs::write(dir.path().join("b.txt.GZ"), gz.finish().unwrap()).unwrap();
        let docs: Vec<String> = read_corpus(dir.path(), "text")
            .unwrap()
            .into_iter()
            .map(|d| d.text)
            .collect();
        assert_eq!(docs, vec!["one", "two", "three", "four"]);
    }
}
