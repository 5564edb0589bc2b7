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
use crate::Error;

/// A training backend, with or without collective communication across its devices.
pub trait DataParallel: FalconTrainBackend {
    /// Readies gradient averaging over `devices` (nothing to do for one device).
    fn start(devices: &[Self::Device]) -> Result<(), Error>;

    /// Marks `module`'s parameters for gradient averaging. The optimizer builds new parameter
    /// tensors every step, so replicas call this after each update.
    fn mark<M: Module<Self>>(module: M, world: usize) -> M;

    /// Ends gradient averaging over `devices`.
    fn stop(devices: &[Self::Device]);
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
