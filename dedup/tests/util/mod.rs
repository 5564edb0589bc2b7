//! Shared helpers of the dedup tests: the test data folder and small corpora on disk.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;

use falconry_refine::dataset::ShardWriter;
pub use falconry_refine::test_data_dir as data_dir;
use falconry_refine::{Document, OutputConfig};

/// The extraction benchmark's article bodies.
pub fn articles() -> Vec<String> {
    falconry_dedup::near_duplicates::load_articles(
        &data_dir()
            .join("extraction-bench")
            .join("ground-truth.json"),
    )
    .expect("extraction-bench ground truth (set FALCONRY_TEST_DATA)")
}

/// Writes `docs` as one Parquet shard at `path`.
pub fn write_shard(path: &Path, docs: &[Document]) {
    let mut w = ShardWriter::create(path, &OutputConfig::default()).unwrap();
    for d in docs {
        w.write(d.clone()).unwrap();
    }
    w.finish().unwrap();
}

/// The first `n` words of `text`.
pub fn words(text: &str, n: usize) -> String {
    text.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}
