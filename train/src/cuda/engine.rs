//! Falcon's training step written out by hand, as llm.c writes GPT-2's: every activation in a
//! buffer of its own, the forward and the backward as a list of cuBLASLt products and
//! `kernels.cu` launches on one stream, AdamW as two launches over one flat parameter buffer.
//!
//! It computes what `model.rs` computes with `precision = "bf16"` (and what transformers
//! computes under autocast): f32 master weights with a bf16 copy for the products, the residual
//! stream and LayerNorm statistics in f32, bf16 activations, flash attention (no `[T, T]`
//! scores kept), the LM head's cross-entropy fused with its gradient, f32 weight gradients.
//! `examples/engine_check.rs` holds its loss and gradients against the Burn model's.
//!
//! Fine-tuning (`Engine::finetune`) freezes the base, in bf16 or NF4 (decoded into one scratch
//! buffer before each product), and trains LoRA adapters on the projections: the same step with
//! the base's weight-gradient products left out and `y += scale * dropout(x) Aᵀ Bᵀ` after each
//! adapted product (`examples/finetune_check.rs` holds it against peft).
//!
//! Shapes: `N = B T` tokens of width `d`; `H` query heads and `KV` key/value heads of 64;
//! `QD = (H + 2 KV) 64` the fused QKV width; `F` the MLP width; `V` the vocabulary.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use cudarc::driver::CudaStream;
use rand::SeedableRng;
use rand_distr::Distribution;
use rayon::prelude::*;

use super::collective::Collective;
use super::device::{blocks, gpu_error, Arg, Buf, Gpu};
use super::gemm::{plain, t, Gemm, Operand, Out};
use crate::checkpoint::CheckpointTensors;
use crate::config::{FalconConfig, QkvLayout};
use crate::finetune::Quantize;
use crate::hf::{self, NamedTensors};
use crate::lora::{LoraConfig, PROJECTION_PATHS, TARGET_MODULES};
use crate::model::FalconForCausalLM;
use crate::nf4::{self, Nf4Tensor};
use crate::optim::AdamWConfig;
use crate::peft::adapter_tensor_name;
use crate::Error;

/// Head size the attention kernels are written for (every Falcon's).
pub(crate) const HEAD_DIM: usize = 64;
/// Sequence lengths are whole attention tiles.
pub(crate) const SEQ_MULTIPLE: usize = 64;
/// The cross-entropy kernel keeps a row of logits in registers: 8 x 16 bytes per thread of 1024.
pub(crate) const MAX_VOCAB: usize = 8 * 8 * 1024;
/// Row chunks of `layernorm_wb` (each writes a partial weight and bias gradient, or two).
const LN_CHUNKS: usize = 128;

/// Why the engine cannot run `config` at `seq_len`, if it cannot.
pub(crate) fn unsupported(config: &FalconConfig, seq_len: usize) -> Option<String> {
    if config.head_dim() != HEAD_DIM {
        return Some(format!(
            "head_dim {} (the CUDA engine's attention is written for 64)",
            config.head_dim()
        ));
    }
    if !seq_len.is_multiple_of(SEQ_MULTIPLE) {
        return Some(format!(
            "seq_len {seq_len} (the CUDA engine needs a multiple of {SEQ_MULTIPLE})"
        ));
    }
    if !config.vocab_size.is_multiple_of(8)
        || !config.hidden_size.is_multiple_of(8)
        || !config.ffn_hidden_size.is_multiple_of(8)
    {
        return Some("vocab_size, hidden_size and ffn_hidden_size must be multiples of 8".into());
    }
    if config.vocab_size > MAX_VOCAB {
        return Some(format!(
            "vocab_size {} (the CUDA engine's cross-entropy takes up to {MAX_VOCAB})",
            config.vocab_size
        ));
    }
    None
}

/// Where one block's parameters start in the flat buffers (elements).
#[derive(Clone, Copy)]
struct LayerAt {
    /// `input_layernorm` or `ln_attn`: weight then bias, `2d`.
    ln_attn: usize,
    /// `ln_mlp` (two-LayerNorm blocks).
    ln_mlp: Option<usize>,
    qkv: usize,
    dense: usize,
    fc1: usize,
    fc2: usize,
}

/// Hands out the offsets of tensors in a flat buffer, each 64-element aligned: every tensor's
/// bf16 copy then starts 128-byte aligned, as cuBLASLt wants.
#[derive(Default)]
struct Offsets(usize);

impl Offsets {
    fn take(&mut self, len: usize) -> usize {
        let at = self.0;
        self.0 = (at + len).next_multiple_of(64);
        at
    }
}

/// The flat parameter layout: the blocks' projection matrices (`[0, mats_end)`), the embedding
/// (decayed with them: `[0, decay_end)`), then LayerNorms. Linear weights are stored as HF
/// stores them, `[d_out, d_in]`. A frozen base keeps f32 values only from `mats_end`.
struct Layout {
    wte: usize,
    layers: Vec<LayerAt>,
    ln_f: usize,
    mats_end: usize,
    decay_end: usize,
    total: usize,
    /// HF name, offset, HF shape, whether it is a linear weight (Burn stores those transposed).
    named: Vec<(String, usize, Vec<usize>, bool)>,
}

impl Layout {
    fn new(c: &FalconConfig) -> Self {
        let (d, f, v) = (c.hidden_size, c.ffn_hidden_size, c.vocab_size);
        let qd = c.qkv_dim();
        let mut offsets = Offsets::default();
        let mut take = |len: usize| offsets.take(len);
        let mut named = Vec::new();
        let mut mats = Vec::new();
        for i in 0..c.num_hidden_layers {
            let p = format!("transformer.h.{i}");
            let qkv = take(qd * d);
            let dense = take(d * d);
            let fc1 = take(f * d);
            let fc2 = take(d * f);
            named.push((
                format!("{p}.self_attention.query_key_value.weight"),
                qkv,
                vec![qd, d],
                true,
            ));
            named.push((
                format!("{p}.self_attention.dense.weight"),
                dense,
                vec![d, d],
                true,
            ));
            named.push((
                format!("{p}.mlp.dense_h_to_4h.weight"),
                fc1,
                vec![f, d],
                true,
            ));
            named.push((
                format!("{p}.mlp.dense_4h_to_h.weight"),
                fc2,
                vec![d, f],
                true,
            ));
            mats.push((qkv, dense, fc1, fc2));
        }
        let mats_end = take(0);
        let wte = take(v * d);
        named.push((
            "transformer.word_embeddings.weight".to_string(),
            wte,
            vec![v, d],
            false,
        ));
        let decay_end = take(0);
        let mut layers = Vec::new();
        for (i, (qkv, dense, fc1, fc2)) in mats.into_iter().enumerate() {
            let p = format!("transformer.h.{i}");
            let two = c.two_layernorms();
            let ln_attn = take(2 * d);
            let ln_mlp = two.then(|| take(2 * d));
            let first = if two { "ln_attn" } else { "input_layernorm" };
            named.push((format!("{p}.{first}.weight"), ln_attn, vec![d], false));
            named.push((format!("{p}.{first}.bias"), ln_attn + d, vec![d], false));
            if let Some(at) = ln_mlp {
                named.push((format!("{p}.ln_mlp.weight"), at, vec![d], false));
                named.push((format!("{p}.ln_mlp.bias"), at + d, vec![d], false));
            }
            layers.push(LayerAt {
                ln_attn,
                ln_mlp,
                qkv,
                dense,
                fc1,
                fc2,
            });
        }
        let ln_f = take(2 * d);
        named.push(("transformer.ln_f.weight".into(), ln_f, vec![d], false));
        named.push(("transformer.ln_f.bias".into(), ln_f + d, vec![d], false));
        Self {
            wte,
            layers,
            ln_f,
            mats_end,
            decay_end,
            total: take(0),
            named,
        }
    }
}

type Bf16Buf = Buf<u16>;

/// A block's projections in the order adapters are indexed: query_key_value, dense,
/// dense_h_to_4h, dense_4h_to_h.
const PROJECTIONS: usize = 4;

impl LayerAt {
    fn projections(&self) -> [usize; PROJECTIONS] {
        [self.qkv, self.dense, self.fc1, self.fc2]
    }
}

/// How the engine holds the model's own weights.
enum Base {
    /// Trained: f32 masters and bf16 copies of everything, gradients and AdamW moments.
    Trained,
    /// Frozen in bf16 (LoRA): f32 only from the embedding on, no gradients or moments.
    Frozen,
    /// Frozen in NF4 (QLoRA): the projections dequantized for each product.
    Nf4(Box<Nf4Base>),
}

/// One NF4 matrix on the GPU, laid out as [`Nf4Tensor`] lays it out.
struct Nf4Matrix {
    packed: Buf<u8>,
    scales: Buf<u8>,
    scale_absmax: Buf<f32>,
    offset: f32,
    len: usize,
}

/// A QLoRA base: each projection in NF4, by its layout offset; dequantized into `scratch`
/// (bf16, the largest projection) just before the product that reads it.
struct Nf4Base {
    mats: HashMap<usize, Nf4Matrix>,
    /// NF4's 16 levels and the 8-bit dynamic map of the block scales.
    levels: Buf<f32>,
    dynamic: Buf<f32>,
    scratch: Bf16Buf,
}

