//! Gradient averaging across the GPUs of one host: one NCCL communicator per rank, made
//! together (`ncclCommInitAll`), used by each rank's engine from its own thread.
//!
//! NCCL blocks a rank in a collective until every rank has entered it, so a rank that fails
//! would leave the others waiting forever. [`Collective::abort`] ends every communicator
//! (their kernels in flight return) and records why; each rank then fails its step with that
//! reason instead of hanging.

use std::sync::{Mutex, RwLock};

use cudarc::nccl::{result as nccl, sys};

use crate::Error;

/// One rank's communicator (a raw NCCL handle, safe to use from the rank's own thread).
struct Comm(sys::ncclComm_t);

// SAFETY: NCCL communicators may be used from any thread as long as calls on one communicator
// do not overlap; each is used by its rank's thread, and aborted only under the write lock.
unsafe impl Send for Comm {}
unsafe impl Sync for Comm {}

/// The communicators of a single-process group of GPUs.
pub(crate) struct Collective {
    comms: Vec<Comm>,
    /// `true` once aborted: held for reading while a collective is enqueued, so that an abort
    /// never frees a communicator in use.
    aborted: RwLock<bool>,
    failure: Mutex<Option<String>>,
}

fn nccl_error(what: &str, e: nccl::NcclError) -> Error {
    Error::Gpu(format!("NCCL {what}: {e:?}"))
}

impl Collective {
    /// Communicators for GPUs `ordinals` (rank `i` on `ordinals[i]`).
    pub(crate) fn new(ordinals: &[usize]) -> Result<Self, Error> {
        let mut raw = vec![std::ptr::null_mut(); ordinals.len()];
        let devs: Vec<i32> = ordinals.iter().map(|&o| o as i32).collect();
        unsafe { nccl::comm_init_all(raw.as_mut_ptr(), devs.len() as i32, devs.as_ptr()) }
            .map_err(|e| nccl_error("initialisation (is libnccl.so.2 on LD_LIBRARY_PATH?)", e))?;
        Ok(Self {
            comms: raw.into_iter().map(Comm).collect(),
            aborted: RwLock::new(false),
            failure: Mutex::new(None),
        })
    }

    pub(crate) fn world(&self) -> usize {
        self.comms.len()
    }

    /// Why the group was aborted, as an error for rank `rank`.
    fn failed(&self, rank: usize) -> Error {
        let why = self.failure.lock().expect("failure lock").clone();
        Error::Gpu(format!(
            "rank {rank} stopped: {}",
            why.unwrap_or_else(|| "another rank failed".into())
        ))
    }

    /// Enqueues the in-place mean over ranks of `count` f32 at `ptr` on `stream` (rank `rank`).
    pub(crate) fn all_reduce_mean(
        &self,
        rank: usize,
        ptr: u64,
        count: usize,
        stream: cudarc::driver::sys::CUstream,
    ) -> Result<(), Error> {
        let aborted = self.aborted.read().expect("abort lock");
        if *aborted {
            return Err(self.failed(rank));
        }
        unsafe {
            nccl::all_reduce(
                ptr as *const _,
                ptr as *mut _,
                count,
                sys::ncclDataType_t::ncclFloat32,
                sys::ncclRedOp_t::ncclAvg,
                self.comms[rank].0,
                stream as _,
            )
        }
        .map(|_| ())
        .map_err(|e| nccl_error("all-reduce", e))
    }

    /// The error rank `rank` reports after its step, if the group was aborted meanwhile (its
    /// collectives may have returned early with partial sums).
    pub(crate) fn check(&self, rank: usize) -> Result<(), Error> {
        if *self.aborted.read().expect("abort lock") {
            return Err(self.failed(rank));
        }
        Ok(())
    }

    /// Ends every rank's communicator because of `why` (the first reason is kept).
    pub(crate) fn abort(&self, why: String) {
        let mut aborted = self.aborted.write().expect("abort lock");
        self.failure
            .lock()
            .expect("failure lock")
            .get_or_insert(why);
        if !*aborted {
            *aborted = true;
            for c in &self.comms {
                // Errors here change nothing: the group is over either way.
                let _ = unsafe { nccl::comm_abort(c.0) };
            }
        }
    }
}

impl Drop for Collective {
    fn drop(&mut self) {
        if !*self.aborted.get_mut().expect("abort lock") {
            for c in &self.comms {
                let _ = unsafe { sys::ncclCommDestroy(c.0) };
            }
        }
    }
}
