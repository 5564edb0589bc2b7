//! Matrix products through cuBLASLt: bf16 operands, f32 accumulation, bf16 or f32 results.
//!
//! Callers think row-major: `D[m, n] = op(A) op(B) + beta C` with `op(A)` `[m, k]` and `op(B)`
//! `[k, n]`, each operand stored as it is or transposed. cuBLASLt is column-major, where a
//! row-major `X` reads as `Xᵀ`, so the call computes `Dᵀ = op(B)ᵀ op(A)ᵀ`: operands swapped,
//! `m` and `n` swapped, each transpose flag kept. On a shape's first product its descriptors are
//! made and cuBLASLt's heuristic proposes up to [`CANDIDATES`] algorithms, each timed on the
//! product's own operands (into a scratch result); the fastest is cached with the descriptors.
//! The heuristic's first choice is not always the best: the log names each shape where another
//! candidate was more than 5% faster.

use std::collections::HashMap;
use std::ffi::c_void;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;
use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::DevicePtr;

use super::device::{gpu_error, Buf, Gpu};
use crate::Error;

/// cuBLASLt's scratch space (its recommendation for Hopper).
const WORKSPACE: usize = 32 << 20;

/// Heuristic candidates timed per shape.
const CANDIDATES: usize = 8;

/// The element type of a product's result (and of `C`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Out {
    Bf16,
    F32,
}

/// A row-major operand: its address and whether the product reads it transposed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Operand {
    pub(crate) ptr: u64,
    pub(crate) trans: bool,
}

/// `ptr` as stored.
pub(crate) fn plain(ptr: u64) -> Operand {
    Operand { ptr, trans: false }
}

