//! The command line: one subcommand per stage; clap stays in this module and the `run`
//! functions turn its arguments into validated library configs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// CommonCrawl WARC to a RefinedWeb-style pretraining corpus.
#[derive(Debug, Parser)]
#[command(name = "falconry", version, about, long_about = None)]
pub struct Cli {
    /// More logging (-v debug, -vv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read WARC (or JSONL/Parquet text), extract main text, filter; write Parquet + stats.json.
    #[command(after_help = "Example:\n  falconry refine --input 'crawl/*.warc.gz' --output runs/r1/refine --config configs/refinedweb.toml")]
    Refine(RefineArgs),
    /// Global MinHash, exact-substring and URL dedup of refined Parquet; same schema out.
    #[command(after_help = "Examples:\n  falconry dedup --input runs/r1/refine --output runs/r1/dedup\n  # as a job array, one step at a time (signatures, buckets, components, exact_substring, url_dedup, filter):\n  falconry dedup --input runs/r1/refine --output runs/r1/dedup --stage signatures --task 3 --tasks 64")]
    Dedup(DedupArgs),
    /// Run only the main-text extractor on saved HTML files; prints JSON lines {"path","text"}.
    #[command(after_help = "Example:\n  falconry extract page.html other.html.gz | jq -r .text")]
    Extract(ExtractArgs),
}

/// Which share of the inputs a process of a job array takes.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// This task's index (0-based) when the inputs are split across a job array.
    #[arg(long, env = "SLURM_ARRAY_TASK_ID", default_value_t = 0)]
    pub task: usize,
    /// Number of tasks the inputs are split across.
    #[arg(long, env = "SLURM_ARRAY_TASK_COUNT", default_value_t = 1)]
    pub tasks: usize,
}

#[derive(Debug, Args)]
pub struct RefineArgs {
    /// Input files, folders or glob patterns: .warc(.gz), .wet(.gz), .jsonl(.gz), .parquet.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output folder: part-NNNNN.parquet, stats.json.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Pipeline config (TOML); defaults are RefinedWeb's (see configs/refinedweb.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Write one JSON line per input document: {"url","kept","stage","reason",...}.
    #[arg(long)]
    pub explain: Option<PathBuf>,
    /// fastText lid.176 model for language_id (beats $FALCONRY_LID_MODEL and the config's
    /// `language_id.model`; default models/lid.176.ftz).
    #[arg(long)]
    pub lid_model: Option<PathBuf>,
    #[command(flatten)]
    pub task: TaskArgs,
}

#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// HTML files (.html, .htm, or gzipped .html.gz).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Extraction config (TOML, the [extraction] section of a refine config).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DedupArgs {
    /// Folders (or files) of refined Parquet shards.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output folder: part-NNNNN.parquet, stats.json, work folders.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Dedup config (TOML; presets refinedweb, dclm, fineweb; see configs/dedup.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Run one step only (for job arrays): signatures, buckets, components, exact_substring,
    /// url_dedup, filter. Without it all steps run, in order.
    #[arg(long)]
    pub stage: Option<String>,
    /// Write explain.jsonl: each removed document with the id it duplicates.
    #[arg(long)]
    pub explain: bool,
    #[command(flatten)]
    pub task: TaskArgs,
}
