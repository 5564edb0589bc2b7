//! The training loop (`falconry train --config FILE --data DIR --output DIR [--steps N]
//! [--resume]`), in nanoGPT's `train.py` order: learning rate -> forward/backward over
//! `grad_accum_steps` micro-batches -> clip -> AdamW step -> log; validation and checkpoints
//! every N steps.
//!
//! Output folder: `metrics.jsonl` (one JSON object per training step and per evaluation),
//! `loss.png`, `checkpoints/step-NNNNNN/` (see `checkpoint.rs`). `--resume` continues from the
//! highest checkpoint; the next step's loss equals the uninterrupted run's because weights and
//! moments are saved exactly (f32) and the data of step `s` depends only on `(seed, s)`.
//!
//! Mixed precision: `dtype = "bf16"` runs matmuls and activations in bf16 on f32 master
//! weights (see `model.rs`); `"f32"` is exact and what CPU tests use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, ElementConversion, FloatDType, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::attention::FalconTrainBackend;
use crate::checkpoint::{
    latest_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint, write_checkpoint,
    TrainerState,
};
use crate::config::FalconConfig;
use crate::data::{TokenData, TokenSplit};
use crate::eval_tasks::{
    eval_tasks, load_benchmark, parse_tasks, EvalTasksOptions, EvalTasksReport, ModelScorer,
    Scorer, TokenLosses, WindowScorer,
};
use crate::model::FalconForCausalLM;
use crate::optim::{AdamW, AdamWConfig, LrSchedule};
use crate::parallel::{DataParallel, Fused};
use crate::{plot, write_atomic, Error};

/// Compute precision of the forward and backward passes (weights stay f32).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// bf16 matmuls and activations on f32 master weights.
    #[default]
    Bf16,
    /// Everything in f32.
    F32,
}

impl Precision {
    /// The Burn dtype of the compute.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::Bf16 => FloatDType::BF16,
            Precision::F32 => FloatDType::F32,
        }
    }

    /// This precision where `B` computes in it on `device`, else f32 (with a warning): the CPU
    /// build's NdArray has no bf16 arithmetic, and the weights are f32 either way.
    pub fn on<B: Backend>(self, device: &B::Device) -> Self {
        if compute_dtype::<B>(self.dtype(), device) == FloatDType::F32 {
            Precision::F32
        } else {
            self
        }
    }
}

/// `dtype`, or f32 where `B` cannot compute in it on `device` (said once per call).
pub fn compute_dtype<B: Backend>(dtype: FloatDType, device: &B::Device) -> FloatDType {
    if dtype != FloatDType::F32 && !B::supports_dtype(device, DType::from(dtype)) {
        tracing::warn!(
            "{dtype:?} is not available on this backend (the CPU build): computing in f32"
        );
        return FloatDType::F32;
    }
    dtype
}

/// A training run's settings (`configs/train/*.toml`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// A model preset (`falcon-tiny`, `falcon-124m`, `falcon-350m`, `falcon-1b`, `falcon-7b`,
    /// `falcon-40b`)
    /// or a path to a model TOML (relative to the train config's folder).
    pub model: String,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Sequences per forward pass.
    pub micro_batch_size: usize,
    /// Micro-batches per optimizer step (tokens per step = seq_len x micro x accum).
    pub grad_accum_steps: usize,
    /// Optimizer steps of the run (`--steps` overrides).
    pub max_steps: usize,
    /// Compute precision.
    pub precision: Precision,
    /// Seeds the initial weights and the data order.
    pub seed: u64,
    /// Evaluate on the validation split every this many steps (0: only at the end).
    pub eval_interval: usize,
    /// Micro-batches per evaluation (the same windows every time).
    pub eval_batches: usize,
    /// Write a checkpoint every this many steps (0: only at the end).
    pub checkpoint_interval: usize,
    /// Peak dense bf16 FLOP/s of one accelerator, for MFU (H100/H200 SXM: 989e12).
    pub peak_flops: f64,
    /// Keep one block's activations and recompute each block's forward in the backward (the
    /// CUDA engine; Burn's step ignores it): about a quarter more work for much less memory.
    pub recompute_activations: bool,
    /// AdamW.
    pub optimizer: AdamWConfig,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Benchmarks scored at every evaluation (rows of `split = "eval_tasks"` in metrics.jsonl).
    pub eval_tasks: EvalTasksConfig,
}

