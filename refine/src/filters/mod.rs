//! The RefinedWeb filters (Penedo et al. 2023, §3.1–3.2, App. G), one module per stage, in
//! pipeline order; `text` holds the word splitting and n-grams they share.

pub mod language_id;
pub mod line_correction;
pub mod quality;
pub mod repetition;
pub mod text;
pub mod url_filter;

#[cfg(test)]
pub(crate) use crate::test_data_dir as test_data;
