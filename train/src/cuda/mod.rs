//! The CUDA training engine (`cuda` feature): Falcon's forward and backward written out over
//! cuBLASLt products and hand-written kernels (`kernels.cu`: flash attention forward and
//! backward reading grouped K/V heads in place, RoPE fused into the QKV split, LayerNorm,
//! GELU, the LM head's cross-entropy fused with its gradient, AdamW), compiled by NVRTC in
//! seconds at start. `falconry train` uses it for bf16 runs on one GPU or, one engine per GPU
//! with NCCL (`group.rs`), on several; `falconry finetune` trains LoRA / QLoRA adapters on it;
//! `falconry eval-tasks` scores through it (`scoring.rs`). Burn's autodiff model stays the
//! reference it is checked against and the path for everything else.

mod collective;
mod device;
mod engine;
mod gemm;
mod group;
mod scoring;

pub(crate) use collective::Collective;
pub(crate) use engine::unsupported;
pub use engine::Engine;
pub(crate) use engine::State;
pub use group::EngineGroup;
pub use scoring::EngineLosses;
