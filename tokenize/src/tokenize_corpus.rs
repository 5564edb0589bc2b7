//! `falconry tokenize`: documents in, token shards out ([`crate::shards`] describes them).
//!
//! The folder follows the run-folder convention ([`falconry_refine::folder`]) with one unit per
//! input file, as refine's: task `i` of `n` takes the sorted input files whose number is `i`
//! mod `n`, under its lock on the folder. A file, unit `part-KEY` (`KEY`: its path's hash), is
//! read whole; each document goes to `validation` when a seeded hash of its id falls below
//! `validation_fraction`, else to `train`; each split is put in a seeded random order (by
//! another seeded hash of the id, so the order depends on the documents and the seed alone),
//! encoded in parallel batches (rayon) and cut into shards at the first document end past
//! `shard_tokens`: `shard-KEY-NNNNN.bin`, train's first. The marker `_done/part-KEY.json`
//! (the file's identity, its shards and counts) is written last. A re-run skips the marked
//! files and redoes the others, removing what an interrupted attempt left. Once every input
//! is marked, the task that sees it writes `meta.json` (every shard, in name order, and the
//! totals) and `stats.json` (the funnel of the inputs' `stats.json` and the `tokenize` row:
//! documents in, documents written, empty ones dropped). No file depends on the task split or
//! the thread count.
//!
//! An input changed since its shards were made is refused, unless `allow_changed_inputs`:
//! then it is redone, and the shards of inputs no longer given are removed
//! ([`falconry_refine::folder::plan_files`]).
//!
//! A task holds the text of one input file in memory at a time.

use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_refine::folder::{
    all_file_records, file_inputs, file_unit, plan_files, write_atomic, FileRecord, Markers, Task,
};
use falconry_refine::lock::OutputLock;
use falconry_refine::run::upstream_stats;
use falconry_refine::{RunStats, StageStats};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::corpus::{for_each_document, id_fraction, list_inputs};
use crate::shards::{
    encode_ids, Dtype, ShardInfo, Split, SplitInfo, SplitTotals, TokenMeta, META_FILE,
};
use crate::{Error, Result, Tokenizer};

/// Everything `falconry tokenize` is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenizeConfig {
    /// Input files or folders (Parquet, JSONL).
    pub inputs: Vec<PathBuf>,
    /// Output folder.
    pub output: PathBuf,
    /// The `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// Tokens per shard before it closes at the next document end (100M: 200 MB of uint16).
    pub shard_tokens: u64,
    /// Expected fraction of documents held out for validation (0 = none).
    pub validation_fraction: f64,
    /// Seed of the validation split and the shuffle.
    pub seed: u64,
    /// Width of the ids in the files.
    pub dtype: Dtype,
    /// This process's share of the input files.
    pub task: Task,
    /// Documents encoded per parallel batch.
    pub batch_documents: usize,
    /// Redo the task on inputs that differ from those the folder was made from, instead of
    /// refusing them (`--allow-changed-inputs`).
    pub allow_changed_inputs: bool,
}

impl Default for TokenizeConfig {
    fn default() -> Self {
        TokenizeConfig {
            inputs: Vec::new(),
            output: PathBuf::new(),
            tokenizer: PathBuf::new(),
            shard_tokens: 100_000_000,
            validation_fraction: 0.005,
            seed: 0,
            dtype: Dtype::Uint16,
            task: Task::default(),
            batch_documents: 4096,
            allow_changed_inputs: false,
        }
    }
}

impl TokenizeConfig {
    /// Checks ranges; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        Task::new(self.task.index, self.task.count)?;
        if self.shard_tokens == 0 {
            return Err(Error::Config("--shard-tokens must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::Config(format!(
                "--validation-fraction must be in [0, 1), got {}",
                self.validation_fraction
            )));
        }
        if self.batch_documents == 0 {
            return Err(Error::Config("batch_documents must be at least 1".into()));
        }
        Ok(())
    }
}

/// What tokenizing input files gave: one file's (the record of its marker), or the sum of a
/// task's files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskPart {
    /// The shards written (or found done), in the order written.
    pub shards: Vec<ShardInfo>,
    /// Documents read.
    pub documents: u64,
    /// Documents with empty text, not written.
    pub empty_documents: u64,
    /// JSONL lines that did not parse.
    pub skipped_lines: u64,
    /// UTF-8 bytes of text encoded (in shards written or found done).
    pub text_bytes: u64,
}

