//! Falcon, as HF transformers' `modeling_falcon.py` computes it.
//!
//! Read top to bottom like nanoGPT's `model.py`: RoPE, `FalconAttention`, `FalconMlp`,
//! `FalconDecoderLayer`, `FalconModel`, `FalconForCausalLM`. Names follow HF so checkpoints map
//! plainly (`transformer.h.{i}.self_attention.query_key_value.weight`, ...; see `hf.rs`).
//!
//! - Rotary embeddings (theta 1e4) in the `rotate_half` form: the two halves of a head are
//!   rotated together, not interleaved pairs.
//! - One fused `query_key_value` matmul whose columns are split exactly as
//!   `FalconAttention._split_heads` does ([`QkvLayout`]); multi-query (falcon-7b) or grouped
//!   K/V heads (falcon-40b), K/V broadcast to every query head of their group.
//! - Parallel residual: `x + attn(ln(x)) + mlp(ln(x))`, one shared LayerNorm (7b) or
//!   `ln_attn` + `ln_mlp` (40b); MLP `4d` wide with exact (erf) GELU; no linear biases.
//! - The LM head is the word embedding matrix, transposed (tied).
//!
//! Mixed precision: parameters stay f32 (the master weights the optimizer updates); a forward
//! pass in `bf16` casts each weight as it is used, so gradients flow back to f32 through the
//! casts. LayerNorm and the loss run in f32, as autocast does.

use burn::module::{Module, ModuleVisitor, Param};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::activation::{gelu, log_softmax};
use burn::tensor::backend::Backend;
use burn::tensor::module::embedding;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

use crate::attention::{causal_attention, FalconBackend};
use crate::config::{FalconConfig, QkvLayout};
use crate::lora::FalconLinear;

/// Casts `x` to `dtype` unless it already has it (a no-op cast would still be an autodiff node).
pub(crate) fn to_dtype<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dtype: FloatDType,
) -> Tensor<B, D> {
    if x.dtype() == dtype.into() {
        x
    } else {
        x.cast(dtype)
    }
}

/// LayerNorm in f32 (as autocast runs it), result back in `dtype`.
fn layer_norm<B: Backend>(ln: &LayerNorm<B>, x: Tensor<B, 3>, dtype: FloatDType) -> Tensor<B, 3> {
    to_dtype(ln.forward(to_dtype(x, FloatDType::F32)), dtype)
}

// ---------------------------------------------------------------------------------------------
// Rotary position embedding
// ---------------------------------------------------------------------------------------------

/// `cos` and `sin` of RoPE for positions `start..start + len`, each `[len, head_dim]`:
/// `inv_freq[i] = theta^(-2i / head_dim)`, the frequencies repeated twice (`cat(freqs, freqs)`).
pub fn rope_cos_sin<B: Backend>(
    config: &FalconConfig,
    start: usize,
    len: usize,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let dim = config.head_dim();
    let inv_freq: Vec<f32> = (0..dim / 2)
        .map(|i| 1.0 / (config.rope_theta as f32).powf((2 * i) as f32 / dim as f32))
        .collect();
    let inv_freq = Tensor::<B, 1>::from_data(TensorData::new(inv_freq, [dim / 2]), device);
    let positions = Tensor::<B, 1, Int>::arange(start as i64..(start + len) as i64, device).float();
    let freqs = positions.reshape([len, 1]) * inv_freq.reshape([1, dim / 2]); // [T, hd/2]
    let emb = Tensor::cat(vec![freqs.clone(), freqs], 1); // [T, hd]
    (emb.clone().cos(), emb.sin())
}

/// `x * cos + rotate_half(x) * sin`, `rotate_half(x) = cat(-x2, x1)` over the halves of a head.
///
/// # Shapes
/// - x: `[B, heads, T, hd]`; cos, sin: `[T, hd]`
fn apply_rotary<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    let hd = x.dims()[3];
    let x1 = x.clone().narrow(3, 0, hd / 2);
    let x2 = x.clone().narrow(3, hd / 2, hd / 2);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * cos.clone().unsqueeze::<4>() + rotated * sin.clone().unsqueeze::<4>()
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

