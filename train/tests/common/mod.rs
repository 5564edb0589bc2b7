//! Helpers shared by the train crate's integration tests (each test binary uses part of them).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The shared data set: `FALCONRY_TEST_DATA`, else `../shared/data` beside the repository.
pub fn test_data() -> PathBuf {
    match std::env::var_os("FALCONRY_TEST_DATA") {
        Some(dir) if !dir.is_empty() => dir.into(),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}

/// Falcon's `tokenizer.json` in the shared data set.
pub fn tokenizer_path() -> PathBuf {
    test_data().join("tokenizer/falcon/tokenizer.json")
}

/// The largest element-wise difference of two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
