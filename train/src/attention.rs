//! Causal self-attention as one autodiff operation.
//!
//! Burn 0.21's autodiff runs `attention` as its parts (`q kᵀ`, mask, softmax, `· v`), so every
//! layer keeps its `[B, heads, T, T]` scores and probabilities for the backward and pays a dozen
//! passes over them. Here the forward is the backend's own kernel (CubeCL's flash attention on
//! CUDA, picked by autotune), only q, k, v and the output are kept, and the backward recomputes
//! the probabilities one layer at a time, as FlashAttention's backward does.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::activation::softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::ops::{AttentionModuleOptions, FloatTensor};
use burn::tensor::{Bool, FloatDType, Tensor, TensorPrimitive};

use crate::nf4::Nf4Parts;

/// A backend that can run Falcon's attention: its own kernel, or with autodiff, the operation
/// below.
pub trait FalconBackend: Backend {
    /// `softmax(q kᵀ / sqrt(hd) + causal mask) v`, the mask aligned to the last key (so one query
    /// against a cache of keys sees them all).
    ///
    /// # Shapes
    /// - q: `[B, heads, Tq, hd]`; k, v: `[B, heads, Tk, hd]`; returns `[B, heads, Tq, hd]`
    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self>;

    /// `x Wᵀ` for a frozen NF4 weight, in `x`'s dtype; with autodiff the backward dequantizes
    /// `W` again rather than keeping it ([`crate::nf4`]).
    ///
    /// # Shapes
    /// - x: `[B, T, d_in]`, W: `[d_out, d_in]` -> `[B, T, d_out]`
    fn nf4_matmul(x: FloatTensor<Self>, w: Nf4Parts<Self>) -> FloatTensor<Self>;

    /// What the device allocator holds, where the backend tells (CubeCL on CUDA; its pool keeps
    /// freed pages, so the GPU's own used-memory figure says little about the working set).
    fn memory(_device: &Self::Device) -> Option<DeviceMemory> {
        None
    }

    /// The CUDA device's ordinal, where `device` is one (the fused engine can run there).
    fn cuda_ordinal(_device: &Self::Device) -> Option<usize> {
        None
    }
}

/// Bytes of device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceMemory {
    /// Held by live tensors.
    pub in_use: u64,
    /// Taken from the device by the allocator, free pages included.
    pub reserved: u64,
}

/// A backend Falcon trains on: autodiff over a [`FalconBackend`], itself one.
pub trait FalconTrainBackend: AutodiffBackend<InnerBackend: FalconBackend> + FalconBackend {}

impl<B: AutodiffBackend<InnerBackend: FalconBackend> + FalconBackend> FalconTrainBackend for B {}

/// [`FalconBackend::causal_attention`] on tensors.
pub fn causal_attention<B: FalconBackend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
) -> Tensor<B, 4> {
    let float = |t: Tensor<B, 4>| t.into_primitive().tensor();
    Tensor::from_primitive(TensorPrimitive::Float(B::causal_attention(
        float(q),
        float(k),
        float(v),
    )))
}

/// The backend's own attention kernel.
fn native<B: Backend>(q: FloatTensor<B>, k: FloatTensor<B>, v: FloatTensor<B>) -> FloatTensor<B> {
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    B::attention(q, k, v, None, None, options)
}

/// Backends without autodiff run their own kernel.
macro_rules! native_attention {
    ($backend:ty $(, $extra:item)*) => {
        impl FalconBackend for $backend {
            fn causal_attention(
                q: FloatTensor<Self>,
                k: FloatTensor<Self>,
                v: FloatTensor<Self>,
            ) -> FloatTensor<Self> {
                native::<Self>(q, k, v)
            }

            fn nf4_matmul(x: FloatTensor<Self>, w: Nf4Parts<Self>) -> FloatTensor<Self> {
                crate::nf4::nf4_matmul::<Self>(x, &w)
            }

            $($extra)*
        }
    };
}

native_attention!(crate::CpuBackend);
#[cfg(feature = "cuda")]
native_attention!(
    crate::CudaBackend,
    fn memory(device: &Self::Device) -> Option<DeviceMemory> {
        use burn::cubecl::{cuda::CudaRuntime, Runtime};
        // The calling thread's stream: the one the training step's operations run on.
        let usage = CudaRuntime::client(device).memory_usage().ok()?;
        Some(DeviceMemory {
            in_use: usage.bytes_in_use,
            reserved: usage.bytes_reserved,
        })
    },
    fn cuda_ordinal(device: &Self::Device) -> Option<usize> {
        Some(device.index)
    }
);

impl<B: FalconBackend, C: CheckpointStrategy> FalconBackend for Autodiff<B, C> {
    fn memory(device: &Self::Device) -> Option<DeviceMemory> {
        B::memory(device)
    }

    fn cuda_ordinal(device: &Self::Device) -> Option<usize> {
        B::cuda_ordinal(device)
    }

