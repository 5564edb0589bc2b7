//! `falconry run`: every stage, one after the other, in one run folder.
//!
//! `RUN_DIR/<stage>/` holds each stage's output folder, made by the same library calls as the
//! stage's own command (so the same run-folder convention: a re-run resumes, and `kill -9`
//! anywhere loses nothing); each stage reads the folder of the stage before it. Then
//! `RUN_DIR/manifest.json` records the config (text and hash), the falconry version, the
//! input files (size and xxh3), and each stage's stats and seconds; `RUN_DIR/funnel.png` and
//! the table on stdout show the funnel from WARC records to tokens.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use falconry_dedup::{run_dedup, DedupConfig};
use falconry_refine::folder::write_atomic;
use falconry_refine::lock::OutputLock;
use falconry_refine::run::{expand_inputs, refine, RunOptions};
use falconry_refine::{funnel, RunStats};
use falconry_tokenize::shards::SplitTotals;
use falconry_tokenize::{tokenize_corpus, Dtype, TokenMeta, TokenizeConfig};
use falconry_train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;

/// The stages, in pipeline order; each one's folder is `RUN_DIR/<name>`.
const STAGES: [&str; 4] = ["refine", "dedup", "tokenize", "train"];

/// `configs/pipeline.toml`. Paths in it are relative to the file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PipelineConfig {
    run: RunSection,
    refine: ConfigFile,
    dedup: ConfigFile,
    tokenize: TokenizeSection,
    train: TrainSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RunSection {
    input: Vec<PathBuf>,
    output: Option<PathBuf>,
    stages: Option<Vec<String>>,
}

/// A stage configured by a file of its own (its defaults without one).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigFile {
    config: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TokenizeSection {
    tokenizer: Option<PathBuf>,
    shard_tokens: u64,
    validation_fraction: f64,
    seed: u64,
    dtype: String,
}

