//! `falconry publish`: a dataset folder a user can upload to the HuggingFace Hub as it is.
//!
//! ```text
//! OUT/README.md                 dataset card: YAML front matter (configs, features, splits,
//!                               sizes, license) that `datasets` reads, then the funnel and
//!                               token counts
//! OUT/data/train-NNNNN.parquet  RefinedWeb-schema shards, row groups sized for streaming
//! OUT/funnel.png                copied from beside stats.json when the refine run drew it
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;

use falconry_refine::dataset::ShardWriter;
use falconry_refine::folder::write_atomic;
use falconry_refine::{OutputConfig, RunStats};
use serde::{Deserialize, Serialize};

use crate::corpus::{for_each_document, list_inputs};
use crate::{Error, Result, TokenMeta};

/// Everything `falconry publish` is told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PublishConfig {
    /// Refined Parquet/JSONL files or folders.
    pub inputs: Vec<PathBuf>,
    /// The dataset folder to write.
    pub output: PathBuf,
    /// A run's `stats.json` (the funnel), if any.
    pub stats: Option<PathBuf>,
    /// A token shard folder (its `meta.json` gives token counts), if any.
    pub tokens: Option<PathBuf>,
    /// Title of the card.
    pub name: String,
    /// SPDX-style license id for the card (RefinedWeb: `odc-by`).
    pub license: String,
    /// Rows per Parquet file.
    pub rows_per_file: usize,
    /// Rows per row group: ~10-50k keeps streaming readers' memory small.
    pub row_group_rows: usize,
}

impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            inputs: Vec::new(),
            output: PathBuf::new(),
            stats: None,
            tokens: None,
            name: "falconry-refinedweb".into(),
            license: "odc-by".into(),
            rows_per_file: 500_000,
            row_group_rows: 20_000,
        }
    }
}

/// What [`publish_dataset`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PublishReport {
    /// Parquet files, relative to the output folder.
    pub files: Vec<String>,
    /// Rows (documents) written.
    pub rows: u64,
    /// Bytes of `content` text.
    pub content_bytes: u64,
    /// Bytes of the Parquet files.
    pub download_bytes: u64,
}

/// Writes the dataset folder.
pub fn publish_dataset(config: &PublishConfig) -> Result<PublishReport> {
    if config.rows_per_file == 0 || config.row_group_rows == 0 {
        return Err(Error::Config(
            "rows_per_file and row_group_rows must be at least 1".into(),
        ));
    }
    let data = config.output.join("data");
    std::fs::create_dir_all(&data).map_err(|e| Error::io(&data, e))?;
    let output = OutputConfig {
        row_group_rows: config.row_group_rows,
        ..Default::default()
    };
    let mut report = PublishReport::default();
    let mut writer: Option<ShardWriter> = None;
    let mut in_file = 0usize;
    let mut failure = None;
    for file in list_inputs(&config.inputs)? {
        for_each_document(&file, |doc| {
            if writer.is_none() {
                let name = format!("data/train-{:05}.parquet", report.files.len());
                match ShardWriter::create(&config.output.join(&name), &output) {
                    Ok(w) => writer = Some(w),
                    Err(e) => {
                        failure = Some(e);
                        return false;
                    }
                }
                report.files.push(name);
            }
            report.rows += 1;
            report.content_bytes += doc.content.len() as u64;
            let step = writer.as_mut().map(|w| w.write(doc)).unwrap_or(Ok(()));
            in_file += 1;
            let step = step.and_then(|()| {
                if in_file == config.rows_per_file {
                    in_file = 0;
                    writer
                        .take()
                        .map(|w| w.finish().map(|_| ()))
                        .unwrap_or(Ok(()))
                } else {
                    Ok(())
                }
            });
            if let Err(e) = step {
                failure = Some(e);
                return false;
            }
            true
        })?;
        if let Some(e) = failure.take() {
            return Err(e.into());
        }
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    for f in &report.files {
        let path = config.output.join(f);
        report.download_bytes += std::fs::metadata(&path)
            .map_err(|e| Error::io(&path, e))?
            .len();
    }
    let stats = match &config.stats {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            let stats: RunStats = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
                path: path.clone(),
                source: e,
            })?;
            let png = path.with_file_name("funnel.png");
            if png.exists() {
                let to = config.output.join("funnel.png");
                std::fs::copy(&png, &to).map_err(|e| Error::io(&to, e))?;
            }
            Some(stats)
        }
        None => None,
    };
    let tokens = config.tokens.as_deref().map(TokenMeta::load).transpose()?;
    let card = dataset_card(
        config,
        &report,
        stats.as_ref(),
        tokens.as_ref(),
        config.output.join("funnel.png").exists(),
    );
    write_atomic(&config.output.join("README.md"), card.as_bytes())?;
    Ok(report)
}

