//! `falconry finetune`: LoRA or QLoRA on a HF Falcon checkpoint, from instruction / chat JSONL.
//!
//! The base is loaded, optionally quantized to NF4 (`quantize = "nf4"`), frozen; adapters go on
//! the targeted projections; examples are rendered by the chat template, tokenized with the
//! checkpoint's tokenizer, packed into rows of `seq_len + 1` and trained with a loss on the
//! response tokens only (AdamW, warmup + cosine). The output folder is a PEFT adapter
//! (`adapter_config.json`, `adapter_model.safetensors`) plus `finetune.toml` (the config, whose
//! template `generate --chat` applies) and `metrics.jsonl`.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{ElementConversion, FloatDType, Int, Tensor, TensorData};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::attention::{DeviceMemory, FalconBackend, FalconTrainBackend};
use crate::chat::{pack, read_examples, ChatTemplate, Packed};
use crate::hf::{load_hf_as, NamedTensors};
use crate::inference::load_tokenizer;
use crate::lora::LoraConfig;
use crate::model::FalconForCausalLM;
use crate::optim::{AdamW, AdamWConfig, LrSchedule};
use crate::peft::{adapter_shapes, adapter_tensors, fresh_adapters, set_adapters, write_adapter};
use crate::trainer::Precision;
use crate::{write_atomic, Error};

/// The config file `finetune.toml` beside an adapter.
pub const FINETUNE_CONFIG: &str = "finetune.toml";

const MIB: f64 = (1 << 20) as f64;

/// How the frozen base is held.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantize {
    /// f32 weights (LoRA).
    #[default]
    None,
    /// 4-bit NormalFloat with double-quantized scales (QLoRA).
    Nf4,
}

/// A fine-tuning run (`--config FILE`, TOML); defaults follow QLoRA's recipe where it has one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    /// The adapters.
    pub lora: LoraConfig,
    /// How conversations become text.
    pub template: ChatTemplate,
    /// How the frozen base is held.
    pub quantize: Quantize,
    /// Tokens per packed row.
    pub seq_len: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Rows per forward and backward pass; the step accumulates `batch_size / micro_batch_size`
    /// of them (QLoRA's scripts: 1 row at a time, 16 a step). All `batch_size` rows at once
    /// when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub micro_batch_size: Option<usize>,
    /// Optimizer steps.
    pub steps: usize,
    /// Learning rate over the steps.
    pub schedule: LrSchedule,
    /// AdamW (QLoRA: no weight decay, clip at 0.3, beta2 0.999).
    pub optimizer: AdamWConfig,
    /// Compute precision.
    pub precision: Precision,
    /// Recompute each block's activations in the backward instead of keeping them (the CUDA
    /// engine; Burn's step ignores it): less memory for longer rows, about a quarter more work.
    pub recompute_activations: bool,
    /// Seeds the adapters' init, dropout and the row order.
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        Self {
            lora: LoraConfig::default(),
            template: ChatTemplate::default(),
            quantize: Quantize::None,
            seq_len: 512,
            batch_size: 16,
            micro_batch_size: None,
            steps: 1000,
            schedule: LrSchedule {
                max_lr: 2e-4,
                min_lr: 2e-5,
                warmup_steps: 30,
                decay_steps: 0,
            },
            optimizer: AdamWConfig {
                beta2: 0.999,
                weight_decay: 0.0,
                grad_clip: 0.3,
                ..AdamWConfig::default()
            },
            precision: Precision::Bf16,
            recompute_activations: false,
            seed: 0,
        }
    }
}

impl FinetuneConfig {
    /// Reads and validates a TOML config.
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |message: String| Error::Config {
            path: path.to_owned(),
            message,
        };
        let config: Self = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        config.validate().map_err(bad)?;
        Ok(config)
    }

    /// Checks the values; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        self.lora.validate()?;
        self.template.validate()?;
        if self.seq_len < 2 || self.batch_size == 0 || self.steps == 0 {
            return Err("seq_len must be at least 2, batch_size and steps positive".into());
        }
        let micro = self.micro_batch();
        if micro == 0 || !self.batch_size.is_multiple_of(micro) {
            return Err(format!(
                "micro_batch_size must divide batch_size ({}), got {micro}",
                self.batch_size
            ));
        }
        Ok(())
    }

    /// Rows per forward and backward pass.
    pub fn micro_batch(&self) -> usize {
        self.micro_batch_size.unwrap_or(self.batch_size)
    }
}