/// `[eval_tasks]` of a train config: `falconry eval-tasks` on the model being trained, at the
/// validation interval (DCLM scores its core tasks so).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalTasksConfig {
    /// As `falconry eval-tasks --tasks`: `arc_easy,hellaswag:10`, `leaderboard`, ...; empty
    /// (the default) scores none.
    pub tasks: String,
    /// Documents per task at most (per MMLU subject), the first ones.
    pub limit: Option<usize>,
    /// The benchmark files (the folder of shared/data/eval), relative to the config's folder.
    pub data: PathBuf,
    /// The `tokenizer.json` of the token shards; default: the one their `meta.json` names.
    pub tokenizer: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            model: "falcon-124m".into(),
            seq_len: 2048,
            micro_batch_size: 8,
            grad_accum_steps: 1,
            max_steps: 1000,
            precision: Precision::Bf16,
            seed: 1337,
            eval_interval: 100,
            eval_batches: 8,
            checkpoint_interval: 500,
            peak_flops: 989e12,
            recompute_activations: false,
            optimizer: AdamWConfig::default(),
            schedule: LrSchedule::default(),
            eval_tasks: EvalTasksConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Reads a train config TOML.
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config: Self = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        // Paths are relative to the config file.
        if let Some(parent) = path.parent() {
            if config.model.ends_with(".toml") {
                config.model = parent.join(&config.model).to_string_lossy().into_owned();
            }
            let tasks = &mut config.eval_tasks;
            if !tasks.tasks.is_empty() {
                tasks.data = parent.join(&tasks.data);
            }
            if let Some(tokenizer) = &mut tasks.tokenizer {
                *tokenizer = parent.join(&*tokenizer);
            }
        }
        config.validate().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.seq_len == 0 || self.micro_batch_size == 0 || self.grad_accum_steps == 0 {
            return Err("seq_len, micro_batch_size and grad_accum_steps must be positive".into());
        }
        if !self.eval_tasks.tasks.is_empty() {
            crate::eval_tasks::parse_tasks(&self.eval_tasks.tasks, None)
                .map_err(|e| format!("eval_tasks.tasks: {e}"))?;
            if self.eval_tasks.limit == Some(0) {
                return Err("eval_tasks.limit must be positive".into());
            }
        }
        self.check_seq_len(&self.model_config()?)
    }

    /// Refuses sequences longer than the model's `max_position_embeddings`: it would train
    /// on them and save a config.json that says it cannot.
    pub fn check_seq_len(&self, model: &FalconConfig) -> Result<(), String> {
        if self.seq_len > model.max_position_embeddings {
            return Err(format!(
                "seq_len {} is above the model's max_position_embeddings {}",
                self.seq_len, model.max_position_embeddings
            ));
        }
        Ok(())
    }

    /// The model's shape: the named preset or the TOML file.
    pub fn model_config(&self) -> Result<FalconConfig, String> {
        Ok(match self.model.as_str() {
            "falcon-tiny" => FalconConfig::falcon_tiny(),
            "falcon-124m" => FalconConfig::falcon_124m(),
            "falcon-350m" => FalconConfig::falcon_350m(),
            "falcon-1b" => FalconConfig::falcon_1b(),
            "falcon-7b" => FalconConfig::falcon_7b(),
            "falcon-40b" => FalconConfig::falcon_40b(),
            path if path.ends_with(".toml") => {
                FalconConfig::from_toml_file(Path::new(path)).map_err(|e| e.to_string())?
            }
            other => {
                return Err(format!(
                    "unknown model `{other}`: a preset name or a .toml path"
                ))
            }
        })
    }

    /// Tokens per optimizer step.
    pub fn tokens_per_step(&self) -> usize {
        self.seq_len * self.micro_batch_size * self.grad_accum_steps
    }
}