/// Keys and values of the positions seen so far, for one layer: each `[B, kv_heads, S, hd]`,
/// after RoPE (as HF's cache holds them).
#[derive(Clone, Debug)]
pub struct KvCache<B: Backend> {
    key: Tensor<B, 4>,
    value: Tensor<B, 4>,
}

impl<B: Backend> KvCache<B> {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.key.dims()[2]
    }

    /// Whether no position is held yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This cache (batch 1) repeated for `batch` rows, so that several continuations can read
    /// one prefix.
    pub fn repeat_batch(&self, batch: usize) -> Self {
        Self {
            key: self.key.clone().repeat_dim(0, batch),
            value: self.value.clone().repeat_dim(0, batch),
        }
    }
}

/// Causal self-attention with one fused QKV projection.
#[derive(Module, Debug)]
pub struct FalconAttention<B: Backend> {
    /// `[d, (heads + 2 kv_heads) hd]`, columns in HF's fused order.
    pub query_key_value: FalconLinear<B>,
    /// `[d, d]` output projection.
    pub dense: FalconLinear<B>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
    #[module(skip)]
    layout: QkvLayout,
}

impl<B: FalconBackend> FalconAttention<B> {
    fn new(config: &FalconConfig, device: &B::Device) -> Self {
        let d = config.hidden_size;
        Self {
            query_key_value: FalconLinear::new(d, config.qkv_dim(), device),
            dense: FalconLinear::new(d, d, device),
            num_heads: config.num_attention_heads,
            num_kv_heads: config.kv_heads(),
            head_dim: config.head_dim(),
            layout: config.qkv_layout(),
        }
    }