impl Default for TokenizeSection {
    fn default() -> Self {
        let d = TokenizeConfig::default();
        TokenizeSection {
            tokenizer: None,
            shard_tokens: d.shard_tokens,
            validation_fraction: d.validation_fraction,
            seed: d.seed,
            dtype: d.dtype.name().into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TrainSection {
    config: Option<PathBuf>,
    steps: Option<usize>,
    devices: usize,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            config: None,
            steps: None,
            devices: 1,
        }
    }
}

/// `RUN_DIR/manifest.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// The version of the falconry that wrote it.
    falconry: String,
    /// The pipeline config and the stage configs it names.
    configs: Vec<ConfigRecord>,
    /// The files refine read.
    inputs: Vec<InputRecord>,
    /// Each stage run so far, in pipeline order.
    stages: Vec<StageRecord>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ConfigRecord {
    /// `pipeline`, or the stage the file configures.
    of: String,
    path: PathBuf,
    xxh3: String,
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct InputRecord {
    path: PathBuf,
    size: u64,
    /// xxh3-64 of the whole file, 16 hex digits.
    xxh3: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StageRecord {
    name: String,
    /// Seconds of its last invocation (a resumed stage counts only what was left).
    seconds: f64,
    stats: serde_json::Value,
}

pub fn run(args: RunArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("reading --config {}", args.config.display()))?;
    let config: PipelineConfig = toml::from_str(&text)
        .with_context(|| format!("parsing --config {}", args.config.display()))?;
    let base = args.config.parent().unwrap_or(Path::new("."));
    let at = |p: &Path| base.join(p);
    let stages = args
        .stages
        .clone()
        .or(config.run.stages.clone())
        .unwrap_or_else(|| STAGES[..3].iter().map(|s| s.to_string()).collect());
    if let Some(bad) = stages.iter().find(|s| !STAGES.contains(&s.as_str())) {
        return Err(crate::cli::usage(format!(
            "stage `{bad}` is not one of {}",
            STAGES.join(", ")
        )));
    }
    let run_dir = match (&args.output, &config.run.output) {
        (Some(dir), _) => dir.clone(),
        (None, Some(dir)) => at(dir),
        (None, None) => {
            return Err(crate::cli::usage(
                "no run folder: give --output or `output` in the config's [run]",
            ))
        }
    };
    let inputs: Vec<PathBuf> = if args.input.is_empty() {
        config.run.input.iter().map(|p| at(p)).collect()
    } else {
        args.input.clone()
    };
    // One `falconry run` per folder; taking over a dead one's lock sweeps its temporaries.
    let _lock = OutputLock::acquire(&run_dir, Default::default())
        .with_context(|| format!("locking {}", run_dir.display()))?;
    let manifest_path = run_dir.join("manifest.json");
    let mut manifest: Manifest = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    manifest.falconry = env!("CARGO_PKG_VERSION").into();
    manifest.configs = vec![config_record("pipeline", &args.config, &text)?];
    for (of, path) in [
        ("refine", &config.refine.config),
        ("dedup", &config.dedup.config),
        ("train", &config.train.config),
    ] {
        if let Some(path) = path {
            let path = at(path);
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading the {of} config {}", path.display()))?;
            manifest.configs.push(config_record(of, &path, &text)?);
        }
    }

    let mut last_stats: Option<RunStats> = None;
    for (k, &stage) in STAGES.iter().enumerate() {
        if !stages.iter().any(|s| s == stage) {
            continue;
        }
        let out = run_dir.join(stage);
        // The stage before: the nearest one run now or found in the folder.
        let upstream = STAGES[..k]
            .iter()
            .rev()
            .find(|&&s| stages.iter().any(|x| x == s) || run_dir.join(s).exists())
            .map(|s| run_dir.join(s));
        let start = Instant::now();
        let stats = match stage {
            "refine" => {
                if inputs.is_empty() {
                    return Err(crate::cli::usage(
                        "no inputs: give --input or `input` in the config's [run]",
                    ));
                }
                let refine_config =
                    crate::refine::config(config.refine.config.as_ref().map(|p| at(p)).as_deref())?;
                let files = expand_inputs(&inputs).context("resolving the inputs")?;
                manifest.inputs = files
                    .iter()
                    .map(|p| input_record(p))
                    .collect::<Result<_>>()?;
                let opts = RunOptions {
                    inputs: &files,
                    output: &out,
                    task: Default::default(),
                    explain: None,
                    on_file_done: &|_| {},
                    allow_changed_inputs: false,
                };
                let stats = refine(&refine_config, &opts)
                    .with_context(|| format!("refining into {}", out.display()))?;
                let value = serde_json::to_value(&stats)?;
                last_stats = Some(stats);
                value
            }
            "dedup" => {
                let input = upstream.context("dedup needs the refine stage's folder")?;
                let dedup_config = match &config.dedup.config {
                    Some(p) => DedupConfig::load(&at(p))
                        .with_context(|| format!("loading {}", at(p).display()))?,
                    None => DedupConfig::default(),
                };
                let stats = run_dedup(&[input], &out, &dedup_config, &Default::default())
                    .with_context(|| format!("deduplicating into {}", out.display()))?;
                let value = serde_json::to_value(&stats)?;
                last_stats = Some(stats);
                value
            }
            "tokenize" => {
                let input = upstream.context("tokenize needs a stage before it")?;
                let t = &config.tokenize;
                let tokenizer = t
                    .tokenizer
                    .as_ref()
                    .map(|p| at(p))
                    .context("tokenize needs `tokenizer` in the config's [tokenize]")?;
                let tokenize_config = TokenizeConfig {
                    inputs: vec![input],
                    output: out.clone(),
                    tokenizer,
                    shard_tokens: t.shard_tokens,
                    validation_fraction: t.validation_fraction,
                    seed: t.seed,
                    dtype: Dtype::parse(&t.dtype)?,
                    ..TokenizeConfig::default()
                };
                tokenize_corpus(&tokenize_config)
                    .with_context(|| format!("tokenizing into {}", out.display()))?;
                let meta = TokenMeta::load(&out)?;
                let stats: RunStats = serde_json::from_slice(
                    &std::fs::read(out.join("stats.json")).context("tokenize's stats.json")?,
                )?;
                let value = serde_json::json!({
                    "funnel": stats,
                    "train": meta.split.train,
                    "validation": meta.split.validation,
                    "text_bytes": meta.text_bytes,
                });
                last_stats = Some(stats);
                value
            }
            "train" => {
                let data = upstream.context("train needs the tokenize stage's folder")?;
                let path = config
                    .train
                    .config
                    .as_ref()
                    .map(|p| at(p))
                    .context("train needs `config` in the config's [train]")?;
                let mut train_config = TrainConfig::from_toml_file(&path)
                    .with_context(|| format!("loading {}", path.display()))?;
                if let Some(steps) = config.train.steps {
                    train_config.max_steps = steps;
                }
                // Always resume: a fresh folder starts at step 0, an interrupted one goes on.
                let summary = crate::train::train_into(
                    train_config,
                    &data,
                    &out,
                    true,
                    config.train.devices,
                )?;
                serde_json::json!({
                    "steps": summary.steps,
                    "val_loss": summary.val_loss,
                    "tokens_per_sec": summary.tokens_per_sec,
                    "mfu": summary.mfu,
                    "checkpoint": summary.checkpoint,
                })
            }
            _ => unreachable!("stage names are checked above"),
        };
        let record = StageRecord {
            name: stage.into(),
            seconds: start.elapsed().as_secs_f64(),
            stats,
        };
        match manifest.stages.iter_mut().find(|s| s.name == stage) {
            Some(old) => *old = record,
            None => manifest.stages.push(record),
        }
        manifest
            .stages
            .sort_by_key(|s| STAGES.iter().position(|&n| n == s.name));
        // After each stage, so an interrupted run still tells what it finished.
        let mut json = serde_json::to_vec_pretty(&manifest)?;
        json.push(b'\n');
        write_atomic(&manifest_path, &json)?;
    }

    if let Some(stats) = &last_stats {
        let png = run_dir.join("funnel.png");
        if let Err(e) = crate::plot::funnel(&funnel::rows(stats), &png) {
            tracing::warn!("funnel.png not written: {e:#}");
        }
        let mut table = funnel::table(stats);
        if stages.iter().any(|s| s == "tokenize") {
            let meta = TokenMeta::load(&run_dir.join("tokenize"))?;
            table.push_str(&tokens_row(&meta.split.train, &meta.split.validation));
        }
        println!("{table}");
    }
    crate::say(&format!(
        "run folder {}: {}",
        run_dir.display(),
        manifest
            .stages
            .iter()
            .map(|s| format!("{} {:.1} s", s.name, s.seconds))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(())
}

/// The funnel table's last row: tokens written, train and validation.
fn tokens_row(train: &SplitTotals, validation: &SplitTotals) -> String {
    format!(
        "| tokens (train + validation) | {} + {} | - | - |\n",
        train.tokens, validation.tokens
    )
}

fn config_record(of: &str, path: &Path, text: &str) -> Result<ConfigRecord> {
    Ok(ConfigRecord {
        of: of.into(),
        path: path.into(),
        xxh3: format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes())),
        text: text.into(),
    })
}

/// A file's size and xxh3-64, read in 1 MiB blocks.
fn input_record(path: &Path) -> Result<InputRecord> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(InputRecord {
        path: path.into(),
        size,
        xxh3: format!("{:016x}", hasher.digest()),
    })
}