/// Training FLOPs per token: `6 N + 12 L d T` (PaLM appendix B, as nanoGPT's `estimate_mfu`);
/// `N` counts the tied embedding once since the LM head's matmul does the work.
pub fn flops_per_token(config: &FalconConfig, seq_len: usize) -> f64 {
    6.0 * config.num_params() as f64
        + 12.0 * (config.num_hidden_layers * config.hidden_size * seq_len) as f64
}

/// Where and how long to train.
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The run's settings.
    pub config: TrainConfig,
    /// The token shard folder.
    pub data: PathBuf,
    /// The output folder.
    pub output: PathBuf,
    /// Continue from the highest checkpoint in `output/checkpoints`.
    pub resume: bool,
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Optimizer updates done after this record.
    pub step: usize,
    /// `"train"`, `"validation"` or `"eval_tasks"`.
    pub split: String,
    /// Mean cross entropy (nats per token; train and validation).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub loss: Option<f64>,
    /// `exp(loss)` (validation only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub perplexity: Option<f64>,
    /// Learning rate of the step (train only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lr: Option<f64>,
    /// Gradient norm before clipping (train only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grad_norm: Option<f64>,
    /// Training tokens per second of this step (train only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub tokens_per_sec: Option<f64>,
    /// Model FLOPs utilisation of this step (train only).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mfu: Option<f64>,
    /// Training tokens consumed so far.
    pub tokens: u64,
    /// The benchmark (eval_tasks rows: as `falconry eval-tasks` prints them).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub task: Option<String>,
    /// Its few-shot examples.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub shots: Option<usize>,
    /// `acc`, `acc_norm`, ...
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub metric: Option<String>,
    /// The metric's value.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub value: Option<f64>,
    /// Its standard error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub stderr: Option<f64>,
}

impl Metrics {
    /// A train or validation row.
    pub(crate) fn loss_row(step: usize, split: &str, loss: f64, tokens: u64) -> Self {
        Self {
            step,
            split: split.into(),
            loss: Some(loss),
            perplexity: None,
            lr: None,
            grad_norm: None,
            tokens_per_sec: None,
            mfu: None,
            tokens,
            task: None,
            shots: None,
            metric: None,
            value: None,
            stderr: None,
        }
    }
}

/// What a finished run reports.
#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    /// Steps done in total (resumed runs count earlier ones).
    pub steps: usize,
    /// Step the run started from (0, or the resumed checkpoint's).
    pub start_step: usize,
    /// Train loss of every step this run did.
    pub losses: Vec<f64>,
    /// Last validation loss.
    pub val_loss: Option<f64>,
    /// Mean tokens/s over the run's steps after the first (compilation, autotune).
    pub tokens_per_sec: f64,
    /// Mean MFU over the same steps.
    pub mfu: f64,
    /// The last checkpoint written.
    pub checkpoint: Option<PathBuf>,
}

/// `[B, T + 1]` token windows -> inputs `[B, T]` and targets `[B, T]`.
fn batch_tensors<B: AutodiffBackend>(
    windows: &[u16],
    batch: usize,
    seq_len: usize,
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
    let ids: Vec<i32> = windows.iter().map(|&t| t as i32).collect();
    let all = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [batch, seq_len + 1]), device);
    (all.clone().narrow(1, 0, seq_len), all.narrow(1, 1, seq_len))
}

/// Mean validation loss over `config.eval_batches` fixed windows, each micro-batch's loss from
/// `loss_of` (Burn's model without autodiff, or the fused engine).
fn evaluate_split(
    split: &TokenSplit,
    config: &TrainConfig,
    mut loss_of: impl FnMut(&[u16]) -> Result<f64, Error>,
) -> Result<f64, Error> {
    let (mb, t) = (config.micro_batch_size, config.seq_len);
    let mut sum = 0.0;
    for i in 0..config.eval_batches.max(1) {
        // A seed of its own: the same validation windows at every evaluation.
        let windows = split.sample(config.seed ^ 0x005e_ed0f_e7a1, i as u64, mb, t);
        sum += loss_of(&windows)?;
    }
    Ok(sum / config.eval_batches.max(1) as f64)
}

