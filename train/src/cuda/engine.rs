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
//! Shapes: `N = B T` tokens of width `d`; `H` query heads and `KV` key/value heads of 64;
//! `QD = (H + 2 KV) 64` the fused QKV width; `F` the MLP width; `V` the vocabulary.

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use cudarc::driver::CudaStream;

use super::collective::Collective;
use super::device::{blocks, gpu_error, Arg, Buf, Gpu};
use super::gemm::{plain, t, Gemm, Out};
use crate::attention::FalconTrainBackend;
use crate::config::{FalconConfig, QkvLayout};
use crate::hf::{self, NamedTensors};
use crate::model::FalconForCausalLM;
use crate::optim::{AdamW, AdamWConfig, Moments};
use crate::Error;

/// Head size the attention kernels are written for (every Falcon's).
pub(crate) const HEAD_DIM: usize = 64;
/// Sequence lengths are whole attention tiles.
pub(crate) const SEQ_MULTIPLE: usize = 64;
/// The cross-entropy kernel keeps a row of logits in registers: 8 x 16 bytes per thread of 1024.
pub(crate) const MAX_VOCAB: usize = 8 * 8 * 1024;
/// Blocks of `layernorm_bwd` (each writes a partial weight gradient).
const LN_BLOCKS: usize = 264;

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

/// The flat parameter layout: decayed matrices first (`[0, decay_end)`), then LayerNorms.
/// Linear weights are stored as HF stores them, `[d_out, d_in]`.
struct Layout {
    wte: usize,
    layers: Vec<LayerAt>,
    ln_f: usize,
    decay_end: usize,
    total: usize,
    /// HF name, offset, HF shape, whether it is a linear weight (Burn stores those transposed).
    named: Vec<(String, usize, Vec<usize>, bool)>,
}

impl Layout {
    fn new(c: &FalconConfig) -> Self {
        let (d, f, v) = (c.hidden_size, c.ffn_hidden_size, c.vocab_size);
        let qd = c.qkv_dim();
        let mut at = 0usize;
        // 64-element alignment keeps every tensor's bf16 copy 128-byte aligned for cuBLASLt.
        let mut take = |len: usize| {
            let o = at;
            at = (at + len).next_multiple_of(64);
            o
        };
        let mut named = Vec::new();
        let wte = take(v * d);
        named.push((
            "transformer.word_embeddings.weight".to_string(),
            wte,
            vec![v, d],
            false,
        ));
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
            decay_end,
            total: take(0),
            named,
        }
    }
}

type Bf16Buf = Buf<u16>;

