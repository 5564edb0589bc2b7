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
use falconry_dedup::{run_dedup, DedupConfig, RunOptions as DedupOptions, Step};
use falconry_refine::folder::{write_atomic, Task};
use falconry_refine::lock::OutputLock;
use falconry_refine::run::{expand_inputs, refine, RunOptions};
use falconry_refine::{funnel, RunStats};
use falconry_tokenize::shards::SplitTotals;
use falconry_tokenize::{tokenize_corpus, Dtype, TokenMeta, TokenizeConfig};
use falconry_train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;

/// The stages, in pipeline order; each one's folder is `RUN_DIR/<name>`.
pub const STAGES: [&str; 4] = ["refine", "dedup", "tokenize", "train"];

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
pub struct Manifest {
    /// The version of the falconry that wrote it.
    falconry: String,
    /// The pipeline config and the stage configs it names.
    configs: Vec<ConfigRecord>,
    /// The files refine read.
    inputs: Vec<InputRecord>,
    /// Each stage run so far, in pipeline order.
    stages: Vec<StageRecord>,
    /// What `falconry slurm` submitted (absent from runs of `falconry run` alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<crate::slurm::plan::SlurmRecord>,
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
pub struct InputRecord {
    path: PathBuf,
    size: u64,
    /// xxh3-64 of the whole file, 16 hex digits.
    pub xxh3: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct StageRecord {
    name: String,
    /// Seconds of its last invocation (a resumed stage counts only what was left).
    seconds: f64,
    stats: serde_json::Value,
}

/// A pipeline config with the command line's overrides applied: what `falconry run` runs, and
/// what each task of `falconry slurm`'s job arrays runs a share of.
pub struct Pipeline {
    config: PipelineConfig,
    /// The config file and its text.
    pub path: PathBuf,
    text: String,
    pub run_dir: PathBuf,
    /// Input files, folders or patterns, as given.
    pub inputs: Vec<PathBuf>,
    /// The stages to run, checked against [`STAGES`], in pipeline order.
    pub stages: Vec<String>,
}

/// What a stage reports: its stats for the manifest, and its funnel when it has one.
pub struct StageOutcome {
    pub stats: serde_json::Value,
    pub funnel: Option<RunStats>,
}

impl Pipeline {
    /// Reads `config`; `input`, `output` and `stages` replace its `[run]` values when given.
    pub fn load(
        config: &Path,
        input: &[PathBuf],
        output: Option<&Path>,
        stages: Option<&[String]>,
    ) -> Result<Pipeline> {
        let text = std::fs::read_to_string(config)
            .with_context(|| format!("reading --config {}", config.display()))?;
        let parsed: PipelineConfig = toml::from_str(&text)
            .with_context(|| format!("parsing --config {}", config.display()))?;
        let base = config.parent().unwrap_or(Path::new("."));
        let stages: Vec<String> = stages
            .map(<[String]>::to_vec)
            .or(parsed.run.stages.clone())
            .unwrap_or_else(|| STAGES[..3].iter().map(|s| s.to_string()).collect());
        if let Some(bad) = stages.iter().find(|s| !STAGES.contains(&s.as_str())) {
            return Err(crate::cli::usage(format!(
                "stage `{bad}` is not one of {}",
                STAGES.join(", ")
            )));
        }
        let stages = STAGES
            .iter()
            .filter(|s| stages.iter().any(|x| x == *s))
            .map(|s| s.to_string())
            .collect();
        let run_dir = match (output, &parsed.run.output) {
            (Some(dir), _) => dir.to_path_buf(),
            (None, Some(dir)) => base.join(dir),
            (None, None) => {
                return Err(crate::cli::usage(
                    "no run folder: give --output or `output` in the config's [run]",
                ))
            }
        };
        let inputs = if input.is_empty() {
            parsed.run.input.iter().map(|p| base.join(p)).collect()
        } else {
            input.to_vec()
        };
        Ok(Pipeline {
            config: parsed,
            path: config.to_path_buf(),
            text,
            run_dir,
            inputs,
            stages,
        })
    }

    /// A path of the config, relative to its file.
    fn at(&self, p: &Path) -> PathBuf {
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }

    /// The input files refine reads, sorted; an error when none are given.
    pub fn input_files(&self) -> Result<Vec<PathBuf>> {
        if self.inputs.is_empty() {
            return Err(crate::cli::usage(
                "no inputs: give --input or `input` in the config's [run]",
            ));
        }
        expand_inputs(&self.inputs).context("resolving the inputs")
    }