/// LoRA adapters on a frozen base: `y += scale * dropout(x) Aᵀ Bᵀ` on each targeted projection,
/// `A` `[r, d_in]` and `B` `[d_out, r]` as PEFT stores them, in flat f32 buffers with bf16
/// copies, gradients and AdamW moments.
struct Adapters {
    r: usize,
    scale: f32,
    dropout: f32,
    /// Per block and projection: where A and B start.
    at: Vec<[Option<(usize, usize)>; PROJECTIONS]>,
    /// PEFT tensor name, offset, shape.
    named: Vec<(String, usize, Vec<usize>)>,
    total: usize,
    params: Buf<f32>,
    params16: Bf16Buf,
    grads: Buf<f32>,
    exp_avg: Buf<f32>,
    exp_avg_sq: Buf<f32>,
    /// `dropout(x) Aᵀ` of every block and projection, `[N, r]` each: B's gradient reads it.
    v: Bf16Buf,
    /// The dropped-out input `[N, d_in]` (the widest), `scale * dy B` `[N, r]`, and the input
    /// gradient before the dropout mask `[N, d_in]`.
    u: Bf16Buf,
    dv: Bf16Buf,
    dx: Buf<f32>,
    /// Seeds the current micro-batch's dropout masks.
    seed: u64,
}

/// splitmix64: a well-mixed 64-bit value from `x`.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Adapters {
    /// Adapters as `lora` says on `config`'s projections (zeros until set).
    fn new(
        gpu: &mut Gpu,
        config: &FalconConfig,
        lora: &LoraConfig,
        n: usize,
    ) -> Result<Self, Error> {
        let (d, f, qd, r) = (
            config.hidden_size,
            config.ffn_hidden_size,
            config.qkv_dim(),
            lora.r,
        );
        let mut offsets = Offsets::default();
        let mut take = |len: usize| offsets.take(len);
        let mut at = Vec::new();
        let mut named = Vec::new();
        for l in 0..config.num_hidden_layers {
            let mut row = [None; PROJECTIONS];
            for (k, (module, path)) in TARGET_MODULES.iter().zip(PROJECTION_PATHS).enumerate() {
                if !lora.target_modules.iter().any(|t| t == module) {
                    continue;
                }
                let (d_in, d_out) = projection_dims(k, d, qd, f);
                let (a, b) = (take(r * d_in), take(d_out * r));
                let module = format!("transformer.h.{l}.{path}");
                named.push((adapter_tensor_name(&module, "A"), a, vec![r, d_in]));
                named.push((adapter_tensor_name(&module, "B"), b, vec![d_out, r]));
                row[k] = Some((a, b));
            }
            at.push(row);
        }
        let widest = d.max(f);
        let total = take(0);
        Ok(Self {
            r,
            scale: lora.scale() as f32,
            dropout: lora.dropout as f32,
            at,
            named,
            total,
            params: gpu.alloc(total)?,
            params16: gpu.alloc(total)?,
            grads: gpu.alloc(total)?,
            exp_avg: gpu.alloc(total)?,
            exp_avg_sq: gpu.alloc(total)?,
            v: gpu.alloc(config.num_hidden_layers * PROJECTIONS * n * r)?,
            u: gpu.alloc(if lora.dropout > 0.0 { n * widest } else { 0 })?,
            dv: gpu.alloc(n * r)?,
            dx: gpu.alloc(if lora.dropout > 0.0 { n * widest } else { 0 })?,
            seed: 0,
        })
    }

    /// The dropout mask seed of projection `k` of block `l` in the current micro-batch.
    fn mask_seed(&self, l: usize, k: usize) -> i64 {
        mix(self.seed ^ mix((l * PROJECTIONS + k) as u64)) as i64
    }
}

/// Projection `k`'s `(d_in, d_out)` (see [`PROJECTIONS`]).
fn projection_dims(k: usize, d: usize, qd: usize, f: usize) -> (usize, usize) {
    [(d, qd), (d, d), (d, f), (f, d)][k]
}

/// The addresses of one block's saved activations.
#[derive(Clone, Copy)]
struct ActsAt {
    ln_attn: u64,
    /// Mean and rstd of the block's input (both LayerNorms').
    ln_stats: (u64, u64),
    /// Two-LayerNorm blocks: the MLP's LayerNorm output.
    ln_mlp: Option<u64>,
    q: u64,
    k: u64,
    v: u64,
    o: u64,
    lse: u64,
    h: u64,
    g: u64,
}

impl ActsAt {
    /// The MLP's input: its own LayerNorm's output, or the block's one LayerNorm's.
    fn mlp_in(&self) -> u64 {
        self.ln_mlp.unwrap_or(self.ln_attn)
    }
}

/// What the backward pass reads of one block's forward besides its input (kept for every
/// block, or with recomputation for one, refilled by re-running the block in the backward).
struct Acts {
    ln_attn: Bf16Buf,
    ln_stats: (Buf<f32>, Buf<f32>),
    /// Two-LayerNorm blocks only.
    ln_mlp: Option<Bf16Buf>,
    /// `[B, H, T, 64]`, `[B, KV, T, 64]` twice, after RoPE.
    q: Bf16Buf,
    k: Bf16Buf,
    v: Bf16Buf,
    /// Attention output `[B, T, H, 64]` = `[N, d]`, and its log-sum-exp `[B, H, T]`.
    o: Bf16Buf,
    lse: Buf<f32>,
    /// MLP pre-activation and GELU output, `[N, F]`.
    h: Bf16Buf,
    g: Bf16Buf,
}

/// Buffers one micro-batch reuses.
struct Scratch {
    /// The `[B, T + 1]` token windows.
    win: Buf<u16>,
    qkv: Bf16Buf,
    ln_f: Bf16Buf,
    ln_f_stats: (Buf<f32>, Buf<f32>),
    logits: Bf16Buf,
    losses: Buf<f32>,
    dres: Buf<f32>,
    dres16: Bf16Buf,
    dln: Buf<f32>,
    dln2: Option<Buf<f32>>,
    dg: Bf16Buf,
    dout: Bf16Buf,
    /// f32: the fused backward adds every key tile's share into it.
    dq: Buf<f32>,
    /// f32: every query head of a group adds into its K/V head.
    dk: Buf<f32>,
    dv: Buf<f32>,
    dqkv: Bf16Buf,
    delta: Buf<f32>,
    partial: Buf<f32>,
    /// Per micro-batch loss sums, then the squared gradient norm.
    scalars: Buf<f32>,
    /// Fine-tuning's loss mask over the `N` targets (1 trained, 0 not).
    mask: Buf<f32>,
    cos: Buf<f32>,
    sin: Buf<f32>,
}

/// Falcon on one GPU with its AdamW state and every buffer a step needs: the fused training
/// step of `falconry train` on CUDA (see the module documentation).
pub struct Engine {
    gpu: Gpu,
    gemm: Gemm,
    config: FalconConfig,
    layout: Layout,
    batch: usize,
    seq: usize,
    base: Base,
    /// f32 parameters from layout offset `f32_from` (0, or `mats_end` for a frozen base).
    params: Buf<f32>,
    f32_from: usize,
    /// bf16 parameters from `bf16_from` (0, or `mats_end` for an NF4 base).
    params16: Bf16Buf,
    bf16_from: usize,
    /// Fine-tuning's adapters.
    lora: Option<Adapters>,
    grads: Buf<f32>,
    exp_avg: Buf<f32>,
    exp_avg_sq: Buf<f32>,
    /// The residual stream into each block and out of the last, f32 `[N, d]` (`L + 1`).
    xs: Vec<Buf<f32>>,
    /// One per block, or a single set when blocks are recomputed in the backward.
    acts: Vec<Acts>,
    recompute: bool,
    s: Scratch,
    optim: AdamWConfig,
    /// AdamW updates done.
    optimizer_step: usize,
    /// The data-parallel group this engine averages gradients with, if any.
    group: Option<Group>,
}

/// An engine's weights and optimizer state on the host.
pub(crate) struct State {
    params: Vec<f32>,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
    optimizer_step: usize,
}

/// An engine's place in a data-parallel group.
struct Group {
    collective: Arc<Collective>,
    rank: usize,
    /// Collectives run here, overlapping the backward on the compute stream.
    stream: Arc<CudaStream>,
}

/// RoPE's `cos` and `sin` for positions `0..seq`, `[seq, 32]` (the halves of a head share
/// them), computed in f32 as transformers computes them.
fn rope_tables(config: &FalconConfig, seq: usize) -> (Vec<f32>, Vec<f32>) {
    let half = HEAD_DIM / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / (config.rope_theta as f32).powf((2 * i) as f32 / HEAD_DIM as f32))
        .collect();
    let mut cos = Vec::with_capacity(seq * half);
    let mut sin = Vec::with_capacity(seq * half);
    for p in 0..seq {
        for &f in &inv {
            let a = p as f32 * f;
            cos.push(a.cos());
            sin.push(a.sin());
        }
    }
    (cos, sin)
}

impl Engine {
    /// Opens GPU `ordinal` and allocates everything for micro-batches of `batch` x `seq`; with
    /// `recompute`, one block's activations instead of every block's (each block's forward runs
    /// again in the backward: about a quarter more work for a fraction of the memory).
    pub fn new(
        config: &FalconConfig,
        batch: usize,
        seq: usize,
        optim: AdamWConfig,
        recompute: bool,
        ordinal: usize,
    ) -> Result<Self, Error> {
        Self::build(config, batch, seq, optim, recompute, ordinal, true, None)
    }

    /// An engine that fine-tunes: the base frozen in bf16 (LoRA) or NF4 (`quantize`, QLoRA),
    /// adapters as `lora` says; AdamW updates the adapters only. [`Engine::load_base`] fills
    /// the base and [`Engine::set_adapters`] the adapters; [`Engine::finetune_step`] trains.
    #[allow(clippy::too_many_arguments)]
    pub fn finetune(
        config: &FalconConfig,
        lora: &LoraConfig,
        quantize: Quantize,
        batch: usize,
        seq: usize,
        optim: AdamWConfig,
        recompute: bool,
        ordinal: usize,
    ) -> Result<Self, Error> {
        let tuned = Some((lora, quantize));
        Self::build(config, batch, seq, optim, recompute, ordinal, true, tuned)
    }