    /// Splits the fused projection as `_split_heads` does.
    ///
    /// # Shapes
    /// - qkv: `[B, T, (nh + 2 nkv) hd]` -> q `[B, T, nh, hd]`, k and v `[B, T, nkv, hd]`
    fn split_heads(&self, qkv: Tensor<B, 3>) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let [b, t, _] = qkv.dims();
        let (nh, nkv, hd) = (self.num_heads, self.num_kv_heads, self.head_dim);
        match self.layout {
            QkvLayout::Grouped => {
                // Per K/V group: its nh/nkv query heads, then k, then v.
                let r = nh / nkv;
                let qkv = qkv.reshape([b, t, nkv, r + 2, hd]);
                let q = qkv.clone().narrow(3, 0, r).reshape([b, t, nh, hd]);
                let k = qkv.clone().narrow(3, r, 1).reshape([b, t, nkv, hd]);
                let v = qkv.narrow(3, r + 1, 1).reshape([b, t, nkv, hd]);
                (q, k, v)
            }
            QkvLayout::MultiQuery => {
                // All query heads, then the one k head, then the one v head.
                let qkv = qkv.reshape([b, t, nh + 2, hd]);
                (
                    qkv.clone().narrow(2, 0, nh),
                    qkv.clone().narrow(2, nh, 1),
                    qkv.narrow(2, nh + 1, 1),
                )
            }
            QkvLayout::PerHead => {
                // Per head q, k, v interleaved.
                let qkv = qkv.reshape([b, t, nh, 3, hd]);
                let part = |i| qkv.clone().narrow(3, i, 1).reshape([b, t, nh, hd]);
                (part(0), part(1), part(2))
            }
        }
    }

    /// Broadcasts `[B, nkv, S, hd]` to `[B, nh, S, hd]`: query head `h` reads group `h / (nh/nkv)`.
    fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let [b, nkv, s, hd] = x.dims();
        let r = self.num_heads / nkv;
        if r == 1 {
            return x;
        }
        x.unsqueeze_dim::<5>(2)
            .expand([b, nkv, r, s, hd])
            .reshape([b, self.num_heads, s, hd])
    }

    /// # Shapes
    /// - x: `[B, T, d]`; cos, sin: `[T, hd]` for the positions of x; returns `[B, T, d]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 2>,
        sin: &Tensor<B, 2>,
        cache: Option<&mut KvCache<B>>,
        dtype: FloatDType,
    ) -> Tensor<B, 3> {
        let [b, t, d] = x.dims();
        let (q, k, v) = self.split_heads(self.query_key_value.forward(x, dtype));
        let q = apply_rotary(q.swap_dims(1, 2), cos, sin); // [B, nh, T, hd]
        let k = apply_rotary(k.swap_dims(1, 2), cos, sin); // [B, nkv, T, hd]
        let v = v.swap_dims(1, 2); // [B, nkv, T, hd]
        let (k, v) = match cache {
            Some(cache) => {
                cache.key = Tensor::cat(vec![cache.key.clone(), k], 2);
                cache.value = Tensor::cat(vec![cache.value.clone(), v], 2);
                (cache.key.clone(), cache.value.clone()) // [B, nkv, S, hd]
            }
            None => (k, v),
        };
        let y = causal_attention(q, self.repeat_kv(k), self.repeat_kv(v)); // [B, nh, T, hd]
        let y = y.swap_dims(1, 2).reshape([b, t, d]);
        self.dense.forward(y, dtype)
    }

    /// An empty cache for this layer.
    fn empty_cache(&self, batch: usize, device: &B::Device, dtype: FloatDType) -> KvCache<B> {
        let empty = || {
            to_dtype(
                Tensor::zeros([batch, self.num_kv_heads, 0, self.head_dim], device),
                dtype,
            )
        };
        KvCache {
            key: empty(),
            value: empty(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// MLP
// ---------------------------------------------------------------------------------------------

/// `dense_4h_to_h(gelu(dense_h_to_4h(x)))`, exact (erf) GELU.
#[derive(Module, Debug)]
pub struct FalconMlp<B: Backend> {
    /// `[d, 4d]`.
    pub dense_h_to_4h: FalconLinear<B>,
    /// `[4d, d]`.
    pub dense_4h_to_h: FalconLinear<B>,
}

impl<B: FalconBackend> FalconMlp<B> {
    fn new(config: &FalconConfig, device: &B::Device) -> Self {
        Self {
            dense_h_to_4h: FalconLinear::new(config.hidden_size, config.ffn_hidden_size, device),
            dense_4h_to_h: FalconLinear::new(config.ffn_hidden_size, config.hidden_size, device),
        }
    }

    /// # Shapes
    /// - x: `[B, T, d]` -> `[B, T, d]`
    pub fn forward(&self, x: Tensor<B, 3>, dtype: FloatDType) -> Tensor<B, 3> {
        let h = gelu(self.dense_h_to_4h.forward(x, dtype)); // [B, T, 4d]
        self.dense_4h_to_h.forward(h, dtype)
    }
}

// ---------------------------------------------------------------------------------------------
// Decoder block
// ---------------------------------------------------------------------------------------------

/// One block: `x + attn(ln_attn(x)) + mlp(ln_mlp(x))` (one shared LayerNorm in falcon-7b).
#[derive(Module, Debug)]
pub struct FalconDecoderLayer<B: Backend> {
    /// Shared LayerNorm (falcon-7b style, or `num_ln_in_parallel_attn = 1`).
    pub input_layernorm: Option<LayerNorm<B>>,
    /// LayerNorm before attention (falcon-40b style).
    pub ln_attn: Option<LayerNorm<B>>,
    /// LayerNorm before the MLP (falcon-40b style).
    pub ln_mlp: Option<LayerNorm<B>>,
    /// Attention.
    pub self_attention: FalconAttention<B>,
    /// MLP.
    pub mlp: FalconMlp<B>,
}

impl<B: FalconBackend> FalconDecoderLayer<B> {
    fn new(config: &FalconConfig, device: &B::Device) -> Self {
        let ln = || {
            Some(
                LayerNormConfig::new(config.hidden_size)
                    .with_epsilon(config.layer_norm_epsilon)
                    .init(device),
            )
        };
        let two = config.two_layernorms();
        Self {
            input_layernorm: if two { None } else { ln() },
            ln_attn: if two { ln() } else { None },
            ln_mlp: if two { ln() } else { None },
            self_attention: FalconAttention::new(config, device),
            mlp: FalconMlp::new(config, device),
        }
    }

    /// # Shapes
    /// - x: `[B, T, d]` -> `[B, T, d]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        cos: &Tensor<B, 2>,
        sin: &Tensor<B, 2>,
        cache: Option<&mut KvCache<B>>,
        dtype: FloatDType,
    ) -> Tensor<B, 3> {
        let (attn_in, mlp_in) = match (&self.ln_attn, &self.ln_mlp, &self.input_layernorm) {
            (Some(ln_attn), Some(ln_mlp), _) => (
                layer_norm(ln_attn, x.clone(), dtype),
                layer_norm(ln_mlp, x.clone(), dtype),
            ),
            (_, _, Some(ln)) => {
                let h = layer_norm(ln, x.clone(), dtype);
                (h.clone(), h)
            }
            _ => unreachable!("a block is built with one or two LayerNorms"),
        };
        let attn = self.self_attention.forward(attn_in, cos, sin, cache, dtype);
        x + attn + self.mlp.forward(mlp_in, dtype)
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

/// Embedding, blocks, final LayerNorm: `transformer.*` in HF checkpoints.
#[derive(Module, Debug)]
pub struct FalconModel<B: Backend> {
    /// `[vocab, d]` word embeddings, also the LM head.
    pub word_embeddings: Param<Tensor<B, 2>>,
    /// The decoder blocks.
    pub h: Vec<FalconDecoderLayer<B>>,
    /// Final LayerNorm.
    pub ln_f: LayerNorm<B>,
}

/// Falcon with its tied LM head. The config lives beside the module (not in it) so that the
/// module is only parameters.
#[derive(Module, Debug)]
pub struct FalconForCausalLM<B: Backend> {
    /// The transformer.
    pub transformer: FalconModel<B>,
    #[module(skip)]
    config: FalconConfig,
}

impl FalconConfig {
    /// A randomly initialised model: N(0, 0.02) weights, LayerNorm 1 / 0 (HF `_init_weights`).
    ///
    /// Every parameter is drawn here, not on first use: Burn's parameters are lazy, and a clone
    /// taken before first use draws its own values, so a fresh model saved (or copied to the
    /// CUDA engine) through a clone would not be the model that trains.
    pub fn init<B: FalconBackend>(&self, device: &B::Device) -> FalconForCausalLM<B> {
        struct Draw;
        impl<B: Backend> ModuleVisitor<B> for Draw {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                let _ = param.val();
            }
        }
        let model = self.undrawn::<B>(device);
        model.visit(&mut Draw);
        model
    }

    /// The model with no parameter drawn yet, for loaders that set every one: drawing a 7B
    /// model only to overwrite it cost 26 GB of device memory (kept by the allocator's pool)
    /// and a third of the load time.
    pub(crate) fn undrawn<B: FalconBackend>(&self, device: &B::Device) -> FalconForCausalLM<B> {
        let word_embeddings = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        }
        .init([self.vocab_size, self.hidden_size], device);
        FalconForCausalLM {
            transformer: FalconModel {
                word_embeddings,
                h: (0..self.num_hidden_layers)
                    .map(|_| FalconDecoderLayer::new(self, device))
                    .collect(),
                ln_f: LayerNormConfig::new(self.hidden_size)
                    .with_epsilon(self.layer_norm_epsilon)
                    .init(device),
            },
            config: self.clone(),
        }
    }
}

impl<B: Backend> FalconForCausalLM<B> {
    /// The model's shape.
    pub fn config(&self) -> &FalconConfig {
        &self.config
    }
}

impl<B: FalconBackend> FalconForCausalLM<B> {
    /// Final hidden states after `ln_f`, in f32.
    ///
    /// # Shapes
    /// - ids: `[B, T]`, the tokens at positions `start..start + T` -> `[B, T, d]`
    fn hidden(
        &self,
        ids: Tensor<B, 2, Int>,
        start: usize,
        mut caches: Option<&mut [KvCache<B>]>,
        dtype: FloatDType,
    ) -> Tensor<B, 3> {
        let [_, t] = ids.dims();
        let device = ids.device();
        let wte = to_dtype(self.transformer.word_embeddings.val(), dtype);
        let mut x = embedding(wte, ids); // [B, T, d]
        let (cos, sin) = rope_cos_sin::<B>(&self.config, start, t, &device);
        let (cos, sin) = (to_dtype(cos, dtype), to_dtype(sin, dtype));
        for (i, layer) in self.transformer.h.iter().enumerate() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            x = layer.forward(x, &cos, &sin, cache, dtype);
        }
        self.transformer.ln_f.forward(to_dtype(x, FloatDType::F32))
    }

    /// Logits over the vocabulary, f32, computed in `dtype`.
    ///
    /// # Shapes
    /// - ids: `[B, T]` -> `[B, T, vocab]`
    pub fn forward(&self, ids: Tensor<B, 2, Int>, dtype: FloatDType) -> Tensor<B, 3> {
        let h = self.hidden(ids, 0, None, dtype);
        self.lm_head(h, dtype)
    }

    /// `h @ wte^T` (the tied head), in `dtype`, returned as f32.
    fn lm_head(&self, h: Tensor<B, 3>, dtype: FloatDType) -> Tensor<B, 3> {
        let wte = to_dtype(self.transformer.word_embeddings.val(), dtype);
        let logits = to_dtype(h, dtype).matmul(wte.transpose().unsqueeze());
        to_dtype(logits, FloatDType::F32)
    }

    /// Log-probability of each target, f32.
    ///
    /// # Shapes
    /// - ids, targets: `[B, T]` -> `[B, T]`
    fn target_logp(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        dtype: FloatDType,
    ) -> Tensor<B, 2> {
        let logits = self.forward(ids, dtype); // [B, T, V]
        let logp = log_softmax(logits, 2);
        logp.gather(2, targets.unsqueeze_dim(2)).squeeze_dim(2) // [B, T]
    }

    /// Mean next-token cross entropy (natural log), in f32.
    ///
    /// # Shapes
    /// - ids, targets: `[B, T]` -> `[1]`
    pub fn loss(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        dtype: FloatDType,
    ) -> Tensor<B, 1> {
        self.target_logp(ids, targets, dtype).mean().neg()
    }

    /// Cross entropy averaged over the targets where `mask` is 1 (fine-tuning trains on the
    /// responses only).
    ///
    /// # Shapes
    /// - ids, targets, mask: `[B, T]` -> `[1]`
    pub fn masked_loss(
        &self,
        ids: Tensor<B, 2, Int>,
        targets: Tensor<B, 2, Int>,
        mask: Tensor<B, 2>,
        dtype: FloatDType,
    ) -> Tensor<B, 1> {
        let count = mask.clone().sum();
        (self.target_logp(ids, targets, dtype) * mask)
            .sum()
            .div(count)
            .neg()
    }

    /// One KV cache per layer, empty.
    pub fn empty_caches(
        &self,
        batch: usize,
        device: &B::Device,
        dtype: FloatDType,
    ) -> Vec<KvCache<B>> {
        self.transformer
            .h
            .iter()
            .map(|l| l.self_attention.empty_cache(batch, device, dtype))
            .collect()
    }

    /// Feeds `ids` at positions `start..` through the model, extending `caches`; returns the
    /// logits of the last position.
    ///
    /// # Shapes
    /// - ids: `[B, T]` -> `[B, vocab]`
    pub fn forward_cached(
        &self,
        ids: Tensor<B, 2, Int>,
        start: usize,
        caches: &mut [KvCache<B>],
        dtype: FloatDType,
    ) -> Tensor<B, 2> {
        let [b, t] = ids.dims();
        let h = self
            .hidden(ids, start, Some(caches), dtype)
            .narrow(1, t - 1, 1); // [B, 1, d]
        self.lm_head(h, dtype).reshape([b, self.config.vocab_size])
    }

    /// Like [`forward_cached`](Self::forward_cached), but the logits of every position of
    /// `ids` (scoring continuations after a cached prefix).
    ///
    /// # Shapes
    /// - ids: `[B, T]` -> `[B, T, vocab]`
    pub fn forward_cached_all(
        &self,
        ids: Tensor<B, 2, Int>,
        start: usize,
        caches: &mut [KvCache<B>],
        dtype: FloatDType,
    ) -> Tensor<B, 3> {
        let h = self.hidden(ids, start, Some(caches), dtype);
        self.lm_head(h, dtype)
    }
}
