//! The RefinedWeb filters (Penedo et al. 2023, §3.1–3.2, App. G), one module per stage, in
//! pipeline order; `text` holds the word splitting and n-grams they share.

pub mod language_id;
pub mod line_correction;
pub mod quality;
pub mod repetition;
pub mod text;
pub mod url_filter;

/// Where tests find `../shared/data`: env `FALCONRY_TEST_DATA`, else beside the workspace root.
#[cfg(test)]
pub(crate) fn test_data() -> std::path::PathBuf {
    match std::env::var_os("FALCONRY_TEST_DATA") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}
