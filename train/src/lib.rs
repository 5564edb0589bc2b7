//! falconry's Falcon: the model, HF checkpoints, the trainer, evaluation and generation, on Burn.
//!
//! - [`FalconConfig`] is the model's shape (presets match `configs/model/*.toml`; a HF
//!   `config.json` reads as transformers reads it); [`FalconConfig::init`] builds a
//!   [`FalconForCausalLM`], which computes what HF's `modeling_falcon.py` computes.
//! - [`load_hf`] / [`save_hf`] read and write HF folders (`config.json` + `model.safetensors`).
//! - [`train`] runs `falconry train` from a [`TrainConfig`] over token shards ([`TokenData`]):
//!   AdamW ([`AdamWConfig`], decay on matrices only), warmup + cosine ([`LrSchedule`]), global
//!   clipping, gradient accumulation, bf16 compute on f32 weights, `metrics.jsonl`, `loss.png`
//!   and atomic checkpoints that `--resume` continues exactly.
//! - [`eval_tasks`] (`falconry eval-tasks`): ARC, HellaSwag, MMLU and TruthfulQA scored as
//!   lm-evaluation-harness 0.4.13 scores them.
//! - [`eval_text`] / [`evaluate`] (`falconry eval`) and [`generate_text`] / [`generate`]
//!   (`falconry generate`, KV-cached top-k sampling).
//!
//! - [`finetune`] (`falconry finetune`): LoRA ([`LoraConfig`], adapters on the projections
//!   named as HF names them) on a frozen base, optionally in NF4 ([`Nf4Tensor`], QLoRA's
//!   4-bit NormalFloat with double-quantized scales, as bitsandbytes lays it out), from chat /
//!   instruction JSONL ([`ChatTemplate`], loss on responses only, packed rows); adapters are PEFT
//!   folders ([`save_adapter`] / [`load_adapter`]), [`merge_adapter`] folds one into a checkpoint.
//!
//! Tests run on the CPU backend [`CpuBackend`]; the `cuda` feature adds [`CudaBackend`].
#![deny(missing_docs)]

mod attention;
mod chat;
mod checkpoint;
mod config;
#[cfg(feature = "cuda")]
mod cuda;
mod data;
mod eval_tasks;
mod finetune;
mod hf;
mod inference;
mod lora;
mod model;
mod nf4;
mod optim;
mod parallel;
mod peft;
mod plot;
mod trainer;

use std::path::{Path, PathBuf};

pub use attention::{causal_attention, DeviceMemory, FalconBackend, FalconTrainBackend};
pub use chat::{pack, read_examples, ChatTemplate, Message, Packed, Role};
pub use checkpoint::{
    latest_checkpoint, load_checkpoint, read_checkpoint, save_checkpoint, write_checkpoint,
    CheckpointTensors, TrainerState,
};
pub use config::{FalconConfig, QkvLayout};
#[cfg(feature = "cuda")]
pub use cuda::Engine as CudaEngine;
#[cfg(feature = "cuda")]
pub use cuda::EngineLosses;
pub use data::{TokenData, TokenSplit, VALIDATION_FRACTION};
pub use eval_tasks::{
    doc_metrics, eval_tasks, eval_tasks_checkpoint, group_result, load_benchmark, parse_tasks,
    task_result, Benchmark, Encoded, EvalTasksOptions, EvalTasksReport, ItemResult, McDoc,
    ModelScorer, Score, Scorer, Task, TaskResult, TaskSpec, TokenLosses, WindowScorer,
    FEWSHOT_SEED,
};
pub use finetune::{
    eos_id, finetune, instruction_loss, prepare_data, FinetuneConfig, FinetuneOptions,
    FinetuneSummary, Quantize, StepLog, EOS_TOKEN, FINETUNE_CONFIG,
};
pub use hf::{load_hf, load_hf_as, load_safetensors, save_hf, save_safetensors, NamedTensors};
pub use inference::{
    encode, eval_text, evaluate, generate, generate_text, load_tokenizer, EvalReport, SampleOptions,
};
pub use lora::{FalconLinear, Lora, LoraConfig, TARGET_MODULES};
pub use model::{
    FalconAttention, FalconDecoderLayer, FalconForCausalLM, FalconMlp, FalconModel, KvCache,
};
pub use nf4::{
    dynamic_code, Nf4Tensor, Nf4Weight, BLOCK as NF4_BLOCK, NF4_CODE,
    SCALE_BLOCK as NF4_SCALE_BLOCK,
};
pub use optim::{AdamW, AdamWConfig, LrSchedule};
pub use parallel::DataParallel;
pub use peft::{
    fresh_adapters, load_adapter, merge_adapter, peft_config, read_adapter_config, save_adapter,
    ADAPTER_CONFIG, ADAPTER_WEIGHTS,
};
pub use plot::{loss_curve, register_font};
pub use trainer::{
    flops_per_token, read_metrics, train, EvalTasksConfig, Metrics, Precision, TrainConfig,
    TrainOptions, TrainSummary,
};

/// The CPU backend: tests and small runs.
pub type CpuBackend = burn::backend::NdArray<f32>;

/// The CUDA backend (CubeCL, fused kernels).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda<f32, i32>;

/// [`CpuBackend`] with autodiff, for training.
pub type CpuTrainBackend = burn::backend::Autodiff<CpuBackend>;

/// [`CudaBackend`] with autodiff, for training.
#[cfg(feature = "cuda")]
pub type CudaTrainBackend = burn::backend::Autodiff<CudaBackend>;

/// Errors of the train crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A config file is malformed or asks for something unsupported.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint folder is missing a tensor or has the wrong shapes.
    #[error("{path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Token shards are malformed or too small.
    #[error("{path}: {message}")]
    Data {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The tokenizer could not be loaded or failed.
    #[error("{path}: {message}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Encoding safetensors failed.
    #[error("safetensors: {0}")]
    Safetensors(String),
    /// This build cannot do what was asked.
    #[error("{0}")]
    Unsupported(String),
    /// The GPU, its driver or a CUDA library failed.
    #[error("GPU: {0}")]
    Gpu(String),
}

impl Error {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Writes `bytes` to `path` atomically, as every falconry output is written (temporary name,
/// fsync, rename: `falconry_shards::atomic`).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    falconry_shards::atomic::write_atomic(path, bytes).map_err(|e| data::shard_error(path, e))
}