impl std::ops::AddAssign<&TaskPart> for TaskPart {
    fn add_assign(&mut self, other: &TaskPart) {
        self.shards.extend(other.shards.iter().cloned());
        self.documents += other.documents;
        self.empty_documents += other.empty_documents;
        self.skipped_lines += other.skipped_lines;
        self.text_bytes += other.text_bytes;
    }
}

/// What [`tokenize_corpus`] reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TokenizeReport {
    /// This task's files, summed (those done now and those found done).
    pub part: TaskPart,
    /// Shards written by this run (the others were found done).
    pub shards_written: usize,
    /// Whether every file of the task was already done.
    pub task_was_done: bool,
    /// Whether this run wrote `meta.json` (every input file is done).
    pub meta_written: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Whether the fast encoder was used.
    pub fast_encoder: bool,
}

/// Runs one task of `falconry tokenize`.
pub fn tokenize_corpus(config: &TokenizeConfig) -> Result<TokenizeReport> {
    config.validate()?;
    let started = Instant::now();
    let out = &config.output;
    let tokenizer = Tokenizer::from_file(&config.tokenizer)?;
    config.dtype.check_vocab(tokenizer.vocab_size())?;
    let eos = tokenizer.eos_id().ok_or_else(|| Error::Tokenizer {
        path: config.tokenizer.clone(),
        message: "no end-of-text token (<|endoftext|>, </s> or <eos>)".into(),
    })?;
    let _lock = OutputLock::acquire(out, config.task)?;
    let markers = Markers::open(out)?;
    let files = list_inputs(&config.inputs)?;
    let remove_shards = |unit: &str| remove_shards_of(out, unit);
    let plan = plan_files(
        out,
        &files,
        config.task,
        config.allow_changed_inputs,
        &markers,
        &remove_shards,
    )?;
    let mut report = TokenizeReport {
        fast_encoder: tokenizer.is_fast(),
        task_was_done: plan.todo.is_empty(),
        ..Default::default()
    };
    for id in &plan.todo {
        let _span = tracing::debug_span!("file", path = %id.path.display()).entered();
        let unit = file_unit(id);
        // What an interrupted attempt (or an older version of the file) left.
        remove_shards_of(out, &unit)?;
        let part = tokenize_file(config, &id.path, &unit, &tokenizer, eos)?;
        report.shards_written += part.shards.len();
        markers.write(
            &unit,
            &file_inputs(id),
            &FileRecord {
                input: id.clone(),
                report: part,
            },
        )?;
    }
    for (_, id) in plan
        .listed
        .iter()
        .enumerate()
        .filter(|(k, _)| config.task.owns(*k))
    {
        if let Some(m) = markers.read::<FileRecord<TaskPart>>(&file_unit(id))? {
            report.part += &m.record.report;
        }
    }
    if let Some(records) = all_file_records::<TaskPart>(&markers, &plan.listed)? {
        write_summary(config, &tokenizer, eos, &records)?;
        report.meta_written = true;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The shards of unit `part-KEY`: `shard-KEY-NNNNN.bin`.
fn shard_name(unit: &str, n: usize) -> String {
    format!("shard-{}-{n:05}.bin", unit.trim_start_matches("part-"))
}

/// Removes every shard of `unit` in `out`.
fn remove_shards_of(out: &Path, unit: &str) -> falconry_refine::Result<()> {
    let prefix = shard_name(unit, 0);
    let prefix = &prefix[..prefix.len() - "00000.bin".len()];
    let entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) => return Err(falconry_refine::Error::io(out, e)),
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name
            .to_str()
            .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".bin"))
        {
            std::fs::remove_file(entry.path())
                .map_err(|e| falconry_refine::Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// One document kept for encoding.
struct Doc {
    /// Where it falls in its split's shuffled order.
    order: u64,
    text: String,
}

/// A seeded position for a document id, apart from the split's hash (another seed), so a
/// split's order is random and the same for the same documents wherever they are tokenized.
fn order_key(id: &str, seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed ^ 0x9E37_79B9_7F4A_7C15)
}

/// Tokenizes one input file into its shards; returns its part.
fn tokenize_file(
    config: &TokenizeConfig,
    path: &Path,
    unit: &str,
    tokenizer: &Tokenizer,
    eos: u32,
) -> Result<TaskPart> {
    let mut part = TaskPart::default();
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    part.skipped_lines = for_each_document(path, |d| {
        part.documents += 1;
        if d.content.is_empty() {
            part.empty_documents += 1;
        } else {
            let doc = Doc {
                order: order_key(&d.id, config.seed),
                text: d.content,
            };
            if id_fraction(&d.id, config.seed) < config.validation_fraction {
                validation.push(doc);
            } else {
                train.push(doc);
            }
        }
        true
    })?;
    let mut sink = ShardSink {
        config,
        unit,
        part: &mut part,
    };
    for (split, mut docs) in [(Split::Train, train), (Split::Validation, validation)] {
        // Stable: documents of one id keep their file order.
        docs.sort_by_key(|d| d.order);
        sink.split(split, &docs, tokenizer, eos)?;
    }
    Ok(part)
}

/// Cuts one file's encoded documents into shards.
struct ShardSink<'a> {
    config: &'a TokenizeConfig,
    unit: &'a str,
    part: &'a mut TaskPart,
}

