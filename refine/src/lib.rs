//! The refine stage of falconry: CommonCrawl WARC in, refined Parquet out.
//!
//! A [`Document`] is read from WARC by [`WarcReader`] (or from JSONL/Parquet text by
//! [`dataset`]), passed through the [`Stage`]s that [`Pipeline`] builds from a
//! [`RefineConfig`] — `url_filter`, `extraction`, `language_id`, `repetition`, `quality`,
//! `line_correction` — and the survivors are written as RefinedWeb-schema Parquet. Every stage
//! counts what it keeps and why it drops the rest ([`StageStats`]); the rows make the funnel.
#![deny(missing_docs)]

pub mod claim;
mod config;
pub mod dataset;
mod document;
mod error;
pub mod extract;
pub mod filters;
pub mod folder;
pub mod funnel;
pub mod inputs;
pub mod lock;
pub mod pipeline;
pub mod remote;
pub mod run;
mod stage;
pub mod warc;

pub use config::{OutputConfig, RefineConfig};
pub use document::Document;
pub use error::{Error, Result};
pub use extract::{Extracted, ExtractionConfig, Extractor};
pub use pipeline::Pipeline;
pub use stage::{RunStats, Stage, StageStats, Verdict};
pub use warc::{ReadConfig, ReadItem, WarcReader};

/// Where tests, benchmarks and examples find the shared data set (real crawls, pages, models):
/// `$FALCONRY_TEST_DATA`, else `../shared/data` beside the workspace.
pub fn test_data_dir() -> std::path::PathBuf {
    match std::env::var_os("FALCONRY_TEST_DATA") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}
