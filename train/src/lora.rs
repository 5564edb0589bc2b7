//! LoRA (Hu et al. 2021) on Falcon's projections, computed as HF `peft` computes it:
//! `y = x W + dropout(x) A B * alpha / r`, with `A` drawn as PEFT draws `lora_A`
//! (`kaiming_uniform(a=sqrt(5))`, i.e. U(+-1/sqrt(d_in))) and `B` zero, so a fresh adapter
//! changes nothing.
//!
//! Every projection is a [`FalconLinear`]: its base weight in f32 (trainable, or frozen by
//! [`FalconForCausalLM::with_lora`]) or frozen in NF4 ([`FalconForCausalLM::quantize_nf4`],
//! QLoRA), plus an optional [`Lora`] adapter. Adapters are named by the HF module they sit on
//! (`query_key_value`, `dense`, `dense_h_to_4h`, `dense_4h_to_h`), as PEFT's `target_modules`.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Initializer};
use burn::tensor::backend::Backend;
use burn::tensor::{FloatDType, Tensor, TensorPrimitive};
use serde::{Deserialize, Serialize};

use crate::attention::FalconBackend;
use crate::model::{to_dtype, FalconAttention, FalconForCausalLM, FalconMlp};
use crate::nf4::{Nf4Tensor, Nf4Weight};

/// The projections an adapter can target, by HF module name.
pub const TARGET_MODULES: [&str; 4] =
    ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"];

/// LoRA hyper-parameters (PEFT's `LoraConfig` names in the adapter folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: usize,
    /// The update is scaled by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the adapter's input (training only).
    pub dropout: f64,
    /// HF module names that get an adapter (a subset of [`TARGET_MODULES`]).
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    /// QLoRA's Falcon recipe: r 64, alpha 16, dropout 0.1, every projection.
    fn default() -> Self {
        Self {
            r: 64,
            alpha: 16.0,
            dropout: 0.1,
            target_modules: TARGET_MODULES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    /// Checks the values; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if self.r == 0 {
            return Err("lora.r must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!(
                "lora.dropout must be in [0, 1), got {}",
                self.dropout
            ));
        }
        if self.target_modules.is_empty() {
            return Err("lora.target_modules is empty".into());
        }
        for t in &self.target_modules {
            if !TARGET_MODULES.contains(&t.as_str()) {
                return Err(format!(
                    "lora.target_modules: unknown module `{t}` (Falcon has {TARGET_MODULES:?})"
                ));
            }
        }
        Ok(())
    }

    /// `alpha / r`.
    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }
}

/// A low-rank update `dropout(x) A B * scale`.
#[derive(Module, Debug)]
pub struct Lora<B: Backend> {
    /// `[d_in, r]` (PEFT's `lora_A.weight` transposed).
    pub a: Param<Tensor<B, 2>>,
    /// `[r, d_out]` (PEFT's `lora_B.weight` transposed).
    pub b: Param<Tensor<B, 2>>,
    dropout: Dropout,
    #[module(skip)]
    scale: f64,
}

impl<B: Backend> Lora<B> {
    /// A fresh adapter: `A` uniform in +-1/sqrt(d_in), `B` zero.
    fn new(d_in: usize, d_out: usize, config: &LoraConfig, device: &B::Device) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let a = Initializer::Uniform {
            min: -bound,
            max: bound,
        }
        .init([d_in, config.r], device);
        let b = Initializer::Zeros.init([config.r, d_out], device);
        Self::from_parts(a, b, config)
    }

    pub(crate) fn from_parts(
        a: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 2>>,
        config: &LoraConfig,
    ) -> Self {
        Self {
            a,
            b,
            dropout: DropoutConfig::new(config.dropout).init(),
            scale: config.scale(),
        }
    }

    /// `A B * scale`, `[d_in, d_out]`: what merging adds to the base weight.
    pub fn delta(&self) -> Tensor<B, 2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }
}

/// One bias-free projection: the base weight (f32 or NF4) and an optional adapter.
#[derive(Module, Debug)]
pub struct FalconLinear<B: Backend> {
    /// `[d_in, d_out]` (Burn's layout) while the base is held in f32.
    pub weight: Option<Param<Tensor<B, 2>>>,
    /// The frozen base in NF4, HF's `[d_out, d_in]` layout (as bitsandbytes quantizes it).
    pub nf4: Option<Nf4Weight<B>>,
    /// The adapter.
    pub lora: Option<Lora<B>>,
}

impl<B: Backend> FalconLinear<B> {
    /// An f32 projection drawn as GPT-2 / HF `_init_weights` do: N(0, 0.02).
    pub(crate) fn new(d_in: usize, d_out: usize, device: &B::Device) -> Self {
        let weight = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        }
        .init([d_in, d_out], device);
        Self {
            weight: Some(weight),
            nf4: None,
            lora: None,
        }
    }

    /// `[d_in, d_out]`.
    pub fn dims(&self) -> [usize; 2] {
        match (&self.weight, &self.nf4) {
            (Some(w), _) => w.dims(),
            (None, Some(q)) => {
                let [d_out, d_in] = q.dims();
                [d_in, d_out]
            }
            (None, None) => unreachable!("a projection has a base weight"),
        }
    }

    /// The base weight `[d_in, d_out]`, f32 (dequantized from NF4 if need be).
    pub fn base_weight(&self) -> Tensor<B, 2> {
        match (&self.weight, &self.nf4) {
            (Some(w), _) => to_dtype(w.val(), FloatDType::F32),
            (None, Some(q)) => q.dequantize().transpose(),
            (None, None) => unreachable!("a projection has a base weight"),
        }
    }
}

