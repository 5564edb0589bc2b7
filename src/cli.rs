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
    /// Every stage in one run folder: RUN_DIR/<stage>/, manifest.json, the funnel to tokens.
    #[command(
        after_help = "Examples:\n  falconry run --config configs/pipeline.toml\n  falconry run --config configs/pipeline.toml --input 'crawl/*.warc.gz' --output runs/r1 --stages refine,dedup,tokenize,train"
    )]
    Run(RunArgs),
    /// The pipeline as Slurm job arrays: one per stage (per dedup step), chained by afterok.
    #[command(
        after_help = "Examples:\n  falconry slurm --config configs/pipeline.toml --partition cpu --tasks 1000 --input 'crawl/*.warc.gz' --output runs/r1\n  falconry slurm --resume runs/r1      # resubmit the tasks without a completion marker\n  falconry status runs/r1"
    )]
    Slurm(SlurmArgs),
    /// Per job array of a `falconry slurm` run: tasks done, running, failed; squeue/sacct.
    Status(StatusArgs),
    /// One task of a `falconry slurm` job array (what its job script runs).
    #[command(hide = true)]
    SlurmTask(SlurmTaskArgs),
    /// Read WARC (or JSONL/Parquet text), extract main text, filter; write Parquet + stats.json.
    #[command(
        after_help = "Example:\n  falconry refine --input 'crawl/*.warc.gz' --output runs/r1/refine --config configs/refinedweb.toml"
    )]
    Refine(RefineArgs),
    /// Global MinHash, exact-substring and URL dedup of refined Parquet; same schema out.
    #[command(
        after_help = "Examples:\n  falconry dedup --input runs/r1/refine --output runs/r1/dedup\n  # as a job array, one step at a time (signatures, buckets, components, exact_substring, url_dedup, filter):\n  falconry dedup --input runs/r1/refine --output runs/r1/dedup --stage signatures --task 3 --tasks 64"
    )]
    Dedup(DedupArgs),
    /// Token shards (u16, EOS after each document) from Parquet/JSONL; `tokenize train` trains a BPE.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  falconry tokenize --input runs/r1/dedup --output runs/r1/tokenize --tokenizer tokenizer.json\n  falconry tokenize train --input runs/r1/dedup --vocab-size 65024 --output tokenizer.json"
    )]
    Tokenize(TokenizeArgs),
    /// Token shards as other trainers read them: llm.c .bin, Megatron .bin + .idx, HF Parquet.
    #[command(
        after_help = "Example:\n  falconry export --input runs/sample/tokenize --output runs/sample/megatron --format megatron"
    )]
    Export(ExportArgs),
    /// A dataset folder to upload as is: Parquet shards, a dataset card with the funnel.
    #[command(
        after_help = "Example:\n  falconry publish --input runs/r1/dedup --output release/ --stats runs/r1/dedup/stats.json --tokens runs/r1/tokenize"
    )]
    Publish(PublishArgs),
    /// Train a Falcon on token shards: AdamW, warmup + cosine, bf16, checkpoints, --resume.
    #[command(
        after_help = "Example:\n  falconry train --config configs/train/falcon-124m.toml --data runs/r1/tokenize --output runs/r1/train --steps 300"
    )]
    Train(TrainArgs),
    /// Loss and perplexity of a checkpoint on a text file; prints {"tokens","loss","perplexity"}.
    #[command(
        after_help = "Example:\n  falconry eval --checkpoint runs/r1/train/checkpoints/step-000300 --input held-out.txt --tokenizer tokenizer.json"
    )]
    Eval(EvalArgs),
    /// ARC, HellaSwag, MMLU, TruthfulQA scored as lm-evaluation-harness 0.4.13 scores them.
    #[command(
        after_help = "Examples:\n  falconry eval-tasks --checkpoint runs/r1/train/checkpoints/step-000300 --tasks leaderboard --output scores.json\n  falconry eval-tasks --checkpoint DIR --tasks arc_challenge,arc_easy,hellaswag,mmlu,truthfulqa_mc1,truthfulqa_mc2 --shots 5 --limit 200\n\nThe checkpoint folder needs tokenizer.json beside the weights (or --tokenizer). HellaSwag is approximate: its data is a lossy dump of the validation set."
    )]
    EvalTasks(EvalTasksArgs),
    /// Sample a continuation of a prompt from a checkpoint (KV-cached, top-k).
    #[command(
        after_help = "Example:\n  falconry generate --checkpoint runs/r1/train/checkpoints/step-000300 --tokenizer tokenizer.json --prompt 'The library' --top-k 10"
    )]
    Generate(GenerateArgs),
    /// LoRA / QLoRA fine-tuning of a HF Falcon checkpoint on instruction or chat JSONL; writes a PEFT adapter.
    #[command(
        after_help = "Example:\n  falconry finetune --checkpoint falcon-7b --data chat.jsonl --output runs/ft --config finetune.toml --quantize nf4\n\nJSONL lines: {\"prompt\": ..., \"response\": ...} or {\"messages\": [{\"role\": \"user\", \"content\": ...}, ...]}"
    )]
    Finetune(FinetuneArgs),
    /// Fold a PEFT LoRA adapter into its base checkpoint: a full HF folder.
    #[command(
        after_help = "Example:\n  falconry merge --checkpoint falcon-7b --adapter runs/ft --output falcon-7b-ft"
    )]
    Merge(MergeArgs),
    /// Download the first segments of a CommonCrawl crawl (WARC or WET) to a folder, resumably.
    #[command(
        after_help = "Examples:\n  falconry fetch-cc --crawl CC-MAIN-2024-10 --segments 1 --files-per-segment 4 --output crawl/\n  falconry refine --input crawl/ --output runs/r1/refine\n\nFiles land under DIR as the listing names them (crawl-data/CRAWL/segments/ID/warc/NAME), with\nDIR/_manifest.json (URL, path, size, xxh3 of each). A re-run skips complete files and\ncontinues partial ones (NAME.tmp) where they stopped."
    )]
    FetchCc(FetchCcArgs),
    /// Run only the main-text extractor on saved HTML files; prints JSON lines {"path","text"}.
    #[command(after_help = "Example:\n  falconry extract page.html other.html.gz | jq -r .text")]
    Extract(ExtractArgs),
}

