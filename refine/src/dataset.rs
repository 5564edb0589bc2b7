//! Dataset I/O: RefinedWeb-schema Parquet shards out, Parquet or JSONL text in.
//!
//! Columns, in order: the public RefinedWeb schema — `content` (string), `url` (string),
//! `timestamp` (timestamp[us, UTC]: Parquet has no second unit), `dump` (string), `segment` (string), `image_urls`
//! (list of `[url, alt]` string lists) — then falconry's `id`, `language` and
//! `language_score` (null until `language_id` sets them).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float32Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::{Document, Error, OutputConfig, Result};

/// The Arrow schema of every Parquet shard falconry writes.
pub fn schema() -> SchemaRef {
    let string = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let pair = Field::new_list_field(DataType::Utf8, true);
    let pairs = Field::new_list_field(DataType::List(Arc::new(pair)), true);
    Arc::new(Schema::new(vec![
        string("content", false),
        string("url", false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        string("dump", false),
        string("segment", false),
        Field::new("image_urls", DataType::List(Arc::new(pairs)), false),
        string("id", false),
        string("language", true),
        Field::new("language_score", DataType::Float32, true),
    ]))
}

/// Writes documents to one Parquet shard under a temporary name; [`ShardWriter::finish`]
/// renames it into place, so a reader never sees a partial shard.
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    writer: ArrowWriter<BufWriter<File>>,
    pending: Vec<Document>,
    row_group_rows: usize,
    rows: u64,
}

impl ShardWriter {
    /// Starts a shard that will appear at `path`.
    pub fn create(path: &Path, config: &OutputConfig) -> Result<Self> {
        let tmp = tmp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let level = ZstdLevel::try_new(config.zstd_level).map_err(|e| Error::Parquet {
            path: path.into(),
            source: e,
        })?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .build();
        let writer =
            ArrowWriter::try_new(BufWriter::new(file), schema(), Some(props)).map_err(|e| {
                Error::Parquet {
                    path: path.into(),
                    source: e,
                }
            })?;
        Ok(ShardWriter {
            path: path.into(),
            tmp,
            writer,
            pending: Vec::new(),
            row_group_rows: config.row_group_rows,
            rows: 0,
        })
    }

