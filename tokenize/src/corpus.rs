//! Finding and reading the documents a command is given: Parquet or JSONL files, or folders
//! of them, split between tasks as DESIGN.md's sharding says (sorted paths, `i mod N`).

use std::path::{Path, PathBuf};

use falconry_refine::dataset::{read_jsonl, read_parquet, JsonlItem};
use falconry_refine::Document;

use crate::{Error, Result};

/// Whether `path` names a dataset file falconry reads.
fn is_dataset_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    [".parquet", ".jsonl", ".jsonl.gz", ".json.gz"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The dataset files of `inputs` (files, folders searched recursively, globs), sorted and
/// without repeats.
pub fn list_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    Ok(falconry_refine::run::expand_inputs_with(
        inputs,
        is_dataset_file,
    )?)
}

/// The files of task `task` of `tasks`: every `tasks`-th of the sorted list.
pub fn task_files(files: &[PathBuf], task: usize, tasks: usize) -> Vec<PathBuf> {
    files
        .iter()
        .skip(task)
        .step_by(tasks.max(1))
        .cloned()
        .collect()
}

/// Checks a `--task/--tasks` pair.
pub fn check_task(task: usize, tasks: usize) -> Result<()> {
    if tasks == 0 || task >= tasks {
        return Err(Error::Config(format!(
            "--task must be below --tasks, got task {task} of {tasks}"
        )));
    }
    Ok(())
}

/// Calls `f` with each document of a Parquet or JSONL file; returns the JSONL lines skipped
/// as unreadable (bad JSON, corrupt gzip), which are counted, not fatal.
pub fn for_each_document(path: &Path, mut f: impl FnMut(Document) -> bool) -> Result<u64> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let mut skipped = 0;
    if name.ends_with(".parquet") {
        for doc in read_parquet(path)? {
            if !f(doc?) {
                break;
            }
        }
    } else {
        for item in read_jsonl(path)? {
            match item? {
                JsonlItem::Doc(doc) => {
                    if !f(doc) {
                        break;
                    }
                }
                JsonlItem::Skip(_) => skipped += 1,
            }
        }
    }
    Ok(skipped)
}

/// A seeded fraction in [0, 1) for a document id: the same id always falls on the same side.
pub fn id_fraction(id: &str, seed: u64) -> f64 {
    (xxhash_rust::xxh3::xxh3_64_with_seed(id.as_bytes(), seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// SplitMix64: a small seeded generator for shuffles (no external RNG, stable across versions).
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher–Yates shuffle of `items`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}