    fn nf4_matmul(x: FloatTensor<Self>, w: Nf4Parts<Self>) -> FloatTensor<Self> {
        crate::nf4::nf4_matmul_autodiff::<B, C>(x, w)
    }

    fn causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct CausalAttention;

        impl<B: Backend> Backward<B, 3> for CausalAttention {
            /// q, k, v and the output.
            type State = [FloatTensor<B>; 4];

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                _: &mut Checkpointer,
            ) {
                let [q, k, v, out] = ops
                    .state
                    .map(|t| Tensor::from_primitive(TensorPrimitive::Float(t)));
                let grad_out =
                    Tensor::from_primitive(TensorPrimitive::Float(grads.consume::<B>(&ops.node)));
                let grads_qkv = attention_backward::<B>(q, k, v, out, grad_out);
                for (parent, grad) in ops.parents.into_iter().zip(grads_qkv) {
                    if let Some(node) = parent {
                        grads.register::<B>(node.id, grad.into_primitive().tensor());
                    }
                }
            }
        }

        let nodes = [q.node.clone(), k.node.clone(), v.node.clone()];
        match CausalAttention
            .prepare::<C>(nodes)
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.primitive, k.primitive, v.primitive);
                let out = native::<B>(q.clone(), k.clone(), v.clone());
                prep.finish([q, k, v, out.clone()], out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(native::<B>(q.primitive, k.primitive, v.primitive))
            }
        }
    }
}

/// Gradients of q, k and v from the gradient of the output.
///
/// With `P = softmax(S)`, `S = q kᵀ · scale` masked: `dv = Pᵀ do`, `dP = do vᵀ`,
/// `dS = P ∘ (dP − rowsum(do ∘ out))`, `dq = dS k · scale`, `dk = dSᵀ q · scale`. The softmax
/// and `dS` are in f32 whatever the inputs' dtype, as flash kernels keep them; the matmuls run in
/// the inputs' dtype.
fn attention_backward<B: Backend>(
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
    out: Tensor<B, 4>,
    grad_out: Tensor<B, 4>,
) -> [Tensor<B, 4>; 3] {
    let [b, h, tq, hd] = q.dims();
    let tk = k.dims()[2];
    let dtype = FloatDType::from(q.dtype());
    let scale = 1.0 / (hd as f64).sqrt();

    let future = Tensor::<B, 2, Bool>::tril_mask([tq, tk], tk as i64 - tq as i64, &q.device())
        .unsqueeze::<4>()
        .expand([b, h, tq, tk]);
    let scores = q
        .clone()
        .matmul(k.clone().swap_dims(2, 3))
        .cast(FloatDType::F32)
        * scale;
    let probs = softmax(scores.mask_fill(future, f32::NEG_INFINITY), 3); // [B, h, Tq, Tk]

    let delta = (grad_out.clone().cast(FloatDType::F32) * out.cast(FloatDType::F32)).sum_dim(3);
    let grad_probs = grad_out
        .clone()
        .matmul(v.swap_dims(2, 3))
        .cast(FloatDType::F32);
    let grad_scores = (probs.clone() * (grad_probs - delta) * scale).cast(dtype);

    let grad_v = probs.cast(dtype).swap_dims(2, 3).matmul(grad_out);
    let grad_q = grad_scores.clone().matmul(k);
    let grad_k = grad_scores.swap_dims(2, 3).matmul(q);
    [grad_q, grad_k, grad_v]
}

#[cfg(test)]
mod tests {
    use burn::tensor::module::attention;
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    type B = Autodiff<crate::CpuBackend>;

    fn random(shape: [usize; 4]) -> Tensor<B, 4> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Default::default()).require_grad()
    }

    /// The operation's output and q/k/v gradients equal those of Burn's decomposed attention,
    /// for square (training) and cached (more keys than queries) shapes.
    #[test]
    fn matches_burns_attention_and_its_gradients() {
        for (tq, tk) in [(7, 7), (3, 9)] {
            let (q, k, v) = (
                random([2, 3, tq, 8]),
                random([2, 3, tk, 8]),
                random([2, 3, tk, 8]),
            );
            let weights =
                Tensor::<B, 4>::random([2, 3, tq, 8], Distribution::Default, &Default::default());

            let ours = causal_attention(q.clone(), k.clone(), v.clone());
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: true,
            };
            let reference = attention(q.clone(), k.clone(), v.clone(), None, None, options);
            ours.clone().into_data().assert_approx_eq::<f32>(
                &reference.clone().into_data(),
                burn::tensor::Tolerance::absolute(1e-5),
            );

            let g1 = (ours * weights.clone()).sum().backward();
            let g2 = (reference * weights).sum().backward();
            for x in [&q, &k, &v] {
                x.grad(&g1).unwrap().into_data().assert_approx_eq::<f32>(
                    &x.grad(&g2).unwrap().into_data(),
                    burn::tensor::Tolerance::absolute(1e-5),
                );
            }
        }
    }
}