    /// Adds one document.
    pub fn write(&mut self, doc: Document) -> Result<()> {
        self.pending.push(doc);
        if self.pending.len() >= self.row_group_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = to_batch(&self.pending).map_err(|e| Error::Arrow {
            path: self.path.clone(),
            source: e,
        })?;
        self.writer.write(&batch).map_err(|e| Error::Parquet {
            path: self.path.clone(),
            source: e,
        })?;
        self.rows += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Writes what is pending, closes the file and renames it into place; returns the rows.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        let inner = self.writer.into_inner().map_err(|e| Error::Parquet {
            path: self.path.clone(),
            source: e,
        })?;
        let file = inner
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

/// The temporary sibling a file is written under before its rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically (temporary file, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

fn to_batch(docs: &[Document]) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let n = docs.len();
    let strings = |f: &dyn Fn(&Document) -> &str| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, docs.iter().map(|d| f(d).len()).sum());
        for d in docs {
            b.append_value(f(d));
        }
        Arc::new(b.finish())
    };
    let mut timestamps = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
    let mut images = ListBuilder::new(ListBuilder::new(StringBuilder::new()));
    let mut language = StringBuilder::new();
    let mut score = Float32Builder::with_capacity(n);
    for d in docs {
        timestamps.append_option(d.timestamp.map(|t| t * 1_000_000));
        for pair in &d.image_urls {
            let inner = images.values();
            inner.values().append_value(&pair[0]);
            inner.values().append_value(&pair[1]);
            inner.append(true);
        }
        images.append(true);
        language.append_option(d.language.as_deref());
        score.append_option(d.language_score);
    }
    let columns: Vec<ArrayRef> = vec![
        strings(&|d| &d.content),
        strings(&|d| &d.url),
        Arc::new(timestamps.finish()),
        strings(&|d| &d.dump),
        strings(&|d| &d.segment),
        Arc::new(images.finish()),
        strings(&|d| &d.id),
        Arc::new(language.finish()),
        Arc::new(score.finish()),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// Reads every document of a Parquet file, in order, a row group at a time.
///
/// The text column is `content` or `text`; every other column is optional. Without an `id`
/// column the id is derived from url and text ([`Document::text_id`]).
pub fn read_parquet(path: &Path) -> Result<impl Iterator<Item = Result<Document>>> {
    let perr = |e| Error::Parquet {
        path: path.into(),
        source: e,
    };
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(perr)?
        .build()
        .map_err(perr)?;
    let owned = path.to_path_buf();
    Ok(reader.flat_map(move |batch| match batch {
        Ok(batch) => match from_batch(&batch, &owned) {
            Ok(docs) => docs.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        },
        Err(e) => vec![Err(Error::Arrow {
            path: owned.clone(),
            source: e,
        })],
    }))
}

fn from_batch(batch: &RecordBatch, path: &Path) -> Result<Vec<Document>> {
    let text = batch
        .column_by_name("content")
        .or_else(|| batch.column_by_name("text"))
        .ok_or_else(|| Error::Input {
            path: path.into(),
            message: "no `content` or `text` column".into(),
        })?;
    let string_col = |name: &str| -> Result<Option<Vec<Option<String>>>> {
        match batch.column_by_name(name) {
            None => Ok(None),
            Some(col) => Ok(Some(strings_of(col, name, path)?)),
        }
    };
    let content = strings_of(text, "content", path)?;
    let url = string_col("url")?;
    let dump = string_col("dump")?;
    let segment = string_col("segment")?;
    let id = string_col("id")?;
    let language = string_col("language")?;
    // Any timestamp unit (or plain integers taken as seconds) comes back as seconds.
    let timestamp = match batch.column_by_name("timestamp") {
        Some(c) => {
            let seconds = DataType::Timestamp(TimeUnit::Second, None);
            let c = match c.data_type() {
                DataType::Timestamp(_, _) => {
                    cast(c, &seconds).and_then(|c| cast(&c, &DataType::Int64))
                }
                _ => cast(c, &DataType::Int64),
            }
            .map_err(|e| Error::Arrow {
                path: path.into(),
                source: e,
            })?;
            Some(c.as_primitive::<Int64Type>().clone())
        }
        None => None,
    };
    let score = batch
        .column_by_name("language_score")
        .and_then(|c| c.as_any().downcast_ref::<Float32Array>().cloned());
    let images = batch
        .column_by_name("image_urls")
        .and_then(|c| c.as_list_opt::<i32>().cloned());
    let at = |col: &Option<Vec<Option<String>>>, i: usize| -> Option<String> {
        col.as_ref().and_then(|c| c[i].clone())
    };
    let mut docs = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let content = content[i].clone().unwrap_or_default();
        let url = at(&url, i).unwrap_or_default();
        let id = at(&id, i).unwrap_or_else(|| Document::text_id(&url, &content));
        docs.push(Document {
            id,
            timestamp: timestamp
                .as_ref()
                .and_then(|t| t.is_valid(i).then(|| t.value(i))),
            dump: at(&dump, i).unwrap_or_default(),
            segment: at(&segment, i).unwrap_or_default(),
            image_urls: images
                .as_ref()
                .map(|l| image_pairs(l, i))
                .unwrap_or_default(),
            language: at(&language, i),
            language_score: score
                .as_ref()
                .and_then(|s| s.is_valid(i).then(|| s.value(i))),
            url,
            content,
            ..Default::default()
        });
    }
    Ok(docs)
}

fn strings_of(col: &ArrayRef, name: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let bad = || Error::Input {
        path: path.into(),
        message: format!("column `{name}` is not a string column"),
    };
    let values: Vec<Option<String>> = match col.data_type() {
        DataType::Utf8 => col
            .as_string::<i32>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        DataType::LargeUtf8 => col
            .as_string::<i64>()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        DataType::Utf8View => col
            .as_string_view()
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect(),
        _ => return Err(bad()),
    };
    Ok(values)
}

fn image_pairs(list: &arrow::array::ListArray, row: usize) -> Vec<[String; 2]> {
    if list.is_null(row) {
        return Vec::new();
    }
    let Some(pairs) = list.value(row).as_list_opt::<i32>().cloned() else {
        return Vec::new();
    };
    (0..pairs.len())
        .filter(|&j| pairs.is_valid(j))
        .filter_map(|j| {
            let pair = pairs.value(j);
            let s = pair.as_string_opt::<i32>()?;
            let get = |k: usize| {
                if k < s.len() && s.is_valid(k) {
                    s.value(k).to_owned()
                } else {
                    String::new()
                }
            };
            Some([get(0), get(1)])
        })
        .collect()
}