impl<B: FalconBackend> FalconLinear<B> {
    /// `x W (+ dropout(x) A B * scale)` in `dtype`.
    ///
    /// # Shapes
    /// - x: `[B, T, d_in]` -> `[B, T, d_out]`
    pub fn forward(&self, x: Tensor<B, 3>, dtype: FloatDType) -> Tensor<B, 3> {
        let base = match (&self.weight, &self.nf4) {
            (Some(w), _) => x.clone().matmul(to_dtype(w.val(), dtype).unsqueeze()),
            (None, Some(q)) => Tensor::from_primitive(TensorPrimitive::Float(B::nf4_matmul(
                x.clone().into_primitive().tensor(),
                q.parts(),
            ))),
            (None, None) => unreachable!("a projection has a base weight"),
        };
        match &self.lora {
            None => base,
            Some(lora) => {
                let h = lora.dropout.forward(x);
                let h = h.matmul(to_dtype(lora.a.val(), dtype).unsqueeze());
                let h = h.matmul(to_dtype(lora.b.val(), dtype).unsqueeze());
                base + h.mul_scalar(lora.scale)
            }
        }
    }
}

/// A block's projections by their path inside the block, in checkpoint order (that of
/// [`TARGET_MODULES`]).
pub(crate) const PROJECTION_PATHS: [&str; 4] = [
    "self_attention.query_key_value",
    "self_attention.dense",
    "mlp.dense_h_to_4h",
    "mlp.dense_4h_to_h",
];

/// A block's projections with their [`PROJECTION_PATHS`].
pub(crate) fn layer_linears<'a, B: Backend>(
    a: &'a mut FalconAttention<B>,
    m: &'a mut FalconMlp<B>,
) -> [(&'static str, &'a mut FalconLinear<B>); 4] {
    let [qkv, dense, fc1, fc2] = PROJECTION_PATHS;
    [
        (qkv, &mut a.query_key_value),
        (dense, &mut a.dense),
        (fc1, &mut m.dense_h_to_4h),
        (fc2, &mut m.dense_4h_to_h),
    ]
}

impl<B: FalconBackend> FalconForCausalLM<B> {
    /// Every projection with its HF module path (`transformer.h.{i}.self_attention.dense`, ...)
    /// and module name (`dense`), in checkpoint order.
    pub fn linears_mut(&mut self) -> Vec<(String, &'static str, &mut FalconLinear<B>)> {
        let mut out = Vec::new();
        for (i, layer) in self.transformer.h.iter_mut().enumerate() {
            for (path, linear) in layer_linears(&mut layer.self_attention, &mut layer.mlp) {
                let name = path.rsplit('.').next().expect("a path has a last part");
                out.push((format!("transformer.h.{i}.{path}"), name, linear));
            }
        }
        out
    }

    /// Freezes every base parameter and puts a fresh adapter on each targeted projection:
    /// afterwards only adapters get gradients (and so optimizer state).
    pub fn with_lora(self, config: &LoraConfig, device: &B::Device) -> Self {
        let mut model = self.no_grad();
        for (_, name, linear) in model.linears_mut() {
            if config.target_modules.iter().any(|t| t == name) {
                let [d_in, d_out] = linear.dims();
                linear.lora = Some(Lora::new(d_in, d_out, config, device));
            }
        }
        model
    }

    /// Holds every projection weight in `dtype`: LoRA on a bf16 base, as peft loads one (half
    /// of f32's memory; the forward computes in bf16 anyway). For a frozen base: the weights
    /// become new parameters.
    pub fn base_in(mut self, dtype: FloatDType) -> Self {
        for (_, _, linear) in self.linears_mut() {
            if let Some(w) = linear.weight.as_mut() {
                if w.val().dtype() != dtype.into() {
                    *w = Param::from_tensor(w.val().cast(dtype).detach());
                }
            }
        }
        self
    }

    /// Replaces every f32 projection weight by its NF4 form (QLoRA: the frozen base in 4 bits,
    /// dequantized for each matmul). Embeddings and LayerNorms stay f32, as in QLoRA.
    pub fn quantize_nf4(mut self) -> Self {
        for (_, _, linear) in self.linears_mut() {
            if let Some(w) = linear.weight.take() {
                let device = w.device();
                let [d_in, d_out] = w.dims();
                let hf = w
                    .val()
                    .transpose()
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .expect("f32 weight");
                let q = Nf4Tensor::quantize(&hf, &[d_out, d_in]);
                linear.nf4 = Some(Nf4Weight::new(&q, &device));
            }
        }
        self
    }

    /// Folds every adapter into its base weight (`W + A B * scale`, f32; an NF4 base is
    /// dequantized first) and drops the adapters: a plain model that computes what the adapted
    /// one did.
    pub fn merge_lora(mut self) -> Self {
        for (_, _, linear) in self.linears_mut() {
            if let Some(lora) = linear.lora.take() {
                let merged = linear.base_weight() + lora.delta();
                linear.weight = Some(Param::from_tensor(merged.detach()));
                linear.nf4 = None;
            }
        }
        self
    }
}