#[derive(Debug, Args)]
pub struct FetchCcArgs {
    /// The crawl, as CommonCrawl names it: CC-MAIN-YYYY-WW.
    #[arg(long, value_name = "CC-MAIN-YYYY-WW")]
    pub crawl: String,
    /// Segments to fetch: the first N of the crawl's listing (a segment is the
    /// `segments/<id>/` part of each path).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub segments: u64,
    /// Only the first N files of each segment (default: all; a 2024 segment holds about 900
    /// files of each kind, a WARC file about 1 GB).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub files_per_segment: Option<u64>,
    /// Output folder: the files under their listing paths, and _manifest.json.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// Where the crawl is served: crawl-data/CRAWL/KIND.paths.gz and the files it lists are
    /// read from under this URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://data.commoncrawl.org"
    )]
    pub base_url: String,
    /// Which files: WARC (raw HTTP responses) or WET (extracted text).
    #[arg(long, value_enum, default_value_t = CrawlKind::Warc)]
    pub kind: CrawlKind,
}

/// The file kinds a crawl publishes that refine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CrawlKind {
    /// `warc.paths.gz`: the raw responses.
    Warc,
    /// `wet.paths.gz`: CommonCrawl's extracted text.
    Wet,
}

impl CrawlKind {
    /// The listing's stem.
    pub fn name(self) -> &'static str {
        match self {
            CrawlKind::Warc => "warc",
            CrawlKind::Wet => "wet",
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline config (TOML; see configs/pipeline.toml): the stages' configs and settings.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Input files, folders or glob patterns (instead of the config's `[run] input`).
    #[arg(long, short, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Run folder (instead of the config's `[run] output`).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Stages to run, comma-separated (instead of the config's `[run] stages`); each reads the
    /// folder of the stage before it.
    #[arg(long, value_delimiter = ',', value_parser = ["refine", "dedup", "tokenize", "train"])]
    pub stages: Option<Vec<String>>,
}

