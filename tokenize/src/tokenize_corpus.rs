//! `falconry tokenize`: documents in, token shards out ([`crate::shards`] describes them).
//!
//! A task reads its input files (every `tasks`-th of the sorted list), assigns each document
//! to `validation` when a seeded hash of its id falls below `validation_fraction` (so the
//! split does not depend on the task count), shuffles each split with a seeded generator,
//! encodes batches in parallel (rayon), and cuts shards at the first document end past
//! `shard_tokens`. Shard `n` of task `t` of `T` is `shard-{n*T+t:05}.bin`, so tasks never
//! collide. Each shard is written under a temporary name and renamed, then a marker
//! `_done/shard-NNNNN.json` is written; a re-run skips the marked shards (and the documents
//! they hold) and redoes the rest. A task ends with `_parts/task-TTTTT.json`; the task that
//! finds every part present writes `meta.json`.
//!
//! A task holds its lock on the output folder while it runs ([`falconry_refine::lock`]). A
//! task's shards depend on every file it reads and on their order, so the input list (paths,
//! sizes, head hashes) is recorded on the first run and a different one refused
//! ([`falconry_refine::inputs`]); shard markers and task parts record the list's hash, so with
//! `allow_changed_inputs` a task redoes everything its old markers covered.
//!
//! A task holds its documents' text in memory to shuffle them: use more tasks for more text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use falconry_refine::dataset::write_atomic;
use falconry_refine::inputs::{check_inputs, list_hash, InputId};
use falconry_refine::lock::OutputLock;
use falconry_refine::run::Task;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::corpus::{
    check_task, for_each_document, id_fraction, list_inputs, task_files, SplitMix64,
};
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
    /// This task's index, below `tasks`.
    pub task: usize,
    /// Number of tasks the inputs are divided among.
    pub tasks: usize,
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
            task: 0,
            tasks: 1,
            batch_documents: 4096,
            allow_changed_inputs: false,
        }
    }
}

impl TokenizeConfig {
    /// Checks ranges; errors name the flag.
    pub fn validate(&self) -> Result<()> {
        check_task(self.task, self.tasks)?;
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

/// What one task did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskPart {
    /// The shards this task wrote (or found done), in the order written.
    pub shards: Vec<ShardInfo>,
    /// Documents read.
    pub documents: u64,
    /// Documents with empty text, not written.
    pub empty_documents: u64,
    /// JSONL lines that did not parse.
    pub skipped_lines: u64,
    /// UTF-8 bytes of text encoded (in shards written or found done).
    pub text_bytes: u64,
    /// [`list_hash`] of the inputs the part was made from.
    #[serde(default)]
    pub inputs: String,
}

/// What [`tokenize_corpus`] reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TokenizeReport {
    /// This task's part.
    pub part: TaskPart,
    /// Shards written by this run (the others were found done).
    pub shards_written: usize,
    /// Whether the whole task was already done.
    pub task_was_done: bool,
    /// Whether this run wrote `meta.json` (it was the last task to finish).
    pub meta_written: bool,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Whether the fast encoder was used.
    pub fast_encoder: bool,
}

/// The marker of a finished shard: its entry, and the text bytes it holds.
#[derive(Serialize, Deserialize)]
struct DoneShard {
    shard: ShardInfo,
    text_bytes: u64,
    /// [`list_hash`] of the inputs the shard was made from.
    #[serde(default)]
    inputs: String,
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
    let _lock = OutputLock::acquire(
        out,
        Task {
            index: config.task,
            count: config.tasks,
        },
    )?;
    for dir in [out.join("_done"), out.join("_parts")] {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let files = list_inputs(&config.inputs)?;
    let ids: Vec<InputId> = files
        .iter()
        .map(|p| InputId::read(p))
        .collect::<falconry_refine::Result<_>>()?;
    check_inputs(out, &ids, config.allow_changed_inputs)?;
    let inputs = list_hash(&ids);
    let mut report = TokenizeReport {
        fast_encoder: tokenizer.is_fast(),
        ..Default::default()
    };
    let part_path = out
        .join("_parts")
        .join(format!("task-{:05}.json", config.task));
    let done_part = match std::fs::read(&part_path) {
        Ok(bytes) => Some(
            serde_json::from_slice::<TaskPart>(&bytes).map_err(|e| Error::Json {
                path: part_path.clone(),
                source: e,
            })?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&part_path, e)),
    };
    match done_part.filter(|p| p.inputs == inputs) {
        Some(part) => {
            report.task_was_done = true;
            report.part = part;
        }
        None => {
            // A part from other inputs no longer counts toward meta.json.
            if let Err(e) = std::fs::remove_file(&part_path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Error::io(&part_path, e));
                }
            }
            report.part = run_task(
                config,
                &files,
                &inputs,
                &tokenizer,
                eos,
                &mut report.shards_written,
            )?;
            write_json(&part_path, &report.part)?;
        }
    }
    report.meta_written = write_meta_if_complete(config, &tokenizer, eos, &inputs)?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One document kept for encoding.
struct Doc {
    id: String,
    text: String,
}

