//! Reading documents from the user's text: `.txt` (documents separated by blank lines),
//! `.jsonl` (one JSON object a line, text in a configurable field), `.parquet` (a text
//! column), each optionally gzip-compressed (`.gz`); a folder is read recursively in name order.

use std::io::Read;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

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

/// Reads every document under `path`.
pub fn read_corpus(path: &Path, text_field: &str) -> Result<Vec<Document>, CorpusError> {
    if !path.exists() {
        return Err(CorpusError::Missing(path.to_owned()));
    }
    let mut files = Vec::new();
    collect(path, &mut files)?;
    if files.is_empty() {
        return Err(CorpusError::NoFiles(path.to_owned()));
    }
    let mut docs = Vec::new();
    for file in &files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_lowercase();
        let stem = name.strip_suffix(".gz").unwrap_or(&name);
        let texts = if stem.ends_with(".parquet") {
            read_parquet(file, text_field)?
        } else {
            let text = read_text(file)?;
            if stem.ends_with(".jsonl") || stem.ends_with(".ndjson") {
                read_jsonl(file, &text, text_field)?
            } else {
                split_paragraphs(&text)
            }
        };
        // The id names the file as seen from the corpus root (a single file: its name), so
        // the same corpus gives the same ids, split and results wherever it lives and
        // whichever directory the pipeline runs from.
        let label = match file.strip_prefix(path) {
            Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
            _ => name.clone(),
        };
        docs.extend(
            texts
                .into_iter()
                .enumerate()
                .filter(|(_, t)| !t.trim().is_empty())
                .map(|(i, text)| Document {
                    id: format!("{label}#{i}"),
                    text,
                }),
        );
    }
    if docs.is_empty() {
        return Err(CorpusError::Empty(path.to_owned()));
    }
    Ok(docs)
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

fn read_text(path: &Path) -> Result<String, CorpusError> {
    let bytes = read_bytes(path)?;
    String::from_utf8(bytes).map_err(|e| CorpusError::NotUtf8 {
        path: path.to_owned(),
        offset: e.utf8_error().valid_up_to(),
    })
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

fn read_jsonl(path: &Path, text: &str, field: &str) -> Result<Vec<String>, CorpusError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| CorpusError::BadJson {
                path: path.to_owned(),
                line: i + 1,
                message: e.to_string(),
            })?;
        let text =
            value
                .get(field)
                .and_then(|v| v.as_str())
                .ok_or_else(|| CorpusError::MissingField {
                    path: path.to_owned(),
                    line: i + 1,
                    field: field.to_owned(),
                })?;
        out.push(text.to_owned());
    }
    Ok(out)
}

fn read_parquet(path: &Path, field: &str) -> Result<Vec<String>, CorpusError> {
    let bad = |e: &dyn std::fmt::Display| CorpusError::BadParquet {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let bytes = bytes::Bytes::from(read_bytes(path)?);
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| bad(&e))?;
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
    let mut out = Vec::new();
    for batch in builder.build().map_err(|e| bad(&e))? {
        let batch = batch.map_err(|e| bad(&e))?;
        let col =
            arrow::compute::cast(batch.column(column), &DataType::Utf8).map_err(|e| bad(&e))?;
        let strings = col.as_string::<i32>();
        out.extend(
            (0..strings.len())
                .filter(|&i| strings.is_valid(i))
                .map(|i| strings.value(i).to_owned()),
        );
    }
    Ok(out)
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
    fn bad_inputs_name_file_and_place() {
        let dir = tempfile::tempdir().unwrap();
        let latin1 = dir.path().join("latin1.txt");
        std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
        let err = read_corpus(&latin1, "text").unwrap_err().to_string();
        assert!(
            err.contains("latin1.txt") && err.contains("offset 3"),
            "{err}"
        );

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