/// The `[eval_tasks]` of a run, read and ready to score.
struct Benchmarks {
    opts: EvalTasksOptions,
    tokenizer: tokenizers::Tokenizer,
}

impl Benchmarks {
    /// `None` when the config asks for no tasks. Loads the tokenizer and every benchmark file,
    /// so that a missing one fails before the first step.
    fn open(
        config: &EvalTasksConfig,
        data: &TokenData,
        model: &FalconConfig,
        dtype: FloatDType,
    ) -> Result<Option<Self>, Error> {
        if config.tasks.is_empty() {
            return Ok(None);
        }
        let tasks = parse_tasks(&config.tasks, None).map_err(Error::Unsupported)?;
        let tokenizer = match (config.tokenizer.clone(), data.tokenizer()?) {
            (Some(path), _) | (None, Some(path)) => path,
            (None, None) => {
                return Err(Error::Unsupported(
                    "eval_tasks needs a tokenizer: the shards' meta.json names none, set \
                     eval_tasks.tokenizer"
                        .into(),
                ))
            }
        };
        let path = tokenizer;
        let tokenizer = crate::inference::load_tokenizer(&path)?;
        // An id past the embedding would stop the run at its first evaluation.
        let ids = tokenizer.get_vocab_size(true);
        if ids > model.vocab_size {
            return Err(Error::Unsupported(format!(
                "eval_tasks: {} has {ids} ids, the model's vocab_size is {}",
                path.display(),
                model.vocab_size
            )));
        }
        for spec in &tasks {
            load_benchmark(spec.benchmark, &config.data)?;
        }
        Ok(Some(Self {
            opts: EvalTasksOptions {
                tasks,
                limit: config.limit,
                data: config.data.clone(),
                dtype,
            },
            tokenizer,
        }))
    }

    fn score(&self, scorer: &mut dyn Scorer) -> Result<EvalTasksReport, Error> {
        eval_tasks(scorer, &self.tokenizer, &self.opts, &mut |_, _, _| {})
    }

    /// One metrics row per headline metric, as `falconry eval-tasks` prints them.
    fn rows(report: &EvalTasksReport, step: usize, tokens: u64) -> Vec<Metrics> {
        let mut rows = Vec::new();
        for r in report.headline() {
            for score in &r.scores {
                rows.push(Metrics {
                    loss: None,
                    task: Some(r.name.clone()),
                    shots: Some(r.shots),
                    metric: Some(score.metric.clone()),
                    value: Some(score.value),
                    stderr: score.stderr,
                    ..Metrics::loss_row(step, "eval_tasks", 0.0, tokens)
                });
            }
        }
        rows
    }
}

/// The fused engine's forward pass as [`TokenLosses`]: windows of the run's own shape.
struct FusedLosses<'a, B: FalconTrainBackend> {
    engine: &'a mut dyn Fused<B>,
    rows: usize,
}

impl<B: FalconTrainBackend> TokenLosses for FusedLosses<'_, B> {
    fn rows(&self, _seq: usize) -> usize {
        self.rows
    }
    fn losses(&mut self, _seq: usize, windows: &[u16]) -> Result<Vec<f32>, Error> {
        self.engine.token_losses(windows)
    }
}

/// Burn's loss of one micro-batch of windows, without autodiff.
fn burn_loss<B: DataParallel>(
    model: &FalconForCausalLM<B>,
    windows: &[u16],
    config: &TrainConfig,
    device: &B::Device,
) -> f64 {
    let (mb, t) = (config.micro_batch_size, config.seq_len);
    let valid = burn::module::AutodiffModule::valid(model);
    let (ids, targets) = batch_tensors::<B>(windows, mb, t, device);
    let loss = valid.loss(ids.inner(), targets.inner(), config.precision.dtype());
    loss.into_scalar().elem::<f64>()
}

