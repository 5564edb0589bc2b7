//! Data parallelism on one host: one replica of the model per GPU, gradients averaged by NCCL.
//!
//! Burn 0.21's `distributed` feature does the communication: parameters marked
//! `set_distributed` have their gradients all-reduced (mean) by NCCL as the backward pass
//! produces them, and `backward()` returns only once every replica's gradients are averaged.
//! Every replica then takes the same AdamW step on the same gradients, so the copies stay
//! equal without broadcasting weights. The trainer runs one thread per device (see
//! `trainer.rs`); this module is what differs between backends.

use burn::module::Module;

use crate::attention::FalconTrainBackend;
use crate::checkpoint::CheckpointTensors;
use crate::config::FalconConfig;
use crate::trainer::TrainConfig;
use crate::Error;

/// A training step outside Burn's autodiff (the CUDA engine), holding the weights and moments:
/// the trainer moves them in once (from a checkpoint, or drawn fresh) and out for checkpoints.
pub trait Fused<B: FalconTrainBackend> {
    /// Takes a checkpoint's weights and moments, and AdamW's step count.
    fn import(&mut self, tensors: &CheckpointTensors, optimizer_step: usize) -> Result<(), Error>;
    /// A fresh model drawn from `seed`.
    fn draw(&mut self, seed: u64) -> Result<(), Error>;
    /// One optimizer step over the micro-batches' `[batch, seq + 1]` windows at `lr`: the mean
    /// loss and the gradient norm before clipping.
    fn step(&mut self, micro: &[Vec<u16>], lr: f64) -> Result<(f64, f64), Error>;
    /// The mean loss of one micro-batch, no gradients.
    fn loss(&mut self, windows: &[u16]) -> Result<f64, Error>;
    /// Every position's loss over one micro-batch (`[batch, seq]`), no gradients.
    fn token_losses(&mut self, windows: &[u16]) -> Result<Vec<f32>, Error>;
    /// The weights and moments, for a checkpoint.
    fn export(&self) -> Result<CheckpointTensors, Error>;
    /// AdamW updates done.
    fn optimizer_step(&self) -> usize;
    /// GPUs taking the step: [`Fused::step`] gets each one's micro-batches, in rank order.
    fn ranks(&self) -> usize {
        1
    }
    /// GPU time per operation over the steps taken, where profiling is on.
    fn profile(&self) -> Option<String> {
        None
    }
}

/// A training backend, with or without collective communication across its devices.
pub trait DataParallel: FalconTrainBackend {
    /// Readies gradient averaging over `devices` (nothing to do for one device).
    fn start(devices: &[Self::Device]) -> Result<(), Error>;

    /// Marks `module`'s parameters for gradient averaging. The optimizer builds new parameter
    /// tensors every step, so replicas call this after each update.
    fn mark<M: Module<Self>>(module: M, world: usize) -> M;

    /// Ends gradient averaging over `devices`.
    fn stop(devices: &[Self::Device]);

    /// A fused step for this run where the backend has one that applies, else `None` (Burn's
    /// autodiff step).
    fn fused(
        _model: &FalconConfig,
        _config: &TrainConfig,
        _devices: &[Self::Device],
    ) -> Option<Box<dyn Fused<Self>>> {
        None
    }
}

/// Burn's own parameter id serves as the collective's id: replicas forked from one model
/// share them.
#[cfg(feature = "cuda")]
struct MarkDistributed;

#[cfg(feature = "cuda")]
impl<B: burn::tensor::backend::AutodiffBackend> burn::module::ModuleMapper<B> for MarkDistributed {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<B, D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<B, D>> {
        use burn::tensor::backend::distributed::DistributedParamId;
        let (id, tensor, mapper) = param.consume();
        let tensor = tensor.set_distributed(DistributedParamId::from(id.val()));
        burn::module::Param::from_mapped_value(id, tensor, mapper)
    }
}

#[cfg(feature = "cuda")]
impl DataParallel for crate::CudaTrainBackend {
    fn start(devices: &[Self::Device]) -> Result<(), Error> {
        use burn::tensor::backend::distributed::{
            DistributedBackend, DistributedConfig, ReduceOperation,
        };
        if devices.len() > 1 {
            let config = DistributedConfig {
                all_reduce_op: ReduceOperation::Mean,
            };
            <Self as DistributedBackend>::start_communication_server(devices, config);
        }
        Ok(())
    }

    fn mark<M: Module<Self>>(module: M, world: usize) -> M {
        if world > 1 {
            module.map(&mut MarkDistributed)
        } else {
            module
        }
    }

    fn stop(devices: &[Self::Device]) {
        use burn::tensor::backend::distributed::DistributedBackend;
        if devices.len() > 1 {
            <Self as DistributedBackend>::close_communication_server(&devices[0]);
        }
    }