    /// An engine for forward passes only ([`Engine::token_losses`], [`Engine::loss`]): one
    /// block's activations, no gradients, no optimizer state.
    pub fn inference(
        config: &FalconConfig,
        batch: usize,
        seq: usize,
        ordinal: usize,
    ) -> Result<Self, Error> {
        Self::build(
            config,
            batch,
            seq,
            AdamWConfig::default(),
            true,
            ordinal,
            false,
            None,
        )
    }

    /// With `tuned`, a frozen base held as its [`Quantize`] says and adapters.
    #[allow(clippy::too_many_arguments)]
    fn build(
        config: &FalconConfig,
        batch: usize,
        seq: usize,
        optim: AdamWConfig,
        recompute: bool,
        ordinal: usize,
        train: bool,
        tuned: Option<(&LoraConfig, Quantize)>,
    ) -> Result<Self, Error> {
        if let Some(why) = unsupported(config, seq) {
            return Err(Error::Unsupported(why));
        }
        let mut gpu = Gpu::new(ordinal)?;
        let gemm = Gemm::new(&mut gpu)?;
        let layout = Layout::new(config);
        let (n, d, f, v) = (
            batch * seq,
            config.hidden_size,
            config.ffn_hidden_size,
            config.vocab_size,
        );
        let (h, kv, qd) = (
            config.num_attention_heads,
            config.kv_heads(),
            config.qkv_dim(),
        );
        let total = layout.total;
        // Sizes of what only the backward and the optimizer use.
        let backward = |len: usize| if train { len } else { 0 };
        let base = match tuned {
            None => Base::Trained,
            Some((_, Quantize::None)) => Base::Frozen,
            Some((_, Quantize::Nf4)) => {
                let mut mats = HashMap::new();
                let mut widest = 0;
                for at in &layout.layers {
                    for (k, m) in at.projections().into_iter().enumerate() {
                        let (d_in, d_out) = projection_dims(k, d, qd, f);
                        let len = d_in * d_out;
                        let blocks = len.div_ceil(nf4::BLOCK);
                        let matrix = Nf4Matrix {
                            packed: gpu.alloc(len.div_ceil(2))?,
                            scales: gpu.alloc(blocks)?,
                            scale_absmax: gpu.alloc(blocks.div_ceil(nf4::SCALE_BLOCK))?,
                            offset: 0.0,
                            len,
                        };
                        mats.insert(m, matrix);
                        widest = widest.max(len);
                    }
                }
                let mut levels = gpu.alloc(nf4::NF4_CODE.len())?;
                gpu.upload(&nf4::NF4_CODE, &mut levels)?;
                let code = nf4::dynamic_code();
                let mut dynamic = gpu.alloc(code.len())?;
                gpu.upload(&code, &mut dynamic)?;
                Base::Nf4(Box::new(Nf4Base {
                    mats,
                    levels,
                    dynamic,
                    scratch: gpu.alloc(widest)?,
                }))
            }
        };
        let trained = matches!(base, Base::Trained);
        let f32_from = if trained { 0 } else { layout.mats_end };
        let bf16_from = if matches!(base, Base::Nf4(_)) {
            layout.mats_end
        } else {
            0
        };
        let params = gpu.alloc::<f32>(total - f32_from)?;
        let params16 = gpu.alloc::<u16>(total - bf16_from)?;
        // The base's own gradients and moments, where it trains.
        let base_grads = |len: usize| if trained { backward(len) } else { 0 };
        let grads = gpu.alloc::<f32>(base_grads(total))?;
        let exp_avg = gpu.alloc::<f32>(base_grads(total))?;
        let exp_avg_sq = gpu.alloc::<f32>(base_grads(total))?;
        let lora = match tuned {
            Some((lora, _)) => Some(Adapters::new(&mut gpu, config, lora, n)?),
            None => None,
        };
        let two = config.two_layernorms();
        let xs = (0..=config.num_hidden_layers)
            .map(|_| gpu.alloc(n * d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut acts = Vec::new();
        for _ in 0..if recompute {
            1
        } else {
            config.num_hidden_layers
        } {
            let ln_mlp = if two { Some(gpu.alloc(n * d)?) } else { None };
            acts.push(Acts {
                ln_attn: gpu.alloc(n * d)?,
                ln_stats: (gpu.alloc(n)?, gpu.alloc(n)?),
                ln_mlp,
                q: gpu.alloc(n * h * HEAD_DIM)?,
                k: gpu.alloc(n * kv * HEAD_DIM)?,
                v: gpu.alloc(n * kv * HEAD_DIM)?,
                o: gpu.alloc(n * d)?,
                lse: gpu.alloc(n * h)?,
                h: gpu.alloc(n * f)?,
                g: gpu.alloc(n * f)?,
            });
        }
        let (cos_h, sin_h) = rope_tables(config, seq);
        let mut s = Scratch {
            win: gpu.alloc(batch * (seq + 1))?,
            qkv: gpu.alloc(n * qd)?,
            ln_f: gpu.alloc(n * d)?,
            ln_f_stats: (gpu.alloc(n)?, gpu.alloc(n)?),
            logits: gpu.alloc(n * v)?,
            losses: gpu.alloc(n)?,
            dres: gpu.alloc(backward(n * d))?,
            dres16: gpu.alloc(backward(n * d))?,
            dln: gpu.alloc(backward(n * d))?,
            dln2: if two {
                Some(gpu.alloc(backward(n * d))?)
            } else {
                None
            },
            dg: gpu.alloc(backward(n * f))?,
            dout: gpu.alloc(backward(n * d))?,
            dq: gpu.alloc(backward(n * h * HEAD_DIM))?,
            dk: gpu.alloc(backward(n * kv * HEAD_DIM))?,
            dv: gpu.alloc(backward(n * kv * HEAD_DIM))?,
            dqkv: gpu.alloc(backward(n * qd))?,
            delta: gpu.alloc(backward(n * h))?,
            partial: gpu.alloc((LN_CHUNKS * 4 * d).max(1024))?,
            scalars: gpu.alloc(1024)?,
            mask: gpu.alloc(if tuned.is_some() { n } else { 0 })?,
            cos: gpu.alloc(cos_h.len())?,
            sin: gpu.alloc(sin_h.len())?,
        };
        gpu.upload(&cos_h, &mut s.cos)?;
        gpu.upload(&sin_h, &mut s.sin)?;
        Ok(Self {
            gpu,
            gemm,
            config: config.clone(),
            layout,
            batch,
            seq,
            base,
            params,
            f32_from,
            params16,
            bf16_from,
            lora,
            grads,
            exp_avg,
            exp_avg_sq,
            xs,
            acts,
            recompute,
            s,
            optim,
            optimizer_step: 0,
            group: None,
        })
    }

    /// AdamW updates done.
    pub fn optimizer_step(&self) -> usize {
        self.optimizer_step
    }

    /// The GPU's name, the kernels' build time and the bytes allocated, for the log.
    pub fn describe(&self) -> String {
        let kind = |wg: bool| if wg { "warpgroup MMAs" } else { "mma.sync" };
        format!(
            "{}: kernels built in {:.1} s, {:.2} GB allocated, attention forward on {}, \
             backward on {}",
            self.gpu.name,
            self.gpu.compile_secs,
            self.gpu.allocated() as f64 / 1e9,
            kind(self.gpu.wgmma.fwd),
            kind(self.gpu.wgmma.bwd)
        )
    }

    // --------------------------------------------------------------------------------------
    // Weights and optimizer state in and out
    // --------------------------------------------------------------------------------------

    /// Copies HF-named weights into the parameter buffer and its bf16 copy.
    /// Takes the weights of `tensors` (HF names and shapes, as [`hf::named_tensors`] gives).
    pub fn load_weights(&mut self, tensors: &NamedTensors) -> Result<(), Error> {
        let mut host = vec![0f32; self.layout.total];
        for (name, at, shape, _) in &self.layout.named {
            let data = match tensors.get(name) {
                Some((got, data)) if got == shape => data,
                other => {
                    return Err(Error::Checkpoint {
                        path: "model.safetensors".into(),
                        message: format!(
                            "`{name}` is {}, the model's is {shape:?}",
                            other.map_or("missing".into(), |(got, _)| format!("{got:?}"))
                        ),
                    })
                }
            };
            host[*at..*at + data.len()].copy_from_slice(data);
        }
        self.upload_params(&host)
    }

    /// Fills a frozen base ([`Engine::finetune`]) from the HF folder `dir`, one tensor at a
    /// time as read: projections converted to bf16 or quantized to NF4 on the host, the rest
    /// kept in f32 (and the embedding's bf16 copy made for the LM head).
    pub fn load_base(&mut self, dir: &Path) -> Result<(), Error> {
        self.gpu.bind()?;
        let index: HashMap<String, usize> = (self.layout.named.iter().enumerate())
            .map(|(i, (name, ..))| (name.clone(), i))
            .collect();
        let mut seen = vec![false; index.len()];
        let first = hf::for_each_tensor(dir, |name, view, path| {
            let key = hf::checkpoint_key(name, |k| index.contains_key(k));
            let Some(&i) = index.get(&key) else {
                return Ok(()); // lm_head.weight (tied) and anything else Falcon lacks
            };
            let t = hf::to_f32(view, name, path)?;
            let (_, at, shape, _) = &self.layout.named[i];
            if &t.shape != shape {
                return Err(Error::Checkpoint {
                    path: path.to_owned(),
                    message: format!("`{key}` has shape {:?}, config says {shape:?}", t.shape),
                });
            }
            self.set_base_tensor(*at, &t.data)?;
            seen[i] = true;
            Ok(())
        })?;
        if let Some(i) = seen.iter().position(|&s| !s) {
            return Err(hf::missing(&first, &self.layout.named[i].0));
        }
        self.gpu.sync()
    }

    /// One frozen base tensor at layout offset `at`.
    fn set_base_tensor(&mut self, at: usize, data: &[f32]) -> Result<(), Error> {
        if at >= self.layout.mats_end {
            let at32 = at - self.f32_from;
            self.gpu.upload_at(data, &mut self.params, at32)?;
            return self.gpu.launch(
                "to_bf16",
                (blocks(data.len(), 256).min(4096), 1, 1),
                256,
                0,
                &[
                    Arg::P(self.params.at(at32)),
                    Arg::P(self.p16(at)),
                    Arg::L(data.len() as i64),
                ],
            );
        }
        match &mut self.base {
            Base::Frozen => {
                let host: Vec<u16> = data
                    .par_iter()
                    .map(|&x| half::bf16::from_f32(x).to_bits())
                    .collect();
                self.gpu
                    .upload_at(&host, &mut self.params16, at - self.bf16_from)
            }
            Base::Nf4(q) => {
                let t = Nf4Tensor::quantize(data, &[data.len()]);
                let m = q
                    .mats
                    .get_mut(&at)
                    .expect("every projection has its NF4 buffers");
                self.gpu.upload(&t.packed, &mut m.packed)?;
                self.gpu.upload(&t.scales, &mut m.scales)?;
                self.gpu.upload(&t.scale_absmax, &mut m.scale_absmax)?;
                m.offset = t.offset;
                // The host buffers go when this returns: let the copies finish first.
                self.gpu.sync()
            }
            Base::Trained => unreachable!("a trained base loads through load_weights"),
        }
    }

    fn adapters_ref(&self) -> Result<&Adapters, Error> {
        self.lora
            .as_ref()
            .ok_or_else(|| Error::Unsupported("this engine has no adapters".into()))
    }

    /// Sets the adapters from PEFT-named tensors (`base_model.model.<module>.lora_A.weight`,
    /// `[r, d_in]`, and `lora_B`, `[d_out, r]`); AdamW starts afresh.
    pub fn set_adapters(&mut self, tensors: &NamedTensors) -> Result<(), Error> {
        self.gpu.bind()?;
        let ad = self.adapters_ref()?;
        let mut host = vec![0f32; ad.total];
        for (name, at, shape) in &ad.named {
            match tensors.get(name) {
                Some((got, data)) if got == shape => {
                    host[*at..*at + data.len()].copy_from_slice(data)
                }
                got => {
                    return Err(Error::Unsupported(format!(
                        "adapter `{name}`: want shape {shape:?}, got {:?}",
                        got.map(|g| &g.0)
                    )))
                }
            }
        }
        let ad = self.lora.as_mut().expect("checked");
        self.gpu.upload(&host, &mut ad.params)?;
        self.gpu.launch(
            "to_bf16",
            (blocks(ad.total, 256).min(4096), 1, 1),
            256,
            0,
            &[
                Arg::P(ad.params.ptr),
                Arg::P(ad.params16.ptr),
                Arg::L(ad.total as i64),
            ],
        )?;
        self.gpu.zero(&ad.exp_avg, 0, ad.total)?;
        self.gpu.zero(&ad.exp_avg_sq, 0, ad.total)?;
        self.optimizer_step = 0;
        self.gpu.sync()
    }

    /// The adapters' f32 buffer `buf` as PEFT-named tensors.
    fn adapter_named(&self, buf: impl Fn(&Adapters) -> &Buf<f32>) -> Result<NamedTensors, Error> {
        let ad = self.adapters_ref()?;
        let host = self.gpu.download(buf(ad), 0..ad.total)?;
        Ok((ad.named.iter())
            .map(|(name, at, shape)| {
                let len: usize = shape.iter().product();
                (name.clone(), (shape.clone(), host[*at..*at + len].to_vec()))
            })
            .collect())
    }

    /// The adapters' PEFT names and shapes.
    pub fn adapter_shapes(&self) -> Result<Vec<(String, Vec<usize>)>, Error> {
        let ad = self.adapters_ref()?;
        Ok((ad.named.iter())
            .map(|(name, _, shape)| (name.clone(), shape.clone()))
            .collect())
    }

    /// Bytes of GPU memory the engine allocated (all of it at start).
    pub fn allocated(&self) -> usize {
        self.gpu.allocated()
    }

    /// The adapters, PEFT names and layouts (what `adapter_model.safetensors` holds).
    pub fn adapters(&self) -> Result<NamedTensors, Error> {
        self.adapter_named(|a| &a.params)
    }

    /// The adapters' gradients of the last forward/backward, PEFT names.
    pub fn adapter_gradients(&self) -> Result<NamedTensors, Error> {
        self.adapter_named(|a| &a.grads)
    }

    /// The flat parameters into `params` and their bf16 copy.
    fn upload_params(&mut self, host: &[f32]) -> Result<(), Error> {
        self.gpu.upload(host, &mut self.params)?;
        let n = self.layout.total;
        self.gpu.launch(
            "to_bf16",
            (blocks(n, 256).min(4096), 1, 1),
            256,
            0,
            &[
                Arg::P(self.params.ptr),
                Arg::P(self.params16.ptr),
                Arg::L(n as i64),
            ],
        )?;
        self.gpu.sync()
    }

    /// Copies `model`'s weights onto the GPU; AdamW starts afresh.
    pub fn load_model<B: Backend>(&mut self, model: &FalconForCausalLM<B>) -> Result<(), Error> {
        let params = hf::named_tensors(model)?;
        self.import(
            &CheckpointTensors {
                params,
                moments: BTreeMap::new(),
            },
            0,
        )
    }

    /// Takes a checkpoint's weights and moments (zero where it has none) and AdamW's step count.
    pub fn import(
        &mut self,
        tensors: &CheckpointTensors,
        optimizer_step: usize,
    ) -> Result<(), Error> {
        self.load_weights(&tensors.params)?;
        let mut m = vec![0f32; self.layout.total];
        let mut v = vec![0f32; self.layout.total];
        for (name, at, shape, linear) in &self.layout.named {
            for (suffix, out) in [("exp_avg", &mut m), ("exp_avg_sq", &mut v)] {
                let Some((_, flat)) = tensors.moments.get(&format!("{name}.{suffix}")) else {
                    continue;
                };
                let len: usize = shape.iter().product();
                if flat.len() != len {
                    return Err(Error::Checkpoint {
                        path: "optimizer.safetensors".into(),
                        message: format!("`{name}.{suffix}` has {} values, not {len}", flat.len()),
                    });
                }
                // Burn keeps a linear weight's moments in its own [d_in, d_out] order.
                let flat = if *linear {
                    transpose(flat, shape[1], shape[0])
                } else {
                    flat.clone()
                };
                out[*at..*at + len].copy_from_slice(&flat);
            }
        }
        self.gpu.upload(&m, &mut self.exp_avg)?;
        self.gpu.upload(&v, &mut self.exp_avg_sq)?;
        self.optimizer_step = optimizer_step;
        Ok(())
    }

    /// A fresh model drawn on the host from `seed`, as transformers' `_init_weights` does:
    /// N(0, 0.02) matrices, LayerNorm weights 1 and biases 0; AdamW starts afresh. (Burn's step
    /// draws its own values from the same seed: the two paths start from different weights.)
    pub fn draw(&mut self, seed: u64) -> Result<(), Error> {
        let mut host = vec![0f32; self.layout.total];
        for (i, (name, at, shape, _)) in self.layout.named.iter().enumerate() {
            let len: usize = shape.iter().product();
            let out = &mut host[*at..*at + len];
            if shape.len() == 1 {
                out.fill(if name.ends_with(".weight") { 1.0 } else { 0.0 });
                continue;
            }
            // One generator per tensor and chunk: the values do not depend on the threads.
            const CHUNK: usize = 1 << 20;
            out.par_chunks_mut(CHUNK)
                .enumerate()
                .for_each(|(c, chunk)| {
                    let key = seed ^ ((i as u64) << 40) ^ c as u64;
                    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(key);
                    let normal = rand_distr::Normal::new(0.0f32, 0.02).expect("valid normal");
                    chunk.iter_mut().for_each(|x| *x = normal.sample(&mut rng));
                });
        }
        self.upload_params(&host)?;
        self.gpu.zero(&self.exp_avg, 0, self.layout.total)?;
        self.gpu.zero(&self.exp_avg_sq, 0, self.layout.total)?;
        self.optimizer_step = 0;
        Ok(())
    }

    /// Weights, moments and step count as flat host buffers, for the other ranks of a group.
    pub(crate) fn state(&self) -> Result<State, Error> {
        let n = self.layout.total;
        Ok(State {
            params: self.gpu.download(&self.params, 0..n)?,
            exp_avg: self.gpu.download(&self.exp_avg, 0..n)?,
            exp_avg_sq: self.gpu.download(&self.exp_avg_sq, 0..n)?,
            optimizer_step: self.optimizer_step,
        })
    }

    /// Takes another engine's [`Engine::state`] (same model and layout).
    pub(crate) fn set_state(&mut self, state: &State) -> Result<(), Error> {
        self.gpu.bind()?;
        self.upload_params(&state.params)?;
        self.gpu.upload(&state.exp_avg, &mut self.exp_avg)?;
        self.gpu.upload(&state.exp_avg_sq, &mut self.exp_avg_sq)?;
        self.optimizer_step = state.optimizer_step;
        self.gpu.sync()
    }

    /// The GPU's flat f32 buffer as HF-named tensors.
    fn named(&self, buf: &Buf<f32>) -> Result<NamedTensors, Error> {
        // Tensor by tensor: no host copy of the whole buffer to cut up (at 1B, 5 GB each).
        (self.layout.named.iter())
            .map(|(name, at, shape, _)| {
                let len: usize = shape.iter().product();
                let data = self.gpu.download(buf, *at..*at + len)?;
                Ok((name.clone(), (shape.clone(), data)))
            })
            .collect()
    }

    /// The residual stream into each block and out of the last (`L + 1` tensors `[N, d]`) and
    /// the bf16 logits `[N, V]` as f32, of the last forward (for checks against a reference).
    pub fn activations(&self) -> Result<(Vec<Vec<f32>>, Vec<f32>), Error> {
        let (n, d, .., v, _) = self.dims();
        let xs = self
            .xs
            .iter()
            .map(|x| self.gpu.download(x, 0..n * d))
            .collect::<Result<_, _>>()?;
        let logits = self.gpu.download(&self.s.logits, 0..n * v)?;
        let logits = logits
            .into_iter()
            .map(|b| f32::from_bits((b as u32) << 16))
            .collect();
        Ok((xs, logits))
    }

    /// The gradients of the last forward/backward, HF names and layouts.
    pub fn gradients(&self) -> Result<NamedTensors, Error> {
        self.named(&self.grads)
    }

    /// The weights and moments as a checkpoint holds them (the moments of linear weights
    /// transposed into Burn's order).
    pub fn export(&self) -> Result<CheckpointTensors, Error> {
        let params = self.named(&self.params)?;
        let mut moments = BTreeMap::new();
        for (suffix, buf) in [("exp_avg", &self.exp_avg), ("exp_avg_sq", &self.exp_avg_sq)] {
            let mut named = self.named(buf)?;
            for (name, _, shape, linear) in &self.layout.named {
                let (_, data) = named.remove(name).expect("every named tensor downloaded");
                let flat = if *linear {
                    transpose(&data, shape[0], shape[1])
                } else {
                    data
                };
                moments.insert(format!("{name}.{suffix}"), (vec![flat.len()], flat));
            }
        }
        Ok(CheckpointTensors { params, moments })
    }

    // --------------------------------------------------------------------------------------
    // The step
    // --------------------------------------------------------------------------------------

    fn dims(&self) -> (usize, usize, usize, usize, usize, usize, usize, usize) {
        let c = &self.config;
        (
            self.batch * self.seq,
            c.hidden_size,
            c.num_attention_heads,
            c.kv_heads(),
            c.qkv_dim(),
            c.ffn_hidden_size,
            c.vocab_size,
            c.num_hidden_layers,
        )
    }

    fn layout_code(&self) -> i32 {
        match self.config.qkv_layout() {
            QkvLayout::MultiQuery => 0,
            QkvLayout::Grouped => 1,
            QkvLayout::PerHead => 2,
        }
    }

    /// Sums `n` f32 values (squared if asked) at `x` into `scalars[slot]`.
    fn sum(&self, x: u64, n: usize, squares: bool, slot: usize) -> Result<(), Error> {
        let grid = blocks(n, 256).min(1024);
        self.gpu.launch(
            "sum_partial",
            (grid, 1, 1),
            256,
            0,
            &[
                Arg::P(x),
                Arg::L(n as i64),
                Arg::I(squares as i32),
                Arg::P(self.s.partial.ptr),
            ],
        )?;
        self.gpu.launch(
            "sum_final",
            (1, 1, 1),
            1024,
            0,
            &[
                Arg::P(self.s.partial.ptr),
                Arg::I(grid as i32),
                Arg::P(self.s.scalars.ptr),
                Arg::I(slot as i32),
            ],
        )
    }

    /// The f32 address of the parameter at layout offset `at`.
    fn p32(&self, at: usize) -> u64 {
        self.params.at(at - self.f32_from)
    }

    /// The bf16 address of the parameter at layout offset `at` (not an NF4 projection).
    fn p16(&self, at: usize) -> u64 {
        self.params16.at(at - self.bf16_from)
    }

    /// The bf16 projection at layout offset `at`, ready for a product: an NF4 base dequantizes
    /// it into its scratch buffer first (stream-ordered, so one buffer serves every product).
    fn matrix(&self, at: usize) -> Result<u64, Error> {
        let Base::Nf4(q) = &self.base else {
            return Ok(self.p16(at));
        };
        let m = &q.mats[&at];
        self.gpu.launch(
            "nf4_dequant",
            (blocks(m.len.div_ceil(2), 256).min(self.gpu.sms * 16), 1, 1),
            256,
            0,
            &[
                Arg::P(m.packed.ptr),
                Arg::P(m.scales.ptr),
                Arg::P(m.scale_absmax.ptr),
                Arg::P(q.levels.ptr),
                Arg::P(q.dynamic.ptr),
                Arg::F(m.offset),
                Arg::P(q.scratch.ptr),
                Arg::L(m.len as i64),
            ],
        )?;
        Ok(q.scratch.ptr)
    }

    /// Whether the base's own weights get gradients.
    fn base_trains(&self) -> bool {
        matches!(self.base, Base::Trained)
    }

    /// `y = LayerNorm(x)` with the weight and bias at `wb`, and with `second` = `(wb2, y2)` also
    /// `y2` (a two-LayerNorm block: x read once); x's mean and rstd into `stats`.
    fn layernorm(
        &self,
        x: u64,
        (wb, y): (usize, u64),
        second: Option<(usize, u64)>,
        stats: (u64, u64),
    ) -> Result<(), Error> {
        let (n, d, ..) = self.dims();
        let (wb2, y2) = second.map_or((0, 0), |(wb2, y2)| (self.p32(wb2), y2));
        self.gpu.launch(
            "layernorm_fwd",
            (blocks(n, 8), 1, 1),
            256,
            0,
            &[
                Arg::P(x),
                Arg::P(self.p32(wb)),
                Arg::P(y),
                Arg::P(wb2),
                Arg::P(y2),
                Arg::P(stats.0),
                Arg::P(stats.1),
                Arg::I(n as i32),
                Arg::I(d as i32),
                Arg::F(self.config.layer_norm_epsilon as f32),
            ],
        )
    }

    /// `dres += LayerNorm backward(dy)` for the weight at `wb` (and with `second` = `(dy2, wb2)`,
    /// a two-LayerNorm block's second norm of the same x, whose weight and bias follow at
    /// `wb + 2d`), the bf16 copy of dres written when `dres16`; where the base trains, the
    /// weight and bias gradients into `grads[wb..]` (added unless `first`).
    fn layernorm_back(
        &self,
        (dy, wb): (u64, usize),
        second: Option<(u64, usize)>,
        x: u64,
        stats: (u64, u64),
        dres16: bool,
        first: bool,
    ) -> Result<(), Error> {
        let (n, d, ..) = self.dims();
        let (dy2, wb2) = second.map_or((0, 0), |(dy2, wb2)| {
            debug_assert_eq!(wb2, wb + 2 * d, "the two LayerNorms' weights are adjacent");
            (dy2, self.p32(wb2))
        });
        // Both kernels read the output gradients, x and its statistics.
        let rows = [dy, dy2, x, stats.0, stats.1].map(Arg::P);
        let mut args = rows.to_vec();
        args.extend([self.p32(wb), wb2, self.s.dres.ptr].map(Arg::P));
        args.push(Arg::P(if dres16 { self.s.dres16.ptr } else { 0 }));
        args.extend([Arg::I(n as i32), Arg::I(d as i32)]);
        self.gpu
            .launch("layernorm_bwd", (blocks(n, 8), 1, 1), 256, 0, &args)?;
        if !self.base_trains() {
            return Ok(());
        }
        let chunks = LN_CHUNKS.min(n);
        let width = if second.is_some() { 4 * d } else { 2 * d };
        self.gpu.launch(
            "layernorm_wb",
            (blocks(d, 128), chunks as u32, 1),
            256,
            0,
            &[
                &rows[..],
                &[
                    Arg::P(self.s.partial.ptr),
                    Arg::I(n as i32),
                    Arg::I(d as i32),
                    Arg::I(n.div_ceil(chunks) as i32),
                ],
            ]
            .concat(),
        )?;
        self.gpu.launch(
            "reduce_rows",
            (blocks(width, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(self.s.partial.ptr),
                Arg::P(self.grads.at(wb)),
                Arg::I(chunks as i32),
                Arg::I(width as i32),
                Arg::I(!first as i32),
            ],
        )
    }

    /// Where block `l`'s saved activations live.
    fn acts_at(&self, l: usize) -> ActsAt {
        let a = &self.acts[if self.recompute { 0 } else { l }];
        ActsAt {
            ln_attn: a.ln_attn.ptr,
            ln_stats: (a.ln_stats.0.ptr, a.ln_stats.1.ptr),
            ln_mlp: a.ln_mlp.as_ref().map(|y| y.ptr),
            q: a.q.ptr,
            k: a.k.ptr,
            v: a.v.ptr,
            o: a.o.ptr,
            lse: a.lse.ptr,
            h: a.h.ptr,
            g: a.g.ptr,
        }
    }

    /// A product on the engine's stream (see [`Gemm::matmul`]).
    #[allow(clippy::too_many_arguments)]
    fn mm(
        &mut self,
        mnk: (usize, usize, usize),
        a: Operand,
        b: Operand,
        c: Option<u64>,
        d: u64,
        out: Out,
        scale: (f32, f32),
    ) -> Result<(), Error> {
        self.gemm.matmul(&self.gpu, mnk, a, b, c, d, out, scale)
    }

    /// Projection `k`'s `(d_in, d_out)`.
    fn projection_dims(&self, k: usize) -> (usize, usize) {
        let c = &self.config;
        projection_dims(k, c.hidden_size, c.qkv_dim(), c.ffn_hidden_size)
    }

    /// Projection `k` of block `l`'s adapter input `[N, d_in]`: `x` itself, or through the
    /// dropout mask into a scratch buffer.
    fn lora_input(&self, l: usize, k: usize, x: u64) -> Result<u64, Error> {
        let ad = self.lora.as_ref().expect("adapters");
        if ad.dropout == 0.0 {
            return Ok(x);
        }
        let len = self.batch * self.seq * self.projection_dims(k).0;
        self.gpu.launch(
            "dropout_fwd",
            (blocks(len, 256).min(self.gpu.sms * 16), 1, 1),
            256,
            0,
            &[
                Arg::P(x),
                Arg::P(ad.u.ptr),
                Arg::L(len as i64),
                Arg::F(ad.dropout),
                Arg::L(ad.mask_seed(l, k)),
            ],
        )?;
        Ok(ad.u.ptr)
    }

    /// The adapter of projection `k` of block `l`, if it has one: its A and B offsets and
    /// where its `dropout(x) Aᵀ` is kept.
    fn adapter(&self, l: usize, k: usize) -> Option<(usize, usize, u64)> {
        let ad = self.lora.as_ref()?;
        let (a, b) = ad.at[l][k]?;
        let n = self.batch * self.seq;
        Some((a, b, ad.v.at((l * PROJECTIONS + k) * n * ad.r)))
    }

    /// `y += scale * dropout(x) Aᵀ Bᵀ` for projection `k` of block `l` (nothing without an
    /// adapter); `x` `[N, d_in]` bf16, `y` `[N, d_out]` of type `out`.
    fn lora_forward(&mut self, l: usize, k: usize, x: u64, y: u64, out: Out) -> Result<(), Error> {
        let Some((a, b, v)) = self.adapter(l, k) else {
            return Ok(());
        };
        let (n, (d_in, d_out)) = (self.batch * self.seq, self.projection_dims(k));
        let u = self.lora_input(l, k, x)?;
        let ad = self.lora.as_ref().expect("adapters");
        let (r, scale, a16, b16) = (ad.r, ad.scale, ad.params16.at(a), ad.params16.at(b));
        self.mm(
            (n, r, d_in),
            plain(u),
            t(a16),
            None,
            v,
            Out::Bf16,
            (1.0, 0.0),
        )?;
        self.mm((n, d_out, r), plain(v), t(b16), None, y, out, (scale, 1.0))
    }

    /// The adapter gradients of projection `k` of block `l` from the output gradient `dy`
    /// (`[N, d_out]` bf16) and the input `x` (overwritten on the `first` micro-batch, else
    /// added), and its share of the input gradient added into `dx` (of type `out`).
    #[allow(clippy::too_many_arguments)]
    fn lora_backward(
        &mut self,
        l: usize,
        k: usize,
        x: u64,
        dy: u64,
        dx: u64,
        out: Out,
        first: bool,
    ) -> Result<(), Error> {
        let Some((a, b, v)) = self.adapter(l, k) else {
            return Ok(());
        };
        let (n, (d_in, d_out)) = (self.batch * self.seq, self.projection_dims(k));
        let beta = if first { 0.0 } else { 1.0 };
        let u = self.lora_input(l, k, x)?;
        let ad = self.lora.as_ref().expect("adapters");
        let (r, scale, p) = (ad.r, ad.scale, ad.dropout);
        let (a16, b16, da, db) = (
            ad.params16.at(a),
            ad.params16.at(b),
            ad.grads.at(a),
            ad.grads.at(b),
        );
        let (dv, tmp, seed) = (ad.dv.ptr, ad.dx.ptr, ad.mask_seed(l, k));
        // dB = scale dyᵀ v; dv = scale dy B; dA = dvᵀ u; dx += mask(dv A).
        self.mm(
            (d_out, r, n),
            t(dy),
            plain(v),
            None,
            db,
            Out::F32,
            (scale, beta),
        )?;
        self.mm(
            (n, r, d_out),
            plain(dy),
            plain(b16),
            None,
            dv,
            Out::Bf16,
            (scale, 0.0),
        )?;
        self.mm(
            (r, d_in, n),
            t(dv),
            plain(u),
            None,
            da,
            Out::F32,
            (1.0, beta),
        )?;
        if p == 0.0 {
            return self.mm(
                (n, d_in, r),
                plain(dv),
                plain(a16),
                None,
                dx,
                out,
                (1.0, 1.0),
            );
        }
        self.mm(
            (n, d_in, r),
            plain(dv),
            plain(a16),
            None,
            tmp,
            Out::F32,
            (1.0, 0.0),
        )?;
        let len = n * d_in;
        self.gpu.launch(
            "dropout_bwd",
            (blocks(len, 256).min(self.gpu.sms * 16), 1, 1),
            256,
            0,
            &[
                Arg::P(tmp),
                Arg::P(dx),
                Arg::I((out == Out::Bf16) as i32),
                Arg::L(len as i64),
                Arg::F(p),
                Arg::L(seed),
            ],
        )
    }

    /// Block `l` from `xs[l]` into its activations, and with `residual` into `xs[l + 1]` (the
    /// backward's recomputation skips the two products that only feed the residual stream).
    fn block_forward(&mut self, l: usize, residual: bool) -> Result<(), Error> {
        let (n, d, h, kv, qd, f, ..) = self.dims();
        let (b, seq) = (self.batch, self.seq);
        let layout = self.layout_code();
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let at = self.layout.layers[l];
        let a = self.acts_at(l);
        let (x, x_next) = (self.xs[l].ptr, self.xs[l + 1].ptr);
        let second = at.ln_mlp.zip(a.ln_mlp);
        self.layernorm(x, (at.ln_attn, a.ln_attn), second, a.ln_stats)?;
        let mlp_in = a.mlp_in();
        // Attention: qkv, RoPE + split, flash attention, x_next = x + o Wdᵀ.
        let qkv = self.s.qkv.ptr;
        let w = self.matrix(at.qkv)?;
        self.mm(
            (n, qd, d),
            plain(a.ln_attn),
            t(w),
            None,
            qkv,
            Out::Bf16,
            (1.0, 0.0),
        )?;
        self.lora_forward(l, 0, a.ln_attn, qkv, Out::Bf16)?;
        self.gpu.launch(
            "rope_split",
            (blocks(n * (h + 2 * kv) * 4, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(qkv),
                Arg::P(a.q),
                Arg::P(a.k),
                Arg::P(a.v),
                Arg::P(self.s.cos.ptr),
                Arg::P(self.s.sin.ptr),
                Arg::I(b as i32),
                Arg::I(seq as i32),
                Arg::I(h as i32),
                Arg::I(kv as i32),
                Arg::I(layout),
            ],
        )?;
        // Two query heads of a K/V group per warp share every K and V fragment.
        let (attn_fwd, per_warp) = match ((h / kv) % 2 == 0, self.gpu.wgmma.fwd) {
            (true, true) => ("attn_fwd2_wg", 2),
            (true, false) => ("attn_fwd2", 2),
            (false, true) => ("attn_fwd_wg", 1),
            (false, false) => ("attn_fwd", 1),
        };
        let tensors = [a.q, a.k, a.v, a.o, a.lse];
        (self.gpu).attn_forward(attn_fwd, per_warp, tensors, (b, h, kv, seq), scale)?;
        if residual {
            let w = self.matrix(at.dense)?;
            self.mm(
                (n, d, d),
                plain(a.o),
                t(w),
                Some(x),
                x_next,
                Out::F32,
                (1.0, 1.0),
            )?;
            self.lora_forward(l, 1, a.o, x_next, Out::F32)?;
        }
        // MLP: h = ln Wfc1ᵀ, g = gelu(h), x_next += g Wfc2ᵀ.
        let w = self.matrix(at.fc1)?;
        self.mm(
            (n, f, d),
            plain(mlp_in),
            t(w),
            None,
            a.h,
            Out::Bf16,
            (1.0, 0.0),
        )?;
        self.lora_forward(l, 2, mlp_in, a.h, Out::Bf16)?;
        self.gpu.launch(
            "gelu_fwd",
            (blocks(n * f / 8, 256), 1, 1),
            256,
            0,
            &[Arg::P(a.h), Arg::P(a.g), Arg::L((n * f) as i64)],
        )?;
        if residual {
            let w = self.matrix(at.fc2)?;
            self.mm(
                (n, d, f),
                plain(a.g),
                t(w),
                None,
                x_next,
                Out::F32,
                (1.0, 1.0),
            )?;
            self.lora_forward(l, 3, a.g, x_next, Out::F32)?;
        }
        Ok(())
    }

    /// The forward pass of the windows in `s.win`: activations saved, per-token losses in
    /// `s.losses` (weighted by `s.mask` when `masked`) and their sum in `scalars[slot]`; with
    /// `grad_scale` the logits become the gradient of `grad_scale * sum(losses)`.
    fn forward(&mut self, grad_scale: f32, slot: usize, masked: bool) -> Result<(), Error> {
        let (n, d, .., v, layers) = self.dims();
        let seq = self.seq;
        self.gpu.launch(
            "embed_fwd",
            (blocks(n * d, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(self.s.win.ptr),
                Arg::P(self.p32(self.layout.wte)),
                Arg::P(self.xs[0].ptr),
                Arg::I(seq as i32),
                Arg::I(d as i32),
                Arg::L((n * d) as i64),
            ],
        )?;
        for l in 0..layers {
            self.block_forward(l, true)?;
        }
        let stats = (self.s.ln_f_stats.0.ptr, self.s.ln_f_stats.1.ptr);
        let (ln_f, logits) = (self.s.ln_f.ptr, self.s.logits.ptr);
        self.layernorm(self.xs[layers].ptr, (self.layout.ln_f, ln_f), None, stats)?;
        let wte = self.p16(self.layout.wte);
        self.mm(
            (n, v, d),
            plain(ln_f),
            t(wte),
            None,
            logits,
            Out::Bf16,
            (1.0, 0.0),
        )?;
        self.gpu.launch(
            "cross_entropy",
            (n as u32, 1, 1),
            1024,
            0,
            &[
                Arg::P(logits),
                Arg::P(self.s.win.ptr),
                Arg::P(if masked { self.s.mask.ptr } else { 0 }),
                Arg::P(self.s.losses.ptr),
                Arg::I(seq as i32),
                Arg::I(v as i32),
                Arg::F(grad_scale),
            ],
        )?;
        self.sum(self.s.losses.ptr, n, false, slot)
    }

    /// The backward of the micro-batch in flight; gradients are overwritten on the `first`
    /// micro-batch and accumulated after; on the `last`, averaged over the group if any. A
    /// frozen base gets no gradients: only the adapters do.
    fn backward(&mut self, first: bool, last: bool) -> Result<(), Error> {
        let (n, d, h, kv, qd, f, v, layers) = self.dims();
        let (b, seq) = (self.batch, self.seq);
        let layout = self.layout_code();
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let beta = if first { 0.0 } else { 1.0 };
        let trains = self.base_trains();
        let (logits, ln_f, dln, dres16) = (
            self.s.logits.ptr,
            self.s.ln_f.ptr,
            self.s.dln.ptr,
            self.s.dres16.ptr,
        );
        let g = |at: usize| if trains { self.grads.at(at) } else { 0 };
        let (g_wte, wte) = (g(self.layout.wte), self.p16(self.layout.wte));

        // LM head (tied): dWte from the logits' gradient, then into the final LayerNorm.
        if trains {
            self.mm(
                (v, d, n),
                t(logits),
                plain(ln_f),
                None,
                g_wte,
                Out::F32,
                (1.0, beta),
            )?;
        }
        self.mm(
            (n, d, v),
            plain(logits),
            plain(wte),
            None,
            dln,
            Out::F32,
            (1.0, 0.0),
        )?;
        self.gpu.zero(&self.s.dres, 0, n * d)?;
        let stats = (self.s.ln_f_stats.0.ptr, self.s.ln_f_stats.1.ptr);
        let x_final = self.xs[layers].ptr;
        self.layernorm_back((dln, self.layout.ln_f), None, x_final, stats, true, first)?;

        for l in (0..layers).rev() {
            if self.recompute {
                self.block_forward(l, false)?;
            }
            let at = self.layout.layers[l];
            let a = self.acts_at(l);
            let x = self.xs[l].ptr;
            let mlp_in = a.mlp_in();
            let g = |at: usize| if trains { self.grads.at(at) } else { 0 };
            let (g_fc2, g_fc1, g_dense, g_qkv) = (g(at.fc2), g(at.fc1), g(at.dense), g(at.qkv));
            let (dg, dout, dqkv) = (self.s.dg.ptr, self.s.dout.ptr, self.s.dqkv.ptr);
            let wgrad = (1.0, beta);
            // MLP branch (its output gradient is dres).
            if trains {
                self.mm(
                    (d, f, n),
                    t(dres16),
                    plain(a.g),
                    None,
                    g_fc2,
                    Out::F32,
                    wgrad,
                )?;
            }
            let w = self.matrix(at.fc2)?;
            self.mm(
                (n, f, d),
                plain(dres16),
                plain(w),
                None,
                dg,
                Out::Bf16,
                (1.0, 0.0),
            )?;
            self.lora_backward(l, 3, a.g, dres16, dg, Out::Bf16, first)?;
            self.gpu.launch(
                "gelu_bwd",
                (blocks(n * f / 8, 256), 1, 1),
                256,
                0,
                &[Arg::P(a.h), Arg::P(dg), Arg::L((n * f) as i64)],
            )?;
            if trains {
                self.mm(
                    (f, d, n),
                    t(dg),
                    plain(mlp_in),
                    None,
                    g_fc1,
                    Out::F32,
                    wgrad,
                )?;
            }
            let w = self.matrix(at.fc1)?;
            self.mm(
                (n, d, f),
                plain(dg),
                plain(w),
                None,
                dln,
                Out::F32,
                (1.0, 0.0),
            )?;
            self.lora_backward(l, 2, mlp_in, dg, dln, Out::F32, first)?;
            // Attention branch.
            if trains {
                self.mm(
                    (d, d, n),
                    t(dres16),
                    plain(a.o),
                    None,
                    g_dense,
                    Out::F32,
                    wgrad,
                )?;
            }
            let w = self.matrix(at.dense)?;
            self.mm(
                (n, d, d),
                plain(dres16),
                plain(w),
                None,
                dout,
                Out::Bf16,
                (1.0, 0.0),
            )?;
            self.lora_backward(l, 1, a.o, dres16, dout, Out::Bf16, first)?;
            let s = &self.s;
            let kernel = if self.gpu.wgmma.bwd {
                "attn_bwd_wg"
            } else {
                "attn_bwd"
            };
            let tensors = [a.q, a.k, a.v, a.o, dout, a.lse, s.delta.ptr];
            let grads = [&s.dq, &s.dk, &s.dv];
            (self.gpu).attn_backward(kernel, tensors, grads, (b, h, kv, seq), scale)?;
            self.gpu.launch(
                "rope_merge",
                (blocks(n * (h + 2 * kv) * 4, 256), 1, 1),
                256,
                0,
                &[
                    Arg::P(s.dq.ptr),
                    Arg::P(s.dk.ptr),
                    Arg::P(s.dv.ptr),
                    Arg::P(dqkv),
                    Arg::P(s.cos.ptr),
                    Arg::P(s.sin.ptr),
                    Arg::I(b as i32),
                    Arg::I(seq as i32),
                    Arg::I(h as i32),
                    Arg::I(kv as i32),
                    Arg::I(layout),
                ],
            )?;
            if trains {
                self.mm(
                    (qd, d, n),
                    t(dqkv),
                    plain(a.ln_attn),
                    None,
                    g_qkv,
                    Out::F32,
                    wgrad,
                )?;
            }
            let w = self.matrix(at.qkv)?;
            match (at.ln_mlp, self.s.dln2.as_ref().map(|b| b.ptr)) {
                (Some(wb), Some(dln2)) => {
                    self.mm(
                        (n, d, qd),
                        plain(dqkv),
                        plain(w),
                        None,
                        dln2,
                        Out::F32,
                        (1.0, 0.0),
                    )?;
                    self.lora_backward(l, 0, a.ln_attn, dqkv, dln2, Out::F32, first)?;
                    let (attn, mlp) = ((dln2, at.ln_attn), (dln, wb));
                    self.layernorm_back(attn, Some(mlp), x, a.ln_stats, true, first)?;
                }
                _ => {
                    self.mm(
                        (n, d, qd),
                        plain(dqkv),
                        plain(w),
                        None,
                        dln,
                        Out::F32,
                        (1.0, 1.0),
                    )?;
                    self.lora_backward(l, 0, a.ln_attn, dqkv, dln, Out::F32, first)?;
                    self.layernorm_back((dln, at.ln_attn), None, x, a.ln_stats, true, first)?;
                }
            }
            if last && trains {
                // The block's gradients are final: average them while the blocks below run.
                let ln_end = at.ln_mlp.unwrap_or(at.ln_attn) + 2 * d;
                self.reduce(at.qkv, at.fc2 + d * f - at.qkv)?;
                self.reduce(at.ln_attn, ln_end - at.ln_attn)?;
            }
        }
        if !trains {
            return Ok(());
        }
        self.gpu.launch(
            "embed_bwd",
            (blocks(n * d, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(self.s.win.ptr),
                Arg::P(self.s.dres.ptr),
                Arg::P(self.grads.at(self.layout.wte)),
                Arg::I(seq as i32),
                Arg::I(d as i32),
                Arg::L((n * d) as i64),
            ],
        )?;
        if last {
            self.reduce(self.layout.wte, v * d)?;
            self.reduce(self.layout.ln_f, 2 * d)?;
        }
        Ok(())
    }

    fn check_windows(&self, windows: &[u16]) {
        assert_eq!(
            windows.len(),
            self.batch * (self.seq + 1),
            "windows are [batch, seq + 1]"
        );
    }

    /// Forward and backward of each micro-batch (`[batch, seq + 1]` token windows): gradients
    /// of their mean loss in `grads` (the adapters' where the base is frozen), each
    /// micro-batch's loss sum in `scalars`. With `masks` (`[batch, seq]` per micro-batch, 1 for
    /// a trained target) the loss is the mean over the trained targets only. Returns the number
    /// of targets the mean is over.
    fn accumulate(&mut self, micro: &[Vec<u16>], masks: Option<&[Vec<f32>]>) -> Result<f64, Error> {
        self.gpu.bind()?;
        let count = match masks {
            Some(m) => {
                assert_eq!(m.len(), micro.len(), "a mask per micro-batch");
                m.iter().flatten().map(|&x| x as f64).sum::<f64>()
            }
            None => (self.batch * self.seq * micro.len()) as f64,
        };
        let grad_scale = if count > 0.0 {
            (1.0 / count) as f32
        } else {
            0.0
        };
        for (i, windows) in micro.iter().enumerate() {
            self.check_windows(windows);
            self.gpu.upload(windows, &mut self.s.win)?;
            if let Some(m) = masks {
                assert_eq!(m[i].len(), self.batch * self.seq, "masks are [batch, seq]");
                self.gpu.upload(&m[i], &mut self.s.mask)?;
            }
            if let Some(ad) = self.lora.as_mut() {
                // Fresh dropout masks for every micro-batch of every step.
                ad.seed = mix(((self.optimizer_step as u64) << 20) ^ i as u64);
            }
            self.forward(grad_scale, i, masks.is_some())?;
            self.backward(i == 0, i + 1 == micro.len())?;
        }
        if let Some(g) = &self.group {
            // Losses too (the logged loss is the mean over ranks); then the optimizer waits.
            g.collective.all_reduce_mean(
                g.rank,
                self.s.scalars.ptr,
                micro.len(),
                self.reduce_stream()?,
            )?;
            self.gpu
                .stream
                .join(&g.stream)
                .map_err(|e| gpu_error("waiting for the all-reduce", e))?;
        }
        Ok(count)
    }

    /// Joins the gradient averaging of `collective` as rank `rank`: from the next step, each
    /// block's gradients are averaged on a second stream as soon as the backward has them.
    pub(crate) fn join(&mut self, collective: Arc<Collective>, rank: usize) -> Result<(), Error> {
        let stream = self
            .gpu
            .stream
            .fork()
            .map_err(|e| gpu_error("a stream for collectives", e))?;
        self.group = Some(Group {
            collective,
            rank,
            stream,
        });
        Ok(())
    }

    /// The collectives' stream, made to wait for everything issued on the compute stream.
    fn reduce_stream(&self) -> Result<cudarc::driver::sys::CUstream, Error> {
        let g = self.group.as_ref().expect("a group");
        g.stream
            .join(&self.gpu.stream)
            .map_err(|e| gpu_error("ordering the all-reduce", e))?;
        Ok(g.stream.cu_stream())
    }

    /// Averages `len` gradient elements from `at` over the group (nothing without one).
    fn reduce(&self, at: usize, len: usize) -> Result<(), Error> {
        let Some(g) = &self.group else {
            return Ok(());
        };
        g.collective
            .all_reduce_mean(g.rank, self.grads.at(at), len, self.reduce_stream()?)
    }

    /// This rank's error if its group was aborted during the step.
    pub(crate) fn check_group(&self) -> Result<(), Error> {
        self.group
            .as_ref()
            .map_or(Ok(()), |g| g.collective.check(g.rank))
    }

    /// The mean loss over `count` targets from the micro-batch sums in `scalars` (one wait),
    /// and the scalar after them.
    fn read_loss(&self, micro: usize, count: f64) -> Result<(f64, f32), Error> {
        let sums = self.gpu.download(&self.s.scalars, 0..micro + 1)?;
        let total: f64 = sums[..micro].iter().map(|&x| x as f64).sum();
        Ok((total / count.max(1.0), sums[micro]))
    }

    /// Gradients of the mean loss of `micro` left in `grads` (see [`Engine::gradients`]);
    /// returns the loss.
    pub fn forward_backward(&mut self, micro: &[Vec<u16>]) -> Result<f64, Error> {
        let count = self.accumulate(micro, None)?;
        Ok(self.read_loss(micro.len(), count)?.0)
    }

    /// [`Engine::forward_backward`] of a fine-tuning engine with loss masks (see
    /// [`Engine::finetune_step`]): the adapters' gradients in [`Engine::adapter_gradients`].
    pub fn forward_backward_masked(
        &mut self,
        micro: &[Vec<u16>],
        masks: &[Vec<f32>],
    ) -> Result<f64, Error> {
        let count = self.accumulate(micro, Some(masks))?;
        Ok(self.read_loss(micro.len(), count)?.0)
    }

    /// One optimizer step: forward and backward of `micro`, clipping by the global gradient
    /// norm, AdamW at `lr`. Returns the mean loss and the norm before clipping (one wait).
    pub fn step(&mut self, micro: &[Vec<u16>], lr: f64) -> Result<(f64, f64), Error> {
        self.take_step(micro, None, lr)
    }

    /// One fine-tuning step ([`Engine::finetune`]): as [`Engine::step`], the loss averaged over
    /// the targets `masks` marks (`[batch, seq]` per micro-batch, 1 trained, 0 not), AdamW on
    /// the adapters.
    pub fn finetune_step(
        &mut self,
        micro: &[Vec<u16>],
        masks: &[Vec<f32>],
        lr: f64,
    ) -> Result<(f64, f64), Error> {
        self.take_step(micro, Some(masks), lr)
    }

    fn take_step(
        &mut self,
        micro: &[Vec<u16>],
        masks: Option<&[Vec<f32>]>,
        lr: f64,
    ) -> Result<(f64, f64), Error> {
        self.gpu.profile_start()?;
        let count = self.accumulate(micro, masks)?;
        // The trained parameters: (f32, bf16 copy, gradients, moments) and (start, end, decay)
        // ranges of them.
        let o = &self.optim;
        let (bufs, ranges) = match &self.lora {
            Some(ad) => (
                (
                    &ad.params,
                    &ad.params16,
                    &ad.grads,
                    &ad.exp_avg,
                    &ad.exp_avg_sq,
                ),
                vec![(0, ad.total, o.weight_decay)],
            ),
            None => (
                (
                    &self.params,
                    &self.params16,
                    &self.grads,
                    &self.exp_avg,
                    &self.exp_avg_sq,
                ),
                vec![
                    (0, self.layout.decay_end, o.weight_decay),
                    (self.layout.decay_end, self.layout.total, 0.0),
                ],
            ),
        };
        let (params, params16, grads, exp_avg, exp_avg_sq) = bufs;
        let norm_slot = micro.len();
        self.sum(grads.ptr, ranges.last().map_or(0, |r| r.1), true, norm_slot)?;
        let tstep = self.optimizer_step as i32 + 1;
        let (bc1, bc2) = (1.0 - o.beta1.powi(tstep), 1.0 - o.beta2.powi(tstep));
        for (start, end, wd) in ranges {
            let len = end - start;
            self.gpu.launch(
                "adamw",
                ((self.gpu.sms * 8).min(blocks(len, 256)).max(1), 1, 1),
                256,
                0,
                &[
                    Arg::P(params.at(start)),
                    Arg::P(params16.at(start)),
                    Arg::P(grads.at(start)),
                    Arg::P(exp_avg.at(start)),
                    Arg::P(exp_avg_sq.at(start)),
                    Arg::L(len as i64),
                    Arg::F(lr as f32),
                    Arg::F(o.beta1 as f32),
                    Arg::F(o.beta2 as f32),
                    Arg::F(o.eps as f32),
                    Arg::F(wd as f32),
                    Arg::F(bc1 as f32),
                    Arg::F(bc2 as f32),
                    Arg::P(self.s.scalars.at(norm_slot)),
                    Arg::F(o.grad_clip as f32),
                ],
            )?;
        }
        self.optimizer_step += 1;
        let (loss, norm_sq) = self.read_loss(micro.len(), count)?;
        self.gpu.profile_end()?;
        self.check_group()?;
        Ok((loss, (norm_sq as f64).sqrt()))
    }

    /// With `FALCONRY_PROFILE` set: GPU time per kernel and product over the steps taken.
    pub fn profile(&self) -> Option<String> {
        self.gpu.profile_table()
    }

    /// Every position's cross-entropy over one micro-batch of windows (`[batch, seq]`), no
    /// gradients: what log-likelihood scoring reads.
    pub fn token_losses(&mut self, windows: &[u16]) -> Result<Vec<f32>, Error> {
        self.gpu.bind()?;
        self.check_windows(windows);
        self.gpu.upload(windows, &mut self.s.win)?;
        self.forward(0.0, 0, false)?;
        self.gpu.download(&self.s.losses, 0..self.batch * self.seq)
    }

    /// Mean loss of one micro-batch of windows, no gradients.
    pub fn loss(&mut self, windows: &[u16]) -> Result<f64, Error> {
        self.gpu.bind()?;
        self.check_windows(windows);
        self.gpu.upload(windows, &mut self.s.win)?;
        self.forward(0.0, 0, false)?;
        let sum = self.gpu.download(&self.s.scalars, 0..1)?[0];
        Ok(sum as f64 / (self.batch * self.seq) as f64)
    }
}

/// `x` `[rows, cols]` -> `[cols, rows]`, 32 output rows per task: each task reads `x` in
/// 128-byte runs and writes 32 sequential streams (a 1B model's weights and moments take seconds,
/// not minutes).
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const BLOCK: usize = 32;
    let mut out = vec![0f32; x.len()];
    if x.is_empty() {
        return out;
    }
    out.par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(b, chunk)| {
            let (c0, width) = (b * BLOCK, chunk.len() / rows);
            for r in 0..rows {
                for (j, v) in x[r * cols + c0..r * cols + c0 + width].iter().enumerate() {
                    chunk[j * rows + r] = *v;
                }
            }
        });
    out
}