/// The data key of a micro-batch: ranks draw windows of their own; with one rank, the keys of
/// a one-device run (so resume and the fused engine see the same windows).
fn window_key(step: usize, accum: usize, micro: usize, world: usize, rank: usize) -> u64 {
    (((step * accum + micro) * world) + rank) as u64
}

/// One copy of the model and its optimizer on one device: rank `rank` of `world`.
/// What takes the steps: the CUDA engine, holding the weights and moments, or Burn's autodiff
/// step on rank 0's replica.
enum Stepper<B: DataParallel> {
    Engine(Box<dyn Fused<B>>),
    Burn(Box<Replica<B>>),
}

struct Replica<B: DataParallel> {
    model: FalconForCausalLM<B>,
    optim: AdamW<B>,
    device: B::Device,
    rank: usize,
    world: usize,
}

impl<B: DataParallel> Replica<B> {
    /// This replica's copy on `device` as rank `rank`: the same weights, parameter ids and moments.
    fn fork(&self, device: &B::Device, rank: usize) -> Self {
        Self {
            model: B::mark(self.model.clone().fork(device), self.world),
            optim: self.optim.to_device(device),
            device: device.clone(),
            rank,
            world: self.world,
        }
    }

    /// One optimizer step: this rank's micro-batches forward and backward (the gradients come
    /// back averaged over all ranks), then clipping and AdamW. Returns this rank's mean loss
    /// and the gradient norm.
    fn step(
        &mut self,
        train: &TokenSplit,
        config: &TrainConfig,
        step: usize,
        seed: u64,
    ) -> (f64, f64) {
        let (mb, t, accum) = (
            config.micro_batch_size,
            config.seq_len,
            config.grad_accum_steps,
        );
        let mut accumulator = GradientsAccumulator::<FalconForCausalLM<B>>::new();
        // The losses are read once, after every backward pass is queued: a read is a wait for
        // the device, and waiting inside the loop would leave it idle between micro-batches.
        let mut micro_losses = Vec::with_capacity(accum);
        for micro in 0..accum {
            let key = window_key(step, accum, micro, self.world, self.rank);
            let windows = train.sample(seed, key, mb, t);
            let (ids, targets) = batch_tensors::<B>(&windows, mb, t, &self.device);
            let loss = self.model.loss(ids, targets, config.precision.dtype());
            micro_losses.push(loss.clone().detach());
            let grads = loss.div_scalar(accum as f64).backward();
            accumulator.accumulate(&self.model, GradientsParams::from_grads(grads, &self.model));
        }
        let lr = config.schedule.lr(step, config.max_steps);
        let (updated, grad_norm) = self.optim.step(lr, self.model.clone(), accumulator.grads());
        self.model = B::mark(updated, self.world);
        let loss = Tensor::cat(micro_losses, 0)
            .mean()
            .into_scalar()
            .elem::<f64>();
        // The step is timed to its end on the device, the optimizer update included.
        let _ = B::sync(&self.device);
        (loss, grad_norm)
    }
}

