//! AdamW with decay on matrices only, global-norm gradient clipping, and the learning-rate
//! schedule (linear warmup, cosine decay to `min_lr`): nanoGPT's `configure_optimizers` and
//! `get_lr`.
//!
//! Burn's own `AdamW` decays every parameter and clips each tensor's norm separately; GPT
//! training decays only tensors of rank >= 2 (no LayerNorm weights or biases) and clips the norm
//! of all gradients together (`torch.nn.utils.clip_grad_norm_`), so this is a small optimizer of
//! our own. Its state (first and second moments, f32, flattened) is keyed by parameter and
//! saved by the checkpoint under the parameter's HF name.

use std::collections::HashMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{ElementConversion, Tensor};
use serde::{Deserialize, Serialize};

/// AdamW hyper-parameters (PyTorch's names and GPT-3's values).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWConfig {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay, applied to tensors of rank >= 2 only.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 turns clipping off).
    pub grad_clip: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            grad_clip: 1.0,
        }
    }
}

/// Linear warmup to `max_lr` over `warmup_steps`, cosine decay to `min_lr` at `decay_steps`,
/// `min_lr` after (nanoGPT's `get_lr`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LrSchedule {
    /// Peak learning rate.
    pub max_lr: f64,
    /// Final learning rate (nanoGPT: max_lr / 10).
    pub min_lr: f64,
    /// Warmup steps.
    pub warmup_steps: usize,
    /// Step at which the cosine reaches `min_lr`; 0 means the run's total steps.
    pub decay_steps: usize,
}

impl Default for LrSchedule {
    fn default() -> Self {
        Self {
            max_lr: 6e-4,
            min_lr: 6e-5,
            warmup_steps: 100,
            decay_steps: 0,
        }
    }
}

impl LrSchedule {
    /// The learning rate at (0-based) `step` of a run of `total_steps`.
    pub fn lr(&self, step: usize, total_steps: usize) -> f64 {
        let decay = if self.decay_steps == 0 {
            total_steps
        } else {
            self.decay_steps
        };
        if step < self.warmup_steps {
            return self.max_lr * (step + 1) as f64 / (self.warmup_steps + 1) as f64;
        }
        if step >= decay || decay <= self.warmup_steps {
            return self.min_lr;
        }
        let ratio = (step - self.warmup_steps) as f64 / (decay - self.warmup_steps) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.max_lr - self.min_lr)
    }
}

/// First and second moments of one parameter, flattened.
#[derive(Clone, Debug)]
pub(crate) struct Moments<B: Backend> {
    pub(crate) exp_avg: Tensor<B, 1>,
    pub(crate) exp_avg_sq: Tensor<B, 1>,
}

/// The optimizer: hyper-parameters, the step count and per-parameter moments.
#[derive(Debug)]
pub struct AdamW<B: AutodiffBackend> {
    config: AdamWConfig,
    /// Updates done so far (the `t` of bias correction).
    pub(crate) step: usize,
    pub(crate) moments: HashMap<ParamId, Moments<B::InnerBackend>>,
}

impl<B: AutodiffBackend> AdamW<B> {
    /// A fresh optimizer.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            step: 0,
            moments: HashMap::new(),
        }
    }

    /// A copy with the moments on `device`.
    pub fn to_device(&self, device: &B::Device) -> Self {
        let moments = self
            .moments
            .iter()
            .map(|(id, m)| {
                let m = Moments {
                    exp_avg: m.exp_avg.clone().to_device(device),
                    exp_avg_sq: m.exp_avg_sq.clone().to_device(device),
                };
                (*id, m)
            })
            .collect();
        Self {
            config: self.config.clone(),
            step: self.step,
            moments,
        }
    }

    /// The global L2 norm of `grads` over `module`'s parameters (one device sync).
    pub fn grad_norm<M: AutodiffModule<B>>(module: &M, grads: &GradientsParams) -> f64 {
        struct Norm<'a, B: AutodiffBackend> {
            grads: &'a GradientsParams,
            sum: Option<Tensor<B::InnerBackend, 1>>,
        }
        impl<B: AutodiffBackend> ModuleVisitor<B> for Norm<'_, B> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
                if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                    let sq = g.cast(burn::tensor::FloatDType::F32).square().sum();
                    self.sum = Some(match self.sum.take() {
                        Some(s) => s + sq,
                        None => sq,
                    });
                }
            }
        }
        let mut visitor = Norm::<B> { grads, sum: None };
        module.visit(&mut visitor);
        visitor
            .sum
            .map_or(0.0, |s| s.into_scalar().elem::<f64>().sqrt())
    }

    /// Clips `grads` to `grad_clip` by global norm, then takes one AdamW step at `lr`.
    /// Returns the updated module and the gradient norm before clipping.
    pub fn step<M: AutodiffModule<B>>(
        &mut self,
        lr: f64,
        module: M,
        mut grads: GradientsParams,
    ) -> (M, f64) {
        let norm = Self::grad_norm(&module, &grads);
        let clip = self.config.grad_clip;
        let scale = if clip > 0.0 && norm > clip {
            clip / (norm + 1e-6)
        } else {
            1.0
        };
        self.step += 1;
        let mut mapper = Update::<B> {
            config: &self.config,
            t: self.step as i32,
            lr,
            scale,
            grads: &mut grads,
            moments: &mut self.moments,
        };
        (module.map(&mut mapper), norm)
    }
}