    /// The CUDA engine for bf16 runs whose shapes it covers: one engine, or an NCCL group of
    /// engines over several GPUs (also on one with `FALCONRY_ENGINE=group`, to run that path
    /// on a single card); `FALCONRY_ENGINE=burn` keeps Burn's step.
    fn fused(
        model: &FalconConfig,
        config: &TrainConfig,
        devices: &[Self::Device],
    ) -> Option<Box<dyn Fused<Self>>> {
        use crate::trainer::Precision;
        let choice = std::env::var("FALCONRY_ENGINE").unwrap_or_default();
        let why = if choice == "burn" {
            Some("FALCONRY_ENGINE=burn".to_string())
        } else if config.precision != Precision::Bf16 {
            Some("precision f32 (the engine computes in bf16)".to_string())
        } else {
            crate::cuda::unsupported(model, config.seq_len)
        };
        if let Some(why) = why {
            tracing::info!("training with Burn's autodiff step: {why}");
            return None;
        }
        let (batch, seq, optim, recompute) = (
            config.micro_batch_size,
            config.seq_len,
            config.optimizer.clone(),
            config.recompute_activations,
        );
        let made: Result<Box<dyn Fused<Self>>, Error> = if devices.len() > 1 || choice == "group" {
            let ordinals: Vec<usize> = devices.iter().map(|d| d.index).collect();
            crate::cuda::EngineGroup::new(model, batch, seq, optim, recompute, &ordinals).map(|g| {
                tracing::info!("training with the CUDA engine on {} GPUs (NCCL)", g.ranks());
                Box::new(g) as Box<dyn Fused<Self>>
            })
        } else {
            crate::cuda::Engine::new(model, batch, seq, optim, recompute, devices[0].index).map(
                |e| {
                    tracing::info!("training with the CUDA engine on {}", e.describe());
                    Box::new(e) as Box<dyn Fused<Self>>
                },
            )
        };
        made.map_err(|e| {
            tracing::warn!("the CUDA engine could not start ({e}); training with Burn's step")
        })
        .ok()
    }
}

#[cfg(feature = "cuda")]
impl<B: FalconTrainBackend> Fused<B> for crate::cuda::Engine {
    fn import(&mut self, tensors: &CheckpointTensors, optimizer_step: usize) -> Result<(), Error> {
        crate::cuda::Engine::import(self, tensors, optimizer_step)
    }
    fn draw(&mut self, seed: u64) -> Result<(), Error> {
        crate::cuda::Engine::draw(self, seed)
    }
    fn step(&mut self, micro: &[Vec<u16>], lr: f64) -> Result<(f64, f64), Error> {
        crate::cuda::Engine::step(self, micro, lr)
    }
    fn loss(&mut self, windows: &[u16]) -> Result<f64, Error> {
        crate::cuda::Engine::loss(self, windows)
    }
    fn token_losses(&mut self, windows: &[u16]) -> Result<Vec<f32>, Error> {
        crate::cuda::Engine::token_losses(self, windows)
    }
    fn export(&self) -> Result<CheckpointTensors, Error> {
        crate::cuda::Engine::export(self)
    }
    fn optimizer_step(&self) -> usize {
        crate::cuda::Engine::optimizer_step(self)
    }
    fn profile(&self) -> Option<String> {
        crate::cuda::Engine::profile(self)
    }
}

#[cfg(feature = "cuda")]
impl<B: FalconTrainBackend> Fused<B> for crate::cuda::EngineGroup {
    fn import(&mut self, tensors: &CheckpointTensors, optimizer_step: usize) -> Result<(), Error> {
        self.lead().import(tensors, optimizer_step)?;
        self.sync()
    }
    fn draw(&mut self, seed: u64) -> Result<(), Error> {
        self.lead().draw(seed)?;
        self.sync()
    }
    fn step(&mut self, micro: &[Vec<u16>], lr: f64) -> Result<(f64, f64), Error> {
        crate::cuda::EngineGroup::step(self, micro, lr)
    }
    fn loss(&mut self, windows: &[u16]) -> Result<f64, Error> {
        self.lead().loss(windows)
    }
    fn token_losses(&mut self, windows: &[u16]) -> Result<Vec<f32>, Error> {
        self.lead().token_losses(windows)
    }
    fn export(&self) -> Result<CheckpointTensors, Error> {
        self.lead_ref().export()
    }
    fn optimizer_step(&self) -> usize {
        self.lead_ref().optimizer_step()
    }
    fn ranks(&self) -> usize {
        crate::cuda::EngineGroup::ranks(self)
    }
}

/// The CPU backend trains on one device.
#[cfg(not(feature = "cuda"))]
impl DataParallel for crate::CpuTrainBackend {
    fn start(devices: &[Self::Device]) -> Result<(), Error> {
        match devices.len() {
            1 => Ok(()),
            n => Err(Error::Unsupported(format!(
                "data parallelism over {n} devices needs the cuda build"
            ))),
        }
    }

    fn mark<M: Module<Self>>(module: M, _: usize) -> M {
        module
    }

    fn stop(_: &[Self::Device]) {}
}