/// What the backward pass reads of one block's forward besides its input (kept for every
/// block, or with recomputation for one, refilled by re-running the block in the backward).
struct Acts {
    ln_attn: Bf16Buf,
    ln_attn_stats: (Buf<f32>, Buf<f32>),
    /// Two-LayerNorm blocks only.
    ln_mlp: Option<(Bf16Buf, Buf<f32>, Buf<f32>)>,
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
    params: Buf<f32>,
    params16: Bf16Buf,
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
        Self::build(config, batch, seq, optim, recompute, ordinal, true)
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
        )
    }

    fn build(
        config: &FalconConfig,
        batch: usize,
        seq: usize,
        optim: AdamWConfig,
        recompute: bool,
        ordinal: usize,
        train: bool,
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
        let params = gpu.alloc::<f32>(total)?;
        let params16 = gpu.alloc::<u16>(total)?;
        let grads = gpu.alloc::<f32>(backward(total))?;
        let exp_avg = gpu.alloc::<f32>(backward(total))?;
        let exp_avg_sq = gpu.alloc::<f32>(backward(total))?;
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
            let ln_mlp = if two {
                Some((gpu.alloc(n * d)?, gpu.alloc(n)?, gpu.alloc(n)?))
            } else {
                None
            };
            acts.push(Acts {
                ln_attn: gpu.alloc(n * d)?,
                ln_attn_stats: (gpu.alloc(n)?, gpu.alloc(n)?),
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
        gpu.allow_shared("layernorm_bwd", 2 * d * 4)?;
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
            partial: gpu.alloc((LN_BLOCKS * 2 * d).max(1024))?,
            scalars: gpu.alloc(1024)?,
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
            params,
            params16,
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
        format!(
            "{}: kernels built in {:.1} s, {:.2} GB allocated",
            self.gpu.name,
            self.gpu.compile_secs,
            self.gpu.allocated() as f64 / 1e9
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
            let (got, data) = &tensors[name];
            assert_eq!(got, shape, "{name}: the engine's layout follows hf::slots");
            host[*at..*at + data.len()].copy_from_slice(data);
        }
        self.upload_params(&host)
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
        self.load_weights(&hf::named_tensors(model)?)?;
        self.gpu.zero(&self.exp_avg, 0, self.layout.total)?;
        self.gpu.zero(&self.exp_avg_sq, 0, self.layout.total)?;
        self.optimizer_step = 0;
        Ok(())
    }

    /// Copies `model`'s weights and `optim`'s moments and step count onto the GPU.
    pub fn load<B: FalconTrainBackend>(
        &mut self,
        model: &FalconForCausalLM<B>,
        optim: &AdamW<B>,
    ) -> Result<(), Error> {
        self.load_weights(&hf::named_tensors(model)?)?;
        let mut m = vec![0f32; self.layout.total];
        let mut v = vec![0f32; self.layout.total];
        let mut model = model.clone();
        let ids: BTreeMap<String, burn::module::ParamId> = hf::slots(&mut model)
            .into_iter()
            .map(|(name, slot)| (name, slot.id()))
            .collect();
        for (name, at, shape, linear) in &self.layout.named {
            let Some(moments) = optim.moments.get(&ids[name]) else {
                continue;
            };
            for (t, out) in [(&moments.exp_avg, &mut m), (&moments.exp_avg_sq, &mut v)] {
                let flat = t
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .map_err(|e| Error::Safetensors(format!("{e:?}")))?;
                // Burn keeps a linear weight's moments in its own [d_in, d_out] order.
                let flat = if *linear {
                    transpose(&flat, shape[1], shape[0])
                } else {
                    flat
                };
                out[*at..*at + flat.len()].copy_from_slice(&flat);
            }
        }
        self.gpu.upload(&m, &mut self.exp_avg)?;
        self.gpu.upload(&v, &mut self.exp_avg_sq)?;
        self.optimizer_step = optim.step;
        Ok(())
    }

    /// Weights, moments and step count as flat host buffers, for the other ranks of a group.
    pub(crate) fn state(&self) -> Result<State, Error> {
        let n = self.layout.total;
        Ok(State {
            params: self.gpu.download(&self.params, n)?,
            exp_avg: self.gpu.download(&self.exp_avg, n)?,
            exp_avg_sq: self.gpu.download(&self.exp_avg_sq, n)?,
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
        let host = self.gpu.download(buf, self.layout.total)?;
        Ok(self
            .layout
            .named
            .iter()
            .map(|(name, at, shape, _)| {
                let len: usize = shape.iter().product();
                (name.clone(), (shape.clone(), host[*at..*at + len].to_vec()))
            })
            .collect())
    }

    /// The residual stream into each block and out of the last (`L + 1` tensors `[N, d]`) and
    /// the bf16 logits `[N, V]` as f32, of the last forward (for checks against a reference).
    pub fn activations(&self) -> Result<(Vec<Vec<f32>>, Vec<f32>), Error> {
        let (n, d, .., v, _) = self.dims();
        let xs = self
            .xs
            .iter()
            .map(|x| self.gpu.download(x, n * d))
            .collect::<Result<_, _>>()?;
        let logits = self.gpu.download(&self.s.logits, n * v)?;
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

    /// Writes the GPU's weights into `model` and its moments into `optim` (for checkpoints and
    /// evaluation on the Burn side).
    pub fn store<B: FalconTrainBackend>(
        &self,
        model: &mut FalconForCausalLM<B>,
        optim: &mut AdamW<B>,
        device: &B::Device,
    ) -> Result<(), Error> {
        hf::set_named_tensors(model, &self.named(&self.params)?, device)
            .map_err(|m| Error::Gpu(format!("engine weights: {m}")))?;
        let m = self.named(&self.exp_avg)?;
        let v = self.named(&self.exp_avg_sq)?;
        let linear: BTreeMap<&str, bool> = self
            .layout
            .named
            .iter()
            .map(|(n, _, _, l)| (n.as_str(), *l))
            .collect();
        optim.moments.clear();
        for (name, slot) in hf::slots(model) {
            let flat = |t: &NamedTensors| {
                let (shape, data) = &t[&name];
                let data = if linear[name.as_str()] {
                    transpose(data, shape[0], shape[1])
                } else {
                    data.clone()
                };
                let len = data.len();
                Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(data, [len]), device)
            };
            let id = slot.id();
            optim.moments.insert(
                id,
                Moments {
                    exp_avg: flat(&m),
                    exp_avg_sq: flat(&v),
                },
            );
        }
        optim.step = self.optimizer_step;
        Ok(())
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

    fn layernorm(&self, x: u64, wb: usize, y: u64, stats: (u64, u64)) -> Result<(), Error> {
        let (n, d, ..) = self.dims();
        self.gpu.launch(
            "layernorm_fwd",
            (blocks(n, 8), 1, 1),
            256,
            0,
            &[
                Arg::P(x),
                Arg::P(self.params.at(wb)),
                Arg::P(y),
                Arg::P(stats.0),
                Arg::P(stats.1),
                Arg::I(n as i32),
                Arg::I(d as i32),
                Arg::F(self.config.layer_norm_epsilon as f32),
            ],
        )
    }

    /// `dres += LayerNorm backward(dy)`, the bf16 copy of dres written when `dres16`; the
    /// weight and bias gradients into `grads[wb..wb + 2d]` (added unless `first`).
    fn layernorm_back(
        &self,
        dy: u64,
        x: u64,
        stats: (u64, u64),
        wb: usize,
        dres16: bool,
        first: bool,
    ) -> Result<(), Error> {
        let (n, d, ..) = self.dims();
        let grid = LN_BLOCKS.min(n.div_ceil(8)) as u32;
        self.gpu.launch(
            "layernorm_bwd",
            (grid, 1, 1),
            256,
            (2 * d * 4) as u32,
            &[
                Arg::P(dy),
                Arg::P(x),
                Arg::P(stats.0),
                Arg::P(stats.1),
                Arg::P(self.params.at(wb)),
                Arg::P(self.s.dres.ptr),
                Arg::P(if dres16 { self.s.dres16.ptr } else { 0 }),
                Arg::P(self.s.partial.ptr),
                Arg::I(n as i32),
                Arg::I(d as i32),
            ],
        )?;
        self.gpu.launch(
            "reduce_rows",
            (blocks(2 * d, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(self.s.partial.ptr),
                Arg::P(self.grads.at(wb)),
                Arg::I(grid as i32),
                Arg::I((2 * d) as i32),
                Arg::I(!first as i32),
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
        let p16 = |at: usize| self.params16.at(at);
        let at = &self.layout.layers[l];
        let a = &self.acts[if self.recompute { 0 } else { l }];
        let (x, x_next) = (self.xs[l].ptr, self.xs[l + 1].ptr);
        let ln_stats = (a.ln_attn_stats.0.ptr, a.ln_attn_stats.1.ptr);
        self.layernorm(x, at.ln_attn, a.ln_attn.ptr, ln_stats)?;
        let mlp_in = match (&a.ln_mlp, at.ln_mlp) {
            (Some((y, mean, rstd)), Some(wb)) => {
                self.layernorm(x, wb, y.ptr, (mean.ptr, rstd.ptr))?;
                y.ptr
            }
            _ => a.ln_attn.ptr,
        };
        // Attention: qkv, RoPE + split, flash attention, x_next = x + o Wdᵀ.
        self.gemm.matmul(
            &self.gpu,
            (n, qd, d),
            plain(a.ln_attn.ptr),
            t(p16(at.qkv)),
            None,
            self.s.qkv.ptr,
            Out::Bf16,
            0.0,
        )?;
        self.gpu.launch(
            "rope_split",
            (blocks(n * (h + 2 * kv) * 32, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(self.s.qkv.ptr),
                Arg::P(a.q.ptr),
                Arg::P(a.k.ptr),
                Arg::P(a.v.ptr),
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
        let (attn_fwd, per_warp) = if (h / kv) % 2 == 0 {
            ("attn_fwd2", 2)
        } else {
            ("attn_fwd", 1)
        };
        self.gpu.launch(
            attn_fwd,
            ((seq / 64) as u32, (h / per_warp) as u32, b as u32),
            128,
            0,
            &[
                Arg::P(a.q.ptr),
                Arg::P(a.k.ptr),
                Arg::P(a.v.ptr),
                Arg::P(a.o.ptr),
                Arg::P(a.lse.ptr),
                Arg::I(h as i32),
                Arg::I(kv as i32),
                Arg::I(seq as i32),
                Arg::F(scale),
            ],
        )?;
        if residual {
            self.gemm.matmul(
                &self.gpu,
                (n, d, d),
                plain(a.o.ptr),
                t(p16(at.dense)),
                Some(x),
                x_next,
                Out::F32,
                1.0,
            )?;
        }
        // MLP: h = ln Wfc1ᵀ, g = gelu(h), x_next += g Wfc2ᵀ.
        self.gemm.matmul(
            &self.gpu,
            (n, f, d),
            plain(mlp_in),
            t(p16(at.fc1)),
            None,
            a.h.ptr,
            Out::Bf16,
            0.0,
        )?;
        self.gpu.launch(
            "gelu_fwd",
            (blocks(n * f / 8, 256), 1, 1),
            256,
            0,
            &[Arg::P(a.h.ptr), Arg::P(a.g.ptr), Arg::L((n * f) as i64)],
        )?;
        if residual {
            self.gemm.matmul(
                &self.gpu,
                (n, d, f),
                plain(a.g.ptr),
                t(p16(at.fc2)),
                None,
                x_next,
                Out::F32,
                1.0,
            )?;
        }
        Ok(())
    }

    /// The forward pass of the windows in `s.win`: activations saved, per-token losses in
    /// `s.losses` and their sum in `scalars[slot]`; with `grad_scale` the logits become the
    /// gradient of `grad_scale * sum(losses)`.
    fn forward(&mut self, grad_scale: f32, slot: usize) -> Result<(), Error> {
        let (n, d, .., v, layers) = self.dims();
        let seq = self.seq;
        self.gpu.launch(
            "embed_fwd",
            (blocks(n * d, 256), 1, 1),
            256,
            0,
            &[
                Arg::P(self.s.win.ptr),
                Arg::P(self.params.at(self.layout.wte)),
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
        self.layernorm(
            self.xs[layers].ptr,
            self.layout.ln_f,
            self.s.ln_f.ptr,
            stats,
        )?;
        self.gemm.matmul(
            &self.gpu,
            (n, v, d),
            plain(self.s.ln_f.ptr),
            t(self.params16.at(self.layout.wte)),
            None,
            self.s.logits.ptr,
            Out::Bf16,
            0.0,
        )?;
        self.gpu.launch(
            "cross_entropy",
            (n as u32, 1, 1),
            1024,
            0,
            &[
                Arg::P(self.s.logits.ptr),
                Arg::P(self.s.win.ptr),
                Arg::P(self.s.losses.ptr),
                Arg::I(seq as i32),
                Arg::I(v as i32),
                Arg::F(grad_scale),
            ],
        )?;
        self.sum(self.s.losses.ptr, n, false, slot)
    }

    /// The backward of the micro-batch in flight; gradients are overwritten on the `first`
    /// micro-batch and accumulated after; on the `last`, averaged over the group if any.
    fn backward(&mut self, first: bool, last: bool) -> Result<(), Error> {
        let (n, d, h, kv, qd, f, v, layers) = self.dims();
        let (b, seq) = (self.batch, self.seq);
        let layout = self.layout_code();
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let beta = if first { 0.0 } else { 1.0 };
        let p16 = |at: usize| self.params16.at(at);
        let s = &self.s;
        let (g, gemm, gpu) = (&self.grads, &mut self.gemm, &self.gpu);

        // LM head (tied): dWte from the logits' gradient, then into the final LayerNorm.
        gemm.matmul(
            gpu,
            (v, d, n),
            t(s.logits.ptr),
            plain(s.ln_f.ptr),
            None,
            g.at(self.layout.wte),
            Out::F32,
            beta,
        )?;
        gemm.matmul(
            gpu,
            (n, d, v),
            plain(s.logits.ptr),
            plain(p16(self.layout.wte)),
            None,
            s.dln.ptr,
            Out::F32,
            0.0,
        )?;
        gpu.zero(&s.dres, 0, n * d)?;
        let stats = (s.ln_f_stats.0.ptr, s.ln_f_stats.1.ptr);
        self.layernorm_back(
            s.dln.ptr,
            self.xs[layers].ptr,
            stats,
            self.layout.ln_f,
            true,
            first,
        )?;

        for l in (0..layers).rev() {
            if self.recompute {
                self.block_forward(l, false)?;
            }
            let p16 = |at: usize| self.params16.at(at);
            let (s, g, gemm, gpu) = (&self.s, &self.grads, &mut self.gemm, &self.gpu);
            let at = &self.layout.layers[l];
            let sv = &self.acts[if self.recompute { 0 } else { l }];
            let x = self.xs[l].ptr;
            let mlp_in = sv.ln_mlp.as_ref().map_or(sv.ln_attn.ptr, |(y, ..)| y.ptr);
            // MLP branch (its output gradient is dres).
            gemm.matmul(
                gpu,
                (d, f, n),
                t(s.dres16.ptr),
                plain(sv.g.ptr),
                None,
                g.at(at.fc2),
                Out::F32,
                beta,
            )?;
            gemm.matmul(
                gpu,
                (n, f, d),
                plain(s.dres16.ptr),
                plain(p16(at.fc2)),
                None,
                s.dg.ptr,
                Out::Bf16,
                0.0,
            )?;
            gpu.launch(
                "gelu_bwd",
                (blocks(n * f / 8, 256), 1, 1),
                256,
                0,
                &[Arg::P(sv.h.ptr), Arg::P(s.dg.ptr), Arg::L((n * f) as i64)],
            )?;
            gemm.matmul(
                gpu,
                (f, d, n),
                t(s.dg.ptr),
                plain(mlp_in),
                None,
                g.at(at.fc1),
                Out::F32,
                beta,
            )?;
            gemm.matmul(
                gpu,
                (n, d, f),
                plain(s.dg.ptr),
                plain(p16(at.fc1)),
                None,
                s.dln.ptr,
                Out::F32,
                0.0,
            )?;
            // Attention branch.
            gemm.matmul(
                gpu,
                (d, d, n),
                t(s.dres16.ptr),
                plain(sv.o.ptr),
                None,
                g.at(at.dense),
                Out::F32,
                beta,
            )?;
            gemm.matmul(
                gpu,
                (n, d, d),
                plain(s.dres16.ptr),
                plain(p16(at.dense)),
                None,
                s.dout.ptr,
                Out::Bf16,
                0.0,
            )?;
            gpu.launch(
                "attn_bwd_delta",
                (blocks(n * h, 8), 1, 1),
                256,
                0,
                &[
                    Arg::P(sv.o.ptr),
                    Arg::P(s.dout.ptr),
                    Arg::P(s.delta.ptr),
                    Arg::I(b as i32),
                    Arg::I(h as i32),
                    Arg::I(seq as i32),
                ],
            )?;
            gpu.zero(&s.dq, 0, s.dq.len)?;
            gpu.zero(&s.dk, 0, s.dk.len)?;
            gpu.zero(&s.dv, 0, s.dv.len)?;
            let args = [
                Arg::P(sv.q.ptr),
                Arg::P(sv.k.ptr),
                Arg::P(sv.v.ptr),
                Arg::P(s.dout.ptr),
                Arg::P(sv.lse.ptr),
                Arg::P(s.delta.ptr),
                Arg::P(s.dq.ptr),
                Arg::P(s.dk.ptr),
                Arg::P(s.dv.ptr),
                Arg::I(h as i32),
                Arg::I(kv as i32),
                Arg::I(seq as i32),
                Arg::F(scale),
            ];
            gpu.launch(
                "attn_bwd",
                ((seq / 64) as u32, h as u32, b as u32),
                128,
                0,
                &args,
            )?;
            gpu.launch(
                "rope_merge",
                (blocks(n * (h + 2 * kv) * 32, 256), 1, 1),
                256,
                0,
                &[
                    Arg::P(s.dq.ptr),
                    Arg::P(s.dk.ptr),
                    Arg::P(s.dv.ptr),
                    Arg::P(s.dqkv.ptr),
                    Arg::P(s.cos.ptr),
                    Arg::P(s.sin.ptr),
                    Arg::I(b as i32),
                    Arg::I(seq as i32),
                    Arg::I(h as i32),
                    Arg::I(kv as i32),
                    Arg::I(layout),
                ],
            )?;
            gemm.matmul(
                gpu,
                (qd, d, n),
                t(s.dqkv.ptr),
                plain(sv.ln_attn.ptr),
                None,
                g.at(at.qkv),
                Out::F32,
                beta,
            )?;
            let attn_stats = (sv.ln_attn_stats.0.ptr, sv.ln_attn_stats.1.ptr);
            match (&sv.ln_mlp, at.ln_mlp, &s.dln2) {
                (Some((_, mean, rstd)), Some(wb), Some(dln2)) => {
                    gemm.matmul(
                        gpu,
                        (n, d, qd),
                        plain(s.dqkv.ptr),
                        plain(p16(at.qkv)),
                        None,
                        dln2.ptr,
                        Out::F32,
                        0.0,
                    )?;
                    let (dln, dln2) = (s.dln.ptr, dln2.ptr);
                    let (ln_attn, mlp_stats) = (at.ln_attn, (mean.ptr, rstd.ptr));
                    self.layernorm_back(dln, x, mlp_stats, wb, false, first)?;
                    self.layernorm_back(dln2, x, attn_stats, ln_attn, true, first)?;
                }
                _ => {
                    gemm.matmul(
                        gpu,
                        (n, d, qd),
                        plain(s.dqkv.ptr),
                        plain(p16(at.qkv)),
                        None,
                        s.dln.ptr,
                        Out::F32,
                        1.0,
                    )?;
                    let (dln, wb) = (s.dln.ptr, at.ln_attn);
                    self.layernorm_back(dln, x, attn_stats, wb, true, first)?;
                }
            }
            if last {
                // The block's gradients are final: average them while the blocks below run.
                let at = &self.layout.layers[l];
                let ln_end = at.ln_mlp.unwrap_or(at.ln_attn) + 2 * d;
                self.reduce(at.qkv, at.fc2 + d * f - at.qkv)?;
                self.reduce(at.ln_attn, ln_end - at.ln_attn)?;
            }
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
    /// of their mean loss in `grads`, each micro-batch's loss sum in `scalars`.
    fn accumulate(&mut self, micro: &[Vec<u16>]) -> Result<(), Error> {
        self.gpu.bind()?;
        let grad_scale = 1.0 / (self.batch * self.seq * micro.len()) as f32;
        for (i, windows) in micro.iter().enumerate() {
            self.check_windows(windows);
            self.gpu.upload(windows, &mut self.s.win)?;
            self.forward(grad_scale, i)?;
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
        Ok(())
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

    /// The mean loss from the micro-batch sums in `scalars` (one wait), and the scalar after them.
    fn read_loss(&self, micro: usize) -> Result<(f64, f32), Error> {
        let sums = self.gpu.download(&self.s.scalars, micro + 1)?;
        let total: f64 = sums[..micro].iter().map(|&x| x as f64).sum();
        Ok((total / (self.batch * self.seq * micro) as f64, sums[micro]))
    }

    /// Gradients of the mean loss of `micro` left in `grads` (see [`Engine::gradients`]);
    /// returns the loss.
    pub fn forward_backward(&mut self, micro: &[Vec<u16>]) -> Result<f64, Error> {
        self.accumulate(micro)?;
        Ok(self.read_loss(micro.len())?.0)
    }

    /// One optimizer step: forward and backward of `micro`, clipping by the global gradient
    /// norm, AdamW at `lr`. Returns the mean loss and the norm before clipping (one wait).
    pub fn step(&mut self, micro: &[Vec<u16>], lr: f64) -> Result<(f64, f64), Error> {
        self.gpu.profile_start()?;
        self.accumulate(micro)?;
        let norm_slot = micro.len();
        self.sum(self.grads.ptr, self.layout.total, true, norm_slot)?;
        self.optimizer_step += 1;
        let o = &self.optim;
        let tstep = self.optimizer_step as i32;
        let (bc1, bc2) = (1.0 - o.beta1.powi(tstep), 1.0 - o.beta2.powi(tstep));
        for (start, end, wd) in [
            (0, self.layout.decay_end, o.weight_decay),
            (self.layout.decay_end, self.layout.total, 0.0),
        ] {
            let len = end - start;
            self.gpu.launch(
                "adamw",
                ((self.gpu.sms * 8).min(blocks(len, 256)).max(1), 1, 1),
                256,
                0,
                &[
                    Arg::P(self.params.at(start)),
                    Arg::P(self.params16.at(start)),
                    Arg::P(self.grads.at(start)),
                    Arg::P(self.exp_avg.at(start)),
                    Arg::P(self.exp_avg_sq.at(start)),
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
        let (loss, norm_sq) = self.read_loss(micro.len())?;
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
        self.forward(0.0, 0)?;
        self.gpu.download(&self.s.losses, self.batch * self.seq)
    }

    /// Mean loss of one micro-batch of windows, no gradients.
    pub fn loss(&mut self, windows: &[u16]) -> Result<f64, Error> {
        self.gpu.bind()?;
        self.check_windows(windows);
        self.gpu.upload(windows, &mut self.s.win)?;
        self.forward(0.0, 0)?;
        let sum = self.gpu.download(&self.s.scalars, 1)?[0];
        Ok(sum as f64 / (self.batch * self.seq) as f64)
    }
}

/// `[rows, cols]` row-major to `[cols, rows]`.
fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}