/// The `datasets` feature of each column of [`falconry_refine::dataset::schema`].
const FEATURES: &str = "  features:
  - name: content
    dtype: string
  - name: url
    dtype: string
  - name: timestamp
    dtype: timestamp[us, tz=UTC]
  - name: dump
    dtype: string
  - name: segment
    dtype: string
  - name: image_urls
    sequence:
      sequence: string
  - name: id
    dtype: string
  - name: language
    dtype: string
  - name: language_score
    dtype: float32
";

fn dataset_card(
    config: &PublishConfig,
    report: &PublishReport,
    stats: Option<&RunStats>,
    tokens: Option<&TokenMeta>,
    has_plot: bool,
) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "---\nlicense: {license}\npretty_name: {name}\ntask_categories:\n- text-generation\n\
         configs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n\
         dataset_info:\n{FEATURES}  splits:\n  - name: train\n    num_bytes: {bytes}\n    num_examples: {rows}\n\
         \x20 download_size: {download}\n  dataset_size: {bytes}\n---\n\n",
        license = config.license,
        name = config.name,
        bytes = report.content_bytes,
        rows = report.rows,
        download = report.download_bytes,
    );
    let _ = write!(
        s,
        "# {}\n\nWeb text refined from CommonCrawl by falconry, following the RefinedWeb pipeline \
         (MacroData Refinement, Penedo et al. 2023, arXiv 2306.01116): URL filtering, main-text \
         extraction, language identification, Gopher repetition and quality filters, line-wise \
         corrections, and deduplication.\n\n{} documents, {:.1} MB of text, in {} Parquet files \
         (RefinedWeb schema: `content`, `url`, `timestamp`, `dump`, `segment`, `image_urls`, plus \
         `id`, `language`, `language_score`).\n\n```python\nfrom datasets import load_dataset\n\
         ds = load_dataset(\"parquet\", data_dir=\"data\", split=\"train\")\n```\n",
        config.name,
        report.rows,
        report.content_bytes as f64 / 1e6,
        report.files.len()
    );
    if let Some(stats) = stats {
        s.push_str("\n## Funnel\n\n| stage | in | out | kept of first stage | dropped (by reason) |\n|---|---:|---:|---:|---|\n");
        let first = stats.stages.first().map_or(0, |r| r.input).max(1) as f64;
        for row in &stats.stages {
            let drops: Vec<String> = row
                .dropped
                .iter()
                .map(|(r, n)| format!("{r}: {n}"))
                .collect();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.2}% | {} |",
                row.name,
                row.input,
                row.output,
                100.0 * row.output as f64 / first,
                drops.join(", ")
            );
        }
        if has_plot {
            s.push_str("\n![funnel](funnel.png)\n");
        }
    }
    if let Some(meta) = tokens {
        let _ = write!(
            s,
            "\n## Tokens\n\nWith `{}` ({} ids, `{}` shards, EOS {} after each document):\n\n\
             | split | documents | tokens |\n|---|---:|---:|\n| train | {} | {} |\n| validation | {} | {} |\n",
            meta.tokenizer,
            meta.vocab_size,
            meta.dtype.name(),
            meta.eos_id,
            meta.split.train.documents,
            meta.split.train.tokens,
            meta.split.validation.documents,
            meta.split.validation.tokens
        );
    }
    s
}