#[derive(Debug, Args)]
pub struct SlurmArgs {
    /// Pipeline config (TOML; see configs/pipeline.toml), as `falconry run` reads it.
    #[arg(long, short, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// Slurm partition the jobs run in.
    #[arg(long, short, required_unless_present = "resume")]
    pub partition: Option<String>,
    /// Input files, folders or glob patterns (instead of the config's `[run] input`).
    #[arg(long, short, num_args = 1.., conflicts_with = "resume")]
    pub input: Vec<PathBuf>,
    /// Run folder (instead of the config's `[run] output`).
    #[arg(long, short, conflicts_with = "resume")]
    pub output: Option<PathBuf>,
    /// Stages to run, comma-separated (instead of the config's `[run] stages`).
    #[arg(long, value_delimiter = ',', value_parser = ["refine", "dedup", "tokenize", "train"], conflicts_with = "resume")]
    pub stages: Option<Vec<String>>,
    /// Tasks per job array at most (a stage gets fewer when it has fewer units: input files,
    /// dedup buckets or the phases of components, exact_substring and url_dedup).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "resume")]
    pub tasks: u32,
    /// Tasks of one array running at once at most (`--array=...%MAX`).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "resume")]
    pub max_running: u32,
    /// CPUs per task (its threads); default 1, or the run's on --resume.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus_per_task: Option<u32>,
    /// Memory per node, as sbatch takes it (e.g. 8G).
    #[arg(long)]
    pub mem: Option<String>,
    /// Time limit per task, as sbatch takes it (e.g. 2:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// Write the job scripts and the manifest; print the sbatch commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// Resubmit, chained as before, only the tasks of RUN_DIR without a completion marker
    /// (--cpus-per-task, --mem and --time replace the run's).
    #[arg(long, value_name = "RUN_DIR")]
    pub resume: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run folder of a `falconry slurm` run.
    pub run_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SlurmTaskArgs {
    /// The run folder; its manifest.json pins the binary, config, inputs and jobs.
    pub run_dir: PathBuf,
    /// The job array this task belongs to (`refine`, `dedup-signatures`, ..., `finish`).
    pub job: String,
    /// The task's index in the job.
    #[arg(long, env = "SLURM_ARRAY_TASK_ID")]
    pub task: usize,
}

/// Which share of the inputs a process of a job array takes.
#[derive(Debug, Args)]
pub struct TaskArgs {
    /// This task's index (0-based) when the inputs are split across a job array.
    #[arg(long, env = "SLURM_ARRAY_TASK_ID", default_value_t = 0)]
    pub task: u32,
    /// Number of tasks the inputs are split across.
    #[arg(long, env = "SLURM_ARRAY_TASK_COUNT", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub tasks: u32,
}

#[derive(Debug, Args)]
pub struct RefineArgs {
    /// Input files, folders or glob patterns: .warc(.gz), .wet(.gz), .jsonl(.gz), .parquet.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output folder: part-KEY.parquet (KEY: the input file), stats.json.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Pipeline config (TOML); defaults are RefinedWeb's (see configs/refinedweb.toml).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Write one JSON line per input document: {"url","kept","stage","reason",...}.
    #[arg(long)]
    pub explain: Option<PathBuf>,
    /// Refuse no changed input set: bring an output folder made from other inputs up to date
    /// with these (new and changed inputs are redone, outputs of removed ones deleted) instead
    /// of stopping with an error.
    #[arg(long)]
    pub allow_changed_inputs: bool,
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
    #[arg(long, value_parser = ["signatures", "buckets", "components", "exact_substring", "url_dedup", "filter"])]
    pub stage: Option<String>,
    /// Write explain.jsonl: each removed document with the id it duplicates.
    #[arg(long)]
    pub explain: bool,
    /// Refuse no changed input set: bring an output folder made from other inputs up to date
    /// with these (new and changed inputs are redone, outputs of removed ones deleted) instead
    /// of stopping with an error.
    #[arg(long)]
    pub allow_changed_inputs: bool,
    #[command(flatten)]
    pub task: TaskArgs,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training config (TOML; see configs/train/).
    #[arg(long, short)]
    pub config: PathBuf,
    /// Token shard folder (meta.json + shard-*.bin) from `falconry tokenize`.
    #[arg(long, short)]
    pub data: PathBuf,
    /// Output folder: checkpoints/, metrics.jsonl, loss.png.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Optimizer steps (overrides the config's max_steps).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Continue from the latest checkpoint in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// GPUs to train on, data parallel (one replica each, gradients averaged by NCCL; the
    /// tokens of a step grow with them). Needs the cuda build for more than one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub devices: u16,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// HF checkpoint folder (config.json + model.safetensors or its shards).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Plain text to score.
    #[arg(long, short)]
    pub input: PathBuf,
    /// tokenizer.json (HuggingFace format).
    #[arg(long, short)]
    pub tokenizer: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalTasksArgs {
    /// HF checkpoint folder (config.json + model.safetensors or its shards, tokenizer.json).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Comma-separated: arc_challenge, arc_easy, hellaswag, mmlu, truthfulqa_mc1,
    /// truthfulqa_mc2, NAME:SHOTS, or leaderboard (arc_challenge:25, hellaswag:10, mmlu:5,
    /// truthfulqa_mc2:0).
    #[arg(long)]
    pub tasks: String,
    /// Few-shot examples for tasks named without a count (lm-eval's default: 0; TruthfulQA is
    /// always 0-shot).
    #[arg(long)]
    pub shots: Option<usize>,
    /// Documents per task at most, the first ones (per MMLU subject, as lm-eval's --limit).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    /// The benchmark files: the folder of shared/data/eval (arc/, hellaswag/, mmlu/, truthfulqa/).
    #[arg(
        long,
        env = "FALCONRY_EVAL_DATA",
        default_value = "../shared/data/eval"
    )]
    pub data: PathBuf,
    /// tokenizer.json (default: the checkpoint's).
    #[arg(long, short)]
    pub tokenizer: Option<PathBuf>,
    /// Write the results as JSON in lm-eval's results.json layout.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write one JSON line per document: {"task","doc","lls","metrics"}.
    #[arg(long)]
    pub log_samples: Option<PathBuf>,
    /// Compute precision: f32 (as lm-eval's dtype=float32) or bf16.
    #[arg(long, default_value = "f32", value_parser = crate::eval_tasks::precision)]
    pub precision: falconry_train::Precision,
}