struct Update<'a, B: AutodiffBackend> {
    config: &'a AdamWConfig,
    t: i32,
    lr: f64,
    scale: f64,
    grads: &'a mut GradientsParams,
    moments: &'a mut HashMap<ParamId, Moments<B::InnerBackend>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let c = self.config;
        let shape = tensor.shape();
        let n = shape.num_elements();
        let g = grad.reshape([n]).mul_scalar(self.scale);
        let (m, v) = match self.moments.remove(&id) {
            Some(s) => (s.exp_avg, s.exp_avg_sq),
            None => (g.zeros_like(), g.zeros_like()),
        };
        let m = m.mul_scalar(c.beta1) + g.clone().mul_scalar(1.0 - c.beta1);
        let v = v.mul_scalar(c.beta2) + g.square().mul_scalar(1.0 - c.beta2);
        let m_hat = m.clone().div_scalar(1.0 - c.beta1.powi(self.t));
        let v_hat = v.clone().div_scalar(1.0 - c.beta2.powi(self.t));
        // Decoupled decay on matrices (embeddings, projections) only: rank >= 2.
        let decay = if D >= 2 { c.weight_decay } else { 0.0 };
        let x = tensor.inner().reshape([n]);
        let x = x.mul_scalar(1.0 - self.lr * decay)
            - (m_hat / (v_hat.sqrt().add_scalar(c.eps))).mul_scalar(self.lr);
        self.moments.insert(
            id,
            Moments {
                exp_avg: m,
                exp_avg_sq: v,
            },
        );
        let updated = Tensor::<B, D>::from_inner(x.reshape(shape)).require_grad();
        Param::from_mapped_value(id, updated, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let s = LrSchedule {
            max_lr: 1.0,
            min_lr: 0.1,
            warmup_steps: 10,
            decay_steps: 0,
        };
        assert!((s.lr(0, 100) - 1.0 / 11.0).abs() < 1e-12);
        assert!(s.lr(9, 100) < 1.0);
        assert!((s.lr(10, 100) - 1.0).abs() < 1e-12);
        assert!(
            (s.lr(55, 100) - 0.55).abs() < 1e-12,
            "halfway down the cosine"
        );
        assert_eq!(s.lr(100, 100), 0.1);
        assert_eq!(s.lr(500, 100), 0.1);
        let mut prev = f64::MAX;
        for step in 10..100 {
            assert!(s.lr(step, 100) <= prev);
            prev = s.lr(step, 100);
        }
    }
}

#[cfg(test)]
mod adamw_tests {
    use super::*;
    use burn::module::Module;
    use burn::tensor::TensorData;

    type B = burn::backend::Autodiff<burn::backend::NdArray<f32>>;

    #[derive(Module, Debug)]
    struct Toy<B: Backend> {
        matrix: Param<Tensor<B, 2>>,
        vector: Param<Tensor<B, 1>>,
    }

    /// With zero gradients Adam moves nothing, so only decoupled decay acts: on the matrix, not
    /// on the vector. With a gradient, the first step is `lr * sign(g)` (bias-corrected moments).
    #[test]
    fn decays_matrices_only_and_first_step_is_sign() {
        let device = Default::default();
        let toy = Toy::<B> {
            matrix: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, -2.0, 3.0, 4.0], [2, 2]),
                &device,
            )),
            vector: Param::from_tensor(Tensor::from_data(
                TensorData::new(vec![1.0f32, 1.0], [2]),
                &device,
            )),
        };
        let mut optim = AdamW::<B>::new(AdamWConfig {
            grad_clip: 0.0,
            ..AdamWConfig::default()
        });
        // loss = sum(vector * [3, -0.5]) + 0 * sum(matrix)
        let loss = (toy.vector.val() * Tensor::from_floats([3.0, -0.5], &device)).sum()
            + toy.matrix.val().sum() * 0.0;
        let grads = GradientsParams::from_grads(loss.backward(), &toy);
        let (toy, norm) = optim.step(0.1, toy, grads);
        assert!((norm - (9.0f64 + 0.25).sqrt()).abs() < 1e-6);
        let m = toy.matrix.val().into_data().into_vec::<f32>().unwrap();
        let v = toy.vector.val().into_data().into_vec::<f32>().unwrap();
        for (got, want) in m.iter().zip([1.0f32, -2.0, 3.0, 4.0]) {
            assert!(
                (got - want * (1.0 - 0.1 * 0.1)).abs() < 1e-6,
                "matrix decays: {m:?}"
            );
        }
        assert!(
            (v[0] - 0.9).abs() < 1e-5 && (v[1] - 1.1).abs() < 1e-5,
            "vector: sign step, no decay: {v:?}"
        );
    }

    #[test]
    fn clips_by_global_norm() {
        let device = Default::default();
        let toy = Toy::<B> {
            matrix: Param::from_tensor(Tensor::zeros([2, 2], &device)),
            vector: Param::from_tensor(Tensor::zeros([2], &device)),
        };
        let loss = (toy.vector.val() * Tensor::from_floats([30.0, 40.0], &device)).sum()
            + toy.matrix.val().sum() * 0.0;
        let grads = GradientsParams::from_grads(loss.backward(), &toy);
        assert!((AdamW::<B>::grad_norm(&toy, &grads) - 50.0).abs() < 1e-4);
    }
}