/// One JSONL input line: `text` or `content`, and optional metadata.
#[derive(serde::Deserialize)]
struct JsonDoc {
    #[serde(alias = "content")]
    text: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
    #[serde(default)]
    dump: String,
    #[serde(default)]
    segment: String,
}

/// What reading one JSONL line gave: a document, or a line skipped for a reason.
// Nearly every item is a document, moved once: boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum JsonlItem {
    /// A document.
    Doc(Document),
    /// A line that is not a JSON object with a text field; the reason is counted.
    Skip(&'static str),
}

/// Reads JSONL (`.jsonl`, `.jsonl.gz`, `.json.gz`): one `{"text", "url", ...}` object a line.
/// `timestamp` may be seconds since the epoch or an RFC 3339 string.
pub fn read_jsonl(path: &Path) -> Result<impl Iterator<Item = Result<JsonlItem>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let reader: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let owned = path.to_path_buf();
    Ok(reader.split(b'\n').filter_map(move |line| {
        let line = match line {
            Ok(line) => line,
            Err(e)
                if e.kind() == std::io::ErrorKind::InvalidData
                    || e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return Some(Ok(JsonlItem::Skip("corrupt_gzip")))
            }
            Err(e) => return Some(Err(Error::io(&owned, e))),
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let Ok(doc) = serde_json::from_slice::<JsonDoc>(&line) else {
            return Some(Ok(JsonlItem::Skip("bad_json")));
        };
        let timestamp = match doc.timestamp {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => chrono::DateTime::parse_from_rfc3339(&s)
                .ok()
                .map(|t| t.timestamp()),
            _ => None,
        };
        Some(Ok(JsonlItem::Doc(Document {
            id: doc
                .id
                .unwrap_or_else(|| Document::text_id(&doc.url, &doc.text)),
            url: doc.url,
            timestamp,
            dump: doc.dump,
            segment: doc.segment,
            content: doc.text,
            ..Default::default()
        })))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(i: usize) -> Document {
        Document {
            id: format!("{i:032x}"),
            url: format!("https://example.com/{i}"),
            timestamp: i.is_multiple_of(2).then_some(1_597_000_000 + i as i64),
            dump: "CC-MAIN-2020-34".into(),
            segment: "1596439737039.58".into(),
            content: format!("Document number {i}.\nSecond line é ü 中文."),
            image_urls: vec![[format!("https://example.com/{i}.png"), "alt text".into()]; i % 3],
            html: None,
            language: (i % 2 == 1).then(|| "en".to_string()),
            language_score: (i % 2 == 1).then_some(0.9),
            ..Default::default()
        }
    }

    #[test]
    fn parquet_round_trip_keeps_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("part-00000.parquet");
        let config = OutputConfig {
            row_group_rows: 4,
            ..Default::default()
        };
        let mut w = ShardWriter::create(&path, &config).unwrap();
        let docs: Vec<Document> = (0..10).map(doc).collect();
        for d in &docs {
            w.write(d.clone()).unwrap();
        }
        assert!(!path.exists(), "shard visible before finish");
        assert_eq!(w.finish().unwrap(), 10);
        assert!(!tmp_path(&path).exists());
        let back: Vec<Document> = read_parquet(&path).unwrap().map(|d| d.unwrap()).collect();
        assert_eq!(back, docs);
    }

    #[test]
    fn jsonl_reads_text_and_skips_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.jsonl");
        std::fs::write(
            &path,
            "{\"text\":\"hello\",\"url\":\"u\",\"timestamp\":\"2020-08-08T16:54:17Z\"}\nnot json\n\n{\"content\":\"x\"}\n",
        )
        .unwrap();
        let items: Vec<JsonlItem> = read_jsonl(&path).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(items.len(), 3);
        match &items[0] {
            JsonlItem::Doc(d) => {
                assert_eq!(d.content, "hello");
                assert_eq!(d.timestamp, Some(1_596_905_657));
                assert_eq!(d.id, Document::text_id("u", "hello"));
            }
            JsonlItem::Skip(r) => panic!("skipped: {r}"),
        }
        assert!(matches!(items[1], JsonlItem::Skip("bad_json")));
        assert!(matches!(&items[2], JsonlItem::Doc(d) if d.content == "x"));
    }
}