fn run_task(
    config: &TokenizeConfig,
    all_files: &[PathBuf],
    inputs: &str,
    tokenizer: &Tokenizer,
    eos: u32,
    written: &mut usize,
) -> Result<TaskPart> {
    let files = task_files(all_files, config.task, config.tasks);
    let mut part = TaskPart {
        inputs: inputs.to_string(),
        ..TaskPart::default()
    };
    let mut splits: BTreeMap<Split, Vec<Doc>> = BTreeMap::new();
    for file in &files {
        part.skipped_lines += for_each_document(file, |d| {
            part.documents += 1;
            if d.content.is_empty() {
                part.empty_documents += 1;
            } else {
                let split = if id_fraction(&d.id, config.seed) < config.validation_fraction {
                    Split::Validation
                } else {
                    Split::Train
                };
                splits.entry(split).or_default().push(Doc {
                    id: d.id,
                    text: d.content,
                });
            }
            true
        })?;
    }
    let done = read_done(config, inputs)?;
    let mut writer = ShardSink {
        config,
        index: 0,
        done: &done,
        written,
        part: &mut part,
    };
    for (split, mut docs) in splits {
        // Files are read in a fixed order, so sorting by id first makes the shuffle depend on
        // the documents alone.
        docs.sort_by(|a, b| a.id.cmp(&b.id));
        let salt = match split {
            Split::Train => 0,
            Split::Validation => 1,
        };
        SplitMix64::new(config.seed ^ ((config.task as u64) << 8) ^ salt).shuffle(&mut docs);
        writer.split(split, &docs, tokenizer, eos)?;
    }
    Ok(part)
}

/// Markers of this task's finished shards from these inputs, in the order they were written.
fn read_done(config: &TokenizeConfig, inputs: &str) -> Result<Vec<DoneShard>> {
    let mut done = Vec::new();
    for n in 0.. {
        let path = done_path(config, n);
        if !path.exists() {
            break;
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let shard: DoneShard = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
            path: path.clone(),
            source: e,
        })?;
        let file = config.output.join(&shard.shard.file);
        let len = std::fs::metadata(&file)
            .map(|m| m.len())
            .unwrap_or(u64::MAX);
        if len != shard.shard.tokens * config.dtype.width() as u64 || shard.inputs != inputs {
            break; // the shard is missing, damaged or from other inputs: redo it and what follows
        }
        done.push(shard);
    }
    Ok(done)
}

fn shard_name(config: &TokenizeConfig, n: usize) -> String {
    format!("shard-{:05}.bin", n * config.tasks + config.task)
}

fn done_path(config: &TokenizeConfig, n: usize) -> PathBuf {
    config
        .output
        .join("_done")
        .join(shard_name(config, n).replace(".bin", ".json"))
}

/// Cuts encoded documents into shards, skipping those a previous run finished.
struct ShardSink<'a> {
    config: &'a TokenizeConfig,
    /// Shards written or found so far by this task.
    index: usize,
    /// Finished shards from a previous run, in the order they were written.
    done: &'a [DoneShard],
    written: &'a mut usize,
    part: &'a mut TaskPart,
}

impl ShardSink<'_> {
    fn split(&mut self, split: Split, docs: &[Doc], tokenizer: &Tokenizer, eos: u32) -> Result<()> {
        // Skip the documents of shards already done: a split's shards hold consecutive
        // documents, and splits are written one after the other.
        let mut first = 0;
        while let Some(d) = self.done.get(self.index).filter(|d| d.shard.split == split) {
            first += d.shard.documents as usize;
            self.part.text_bytes += d.text_bytes;
            self.part.shards.push(d.shard.clone());
            self.index += 1;
        }
        let dtype = self.config.dtype;
        let mut buf: Vec<u8> = Vec::new();
        let (mut tokens, mut documents, mut text_bytes) = (0u64, 0u64, 0u64);
        for batch in docs[first.min(docs.len())..].chunks(self.config.batch_documents) {
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
        let file = shard_name(self.config, self.index);
        write_atomic(&self.config.output.join(&file), buf)?;
        let shard = ShardInfo {
            file,
            tokens,
            documents,
            split,
        };
        write_json(
            &done_path(self.config, self.index),
            &DoneShard {
                shard: shard.clone(),
                text_bytes,
                inputs: self.part.inputs.clone(),
            },
        )?;
        self.part.shards.push(shard);
        self.part.text_bytes += text_bytes;
        self.index += 1;
        *self.written += 1;
        buf.clear();
        Ok(())
    }
}

/// Writes `meta.json` when every task's part is present and made from `inputs`; returns
/// whether it did.
fn write_meta_if_complete(
    config: &TokenizeConfig,
    tokenizer: &Tokenizer,
    eos: u32,
    inputs: &str,
) -> Result<bool> {
    let mut shards = Vec::new();
    let mut text_bytes = 0;
    for task in 0..config.tasks {
        let path = config
            .output
            .join("_parts")
            .join(format!("task-{task:05}.json"));
        if !path.exists() {
            return Ok(false);
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let part: TaskPart =
            serde_json::from_slice(&bytes).map_err(|e| Error::Json { path, source: e })?;
        if part.inputs != inputs {
            return Ok(false);
        }
        shards.extend(part.shards);
        text_bytes += part.text_bytes;
    }
    shards.sort_by(|a, b| a.file.cmp(&b.file));
    let totals = |split| {
        let mut t = SplitTotals::default();
        for s in shards.iter().filter(|s| s.split == split) {
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
        text_bytes,
    };
    write_json(&config.output.join(META_FILE), &meta)?;
    Ok(true)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Json {
        path: path.into(),
        source: e,
    })?;
    bytes.push(b'\n');
    Ok(write_atomic(path, &bytes)?)
}