/// Runs (or resumes) training on `devices` (one replica each, data parallel when there are
/// several); `progress` sees every metrics record as it is written (the CLI draws its
/// progress bar from it).
///
/// Rank 0 runs here and does everything but compute for the others: metrics, evaluation,
/// checkpoints. Ranks 1.. run in threads of their own and meet rank 0 inside every backward
/// pass, where their gradients are averaged. The logged training loss is the mean over ranks
/// with the CUDA engine, rank 0's with Burn's step.
pub fn train<B: DataParallel>(
    opts: &TrainOptions,
    devices: &[B::Device],
    progress: &mut dyn FnMut(&Metrics),
) -> Result<TrainSummary, Error> {
    let started = Instant::now();
    let Some(device) = devices.first() else {
        return Err(Error::Unsupported("no device to train on".into()));
    };
    let config = &TrainConfig {
        precision: opts.config.precision.on::<B>(device),
        ..opts.config.clone()
    };
    let world = devices.len();
    let model_config = config
        .model_config()
        .and_then(|m| config.check_seq_len(&m).map(|()| m))
        .map_err(|message| Error::Config {
            path: opts.output.clone(),
            message,
        })?;
    // The CUDA engine takes the step where it applies (bf16, shapes it covers; one GPU or an
    // NCCL group of them), otherwise Burn's autodiff step, data parallel through Burn's
    // collectives.
    let fused = B::fused(&model_config, config, devices);
    let burn_world = if fused.is_some() { 1 } else { world };
    if burn_world > 1 {
        B::start(devices)?;
    }
    let data = TokenData::open(&opts.data, config.seq_len)?;
    data.check_model(&model_config)?;
    // Read before the first step: a missing file fails now, not at the first evaluation.
    let benchmarks = Benchmarks::open(
        &config.eval_tasks,
        &data,
        &model_config,
        config.precision.dtype(),
    )?;
    let ckpt_root = opts.output.join("checkpoints");
    std::fs::create_dir_all(&ckpt_root).map_err(|e| Error::io(&ckpt_root, e))?;
    let metrics_path = opts.output.join("metrics.jsonl");

    let resume_from = if opts.resume {
        latest_checkpoint(&ckpt_root)
    } else {
        None
    };
    let fresh = TrainerState {
        step: 0,
        optimizer_step: 0,
        seed: config.seed,
        tokens: 0,
    };
    let lead = |model, optim| {
        Stepper::Burn(Box::new(Replica {
            model: B::mark(model, burn_world),
            optim,
            device: device.clone(),
            rank: 0,
            world: burn_world,
        }))
    };
    // The engine reads and draws its weights on the host: no Burn model is built for it.
    let (mut state, mut stepper) = match (fused, &resume_from) {
        (Some(mut engine), Some((_, dir))) => {
            let (tensors, state) = read_checkpoint(dir)?;
            engine.import(&tensors, state.optimizer_step)?;
            (state, Stepper::Engine(engine))
        }
        (Some(mut engine), None) => {
            engine.draw(config.seed)?;
            (fresh, Stepper::Engine(engine))
        }
        (None, Some((_, dir))) => {
            let (model, optim, state) =
                load_checkpoint::<B>(dir, config.optimizer.clone(), device)?;
            (state, lead(model, optim))
        }
        (None, None) => {
            B::seed(device, config.seed);
            let model = model_config.init::<B>(device);
            (
                fresh,
                lead(model, AdamW::<B>::new(config.optimizer.clone())),
            )
        }
    };
    let mut history = match &resume_from {
        Some((_, dir)) => {
            tracing::info!("resumed from {}", dir.display());
            // Keep the records up to the checkpoint; later ones are redone.
            read_metrics(&metrics_path)?
                .into_iter()
                .filter(|m| m.step <= state.step)
                .collect()
        }
        None => Vec::new(),
    };
    write_metrics(&metrics_path, &history)?;
    let mut metrics_file = std::fs::OpenOptions::new()
        .append(true)
        .open(&metrics_path)
        .map_err(|e| Error::io(&metrics_path, e))?;
    let mut emit = |m: Metrics, history: &mut Vec<Metrics>| -> Result<(), Error> {
        let line = serde_json::to_string(&m).expect("metrics serialize");
        writeln!(metrics_file, "{line}").map_err(|e| Error::io(&metrics_path, e))?;
        progress(&m);
        history.push(m);
        Ok(())
    };

    let total = config.max_steps;
    let start_step = state.step;
    tracing::info!(
        "ready to train after {:.1} s (model built{})",
        started.elapsed().as_secs_f64(),
        if matches!(stepper, Stepper::Engine(_)) {
            ", weights in the engine"
        } else {
            ""
        }
    );
    // Detached, not scoped: should rank 0 fail, the others wait in a collective that never
    // completes, and a scope would wait for them.
    let train_split = Arc::new(data.train.clone());
    let others: Vec<_> = match &stepper {
        Stepper::Burn(lead) => devices[1..burn_world]
            .iter()
            .enumerate()
            .map(|(i, device)| {
                let mut replica = lead.fork(device, i + 1);
                let (split, config, seed) = (train_split.clone(), config.clone(), state.seed);
                std::thread::spawn(move || {
                    for step in start_step..total {
                        replica.step(&split, &config, step, seed);
                    }
                })
            })
            .collect(),
        Stepper::Engine(_) => Vec::new(),
    };

    let tokens_per_step = config.tokens_per_step() * world;
    let flops_per_step = flops_per_token(&model_config, config.seq_len) * tokens_per_step as f64;
    let peak_flops = config.peak_flops * world as f64;
    let mut losses = Vec::new();
    let (mut timed, mut timed_secs, mut timed_tokens) = (0usize, 0.0f64, 0u64);
    let mut val_loss = None;
    let mut checkpoint = None;
    let mut writing: Option<std::thread::JoinHandle<Result<PathBuf, Error>>> = None;

    while state.step < total {
        let began = Instant::now();
        let lr = config.schedule.lr(state.step, total);
        let (loss, grad_norm) = match &mut stepper {
            Stepper::Engine(engine) => {
                let (mb, t, accum) = (
                    config.micro_batch_size,
                    config.seq_len,
                    config.grad_accum_steps,
                );
                // Each rank's micro-batches, in rank order.
                let ranks = engine.ranks();
                let micro: Vec<Vec<u16>> = (0..ranks)
                    .flat_map(|rank| (0..accum).map(move |m| (rank, m)))
                    .map(|(rank, m)| {
                        train_split.sample(
                            state.seed,
                            window_key(state.step, accum, m, ranks, rank),
                            mb,
                            t,
                        )
                    })
                    .collect();
                engine.step(&micro, lr)?
            }
            Stepper::Burn(lead) => lead.step(&train_split, config, state.step, state.seed),
        };
        state.step += 1;
        state.optimizer_step = match &stepper {
            Stepper::Engine(engine) => engine.optimizer_step(),
            Stepper::Burn(lead) => lead.optim.step,
        };
        state.tokens += tokens_per_step as u64;
        losses.push(loss);

        let secs = began.elapsed().as_secs_f64();
        if state.step > start_step + 1 {
            timed += 1;
            timed_secs += secs;
            timed_tokens += tokens_per_step as u64;
        }
        let record = Metrics {
            lr: Some(lr),
            grad_norm: Some(grad_norm),
            tokens_per_sec: Some(tokens_per_step as f64 / secs),
            mfu: Some(flops_per_step / secs / peak_flops),
            ..Metrics::loss_row(state.step, "train", loss, state.tokens)
        };
        emit(record, &mut history)?;

        let due =
            |interval: usize| (interval > 0 && state.step % interval == 0) || state.step == total;
        if due(config.eval_interval) {
            let loss = match &mut stepper {
                Stepper::Engine(engine) => {
                    evaluate_split(&data.validation, config, |w| engine.loss(w))?
                }
                Stepper::Burn(lead) => evaluate_split(&data.validation, config, |w| {
                    Ok(burn_loss(&lead.model, w, config, device))
                })?,
            };
            val_loss = Some(loss);
            let record = Metrics {
                perplexity: Some(loss.exp()),
                ..Metrics::loss_row(state.step, "validation", loss, state.tokens)
            };
            emit(record, &mut history)?;
            if let Some(bench) = &benchmarks {
                let report = match &mut stepper {
                    Stepper::Engine(engine) => {
                        let losses = FusedLosses {
                            engine: engine.as_mut(),
                            rows: config.micro_batch_size,
                        };
                        let mut scorer =
                            WindowScorer::new(losses, vec![config.seq_len], config.seq_len);
                        bench.score(&mut scorer)?
                    }
                    Stepper::Burn(lead) => {
                        let valid = burn::module::AutodiffModule::valid(&lead.model);
                        let mut scorer = ModelScorer {
                            model: &valid,
                            dtype: config.precision.dtype(),
                            device: device.clone(),
                        };
                        bench.score(&mut scorer)?
                    }
                };
                for row in Benchmarks::rows(&report, state.step, state.tokens) {
                    emit(row, &mut history)?;
                }
            }
        }
        if due(config.checkpoint_interval) {
            let began = Instant::now();
            // One checkpoint is written at a time: the previous one's files first.
            if let Some(done) = writing.take().map(finish_checkpoint).transpose()? {
                checkpoint = Some(done);
            }
            match &stepper {
                // The engine's tensors are on the host once exported: the files are written
                // by a thread of their own while training goes on (a 1B model's are 21 GB).
                Stepper::Engine(engine) => {
                    let tensors = engine.export()?;
                    tracing::info!(
                        "checkpoint of step {} taken in {:.1} s, written in the background",
                        state.step,
                        began.elapsed().as_secs_f64()
                    );
                    let (root, model, at) =
                        (ckpt_root.clone(), model_config.clone(), state.clone());
                    writing = Some(std::thread::spawn(move || {
                        let began = Instant::now();
                        let dir = write_checkpoint(&root, &model, &tensors, &at)?;
                        log_written(&dir, began);
                        Ok(dir)
                    }));
                }
                Stepper::Burn(lead) => {
                    let dir = save_checkpoint(&ckpt_root, &lead.model, &lead.optim, &state)?;
                    log_written(&dir, began);
                    checkpoint = Some(dir);
                }
            }
            // The curve is a convenience: a missing font must not stop training.
            if let Err(e) = plot::loss_curve(&history, &opts.output.join("loss.png")) {
                tracing::warn!("loss.png not written: {e}");
            }
        }
    }
    if let Some(done) = writing.take().map(finish_checkpoint).transpose()? {
        checkpoint = Some(done);
    }
    for other in others {
        other
            .join()
            .map_err(|_| Error::Unsupported("a data-parallel replica panicked".into()))?;
    }
    if burn_world > 1 {
        B::stop(devices);
    }
    if let Some(table) = match &stepper {
        Stepper::Engine(engine) => engine.profile(),
        Stepper::Burn(_) => None,
    } {
        tracing::info!("GPU time per operation (FALCONRY_PROFILE):\n{table}");
    }
    if let Err(e) = plot::loss_curve(&history, &opts.output.join("loss.png")) {
        tracing::warn!("loss.png not written: {e}");
    }
    let tokens_per_sec = if timed > 0 {
        timed_tokens as f64 / timed_secs
    } else {
        0.0
    };
    Ok(TrainSummary {
        steps: state.step,
        start_step,
        losses,
        val_loss,
        tokens_per_sec,
        mfu: tokens_per_sec * flops_per_token(&model_config, config.seq_len) / peak_flops,
        checkpoint,
    })
}