/// What a run needs.
#[derive(Clone, Debug)]
pub struct FinetuneOptions {
    /// The run's config.
    pub config: FinetuneConfig,
    /// HF checkpoint folder of the base model.
    pub checkpoint: PathBuf,
    /// Instruction / chat JSONL.
    pub data: PathBuf,
    /// `tokenizer.json` (the checkpoint's own when `None`).
    pub tokenizer: Option<PathBuf>,
    /// Output folder (the adapter).
    pub output: PathBuf,
}

/// One optimizer step, as `metrics.jsonl` records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// 1-based step.
    pub step: usize,
    /// Masked loss of the step's rows.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Row tokens (`batch_size x seq_len`, padding included) per second over the step, update
    /// included.
    pub tokens_per_sec: f64,
    /// Device memory held by live tensors after the forward pass (weights, optimizer state and
    /// the activations the backward keeps: the step's high point but for transients), MiB;
    /// where the backend tells (CUDA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_in_use_mib: Option<f64>,
    /// What the allocator had reserved from the device by then, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reserved_mib: Option<f64>,
}

/// What a run did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FinetuneSummary {
    /// Conversations read.
    pub examples: usize,
    /// Packed rows.
    pub rows: usize,
    /// Examples cut to fit a row.
    pub truncated: usize,
    /// Targets the loss counts, over all rows.
    pub trained_tokens: usize,
    /// Trainable (adapter) parameters.
    pub adapter_params: usize,
    /// Loss of the first and last steps.
    pub first_loss: f64,
    /// See `first_loss`.
    pub last_loss: f64,
}

/// Falcon's end of text, which ends every assistant turn and pads rows.
pub const EOS_TOKEN: &str = "<|endoftext|>";

/// The id of [`EOS_TOKEN`] in `tokenizer`.
pub fn eos_id(tokenizer: &tokenizers::Tokenizer, path: &Path) -> Result<u32, Error> {
    tokenizer
        .token_to_id(EOS_TOKEN)
        .ok_or_else(|| Error::Tokenizer {
            path: path.to_owned(),
            message: format!("no {EOS_TOKEN} token"),
        })
}

/// Reads, tokenizes and packs `data` as `config` says, with the tokenizer at `tokenizer`:
/// (conversations read, packed rows).
pub fn prepare_data(
    config: &FinetuneConfig,
    data: &Path,
    tokenizer_path: &Path,
) -> Result<(usize, Packed), Error> {
    let examples = read_examples(data)?;
    let tokenizer = load_tokenizer(tokenizer_path)?;
    let eos = eos_id(&tokenizer, tokenizer_path)?;
    let encoded = examples
        .iter()
        .map(|m| config.template.encode(&tokenizer, m, eos))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((examples.len(), pack(&encoded, config.seq_len, eos)))
}

/// Inputs, targets and loss mask of `rows` of `packed`.
fn batch<B: FalconBackend>(
    packed: &Packed,
    rows: &[usize],
    device: &B::Device,
) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>, Tensor<B, 2>) {
    let t = packed.rows[0].len() - 1;
    let (mut ids, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for &r in rows {
        let row = &packed.rows[r];
        ids.extend(row[..t].iter().map(|&x| x as i64));
        targets.extend(row[1..].iter().map(|&x| x as i64));
        mask.extend(packed.masks[r].iter().map(|&m| m as u8 as f32));
    }
    let shape = [rows.len(), t];
    (
        Tensor::from_data(TensorData::new(ids, shape), device),
        Tensor::from_data(TensorData::new(targets, shape), device),
        Tensor::from_data(TensorData::new(mask, shape), device),
    )
}

/// Mean masked loss of `model` over every row of `packed` (rows weighted by their trained
/// targets), `batch_size` rows at a time.
pub fn instruction_loss<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    packed: &Packed,
    batch_size: usize,
    precision: Precision,
    device: &B::Device,
) -> f64 {
    let (mut sum, mut count) = (0.0, 0usize);
    let all: Vec<usize> = (0..packed.rows.len()).collect();
    for rows in all.chunks(batch_size.max(1)) {
        let n = trained_targets(packed, rows);
        let (ids, targets, mask) = batch::<B>(packed, rows, device);
        let loss = model.masked_loss(ids, targets, mask, precision.dtype());
        sum += loss.into_scalar().elem::<f64>() * n as f64;
        count += n;
    }
    sum / count as f64
}