    /// The dedup config: its file's, or the defaults.
    pub fn dedup_config(&self) -> Result<DedupConfig> {
        match &self.config.dedup.config {
            Some(p) => DedupConfig::load(&self.at(p))
                .with_context(|| format!("loading {}", self.at(p).display())),
            None => Ok(DedupConfig::default()),
        }
    }

    /// The pipeline config and the stage configs it names, text and hash.
    fn config_records(&self) -> Result<Vec<ConfigRecord>> {
        let mut records = vec![config_record("pipeline", &self.path, &self.text)?];
        for (of, path) in [
            ("refine", &self.config.refine.config),
            ("dedup", &self.config.dedup.config),
            ("train", &self.config.train.config),
        ] {
            if let Some(path) = path {
                let path = self.at(path);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading the {of} config {}", path.display()))?;
                records.push(config_record(of, &path, &text)?);
            }
        }
        Ok(records)
    }

    /// Runs `task`'s share of `stage` (of dedup, only `step` when given) into
    /// `RUN_DIR/<stage>`, reading the folder of the stage before it: the nearest one run now
    /// or found in the run folder.
    pub fn stage(&self, stage: &str, task: Task, step: Option<Step>) -> Result<StageOutcome> {
        let k = STAGES
            .iter()
            .position(|&s| s == stage)
            .with_context(|| format!("no stage `{stage}`"))?;
        let out = self.run_dir.join(stage);
        let upstream = STAGES[..k]
            .iter()
            .rev()
            .find(|&&s| self.stages.iter().any(|x| x == s) || self.run_dir.join(s).exists())
            .map(|s| self.run_dir.join(s));
        let funnel_only = |stats: RunStats| -> Result<StageOutcome> {
            Ok(StageOutcome {
                stats: serde_json::to_value(&stats)?,
                funnel: Some(stats),
            })
        };
        match stage {
            "refine" => {
                let refine_config = crate::refine::config(
                    self.config
                        .refine
                        .config
                        .as_ref()
                        .map(|p| self.at(p))
                        .as_deref(),
                )?;
                let files = self.input_files()?;
                let opts = RunOptions {
                    inputs: &files,
                    output: &out,
                    task,
                    explain: None,
                    on_file_done: &|_| {},
                    allow_changed_inputs: false,
                };
                funnel_only(
                    refine(&refine_config, &opts)
                        .with_context(|| format!("refining into {}", out.display()))?,
                )
            }
            "dedup" => {
                let input = upstream.context("dedup needs the refine stage's folder")?;
                let options = DedupOptions {
                    task: step.map(|_| task),
                    step,
                    ..Default::default()
                };
                funnel_only(
                    run_dedup(&[input], &out, &self.dedup_config()?, &options)
                        .with_context(|| format!("deduplicating into {}", out.display()))?,
                )
            }
            "tokenize" => {
                let input = upstream.context("tokenize needs a stage before it")?;
                let t = &self.config.tokenize;
                let tokenizer = t
                    .tokenizer
                    .as_ref()
                    .map(|p| self.at(p))
                    .context("tokenize needs `tokenizer` in the config's [tokenize]")?;
                let tokenize_config = TokenizeConfig {
                    inputs: vec![input],
                    output: out.clone(),
                    tokenizer,
                    shard_tokens: t.shard_tokens,
                    validation_fraction: t.validation_fraction,
                    seed: t.seed,
                    dtype: Dtype::parse(&t.dtype)?,
                    task,
                    ..TokenizeConfig::default()
                };
                tokenize_corpus(&tokenize_config)
                    .with_context(|| format!("tokenizing into {}", out.display()))?;
                if task.count > 1 {
                    // meta.json and stats.json are written by the task that finishes last.
                    return Ok(StageOutcome {
                        stats: serde_json::Value::Null,
                        funnel: None,
                    });
                }
                let meta = TokenMeta::load(&out)?;
                let stats: RunStats = serde_json::from_slice(
                    &std::fs::read(out.join("stats.json")).context("tokenize's stats.json")?,
                )?;
                Ok(StageOutcome {
                    stats: serde_json::json!({
                        "funnel": stats,
                        "train": meta.split.train,
                        "validation": meta.split.validation,
                        "text_bytes": meta.text_bytes,
                    }),
                    funnel: Some(stats),
                })
            }
            "train" => {
                let data = upstream.context("train needs the tokenize stage's folder")?;
                let path = self
                    .config
                    .train
                    .config
                    .as_ref()
                    .map(|p| self.at(p))
                    .context("train needs `config` in the config's [train]")?;
                let mut train_config = TrainConfig::from_toml_file(&path)
                    .with_context(|| format!("loading {}", path.display()))?;
                if let Some(steps) = self.config.train.steps {
                    train_config.max_steps = steps;
                }
                // Always resume: a fresh folder starts at step 0, an interrupted one goes on.
                let summary = crate::train::train_into(
                    train_config,
                    &data,
                    &out,
                    true,
                    self.config.train.devices,
                )?;
                Ok(StageOutcome {
                    stats: serde_json::json!({
                        "steps": summary.steps,
                        "val_loss": summary.val_loss,
                        "tokens_per_sec": summary.tokens_per_sec,
                        "mfu": summary.mfu,
                        "checkpoint": summary.checkpoint,
                    }),
                    funnel: None,
                })
            }
            _ => unreachable!("stage names are checked by Pipeline::load"),
        }
    }
}

/// `RUN_DIR/manifest.json`, or an empty one.
pub fn read_manifest(run_dir: &Path) -> Manifest {
    std::fs::read(run_dir.join("manifest.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes `RUN_DIR/manifest.json`.
pub fn write_manifest(run_dir: &Path, manifest: &Manifest) -> Result<()> {
    let mut json = serde_json::to_vec_pretty(manifest)?;
    json.push(b'\n');
    write_atomic(&run_dir.join("manifest.json"), &json)?;
    Ok(())
}

/// Pins the falconry version, the configs and the input files in `manifest`.
pub fn pin(manifest: &mut Manifest, pipeline: &Pipeline, files: &[PathBuf]) -> Result<()> {
    manifest.falconry = env!("CARGO_PKG_VERSION").into();
    manifest.configs = pipeline.config_records()?;
    manifest.inputs = files
        .iter()
        .map(|p| input_record(p))
        .collect::<Result<_>>()?;
    Ok(())
}

pub fn run(args: RunArgs) -> Result<()> {
    let pipeline = Pipeline::load(
        &args.config,
        &args.input,
        args.output.as_deref(),
        args.stages.as_deref(),
    )?;
    let run_dir = &pipeline.run_dir;
    let refines = pipeline.stages.iter().any(|s| s == "refine");
    let files = if refines {
        pipeline.input_files()?
    } else {
        Vec::new()
    };
    // One `falconry run` per folder; taking over a dead one's lock sweeps its temporaries.
    let _lock = OutputLock::acquire(run_dir, Default::default())
        .with_context(|| format!("locking {}", run_dir.display()))?;
    let mut manifest = read_manifest(run_dir);
    let inputs = std::mem::take(&mut manifest.inputs);
    pin(&mut manifest, &pipeline, &files)?;
    if !refines {
        manifest.inputs = inputs;
    }

    let mut last_stats: Option<RunStats> = None;
    for stage in &pipeline.stages {
        let start = Instant::now();
        let outcome = pipeline.stage(stage, Task::default(), None)?;
        if outcome.funnel.is_some() {
            last_stats = outcome.funnel;
        }
        let record = StageRecord {
            name: stage.clone(),
            seconds: start.elapsed().as_secs_f64(),
            stats: outcome.stats,
        };
        match manifest.stages.iter_mut().find(|s| s.name == *stage) {
            Some(old) => *old = record,
            None => manifest.stages.push(record),
        }
        manifest
            .stages
            .sort_by_key(|s| STAGES.iter().position(|&n| n == s.name));
        // After each stage, so an interrupted run still tells what it finished.
        write_manifest(run_dir, &manifest)?;
    }

    if let Some(stats) = &last_stats {
        let png = run_dir.join("funnel.png");
        if let Err(e) = crate::plot::funnel(&funnel::rows(stats), &png) {
            tracing::warn!("funnel.png not written: {e:#}");
        }
        let mut table = funnel::table(stats);
        if pipeline.stages.iter().any(|s| s == "tokenize") {
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
pub fn input_record(path: &Path) -> Result<InputRecord> {
    let mut file = falconry_refine::remote::open(path)?;
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
