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
    Array, ArrayRef, AsArray, Float32Builder, ListBuilder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::properties::WriterProperties;

use crate::folder::{commit_tmp, create_tmp};
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
        let (tmp, file) = create_tmp(path)?;
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
        commit_tmp(file, &self.tmp, &self.path)?;
        Ok(self.rows)
    }
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

/// Reads every document of a Parquet file (or URL: by ranged reads, [`crate::remote`]), in
/// order, a row group at a time.
///
/// Reads what the field publishes, with any codec (snappy, gzip, brotli, lz4, zstd, none): the
/// text column is `content` (RefinedWeb) or `text` (FineWeb, datatrove), as `string`,
/// `large_string` or `string_view`; every other column is optional and found at the top level
/// or inside a `metadata` struct (datatrove's writer): `url`, `id`, `dump`, `segment`,
/// `language`, `language_score` (any float), `timestamp` or `date` (a timestamp of any unit,
/// seconds, or an RFC 3339 string) and `image_urls` (lists of `[url, alt]`). A metadata column
/// of another type is cast to text, or ignored when it cannot be. Without an id the id is
/// derived from url and text ([`Document::text_id`]).
pub fn read_parquet(path: &Path) -> Result<impl Iterator<Item = Result<Document>>> {
    let perr = |e| Error::Parquet {
        path: path.into(),
        source: e,
    };
    let file = crate::remote::RandomAccess::open(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?;
    check_column_chunks(builder.metadata(), path)?;
    let reader = builder.build().map_err(perr)?;
    let owned = path.to_path_buf();
    Ok(unwind_guarded(reader).flat_map(move |batch| match batch {
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

/// The batches of `reader`, a panic inside it (the parquet crate 60.1 divides by a page's value
/// count, which a damaged page can give as 0; found by the `parquet` fuzz target) becoming an
/// error that ends the file instead of a crash of the whole run.
fn unwind_guarded<I>(
    mut reader: I,
) -> impl Iterator<Item = std::result::Result<RecordBatch, ArrowError>>
where
    I: Iterator<Item = std::result::Result<RecordBatch, ArrowError>>,
{
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next())) {
            Ok(next) => next,
            Err(panic) => {
                failed = true;
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Some(Err(ArrowError::ParquetError(format!(
                    "damaged data: the parquet reader failed ({why})"
                ))))
            }
        }
    })
}

/// The parquet crate asserts (a panic) that a column chunk's start and length are not
/// negative when it reads the chunk; a footer that says otherwise is an error naming the file.
/// (Found by the `parquet` fuzz target.)
fn check_column_chunks(meta: &ParquetMetaData, path: &Path) -> Result<()> {
    for (g, group) in meta.row_groups().iter().enumerate() {
        for col in group.columns() {
            let start = col
                .dictionary_page_offset()
                .unwrap_or(col.data_page_offset());
            if start < 0 || col.compressed_size() < 0 {
                return Err(Error::Input {
                    path: path.into(),
                    message: format!(
                        "damaged footer: row group {g}, column `{}` starts at {start} with {} bytes",
                        col.column_path(),
                        col.compressed_size()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// The column `name` of a batch, at the top level or as a field of its `metadata` struct.
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a ArrayRef> {
    batch.column_by_name(name).or_else(|| {
        let metadata = batch.column_by_name("metadata")?.as_struct_opt()?;
        metadata.column_by_name(name)
    })
}

fn from_batch(batch: &RecordBatch, path: &Path) -> Result<Vec<Document>> {
    let (text_name, text) = ["content", "text"]
        .into_iter()
        .find_map(|n| batch.column_by_name(n).map(|c| (n, c)))
        .ok_or_else(|| Error::Input {
            path: path.into(),
            message: "no `content` or `text` column".into(),
        })?;
    let is_text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let text_type = match text.data_type() {
        DataType::Dictionary(_, values) => values.as_ref(),
        t => t,
    };
    let content = is_text(text_type)
        .then(|| strings_of(text))
        .flatten()
        .ok_or_else(|| Error::Input {
            path: path.into(),
            message: format!(
                "column `{text_name}` is {}, not a string column",
                text.data_type()
            ),
        })?;
    // Metadata that does not read as text is left out rather than failing the file.
    let string_col =
        |name: &str| -> Option<Vec<Option<String>>> { column(batch, name).and_then(strings_of) };
    let url = string_col("url");
    let dump = string_col("dump");
    let segment = string_col("segment");
    let id = string_col("id");
    let language = string_col("language");
    let timestamp = ["timestamp", "date"]
        .into_iter()
        .find_map(|n| column(batch, n).and_then(seconds_of));
    let score = column(batch, "language_score")
        .and_then(|c| cast(c, &DataType::Float32).ok())
        .map(|c| c.as_primitive::<arrow::datatypes::Float32Type>().clone());
    let images = column(batch, "image_urls").and_then(|c| {
        let target = schema()
            .field_with_name("image_urls")
            .expect("schema has image_urls")
            .data_type()
            .clone();
        cast(c, &target)
            .ok()
            .and_then(|c| c.as_list_opt::<i32>().cloned())
    });
    let at = |col: &Option<Vec<Option<String>>>, i: usize| -> Option<String> {
        col.as_ref().and_then(|c| c[i].clone())
    };
    let mut docs = Vec::with_capacity(batch.num_rows());
    for (i, content) in content.into_iter().enumerate() {
        let content = content.unwrap_or_default();
        let url = at(&url, i).unwrap_or_default();
        let id = at(&id, i).unwrap_or_else(|| Document::text_id(&url, &content));
        docs.push(Document {
            id,
            timestamp: timestamp.as_ref().and_then(|t| t[i]),
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

/// A column's values as text: `string`, `large_string` and `string_view` directly, anything
/// arrow can cast to text (integers, dictionaries) through the cast; `None` otherwise.
fn strings_of(col: &ArrayRef) -> Option<Vec<Option<String>>> {
    let owned =
        |it: &mut dyn Iterator<Item = Option<&str>>| it.map(|s| s.map(str::to_owned)).collect();
    Some(match col.data_type() {
        DataType::Utf8 => owned(&mut col.as_string::<i32>().iter()),
        DataType::LargeUtf8 => owned(&mut col.as_string::<i64>().iter()),
        DataType::Utf8View => owned(&mut col.as_string_view().iter()),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => return None,
        _ => {
            let text = cast(col, &DataType::Utf8).ok()?;
            owned(&mut text.as_string::<i32>().iter())
        }
    })
}

/// Seconds since the epoch: a timestamp of any unit, integers taken as seconds, or RFC 3339
/// strings (FineWeb's `date`); `None` for a column of another type.
fn seconds_of(col: &ArrayRef) -> Option<Vec<Option<i64>>> {
    match col.data_type() {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => {
            let seconds = cast(col, &DataType::Timestamp(TimeUnit::Second, None)).ok()?;
            let ints = cast(&seconds, &DataType::Int64).ok()?;
            Some(ints.as_primitive::<Int64Type>().iter().collect())
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(
            strings_of(col)?
                .into_iter()
                .map(|s| {
                    s.and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
                        .map(|t| t.timestamp())
                })
                .collect(),
        ),
        _ => {
            let ints = cast(col, &DataType::Int64).ok()?;
            Some(ints.as_primitive::<Int64Type>().iter().collect())
        }
    }
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

/// Reads JSONL (`.jsonl`, `.jsonl.gz`, `.json.gz`; a file or a URL, streamed): one
/// `{"text", "url", ...}` object a line.
/// `timestamp` may be seconds since the epoch or an RFC 3339 string.
///
/// Damage is a counted skip, never an error: a line that is not a JSON object with a text
/// field is `bad_json`; a gzip stream that ends early is one `truncated`, one that fails to
/// inflate (or its CRC) one `corrupt_gzip`, and a failing read of a plain file one
/// `read_error`. Reading stops at the damage, after every whole line before it.
pub fn read_jsonl(path: &Path) -> Result<impl Iterator<Item = Result<JsonlItem>>> {
    let file = crate::remote::open(path)?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let reader: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    // `split` yields the same error forever once the stream fails: stop after the first.
    let mut lines = reader.split(b'\n');
    let mut damaged = false;
    let lines = std::iter::from_fn(move || {
        if damaged {
            return None;
        }
        match lines.next()? {
            Ok(line) => Some(Ok(line)),
            Err(e) => {
                damaged = true;
                Some(Err(match e.kind() {
                    _ if !gz => "read_error",
                    std::io::ErrorKind::UnexpectedEof => "truncated",
                    _ => "corrupt_gzip",
                }))
            }
        }
    });
    Ok(lines.filter_map(move |line| {
        let line = match line {
            Ok(line) => line,
            Err(reason) => return Some(Ok(JsonlItem::Skip(reason))),
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
    fn a_panic_inside_the_reader_ends_the_file_with_an_error() {
        let mut n = 0;
        let batches = std::iter::from_fn(move || {
            n += 1;
            match n {
                1 => Some(Ok(RecordBatch::new_empty(Arc::new(Schema::empty())))),
                _ => panic!("attempt to divide by zero"),
            }
        });
        let got: Vec<_> = unwind_guarded(batches).collect();
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        let err = got[1].as_ref().unwrap_err().to_string();
        assert!(
            err.contains("damaged data") && err.contains("divide by zero"),
            "{err}"
        );
    }

    /// Fuzzing found a footer with a negative column chunk length: the parquet crate panicked
    /// reading it; now it is an error naming the file.
    #[test]
    fn a_footer_with_a_negative_chunk_length_is_an_error_not_a_panic() {
        use parquet::file::metadata::{ParquetMetaDataReader, ParquetMetaDataWriter};
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.parquet");
        let mut w = ShardWriter::create(&good, &OutputConfig::default()).unwrap();
        w.write(doc(1)).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let meta = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(bytes.clone()))
            .unwrap();
        let footer_len = u32::from_le_bytes(bytes[bytes.len() - 8..][..4].try_into().unwrap());
        let data_end = bytes.len() - 8 - footer_len as usize;
        let mut builder = meta.into_builder();
        let groups = builder
            .take_row_groups()
            .into_iter()
            .map(|g| {
                let mut cols = g.columns().to_vec();
                cols[0] = cols[0]
                    .clone()
                    .into_builder()
                    .set_total_compressed_size(-5)
                    .build()
                    .unwrap();
                g.into_builder().set_column_metadata(cols).build().unwrap()
            })
            .collect();
        let meta = builder.set_row_groups(groups).build();
        let mut out = bytes[..data_end].to_vec();
        let mut footer = Vec::new();
        ParquetMetaDataWriter::new(&mut footer, &meta)
            .finish()
            .unwrap();
        out.extend_from_slice(&footer);
        let bad = dir.path().join("bad.parquet");
        std::fs::write(&bad, &out).unwrap();
        let err = match read_parquet(&bad) {
            Err(e) => e.to_string(),
            Ok(docs) => format!("{:?}", docs.collect::<Vec<_>>().len()),
        };
        assert!(
            err.contains("damaged footer") && err.contains("bad.parquet"),
            "{err}"
        );
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
        assert!(!crate::folder::tmp_path(&path).exists());
        let back: Vec<Document> = read_parquet(&path).unwrap().map(|d| d.unwrap()).collect();
        assert_eq!(back, docs);
    }

    /// `$FALCONRY_PYTHON`, else `python3`, with pyarrow (as `tests/readback.rs` finds it).
    fn python() -> String {
        std::env::var("FALCONRY_PYTHON").unwrap_or_else(|_| "python3".into())
    }

    /// Parquet as pyarrow writes it, with its default codec (snappy) and every other, in the
    /// schemas the field publishes: `scripts/field_parquet.py`.
    #[test]
    fn reads_field_parquet_of_every_codec_and_schema() {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/field_parquet.py");
        let out = std::process::Command::new(python())
            .arg(&script)
            .arg(dir.path())
            .arg("20")
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "{script:?} (pip install pyarrow):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names.len(), 31, "{names:?}");
        for name in &names {
            let docs: Vec<Document> = read_parquet(&dir.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .map(|d| d.unwrap_or_else(|e| panic!("{name}: {e}")))
                .collect();
            assert_eq!(docs.len(), 20, "{name}");
            let schema = name.split('-').next().unwrap();
            for (i, d) in docs.iter().enumerate() {
                assert!(
                    d.content.contains(&format!(" row {i}: the ")),
                    "{name}: {:?}",
                    d.content
                );
                assert!(
                    d.url.starts_with("https://") && d.url.ends_with(&format!("/{i}")),
                    "{name}: {:?}",
                    d.url
                );
                match schema {
                    "refinedweb" | "many" => {
                        assert_eq!(d.timestamp, Some(1_672_628_645 + i as i64), "{name}");
                        assert_eq!(d.dump, "CC-MAIN-2023-06");
                        assert_eq!(d.segment, "1674764494852.95");
                        assert_eq!(d.image_urls.len(), i % 2, "{name}");
                        assert_eq!(d.id, Document::text_id(&d.url, &d.content));
                    }
                    "fineweb" => {
                        assert!(d.id.starts_with("<urn:uuid:"), "{name}: {}", d.id);
                        assert_eq!(d.timestamp, Some(1_368_861_840 + (i % 60) as i64), "{name}");
                        assert_eq!(d.dump, "CC-MAIN-2013-20");
                        assert_eq!(d.language.as_deref(), Some("en"));
                        assert!(
                            (d.language_score.unwrap() - (0.9 + i as f32 / 1000.0)).abs() < 1e-6
                        );
                    }
                    "datatrove" => {
                        assert!(d.id.starts_with("dt/"), "{name}: {}", d.id);
                        assert_eq!(d.dump, "CC-MAIN-2024-10");
                        assert_eq!(d.timestamp, Some(1_708_426_800));
                    }
                    _ => assert_eq!(d.id, Document::text_id(&d.url, &d.content)),
                }
            }
        }
    }

    #[test]
    fn text_column_of_another_type_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ints.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "text",
            DataType::Int64,
            false,
        )]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2]))],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(&path).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let err = read_parquet(&path)
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ints.parquet") && err.contains("`text` is Int64"),
            "{err}"
        );
    }

    /// Issue 12: a line nesting 1,000,000 arrays is `bad_json` (serde_json's recursion
    /// limit, no stack overflow), and the next line is read.
    #[test]
    fn jsonl_line_1_000_000_deep_is_a_skip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep.jsonl");
        let deep = "[".repeat(1_000_000) + &"]".repeat(1_000_000);
        std::fs::write(
            &path,
            format!("{{\"text\":{deep}}}\n{{\"text\":\"after\"}}\n"),
        )
        .unwrap();
        let items: Vec<JsonlItem> = read_jsonl(&path).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], JsonlItem::Skip("bad_json")));
        assert!(matches!(&items[1], JsonlItem::Doc(d) if d.content == "after"));
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