/// Takes fine-tuning steps: Burn's autodiff over the adapted model, or the CUDA engine.
trait AdapterTrainer {
    /// Trainable (adapter) parameters.
    fn adapter_params(&self) -> usize;
    /// One optimizer step on `rows` of `packed` at `lr`: the masked loss and the gradient norm
    /// before clipping.
    fn step(&mut self, packed: &Packed, rows: &[usize], lr: f64) -> Result<(f64, f64), Error>;
    /// Device memory held after the last step's forward pass, where known.
    fn memory(&self) -> Option<DeviceMemory>;
    /// The adapters, PEFT names and layouts.
    fn adapters(&self) -> Result<NamedTensors, Error>;
}

/// Burn's autodiff step on the adapted model (every backend; the reference).
struct BurnTrainer<B: FalconTrainBackend> {
    /// Taken by each update and put back.
    model: Option<FalconForCausalLM<B>>,
    optim: AdamW<B>,
    device: B::Device,
    dtype: FloatDType,
    /// Rows per forward and backward.
    micro: usize,
    memory: Option<DeviceMemory>,
    adapter_params: usize,
}

/// Values in `tensors`.
fn param_count(tensors: &NamedTensors) -> usize {
    tensors.values().map(|(_, data)| data.len()).sum()
}

/// Targets the loss counts in `rows` of `packed`.
fn trained_targets(packed: &Packed, rows: &[usize]) -> usize {
    rows.iter()
        .map(|&r| packed.masks[r].iter().filter(|&&m| m).count())
        .sum()
}

impl<B: FalconTrainBackend> BurnTrainer<B> {
    fn load(
        opts: &FinetuneOptions,
        config: &FinetuneConfig,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let start = std::time::Instant::now();
        let base = load_hf_as::<B>(&opts.checkpoint, config.quantize, device)?
            .base_in(config.precision.dtype());
        // The casts run, then the allocator gives back the pages it kept for the f32 weights.
        B::sync(device).map_err(|e| Error::Gpu(format!("{e:?}")))?;
        B::memory_cleanup(device);
        tracing::info!(
            "loaded {} ({:?} base) in {:.1} s; on CUDA the first step also compiles and autotunes \
             the kernels (minutes on a cold cache)",
            opts.checkpoint.display(),
            config.quantize,
            start.elapsed().as_secs_f64()
        );
        let fresh = fresh_adapters(&adapter_shapes(&base, &config.lora), config.seed);
        let adapter_params = param_count(&fresh);
        let model = set_adapters(base, &fresh, &config.lora, device).map_err(Error::Unsupported)?;
        B::seed(device, config.seed); // LoRA's dropout masks
        Ok(Self {
            model: Some(model),
            optim: AdamW::new(config.optimizer.clone()),
            device: device.clone(),
            dtype: config.precision.dtype(),
            micro: config.micro_batch(),
            memory: None,
            adapter_params,
        })
    }

    fn model(&self) -> &FalconForCausalLM<B> {
        self.model.as_ref().expect("put back after each step")
    }
}

impl<B: FalconTrainBackend> AdapterTrainer for BurnTrainer<B> {
    fn adapter_params(&self) -> usize {
        self.adapter_params
    }

    fn step(&mut self, packed: &Packed, rows: &[usize], lr: f64) -> Result<(f64, f64), Error> {
        let model = self.model.take().expect("put back after each step");
        let total = trained_targets(packed, rows) as f64;
        let mut accumulator = GradientsAccumulator::<FalconForCausalLM<B>>::new();
        let mut value = 0.0;
        for (i, micro) in rows.chunks(self.micro).enumerate() {
            let count = trained_targets(packed, micro) as f64;
            if count == 0.0 {
                continue; // nothing to learn from (and a mean over nothing)
            }
            let (ids, targets, mask) = batch::<B>(packed, micro, &self.device);
            // Each micro-batch's mean, weighted by its share of the step's trained targets.
            let loss = model
                .masked_loss(ids, targets, mask, self.dtype)
                .mul_scalar(count / total);
            value += loss.clone().into_scalar().elem::<f64>(); // runs the forward
            if i == 0 {
                self.memory = B::memory(&self.device);
            }
            accumulator.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
        }
        let (next, grad_norm) = self.optim.step(lr, model, accumulator.grads());
        self.model = Some(next);
        Ok((value, grad_norm))
    }

