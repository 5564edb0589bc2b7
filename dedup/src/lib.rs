//! The dedup stage of falconry: global fuzzy, exact-substring and URL dedup of refined
//! Parquet, in bounded memory (RefinedWeb §3.3, Figure 2: 23.34% of the crawl in, 11.67%
//! out).
//!
//! - [`minhash`]: 9,000 MinHash values over 5-gram word shingles of [`normalize`]d text,
//!   kept as 450 band keys; [`lsh`] buckets them by key range into candidate pairs;
//!   [`components`] joins pairs into clusters and one document per cluster stays.
//! - [`exact_substring`]: suffix array (libsais) over the corpus; later copies of spans of
//!   >= 50 units are cut, documents left under 20 characters dropped.
//! - [`url_dedup`]: a URL already kept in an earlier dump or part is dropped.
//!
//! [`run_dedup`] runs the six [`Step`]s over a run folder; each step is a set of
//! independent units (`--task I --tasks N`), resumable through `_done` markers, and the
//! funnel rows `minhash`, `exact_substring`, `url_dedup` land in `stats.json`.
//!
//! ```
//! use falconry_dedup::{MinHasher, MinhashConfig, Scratch};
//! let hasher = MinHasher::new(&MinhashConfig::default());
//! let (mut scratch, mut a, mut b) = (Scratch::default(), Vec::new(), Vec::new());
//! hasher.band_keys("The cat sat on the mat today.", &mut scratch, &mut a);
//! hasher.band_keys("the CAT sat on the mat, today", &mut scratch, &mut b);
//! assert_eq!(a.len(), 450);
//! assert_eq!(a, b); // normalisation makes them identical
//! ```
#![deny(missing_docs)]

pub mod components;
mod config;
mod error;
pub mod exact_substring;
pub mod lsh;
mod meta;
pub mod minhash;
pub mod near_duplicates;
pub mod normalize;
mod run;
pub mod sorted_runs;
pub mod url_dedup;

pub use config::{
    DedupConfig, ExactSubstringConfig, MinhashConfig, Preset, SpanUnit, UrlDedupConfig,
};
pub use error::{Error, Result};
pub use minhash::{MinHasher, Scratch};
pub use run::{list_inputs, run_dedup, ClusterReport, ExplainLine, RunOptions, Step};