fn log_written(dir: &Path, began: Instant) {
    let secs = began.elapsed().as_secs_f64();
    tracing::info!("checkpoint {} written in {secs:.1} s", dir.display());
}

/// Waits for a checkpoint written in the background: its folder, or what failed.
fn finish_checkpoint(
    writer: std::thread::JoinHandle<Result<PathBuf, Error>>,
) -> Result<PathBuf, Error> {
    writer
        .join()
        .map_err(|_| Error::Unsupported("the checkpoint writer panicked".into()))?
}

/// Reads `metrics.jsonl` (absent: empty).
pub fn read_metrics(path: &Path) -> Result<Vec<Metrics>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, e)),
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).map_err(|e| Error::Data {
                path: path.to_owned(),
                message: e.to_string(),
            })
        })
        .collect()
}

fn write_metrics(path: &Path, records: &[Metrics]) -> Result<(), Error> {
    let mut text = String::new();
    for m in records {
        text.push_str(&serde_json::to_string(m).expect("metrics serialize"));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    /// The CPU build has no bf16 arithmetic: a bf16 config computes in f32 instead of
    /// panicking inside NdArray (what `falconry finetune`'s bf16 default did on CPU).
    #[test]
    fn bf16_falls_back_to_f32_where_the_backend_lacks_it() {
        let device = Default::default();
        assert_eq!(Precision::Bf16.on::<CpuBackend>(&device), Precision::F32);
        assert_eq!(Precision::F32.on::<CpuBackend>(&device), Precision::F32);
        assert_eq!(
            compute_dtype::<CpuBackend>(FloatDType::BF16, &device),
            FloatDType::F32
        );
    }
}
