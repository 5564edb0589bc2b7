//! Matrix products through cuBLASLt: bf16 operands, f32 accumulation, bf16 or f32 results.
//!
//! Callers think row-major: `D[m, n] = alpha op(A) op(B) + beta C` with `op(A)` `[m, k]` and `op(B)`
//! `[k, n]`, each operand stored as it is or transposed. cuBLASLt is column-major, where a
//! row-major `X` reads as `Xᵀ`, so the call computes `Dᵀ = op(B)ᵀ op(A)ᵀ`: operands swapped,
//! `m` and `n` swapped, each transpose flag kept. Per shape, on its first use, cuBLASLt's heuristic
//! proposes up to [`CANDIDATES`] algorithms and each is timed on the real operands into a scratch
//! result: its first choice is not always the fastest (on an H100 it ran a falcon-350m product
//! with an f32 result at 184 TFLOP/s, a third of its neighbours). Descriptors and the choice are
//! cached.

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
/// Algorithms asked of the heuristic per shape, each timed once.
const CANDIDATES: usize = 8;
/// Timed runs per candidate (after one untimed).
const TIMED_RUNS: usize = 3;

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
    /// Whether `C` is `D` (cuBLASLt's choice of algorithm can differ).
    in_place: bool,
}

#[derive(Clone, Copy)]
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

    /// Descriptors for shape `s` and the fastest of the heuristic's algorithms on `operands`
    /// (`A`, `B`, `C` as [`Gemm::run`] takes them; read only).
    fn make_plan(&self, gpu: &Gpu, s: Shape, operands: (u64, u64, u64)) -> Result<Plan, Error> {
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
        let candidates = unsafe {
            let bytes = WORKSPACE as u64;
            lt::set_matmul_pref_attribute(
                pref,
                sys::cublasLtMatmulPreferenceAttributes_t::CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                &bytes as *const u64 as *const c_void,
                std::mem::size_of::<u64>(),
            )
            .map_err(|e| cublas("workspace preference", e))?;
            let mut found =
                vec![std::mem::zeroed::<sys::cublasLtMatmulHeuristicResult_t>(); CANDIDATES];
            let mut count = 0;
            let status = sys::cublasLtMatmulAlgoGetHeuristic(
                self.handle,
                desc,
                a,
                b,
                c,
                c,
                pref,
                CANDIDATES as i32,
                found.as_mut_ptr(),
                &mut count,
            )
            .result();
            lt::destroy_matmul_pref(pref).map_err(|e| cublas("preference", e))?;
            found.truncate(count.max(0) as usize);
            found.retain(|h| h.state == sys::cublasStatus_t::CUBLAS_STATUS_SUCCESS);
            let none = sys::cublasStatus_t::CUBLAS_STATUS_NOT_SUPPORTED;
            status
                .and_then(|()| {
                    if found.is_empty() {
                        none.result()
                    } else {
                        Ok(())
                    }
                })
                .map_err(|e| cublas(&format!("no algorithm for {s:?}"), e))?;
            found
        };
        let mut plan = Plan {
            desc,
            a,
            b,
            c,
            algo: candidates[0].algo,
        };
        if candidates.len() > 1 {
            plan.algo = self.fastest(gpu, &plan, s, operands, &candidates)?;
        }
        Ok(plan)
    }

    /// The fastest of `candidates` for `plan`'s shape `s`, each run with `beta` 1 into a zeroed
    /// scratch result (the real one may be accumulated into), from the real `C` when it is not
    /// the result; the first when no scratch fits.
    fn fastest(
        &self,
        gpu: &Gpu,
        plan: &Plan,
        s: Shape,
        (a, b, c): (u64, u64, u64),
        candidates: &[sys::cublasLtMatmulHeuristicResult_t],
    ) -> Result<sys::cublasLtMatmulAlgo_t, Error> {
        let bytes = s.m * s.n * if s.out == Out::F32 { 4 } else { 2 };
        let Ok(scratch) = gpu.stream.alloc_zeros::<u8>(bytes) else {
            tracing::debug!(
                "{}: no memory to time algorithms; the heuristic's first",
                s.name()
            );
            return Ok(candidates[0].algo);
        };
        let d = {
            let (ptr, _guard) = scratch.device_ptr(&gpu.stream);
            ptr
        };
        let c = if s.in_place { d } else { c };
        let event = || {
            gpu.stream
                .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))
                .map_err(|e| gpu_error("timing event", e))
        };
        let mut times = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let trial = Plan {
                algo: candidate.algo,
                ..*plan
            };
            // An algorithm that fails to launch is passed over.
            if self.run(gpu, &trial, (a, b, c, d), (1.0, 1.0)).is_err() {
                times.push(f32::INFINITY);
                continue;
            }
            let begin = event()?;
            for _ in 0..TIMED_RUNS {
                self.run(gpu, &trial, (a, b, c, d), (1.0, 1.0))
                    .map_err(|e| cublas(&format!("timing {}", s.name()), e))?;
            }
            let end = event()?;
            end.synchronize()
                .map_err(|e| gpu_error("timing event", e))?;
            times.push(
                begin
                    .elapsed_ms(&end)
                    .map_err(|e| gpu_error("timing event", e))?,
            );
        }
        let best = (0..times.len())
            .min_by(|&i, &j| times[i].total_cmp(&times[j]))
            .unwrap_or(0);
        let tflops = |ms: f32| 2.0 * (s.m * s.n * s.k) as f64 * TIMED_RUNS as f64 / ms as f64 / 1e9;
        tracing::debug!(
            "{}: algorithm {best} of {} at {:.0} TFLOP/s (the heuristic's first: {:.0})",
            s.name(),
            times.len(),
            tflops(times[best]),
            tflops(times[0]),
        );
        Ok(candidates[best].algo)
    }

    /// `D = alpha A B + beta C` with `plan` (cuBLASLt's operand order: see the module comment).
    fn run(
        &self,
        gpu: &Gpu,
        plan: &Plan,
        (a, b, c, d): (u64, u64, u64, u64),
        (alpha, beta): (f32, f32),
    ) -> Result<(), lt::CublasError> {
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
                &plan.algo,
                self.workspace.ptr as *mut c_void,
                self.workspace.len,
                gpu.stream.cu_stream() as sys::cudaStream_t,
            )
        }
    }

    /// `D[m, n] = alpha op(A) op(B) + beta C` (row-major; `scale` = `(alpha, beta)`; `C`
    /// defaults to `D`, used only when `beta` is not 0), issued on `gpu`'s stream.
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
        scale: (f32, f32),
    ) -> Result<(), Error> {
        let shape = Shape {
            m,
            n,
            k,
            ta: a.trans,
            tb: b.trans,
            out,
            in_place: c.is_none_or(|c| c == d),
        };
        let c = c.unwrap_or(d);
        if !self.plans.contains_key(&shape) {
            let plan = self.make_plan(gpu, shape, (a.ptr, b.ptr, c))?;
            self.plans.insert(shape, plan);
        }
        let plan = &self.plans[&shape];
        let begin = gpu.op_begin()?;
        self.run(gpu, plan, (a.ptr, b.ptr, c, d), scale)
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