/// `ptr` transposed.
pub(crate) fn t(ptr: u64) -> Operand {
    Operand { ptr, trans: true }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
struct Shape {
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    out: Out,
}

struct Plan {
    desc: sys::cublasLtMatmulDesc_t,
    a: sys::cublasLtMatrixLayout_t,
    b: sys::cublasLtMatrixLayout_t,
    c: sys::cublasLtMatrixLayout_t,
    algo: sys::cublasLtMatmulAlgo_t,
}

/// A cuBLASLt handle, its workspace and the plans made so far.
pub(crate) struct Gemm {
    handle: sys::cublasLtHandle_t,
    workspace: Buf<u8>,
    plans: HashMap<Shape, Plan>,
}

fn cublas(what: &str, e: lt::CublasError) -> Error {
    gpu_error(&format!("cuBLASLt {what}"), e)
}

impl Gemm {
    pub(crate) fn new(gpu: &mut Gpu) -> Result<Self, Error> {
        Ok(Self {
            handle: lt::create_handle().map_err(|e| cublas("handle", e))?,
            workspace: gpu.alloc::<u8>(WORKSPACE)?,
            plans: HashMap::new(),
        })
    }

    /// Descriptors for shape `s` and the heuristic's candidates, best guess first.
    fn make_plan(&self, s: Shape) -> Result<(Plan, Vec<sys::cublasLtMatmulAlgo_t>), Error> {
        use sys::cudaDataType_t::{CUDA_R_16BF, CUDA_R_32F};
        // cublasOperation_t: CUBLAS_OP_N = 0, CUBLAS_OP_T = 1.
        let op = |trans: bool| trans as i32;
        let desc = lt::create_matmul_desc(sys::cublasComputeType_t::CUBLAS_COMPUTE_32F, CUDA_R_32F)
            .map_err(|e| cublas("descriptor", e))?;
        // cuBLASLt's A is our B and its B our A (see the module comment).
        let (op_a, op_b) = (op(s.tb), op(s.ta));
        unsafe {
            for (attr, value) in [
                (
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSA,
                    &op_a,
                ),
                (
                    sys::cublasLtMatmulDescAttributes_t::CUBLASLT_MATMUL_DESC_TRANSB,
                    &op_b,
                ),
            ] {
                lt::set_matmul_desc_attribute(
                    desc,
                    attr,
                    value as *const _ as *const c_void,
                    std::mem::size_of::<i32>(),
                )
                .map_err(|e| cublas("transpose attribute", e))?;
            }
        }
        // Column-major (rows, cols, leading dimension) of each stored operand.
        let (a_rows, a_cols) = if s.tb { (s.k, s.n) } else { (s.n, s.k) };
        let (b_rows, b_cols) = if s.ta { (s.m, s.k) } else { (s.k, s.m) };
        let layout = |ty, rows: usize, cols: usize| {
            lt::create_matrix_layout(ty, rows as u64, cols as u64, rows as i64)
                .map_err(|e| cublas("layout", e))
        };
        let a = layout(CUDA_R_16BF, a_rows, a_cols)?;
        let b = layout(CUDA_R_16BF, b_rows, b_cols)?;
        let out = match s.out {
            Out::Bf16 => CUDA_R_16BF,
            Out::F32 => CUDA_R_32F,
        };
        let c = layout(out, s.n, s.m)?;
        let pref = lt::create_matmul_pref().map_err(|e| cublas("preference", e))?;
        let heuristic = unsafe {
            let bytes = WORKSPACE as u64;
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &bytes as *const u64 as *const c_void,
                std::mem::size_of::<u64>(),
            )
            .map_err(|e| cublas("workspace preference", e))?;
            let mut results: [sys::cublasLtMatmulHeuristicResult_t; CANDIDATES] =
                std::mem::zeroed();
            let mut found = 0;
            let status = sys::cublasLtMatmulAlgoGetHeuristic(
                self.handle,
                desc,
                a,
                b,
                c,
                c,
                pref,
                CANDIDATES as i32,
                results.as_mut_ptr(),
                &mut found,
            );
            lt::destroy_matmul_pref(pref).map_err(|e| cublas("preference", e))?;
            if status != sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS || found == 0 {
                return Err(Error::Gpu(format!(
                    "cuBLASLt has no algorithm for {s:?} ({status:?})"
                )));
            }
            results[..found as usize]
                .iter()
                .map(|r| r.algo)
                .collect::<Vec<_>>()
        };
        let plan = Plan {
            desc,
            a,
            b,
            c,
            algo: heuristic[0],
        };
        Ok((plan, heuristic))
    }

    /// `D = A B + beta C` with `plan`'s descriptors and `algo` (cuBLASLt's operand order).
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        gpu: &Gpu,
        plan: &Plan,
        algo: &sys::cublasLtMatmulAlgo_t,
        (a, b, c, d): (u64, u64, u64, u64),
        beta: f32,
    ) -> Result<(), lt::CublasError> {
        let alpha = 1.0f32;
        unsafe {
            lt::matmul(
                self.handle,
                plan.desc,
                &alpha as *const f32 as *const c_void,
                &beta as *const f32 as *const c_void,
                b as *const c_void,
                plan.a,
                a as *const c_void,
                plan.b,
                c as *const c_void,
                plan.c,
                d as *mut c_void,
                plan.c,
                algo,
                self.workspace.ptr as *mut c_void,
                self.workspace.len,
                gpu.stream.cu_stream() as sys::cudaStream_t,
            )
        }
    }

    /// The fastest of `candidates` on these operands, results written to a scratch buffer
    /// (`D` and `C` untouched). Keeps the heuristic's first choice when the scratch buffer
    /// cannot be had.
    fn fastest(
        &self,
        gpu: &Gpu,
        plan: &Plan,
        candidates: &[sys::cublasLtMatmulAlgo_t],
        (a, b, c): (u64, u64, u64),
        beta: f32,
        s: Shape,
    ) -> Result<sys::cublasLtMatmulAlgo_t, Error> {
        let elem = match s.out {
            Out::Bf16 => 2,
            Out::F32 => 4,
        };
        if candidates.len() == 1 {
            return Ok(candidates[0]);
        }
        let Ok(scratch) = gpu.stream.alloc_zeros::<u8>(s.m * s.n * elem) else {
            return Ok(candidates[0]);
        };
        let d = {
            let (ptr, _guard) = scratch.device_ptr(&gpu.stream);
            ptr
        };
        let timing = || {
            gpu.stream
                .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| gpu_error("timing event", e))
        };
        let mut times = Vec::new();
        for algo in candidates {
            // A candidate that fails to launch is passed over.
            if self.run(gpu, plan, algo, (a, b, c, d), beta).is_err() {
                times.push(f32::INFINITY);
                continue;
            }
            let start = timing()?;
            for _ in 0..3 {
                self.run(gpu, plan, algo, (a, b, c, d), beta)
                    .map_err(|e| cublas(&format!("matmul {s:?}"), e))?;
            }
            let end = timing()?;
            times.push(
                start
                    .elapsed_ms(&end)
                    .map_err(|e| gpu_error("timing event", e))?
                    / 3.0,
            );
        }
        let best = (0..times.len())
            .min_by(|&i, &j| times[i].total_cmp(&times[j]))
            .unwrap_or(0);
        if times[best] < 0.95 * times[0] {
            tracing::info!(
                "cuBLASLt {}: candidate {best} of {} takes {:.4} ms, the heuristic's first {:.4} ms",
                s.name(),
                times.len(),
                times[best],
                times[0]
            );
        }
        Ok(candidates[best])
    }

    /// `D[m, n] = op(A) op(B) + beta C` (row-major; `C` defaults to `D`, used only when `beta`
    /// is not 0), issued on `gpu`'s stream.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn matmul(
        &mut self,
        gpu: &Gpu,
        (m, n, k): (usize, usize, usize),
        a: Operand,
        b: Operand,
        c: Option<u64>,
        d: u64,
        out: Out,
        beta: f32,
    ) -> Result<(), Error> {
        let shape = Shape {
            m,
            n,
            k,
            ta: a.trans,
            tb: b.trans,
            out,
        };
        let c = c.unwrap_or(d);
        if !self.plans.contains_key(&shape) {
            let (mut plan, candidates) = self.make_plan(shape)?;
            plan.algo = self.fastest(gpu, &plan, &candidates, (a.ptr, b.ptr, c), beta, shape)?;
            self.plans.insert(shape, plan);
        }
        let plan = &self.plans[&shape];
        let begin = gpu.op_begin()?;
        self.run(gpu, plan, &plan.algo, (a.ptr, b.ptr, c, d), beta)
            .map_err(|e| cublas(&format!("matmul {shape:?}"), e))?;
        gpu.op_end(begin, || shape.name())
    }
}

impl Shape {
    /// `matmul MxNxK` and each operand's transposition (N or T), for logs and profiles.
    fn name(&self) -> String {
        let t = |x: bool| if x { "T" } else { "N" };
        format!(
            "matmul {}x{}x{} {}{}",
            self.m,
            self.n,
            self.k,
            t(self.ta),
            t(self.tb)
        )
    }
}

impl Drop for Gemm {
    fn drop(&mut self) {
        unsafe {
            for plan in self.plans.values() {
                let _ = lt::destroy_matrix_layout(plan.a);
                let _ = lt::destroy_matrix_layout(plan.b);
                let _ = lt::destroy_matrix_layout(plan.c);
                let _ = lt::destroy_matmul_desc(plan.desc);
            }
            let _ = lt::destroy_handle(self.handle);
        }
    }
}