    fn memory(&self) -> Option<DeviceMemory> {
        self.memory
    }

    fn adapters(&self) -> Result<NamedTensors, Error> {
        Ok(adapter_tensors(self.model()))
    }
}

/// The CUDA engine's step: frozen base in bf16 or NF4, adapters, cuBLASLt products and the
/// engine's fused kernels (no CubeCL compilation or autotuning).
#[cfg(feature = "cuda")]
struct EngineTrainer {
    engine: crate::cuda::Engine,
    adapter_params: usize,
    /// Rows per forward and backward.
    micro: usize,
}

#[cfg(feature = "cuda")]
impl EngineTrainer {
    /// The engine for this run on GPU `ordinal`, or why it does not apply.
    fn start(
        opts: &FinetuneOptions,
        config: &FinetuneConfig,
        model: &crate::config::FalconConfig,
        ordinal: usize,
    ) -> Result<Result<Self, String>, Error> {
        if std::env::var("FALCONRY_ENGINE").is_ok_and(|v| v == "burn") {
            return Ok(Err("FALCONRY_ENGINE=burn".into()));
        }
        if config.precision != Precision::Bf16 {
            return Ok(Err("precision f32 (the engine computes in bf16)".into()));
        }
        if let Some(why) = crate::cuda::unsupported(model, config.seq_len) {
            return Ok(Err(why));
        }
        let start = std::time::Instant::now();
        let mut engine = match crate::cuda::Engine::finetune(
            model,
            &config.lora,
            config.quantize,
            config.micro_batch(),
            config.seq_len,
            config.optimizer.clone(),
            config.recompute_activations,
            ordinal,
        ) {
            Ok(engine) => engine,
            Err(e) => return Ok(Err(format!("the CUDA engine could not start ({e})"))),
        };
        engine.load_base(&opts.checkpoint)?;
        let fresh = fresh_adapters(&engine.adapter_shapes()?, config.seed);
        let adapter_params = param_count(&fresh);
        engine.set_adapters(&fresh)?;
        tracing::info!(
            "loaded {} ({:?} base) into the CUDA engine in {:.1} s: {}",
            opts.checkpoint.display(),
            config.quantize,
            start.elapsed().as_secs_f64(),
            engine.describe()
        );
        Ok(Ok(Self {
            engine,
            adapter_params,
            micro: config.micro_batch(),
        }))
    }
}

#[cfg(feature = "cuda")]
impl AdapterTrainer for EngineTrainer {
    fn adapter_params(&self) -> usize {
        self.adapter_params
    }

    fn step(&mut self, packed: &Packed, rows: &[usize], lr: f64) -> Result<(f64, f64), Error> {
        // Token ids fit u16: the engine checks the vocabulary (at most 65,536) at start.
        let windows: Vec<Vec<u16>> = (rows.chunks(self.micro))
            .map(|micro| {
                let rows = micro.iter().flat_map(|&r| &packed.rows[r]);
                rows.map(|&t| t as u16).collect()
            })
            .collect();
        let masks: Vec<Vec<f32>> = (rows.chunks(self.micro))
            .map(|micro| {
                let masks = micro.iter().flat_map(|&r| &packed.masks[r]);
                masks.map(|&m| m as u8 as f32).collect()
            })
            .collect();
        self.engine.finetune_step(&windows, &masks, lr)
    }

    fn memory(&self) -> Option<DeviceMemory> {
        // Everything is allocated at start: live and reserved are the same bytes.
        let bytes = self.engine.allocated() as u64;
        Some(DeviceMemory {
            in_use: bytes,
            reserved: bytes,
        })
    }

    fn adapters(&self) -> Result<NamedTensors, Error> {
        self.engine.adapters()
    }
}

/// The step for this run of a checkpoint shaped as `model`: the CUDA engine where it
/// applies, else Burn's.
#[cfg_attr(not(feature = "cuda"), allow(unused_variables))]
fn trainer<B: FalconTrainBackend>(
    opts: &FinetuneOptions,
    config: &FinetuneConfig,
    model: &crate::config::FalconConfig,
    device: &B::Device,
) -> Result<Box<dyn AdapterTrainer>, Error> {
    #[cfg(feature = "cuda")]
    if let Some(ordinal) = B::cuda_ordinal(device) {
        match EngineTrainer::start(opts, config, model, ordinal)? {
            Ok(engine) => return Ok(Box::new(engine)),
            Err(why) => tracing::info!("fine-tuning with Burn's autodiff step: {why}"),
        }
    }
    Ok(Box::new(BurnTrainer::<B>::load(opts, config, device)?))
}

