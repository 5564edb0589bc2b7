//! Finding and reading the documents a command is given: Parquet or JSONL files, or folders
//! of them (split between tasks by [`falconry_refine::folder::Task`]).

use std::path::{Path, PathBuf};

use falconry_refine::dataset::{read_jsonl, read_parquet, JsonlItem};
use falconry_refine::Document;

use crate::Result;

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
