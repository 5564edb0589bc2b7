//! The dedup stage's configuration: one section per stage, defaults from RefinedWeb.
//!
//! `configs/dedup.toml` repeats every key (a test holds it equal to the default); [`DedupConfig::default`]
//! is RefinedWeb's setting: MinHash 450 bands x 20 rows over 5-gram word shingles (paper
//! §3.3 and Appendix G.3.2), exact substring over 50 units, URL dedup across parts.

use std::path::Path;

use falconry_refine::OutputConfig;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Everything `falconry dedup` can be told by `--config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// Memory one task of the global steps (`components`, `exact_substring`) may use, in GB
    /// (2^30 bytes): the budget of its sorted runs, whatever the corpus size.
    pub memory_limit_gb: f64,
    /// The `minhash` stage: fuzzy dedup by MinHash LSH, global over all shards.
    pub minhash: MinhashConfig,
    /// The `exact_substring` stage: repeated spans removed by suffix array.
    pub exact_substring: ExactSubstringConfig,
    /// The `url_dedup` stage: a URL kept in an earlier dump or part is dropped from later ones.
    pub url_dedup: UrlDedupConfig,
    /// How the deduplicated Parquet shards are written (same keys as refine's `[output]`).
    pub output: OutputConfig,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            memory_limit_gb: 8.0,
            minhash: MinhashConfig::default(),
            exact_substring: ExactSubstringConfig::default(),
            url_dedup: UrlDedupConfig::default(),
            output: OutputConfig::default(),
        }
    }
}

/// Sorted-run units a task runs at once (each with its own buffer).
pub const PARALLEL_UNITS: usize = 4;

impl DedupConfig {
    /// Bytes of records one unit buffers before writing a sorted run: an eighth of the
    /// memory limit, so [`PARALLEL_UNITS`] units sorting at once stay under half of it.
    pub fn run_budget(&self) -> usize {
        (self.memory_limit_gb * (1u64 << 30) as f64 / 8.0) as usize
    }
}

/// Named MinHash LSH settings of the peers. P(dup) = 1 - (1 - J^rows)^bands.
///
/// | preset | bands x rows | hashes | P(dup) J=0.70 | J=0.75 | J=0.80 |
/// |---|---|---|---|---|---|
/// | `refinedweb` | 450 x 20 | 9,000 | 0.30 | 0.76 | 0.995 |
/// | `dclm` | 93 x 15 | 1,395 | 0.36 | 0.71 | 0.96 |
/// | `fineweb` | 14 x 8 | 112 | 0.56 | 0.77 | 0.92 |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// RefinedWeb (Penedo et al. 2023, Appendix G.3.2): 450 bands of 20 rows.
    Refinedweb,
    /// DCLM (Li et al. 2024): 93 bands of 15 rows.
    Dclm,
    /// FineWeb / datatrove's default: 14 bands of 8 rows.
    Fineweb,
}

impl Preset {
    /// `(bands, rows)` of the preset.
    pub fn bands_rows(self) -> (usize, usize) {
        match self {
            Preset::Refinedweb => (450, 20),
            Preset::Dclm => (93, 15),
            Preset::Fineweb => (14, 8),
        }
    }
}

/// The `minhash` stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MinhashConfig {
    /// Run the stage.
    pub enabled: bool,
    /// A named setting; when given it overrides `bands` and `rows`.
    pub preset: Option<Preset>,
    /// LSH bands (RefinedWeb: 450).
    pub bands: usize,
    /// Rows (hashes) per band (RefinedWeb: 20).
    pub rows: usize,
    /// Words per shingle (RefinedWeb: 5-grams).
    pub ngram: usize,
    /// Seed of the hash permutations; every task of a run must share it.
    pub seed: u64,
    /// Hash-range partitions of the band keys: one `buckets` task each. More partitions,
    /// less memory per task (each holds about docs x bands / buckets x 16 bytes).
    pub buckets: usize,
}

impl Default for MinhashConfig {
    fn default() -> Self {
        MinhashConfig {
            enabled: true,
            preset: None,
            bands: 450,
            rows: 20,
            ngram: 5,
            seed: 1,
            buckets: 64,
        }
    }
}

impl MinhashConfig {
    /// The settings of a preset, other keys at their defaults.
    pub fn preset(preset: Preset) -> Self {
        MinhashConfig {
            preset: Some(preset),
            ..Default::default()
        }
    }

    /// Effective `(bands, rows)`: the preset's when one is named.
    pub fn bands_rows(&self) -> (usize, usize) {
        self.preset
            .map_or((self.bands, self.rows), Preset::bands_rows)
    }

    /// Probability that two documents of Jaccard similarity `j` share at least one band.
    pub fn p_duplicate(&self, j: f64) -> f64 {
        let (bands, rows) = self.bands_rows();
        1.0 - (1.0 - j.powi(rows as i32)).powi(bands as i32)
    }
}

/// The unit the exact-substring threshold counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanUnit {
    /// Whitespace-separated words of the original text. 50 words is about 65 Falcon tokens
    /// on English, so this is stricter (removes less) than the paper's 50 tokens.
    Words,
    /// UTF-8 bytes; the paper's 50 tokens are about 200 bytes of English.
    Bytes,
}

/// The `exact_substring` stage (RefinedWeb §3.3, ExactSubstr of Lee et al. 2022).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExactSubstringConfig {
    /// Run the stage.
    pub enabled: bool,
    /// Shortest repeated span removed, in `unit`s (RefinedWeb: 50 tokens).
    pub min_span: usize,
    /// What `min_span` counts. Words until the Falcon tokenizer is wired in.
    pub unit: SpanUnit,
    /// Documents left with fewer characters than this are dropped (RefinedWeb: 20).
    pub min_chars: usize,
}

impl Default for ExactSubstringConfig {
    fn default() -> Self {
        ExactSubstringConfig {
            enabled: true,
            min_span: 50,
            unit: SpanUnit::Words,
            min_chars: 20,
        }
    }
}

/// The `url_dedup` stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlDedupConfig {
    /// Run the stage.
    pub enabled: bool,
    /// URL-key ranges of `url_dedup`'s keep phase (at least one per shard): units of work,
    /// not memory, which the sorted runs bound.
    pub partitions: usize,
}

impl Default for UrlDedupConfig {
    fn default() -> Self {
        UrlDedupConfig {
            enabled: true,
            partitions: 16,
        }
    }
}

impl DedupConfig {
    /// Reads and validates a TOML config; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let config: DedupConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: origin.into(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| Error::Config {
            path: origin.into(),
            message,
        })?;
        Ok(config)
    }

    /// Checks values that TOML types cannot: ranges.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.memory_limit_gb.is_nan() || self.memory_limit_gb <= 0.0 {
            return Err(format!(
                "memory_limit_gb must be above 0, got {}",
                self.memory_limit_gb
            ));
        }
        let (bands, rows) = self.minhash.bands_rows();
        if bands == 0 || rows == 0 || bands > u16::MAX as usize {
            return Err(format!(
                "minhash.bands and minhash.rows must be 1..=65535, got {bands} x {rows}"
            ));
        }
        if self.minhash.ngram == 0 {
            return Err("minhash.ngram must be at least 1".into());
        }
        if self.minhash.buckets == 0 || self.minhash.buckets > 100_000 {
            return Err(format!(
                "minhash.buckets must be 1..=100000, got {}",
                self.minhash.buckets
            ));
        }
        if self.exact_substring.min_span < 2 {
            return Err("exact_substring.min_span must be at least 2".into());
        }
        if self.url_dedup.partitions == 0 {
            return Err("url_dedup.partitions must be at least 1".into());
        }
        if self.output.row_group_rows == 0 {
            return Err("output.row_group_rows must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_give_the_papers_probabilities() {
        let rw = MinhashConfig::default();
        let p = |c: &MinhashConfig, j| (c.p_duplicate(j) * 1000.0).round() / 1000.0;
        assert_eq!(rw.bands_rows(), (450, 20));
        assert_eq!(
            (p(&rw, 0.70), p(&rw, 0.75), p(&rw, 0.80)),
            (0.302, 0.761, 0.995)
        );
        let dclm = MinhashConfig::preset(Preset::Dclm);
        assert_eq!(dclm.bands_rows(), (93, 15));
        assert!((p(&dclm, 0.8) - 0.96).abs() < 0.01);
        let fw = MinhashConfig::preset(Preset::Fineweb);
        assert_eq!(fw.bands_rows(), (14, 8));
        assert!((p(&fw, 0.7) - 0.56).abs() < 0.01);
    }

    #[test]
    fn shipped_config_is_the_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/dedup.toml");
        assert_eq!(DedupConfig::load(&path).unwrap(), DedupConfig::default());
    }

    #[test]
    fn toml_parses_and_rejects_unknown_keys() {
        let c = DedupConfig::parse(
            "[minhash]\npreset = \"dclm\"\n[exact_substring]\nunit = \"bytes\"\nmin_span = 200\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.minhash.bands_rows(), (93, 15));
        assert_eq!(c.exact_substring.unit, SpanUnit::Bytes);
        assert_eq!(
            DedupConfig::parse("", Path::new("t.toml")).unwrap(),
            DedupConfig::default()
        );
        let err = DedupConfig::parse("[minhash]\nband = 3\n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("band"), "{err}");
        let err = DedupConfig::parse("[minhash]\nbuckets = 0\n", Path::new("t.toml")).unwrap_err();
        assert!(err.to_string().contains("minhash.buckets"), "{err}");
    }
}