impl ShardSink<'_> {
    fn split(&mut self, split: Split, docs: &[Doc], tokenizer: &Tokenizer, eos: u32) -> Result<()> {
        let dtype = self.config.dtype;
        let mut buf: Vec<u8> = Vec::new();
        let (mut tokens, mut documents, mut text_bytes) = (0u64, 0u64, 0u64);
        for batch in docs.chunks(self.config.batch_documents) {
            let encoded: Vec<Result<Vec<u32>>> = batch
                .par_iter()
                .map(|d| tokenizer.encode(&d.text))
                .collect();
            for (doc, ids) in batch.iter().zip(encoded) {
                let mut ids = ids?;
                ids.push(eos);
                encode_ids(&ids, dtype, &mut buf);
                tokens += ids.len() as u64;
                documents += 1;
                text_bytes += doc.text.len() as u64;
                if tokens >= self.config.shard_tokens {
                    self.flush(split, &mut buf, tokens, documents, text_bytes)?;
                    (tokens, documents, text_bytes) = (0, 0, 0);
                }
            }
        }
        if documents > 0 {
            self.flush(split, &mut buf, tokens, documents, text_bytes)?;
        }
        Ok(())
    }

    fn flush(
        &mut self,
        split: Split,
        buf: &mut Vec<u8>,
        tokens: u64,
        documents: u64,
        text_bytes: u64,
    ) -> Result<()> {
        let file = shard_name(self.unit, self.part.shards.len());
        write_atomic(&self.config.output.join(&file), buf)?;
        self.part.shards.push(ShardInfo {
            file,
            tokens,
            documents,
            split: Some(split),
        });
        self.part.text_bytes += text_bytes;
        buf.clear();
        Ok(())
    }
}

/// Writes `meta.json` and `stats.json` from the records of every input file.
fn write_summary(
    config: &TokenizeConfig,
    tokenizer: &Tokenizer,
    eos: u32,
    records: &[FileRecord<TaskPart>],
) -> Result<()> {
    let mut all = TaskPart::default();
    for r in records {
        all += &r.report;
    }
    let mut shards = all.shards;
    shards.sort_by(|a, b| a.file.cmp(&b.file));
    let totals = |split| {
        let mut t = SplitTotals::default();
        for s in shards.iter().filter(|s| s.split == Some(split)) {
            t.shards += 1;
            t.tokens += s.tokens;
            t.documents += s.documents;
        }
        t
    };
    let tokenizer_bytes =
        std::fs::read(&config.tokenizer).map_err(|e| Error::io(&config.tokenizer, e))?;
    let meta = TokenMeta {
        tokenizer: config.tokenizer.display().to_string(),
        tokenizer_xxh3: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&tokenizer_bytes)),
        vocab_size: tokenizer.vocab_size(),
        dtype: config.dtype,
        eos_id: eos,
        split: SplitInfo {
            validation_fraction: config.validation_fraction,
            seed: config.seed,
            train: totals(Split::Train),
            validation: totals(Split::Validation),
        },
        shards,
        shard_tokens: config.shard_tokens,
        text_bytes: all.text_bytes,
    };
    write_json(&config.output.join(META_FILE), &meta)?;
    // The funnel goes on from the inputs' (dedup's or refine's) with the documents written.
    let mut stats: RunStats = upstream_stats(&config.inputs)?;
    let mut row = StageStats::new("tokenize");
    row.input = all.documents;
    row.output = all.documents - all.empty_documents;
    if all.empty_documents > 0 {
        row.dropped.insert("empty".into(), all.empty_documents);
    }
    stats.stages.push(row);
    write_json(&config.output.join("stats.json"), &stats)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })?;
    bytes.push(b'\n');
    Ok(write_atomic(path, &bytes)?)
}
