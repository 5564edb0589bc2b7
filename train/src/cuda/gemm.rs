//! Matrix products through cuBLASLt: bf16 operands, f32 accumulation, bf16 or f32 results.
//!
//! Callers think row-major: `D[m, n] = alpha op(A) op(B) + beta C` with `op(A)` `[m, k]` and `op(B)`
//! `[k, n]`, each operand stored as it is or transposed. cuBLASLt is column-major, where a
//! row-major `X` reads as `Xᵀ`, so the call computes `Dᵀ = op(B)ᵀ op(A)ᵀ`: operands swapped,
//! `m` and `n` swapped, each transpose flag kept. cuBLASLt's heuristic picks an algorithm once
//! per shape; descriptors and the choice are cached.

use std::collections::HashMap;
use std::ffi::c_void;

use cudarc::cublaslt::result as lt;
use cudarc::cublaslt::sys;

use super::device::{gpu_error, Buf, Gpu};
use crate::Error;

/// cuBLASLt's scratch space (its recommendation for Hopper).
const WORKSPACE: usize = 32 << 20;

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

    /// Descriptors for shape `s` and the heuristic's algorithm.
    fn make_plan(&self, s: Shape) -> Result<Plan, Error> {
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
            let h = lt::get_matmul_algo_heuristic(self.handle, desc, a, b, c, c, pref);
            lt::destroy_matmul_pref(pref).map_err(|e| cublas("preference", e))?;
            h.map_err(|e| cublas(&format!("no algorithm for {s:?}"), e))?
        };
        Ok(Plan {
            desc,
            a,
            b,
            c,
            algo: heuristic.algo,
        })
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
        };
        let c = c.unwrap_or(d);
        if !self.plans.contains_key(&shape) {
            let plan = self.make_plan(shape)?;
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