/// Runs a fine-tuning: loads, trains, saves the adapter into `opts.output`; `on_step` sees
/// every step.
pub fn finetune<B: FalconTrainBackend>(
    opts: &FinetuneOptions,
    device: &B::Device,
    on_step: &mut dyn FnMut(&StepLog),
) -> Result<FinetuneSummary, Error> {
    let config = &FinetuneConfig {
        precision: opts.config.precision.on::<B>(device),
        ..opts.config.clone()
    };
    config.validate().map_err(|message| Error::Config {
        path: opts.output.join(FINETUNE_CONFIG),
        message,
    })?;
    let tokenizer = opts
        .tokenizer
        .clone()
        .unwrap_or_else(|| opts.checkpoint.join("tokenizer.json"));
    // The data first: a bad file fails before minutes of loading.
    let (examples, packed) = prepare_data(config, &opts.data, &tokenizer)?;
    if packed.rows.is_empty() {
        return Err(Error::Data {
            path: opts.data.clone(),
            message: "no trainable tokens".into(),
        });
    }
    let model = crate::config::FalconConfig::from_hf_json(&opts.checkpoint.join("config.json"))?;
    let vocab = model.vocab_size;
    if let Some(&t) = packed.rows.iter().flatten().find(|&&t| t as usize >= vocab) {
        return Err(Error::Tokenizer {
            path: tokenizer,
            message: format!("token id {t} is outside the checkpoint's vocabulary of {vocab}"),
        });
    }
    let mut trainer = trainer::<B>(opts, config, &model, device)?;
    let adapter_params = trainer.adapter_params();

    std::fs::create_dir_all(&opts.output).map_err(|e| Error::io(&opts.output, e))?;
    let metrics_path = opts.output.join("metrics.jsonl");
    let mut metrics =
        std::fs::File::create(&metrics_path).map_err(|e| Error::io(&metrics_path, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut order: Vec<usize> = Vec::new();
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    tracing::info!(
        "{adapter_params} adapter parameters, {} rows",
        packed.rows.len()
    );
    for step in 0..config.steps {
        // Epochs of shuffled rows, refilled as they run out.
        let mut rows = Vec::with_capacity(config.batch_size);
        while rows.len() < config.batch_size {
            if order.is_empty() {
                order = (0..packed.rows.len()).collect();
                order.shuffle(&mut rng);
            }
            rows.push(order.pop().expect("refilled"));
        }
        let started = std::time::Instant::now();
        let lr = config.schedule.lr(step, config.steps);
        let (value, grad_norm) = trainer.step(&packed, &rows, lr)?;
        let memory = trainer.memory();
        let row_tokens = rows.len() * config.seq_len;
        let log = StepLog {
            step: step + 1,
            loss: value,
            lr,
            grad_norm,
            tokens_per_sec: row_tokens as f64 / started.elapsed().as_secs_f64(),
            memory_in_use_mib: memory.map(|m| m.in_use as f64 / MIB),
            memory_reserved_mib: memory.map(|m| m.reserved as f64 / MIB),
        };
        if step == 0 {
            first_loss = value;
            // Burn on CUDA compiles and autotunes CubeCL's kernels for every shape in its
            // first step (minutes for a 7B model on a machine's first run; cached beside the
            // nearest Cargo.toml's target/, else in the user cache folder).
            tracing::info!("step 1 took {:.1} s", started.elapsed().as_secs_f64());
        }
        last_loss = value;
        writeln!(metrics, "{}", serde_json::to_string(&log).expect("json"))
            .map_err(|e| Error::io(&metrics_path, e))?;
        on_step(&log);
    }

    write_adapter(
        &trainer.adapters()?,
        &config.lora,
        &opts.checkpoint.to_string_lossy(),
        &opts.output,
    )?;
    let toml = toml::to_string(config).expect("config serializes");
    write_atomic(&opts.output.join(FINETUNE_CONFIG), toml.as_bytes())?;
    Ok(FinetuneSummary {
        examples,
        rows: packed.rows.len(),
        truncated: packed.truncated,
        trained_tokens: packed.trained_tokens(),
        adapter_params,
        first_loss,
        last_loss,
    })
}