#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// HF checkpoint folder of the base model (config.json, model.safetensors or its shards, tokenizer.json).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Instruction / chat JSONL.
    #[arg(long, short)]
    pub data: PathBuf,
    /// Output folder: adapter_config.json, adapter_model.safetensors, finetune.toml, metrics.jsonl.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Fine-tuning config (TOML: [lora], [template], steps, ...); defaults without it.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Hold the frozen base in 4-bit NormalFloat (QLoRA).
    #[arg(long, value_parser = ["nf4"])]
    pub quantize: Option<String>,
    /// tokenizer.json, if not the checkpoint's own.
    #[arg(long, short)]
    pub tokenizer: Option<PathBuf>,
    /// Optimizer steps (overrides the config).
    #[arg(long)]
    pub steps: Option<usize>,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// HF checkpoint folder of the base model.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// PEFT adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Output HF folder.
    #[arg(long, short)]
    pub output: PathBuf,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// HF checkpoint folder (config.json + model.safetensors or its shards).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// PEFT adapter folder to apply (not merged).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Treat the prompt as a user message in the chat template (the adapter's, else the default).
    #[arg(long)]
    pub chat: bool,
    /// tokenizer.json (HuggingFace format).
    #[arg(long, short)]
    pub tokenizer: PathBuf,
    /// The text to continue.
    #[arg(long, short)]
    pub prompt: String,
    /// Tokens to add at most.
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Total tokens counting the prompt (as transformers' max_length); overrides --max-new-tokens.
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Samples to draw from the prompt (sample i seeded with seed + i).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub num_return_sequences: u32,
    /// Sample among the k likeliest tokens (0: all).
    #[arg(long, default_value_t = 10)]
    pub top_k: usize,
    /// Softmax temperature (0: greedy).
    #[arg(long, default_value_t = 1.0, value_parser = temperature)]
    pub temperature: f64,
    /// Sampler seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    #[command(subcommand)]
    pub command: Option<TokenizeCommand>,
    /// Parquet/JSONL files or folders of documents.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output folder: shard-KEY-NNNNN.bin (KEY: the input file), meta.json, stats.json.
    #[arg(long, short, required = true)]
    pub output: Option<PathBuf>,
    /// tokenizer.json (HuggingFace format; Falcon's has 65,024 ids).
    #[arg(long, short, required = true)]
    pub tokenizer: Option<PathBuf>,
    /// Tokens per shard (closed at the next document end).
    #[arg(long, default_value_t = 100_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_tokens: u64,
    /// Fraction of documents held out for validation, in [0, 1).
    #[arg(long, default_value_t = 0.005, value_parser = fraction_below_one)]
    pub validation_fraction: f64,
    /// Seed of the validation split and the shuffle.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Id width: uint16 (vocabularies up to 65,536) or uint32.
    #[arg(long, default_value = "uint16", value_parser = ["uint16", "uint32", "u16", "u32"])]
    pub dtype: String,
    /// Refuse no changed input set: bring an output folder made from other inputs up to date
    /// with these (new and changed inputs are redone, outputs of removed ones deleted) instead
    /// of stopping with an error.
    #[arg(long)]
    pub allow_changed_inputs: bool,
    #[command(flatten)]
    pub task: TaskArgs,
}

