//! The refine stage's configuration: one section per stage, defaults from the paper.
//!
//! `configs/refinedweb.toml` repeats every key with a comment; a test holds it equal to
//! `RefineConfig::default()`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::extract::ExtractionConfig;
use crate::filters::language_id::LanguageIdConfig;
use crate::filters::line_correction::LineCorrectionConfig;
use crate::filters::quality::QualityConfig;
use crate::filters::repetition::RepetitionConfig;
use crate::filters::url_filter::UrlFilterConfig;
use crate::warc::ReadConfig;
use crate::{Error, Result};

/// Everything `falconry refine` can be told by `--config`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefineConfig {
    /// The `read` stage: which WARC records become documents.
    pub read: ReadConfig,
    /// The `url_filter` stage: blocklists, URL words, curated sources (before extraction).
    pub url_filter: UrlFilterConfig,
    /// The `extraction` stage: HTML to main text.
    pub extraction: ExtractionConfig,
    /// The `language_id` stage: fastText lid.176, languages kept and their minimum score.
    pub language_id: LanguageIdConfig,
    /// The `repetition` stage: Gopher's repetition removal.
    pub repetition: RepetitionConfig,
    /// The `quality` stage: Gopher's quality filters.
    pub quality: QualityConfig,
    /// The `line_correction` stage: RefinedWeb's line-wise corrections.
    pub line_correction: LineCorrectionConfig,
    /// Output files.
    pub output: OutputConfig,
}

/// How the refined Parquet shards are written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Rows per Parquet row group; smaller groups stream better, larger ones compress better.
    pub row_group_rows: usize,
    /// zstd level for the Parquet columns (1..=22).
    pub zstd_level: i32,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            row_group_rows: 10_000,
            zstd_level: 3,
        }
    }
}

impl RefineConfig {
    /// Reads and validates a TOML config; errors name the file and the key.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self> {
        let config: RefineConfig = toml::from_str(text).map_err(|e| Error::Config {
            path: origin.into(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| Error::Config {
            path: origin.into(),
            message,
        })?;
        Ok(config)
    }

    /// Checks values that TOML types cannot: ranges and combinations.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.output.row_group_rows == 0 {
            return Err("output.row_group_rows must be at least 1".into());
        }
        if !(1..=22).contains(&self.output.zstd_level) {
            return Err(format!(
                "output.zstd_level must be 1..=22, got {}",
                self.output.zstd_level
            ));
        }
        self.read.validate()?;
        self.url_filter.validate()?;
        self.extraction.validate()?;
        self.language_id.validate()?;
        self.repetition.validate()?;
        self.quality.validate()?;
        self.line_correction.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_is_the_default() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/refinedweb.toml");
        assert_eq!(RefineConfig::load(&path).unwrap(), RefineConfig::default());
    }

    #[test]
    fn errors_name_the_key() {
        let err =
            RefineConfig::parse("[output]\nzstd_level = 40\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("output.zstd_level"), "{err}");
        let err =
            RefineConfig::parse("[output]\nrow_groups = 3\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("row_groups"), "{err}");
    }
}