#[derive(Debug, Subcommand)]
pub enum TokenizeCommand {
    /// Train a byte-level BPE with Falcon's pre-tokenizer and special tokens.
    Train(TokenizeTrainArgs),
}

#[derive(Debug, Args)]
pub struct TokenizeTrainArgs {
    /// Parquet/JSONL files or folders of documents.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Where to write tokenizer.json.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Ids in the result, special tokens and bytes included.
    #[arg(long, default_value_t = 65_024)]
    pub vocab_size: usize,
    /// Bytes of text sampled at most (bounds time and memory).
    #[arg(long, default_value_t = 1 << 30)]
    pub max_bytes: u64,
    /// Fraction of documents eligible for the sample, in (0, 1].
    #[arg(long, default_value_t = 1.0, value_parser = fraction_above_zero)]
    pub sample_fraction: f64,
    /// Seed of the sample.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Token shard folder from `falconry tokenize` (meta.json + shard-*.bin).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Output folder.
    #[arg(long, short)]
    pub output: PathBuf,
    /// llmc: llm.c's `.bin` (256-int32 header, then the ids); megatron: an indexed dataset
    /// (`.bin` + `.idx`) per split; parquet: HF `datasets` Parquet, column `input_ids`.
    #[arg(long, value_parser = ["llmc", "megatron", "parquet"])]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Refined (deduplicated) Parquet files or folders.
    #[arg(long, short, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// The dataset folder to write.
    #[arg(long, short)]
    pub output: PathBuf,
    /// The run's stats.json, for the funnel in the card.
    #[arg(long)]
    pub stats: Option<PathBuf>,
    /// The token shard folder, for token counts in the card.
    #[arg(long)]
    pub tokens: Option<PathBuf>,
}

/// A flag value that does not validate where clap cannot see it (`--task` against `--tasks`):
/// `main` exits 2 on it, as on clap's own usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error (exit 2) with `message`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Usage(message.into()))
}

/// A fraction in [0, 1).
fn fraction_below_one(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..1.0).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{x} is not in [0, 1)"))
    }
}

/// A fraction in (0, 1].
fn fraction_above_zero(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if x > 0.0 && x <= 1.0 {
        Ok(x)
    } else {
        Err(format!("{x} is not in (0, 1]"))
    }
}

/// A temperature: finite and not negative.
fn temperature(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(format!("{x} is not a temperature (0 or more)"))
    }
}
