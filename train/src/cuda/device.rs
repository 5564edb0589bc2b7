//! One GPU as the engine sees it: a context, one stream, the kernels of `kernels.cu` compiled
//! by NVRTC at start, and device buffers addressed by raw pointer.
//!
//! Everything runs on one stream in issue order, so no event tracking is needed between
//! buffers: a buffer is an allocation plus its `CUdeviceptr`, and kernels take pointers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cudarc::driver::{
    CudaContext, CudaEvent, CudaFunction, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
    LaunchConfig, PushKernelArg, ValidAsZeroBits,
};

use crate::Error;

/// The kernel source, compiled once per process.
const SOURCE: &str = include_str!("kernels.cu");

const KERNELS: &[&str] = &[
    "attn_fwd",
    "attn_fwd2",
    "attn_fwd_wg",
    "attn_fwd2_wg",
    "attn_bwd_delta",
    "attn_bwd",
    "attn_bwd_wg",
    "rope_split",
    "rope_merge",
    "embed_fwd",
    "embed_bwd",
    "layernorm_fwd",
    "layernorm_bwd",
    "layernorm_wb",
    "reduce_rows",
    "gelu_fwd",
    "gelu_bwd",
    "cross_entropy",
    "sum_partial",
    "sum_final",
    "adamw",
    "to_bf16",
    "nf4_dequant",
    "dropout_fwd",
    "dropout_bwd",
];

pub(crate) fn gpu_error(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::Gpu(format!("{what}: {e:?}"))
}

/// A kernel argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Arg {
    /// A device pointer.
    P(u64),
    I(i32),
    L(i64),
    F(f32),
}

/// A device allocation of `len` elements and its address.
pub(crate) struct Buf<T> {
    slice: CudaSlice<T>,
    pub(crate) ptr: u64,
    pub(crate) len: usize,
}

impl<T> Buf<T> {
    /// The address of element `i`.
    pub(crate) fn at(&self, i: usize) -> u64 {
        debug_assert!(i <= self.len);
        self.ptr + (i * std::mem::size_of::<T>()) as u64
    }
}

/// The context, its stream and the compiled kernels.
pub(crate) struct Gpu {
    pub(crate) stream: Arc<CudaStream>,
    functions: HashMap<&'static str, CudaFunction>,
    /// Streaming multiprocessors, for sizing grids.
    pub(crate) sms: u32,
    /// Device name, for reports.
    pub(crate) name: String,
    /// Seconds NVRTC and the driver took to build the kernels.
    pub(crate) compile_secs: f64,
    /// Whether the attention forward and backward take their `_wg` kernels (Hopper's warpgroup
    /// MMAs, compute capability 9.0, kernels built for sm_90a) rather than mma.sync.
    pub(crate) wgmma: Wgmma,
    allocated: usize,
    /// Set by `FALCONRY_PROFILE=1`.
    profile: Option<Mutex<Profile>>,
}

/// Which attention kernels run on warpgroup MMAs. `FALCONRY_MMA_SYNC` keeps mma.sync on Hopper:
/// `1` for both directions, `fwd` or `bwd` for one (to tell a wrong kernel from a slow one).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Wgmma {
    pub(crate) fwd: bool,
    pub(crate) bwd: bool,
}

impl Wgmma {
    fn choose(hopper: bool, mma_sync: &str) -> Self {
        // Any other value (`1`) keeps mma.sync for both.
        let both = !matches!(mma_sync, "" | "0" | "fwd" | "bwd");
        Self {
            fwd: hopper && !both && mma_sync != "fwd",
            bwd: hopper && !both && mma_sync != "bwd",
        }
    }
}

/// GPU time per kernel, product and copy, from a pair of events around each (so time the GPU
/// spends waiting between operations is nobody's), against the time from a step's first event
/// to its last.
#[derive(Default)]
struct Profile {
    begin: Option<CudaEvent>,
    ops: Vec<(String, CudaEvent, CudaEvent)>,
    /// Name -> (milliseconds, calls).
    totals: HashMap<String, (f64, usize)>,
    step_ms: f64,
    steps: usize,
}

impl Gpu {
    /// Opens GPU `ordinal` and compiles the kernels for it.
    pub(crate) fn new(ordinal: usize) -> Result<Self, Error> {
        let ctx = CudaContext::new(ordinal).map_err(|e| gpu_error("opening the GPU", e))?;
        // One stream, issue order: cudarc's per-buffer events would only add work.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.default_stream();
        let (major, minor) = ctx
            .compute_capability()
            .map_err(|e| gpu_error("compute capability", e))?;
        if major < 8 {
            return Err(Error::Gpu(format!(
                "the CUDA engine needs bf16 tensor cores (compute capability 8.0+), this GPU has {major}.{minor}"
            )));
        }
        let began = Instant::now();
        // sm_90a: the architecture-specific build that has the warpgroup MMAs.
        let hopper = (major, minor) == (9, 0);
        let suffix = if hopper { "a" } else { "" };
        let arch: &'static str = Box::leak(format!("sm_{major}{minor}{suffix}").into_boxed_str());
        let ptx = cudarc::nvrtc::compile_ptx_with_opts(
            SOURCE,
            cudarc::nvrtc::CompileOptions {
                arch: Some(arch),
                options: if hopper {
                    vec!["--std=c++17".into(), "-DHAS_WGMMA=1".into()]
                } else {
                    vec!["--std=c++17".into()]
                },
                name: Some("kernels.cu".into()),
                ..Default::default()
            },
        )
        .map_err(|e| gpu_error("compiling kernels.cu with NVRTC", e))?;
        let module = ctx
            .load_module(ptx)
            .map_err(|e| gpu_error("loading the kernels", e))?;
        let mut functions = HashMap::new();
        for &name in KERNELS {
            let f = module.load_function(name).map_err(|e| gpu_error(name, e))?;
            functions.insert(name, f);
        }
        let sms = ctx
            .attribute(
                cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
            )
            .map_err(|e| gpu_error("device attribute", e))? as u32;
        let name = ctx.name().unwrap_or_else(|_| "CUDA GPU".into());
        let mut gpu = Self {
            stream,
            functions,
            sms,
            name,
            compile_secs: began.elapsed().as_secs_f64(),
            wgmma: Wgmma::choose(
                hopper,
                std::env::var("FALCONRY_MMA_SYNC").as_deref().unwrap_or(""),
            ),
            allocated: 0,
            profile: std::env::var_os("FALCONRY_PROFILE").map(|_| Mutex::default()),
        };
        if gpu.wgmma.fwd || gpu.wgmma.bwd {
            gpu.check_wgmma()?;
        }
        Ok(gpu)
    }

    /// Runs each `_wg` attention kernel beside its mma.sync form on one small random problem
    /// (two query heads of one K/V head, 256 positions) and keeps mma.sync for a direction
    /// whose results differ. The `_wg` kernels depend on how the driver's ptxas allocates
    /// registers around asynchronous MMAs, and one build of the forward was wrong that way.
    fn check_wgmma(&mut self) -> Result<(), Error> {
        const H: usize = 2;
        const T: usize = 256;
        const HD: usize = 64;
        let allocated = self.allocated;
        // Deterministic values in [-1.7, 1.7) (unit variance), as bf16 bits.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut random = |n: usize| -> Vec<u16> {
            (0..n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let x = (state >> 40) as f32 / (1u64 << 24) as f32 * 3.46 - 1.73;
                    (x.to_bits() >> 16) as u16
                })
                .collect()
        };
        let (q, k, v, dout) = (
            random(H * T * HD),
            random(T * HD),
            random(T * HD),
            random(T * H * HD),
        );
        let mut upload = |host: &[u16]| -> Result<Buf<u16>, Error> {
            let mut buf = self.alloc::<u16>(host.len())?;
            self.upload(host, &mut buf)?;
            Ok(buf)
        };
        let (q, k, v, dout) = (upload(&q)?, upload(&k)?, upload(&v)?, upload(&dout)?);
        let o = self.alloc::<u16>(T * H * HD)?;
        let lse = self.alloc::<f32>(H * T)?;
        let delta = self.alloc::<f32>(H * T)?;
        let grads = [
            self.alloc::<f32>(H * T * HD)?,
            self.alloc::<f32>(T * HD)?,
            self.alloc::<f32>(T * HD)?,
        ];
        let scale = 1.0 / (HD as f32).sqrt();
        let forward = |kernel: &str, per_warp: usize| -> Result<Vec<f32>, Error> {
            let tensors = [q.ptr, k.ptr, v.ptr, o.ptr, lse.ptr];
            self.attn_forward(kernel, per_warp, tensors, (1, H, 1, T), scale)?;
            let mut out: Vec<f32> = (self.download(&o, 0..T * H * HD)?.into_iter())
                .map(|b| f32::from_bits((b as u32) << 16))
                .collect();
            out.extend(self.download(&lse, 0..H * T)?);
            Ok(out)
        };
        let backward = |kernel: &str| -> Result<Vec<f32>, Error> {
            let tensors = [q.ptr, k.ptr, v.ptr, o.ptr, dout.ptr, lse.ptr, delta.ptr];
            let [dq, dk, dv] = &grads;
            self.attn_backward(kernel, tensors, [dq, dk, dv], (1, H, 1, T), scale)?;
            let mut out = Vec::new();
            for g in &grads {
                out.extend(self.download(g, 0..g.len)?);
            }
            Ok(out)
        };
        // Largest difference against the largest value: rounding differences only, where
        // the kernels agree (1e-3 to 1e-2); the wrong forward differed by 0.5.
        let differ = |a: &[f32], b: &[f32]| {
            let top = a.iter().fold(0f32, |m, x| m.max(x.abs()));
            let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            let rel = diff / top.max(f32::MIN_POSITIVE);
            // NaN (a kernel that wrote nothing) counts as a difference.
            (rel.is_nan() || rel > 5e-2).then_some(rel)
        };
        let mut wrong = Vec::new();
        for (mma, wg, per_warp) in [
            ("attn_fwd2", "attn_fwd2_wg", 2),
            ("attn_fwd", "attn_fwd_wg", 1),
        ] {
            let (a, b) = (forward(mma, per_warp)?, forward(wg, per_warp)?);
            if let Some(rel) = differ(&a, &b) {
                wrong.push((wg, rel));
            }
        }
        // The backward from the mma.sync forward's output and log-sum-exp.
        forward("attn_fwd", 1)?;
        let (a, b) = (backward("attn_bwd")?, backward("attn_bwd_wg")?);
        if let Some(rel) = differ(&a, &b) {
            wrong.push(("attn_bwd_wg", rel));
        }
        for (kernel, rel) in &wrong {
            tracing::warn!(
                "{kernel} differs from its mma.sync form on this GPU and driver (relative \
                 difference {rel:.2e}): that direction keeps mma.sync"
            );
            if kernel.starts_with("attn_fwd") {
                self.wgmma.fwd = false;
            } else {
                self.wgmma.bwd = false;
            }
        }
        self.allocated = allocated;
        Ok(())
    }

    /// Attention forward `kernel` (`per_warp` query heads of a K/V group per warp) of
    /// `[q, k, v, o, lse]` for `(batch, heads, K/V heads, positions)` (layouts in kernels.cu).
    pub(crate) fn attn_forward(
        &self,
        kernel: &str,
        per_warp: usize,
        [q, k, v, o, lse]: [u64; 5],
        (b, h, kv, t): (usize, usize, usize, usize),
        scale: f32,
    ) -> Result<(), Error> {
        let grid = ((t / 64) as u32, (h / per_warp) as u32, b as u32);
        let sizes = [
            Arg::I(h as i32),
            Arg::I(kv as i32),
            Arg::I(t as i32),
            Arg::F(scale),
        ];
        let mut args = vec![Arg::P(q), Arg::P(k), Arg::P(v), Arg::P(o), Arg::P(lse)];
        args.extend(sizes);
        self.launch(kernel, grid, 128, 0, &args)
    }

    /// Attention backward `kernel` of `[q, k, v, o, dout, lse, delta]` into `grads` (dq, dk,
    /// dv, zeroed first), D computed into `delta` by attn_bwd_delta; sizes as
    /// [`Gpu::attn_forward`].
    pub(crate) fn attn_backward(
        &self,
        kernel: &str,
        [q, k, v, o, dout, lse, delta]: [u64; 7],
        grads: [&Buf<f32>; 3],
        (b, h, kv, t): (usize, usize, usize, usize),
        scale: f32,
    ) -> Result<(), Error> {
        let rows = [Arg::I(b as i32), Arg::I(h as i32), Arg::I(t as i32)];
        let mut args = vec![Arg::P(o), Arg::P(dout), Arg::P(delta)];
        args.extend(rows);
        self.launch(
            "attn_bwd_delta",
            (blocks(b * t * h, 8), 1, 1),
            256,
            0,
            &args,
        )?;
        for g in grads {
            self.zero(g, 0, g.len)?;
        }
        let mut args = vec![Arg::P(q), Arg::P(k), Arg::P(v), Arg::P(dout), Arg::P(lse)];
        args.push(Arg::P(delta));
        args.extend(grads.map(|g| Arg::P(g.ptr)));
        args.extend([
            Arg::I(h as i32),
            Arg::I(kv as i32),
            Arg::I(t as i32),
            Arg::F(scale),
        ]);
        let grid = ((t / 64) as u32, h as u32, b as u32);
        self.launch(kernel, grid, 128, 0, &args)
    }

    /// A timing event now on the stream, when profiling.
    fn event(&self) -> Result<Option<CudaEvent>, Error> {
        if self.profile.is_none() {
            return Ok(None);
        }
        self.stream
            .record_event(Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT))
            .map(Some)
            .map_err(|e| gpu_error("profile event", e))
    }

    /// Before an operation: its first event when profiling (see [`Gpu::op_end`]).
    pub(crate) fn op_begin(&self) -> Result<Option<CudaEvent>, Error> {
        self.event()
    }

    /// After an operation: records it under `name` when profiling.
    pub(crate) fn op_end(
        &self,
        begin: Option<CudaEvent>,
        name: impl FnOnce() -> String,
    ) -> Result<(), Error> {
        if let (Some(p), Some(begin)) = (&self.profile, begin) {
            let end = self.event()?.expect("profiling");
            p.lock().unwrap().ops.push((name(), begin, end));
        }
        Ok(())
    }

    /// Starts a profiled step.
    pub(crate) fn profile_start(&self) -> Result<(), Error> {
        let begin = self.event()?;
        if let Some(p) = &self.profile {
            let mut p = p.lock().unwrap();
            p.begin = begin;
            p.ops.clear();
        }
        Ok(())
    }

    /// Ends a profiled step (after its wait): its operations into the totals.
    pub(crate) fn profile_end(&self) -> Result<(), Error> {
        let Some(end) = self.event()? else {
            return Ok(());
        };
        let ms = |a: &CudaEvent, b: &CudaEvent| {
            a.elapsed_ms(b)
                .map(f64::from)
                .map_err(|e| gpu_error("profile event", e))
        };
        let mut p = self.profile.as_ref().expect("profiling").lock().unwrap();
        if let Some(begin) = p.begin.take() {
            p.step_ms += ms(&begin, &end)?;
        }
        for (name, a, b) in std::mem::take(&mut p.ops) {
            let t = ms(&a, &b)?;
            let total = p.totals.entry(name).or_default();
            total.0 += t;
            total.1 += 1;
        }
        p.steps += 1;
        Ok(())
    }

    /// The profiled steps' time per operation, largest first, as a Markdown table.
    pub(crate) fn profile_table(&self) -> Option<String> {
        let p = self.profile.as_ref()?.lock().unwrap();
        let steps = p.steps.max(1) as f64;
        let total: f64 = p.totals.values().map(|t| t.0).sum();
        let mut rows: Vec<_> = p.totals.iter().collect();
        rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let mut out = format!(
            "{}, {} profiled steps: {:.2} ms per step on the GPU, {:.2} ms of it in operations \
             (the rest between them)\n| operation | calls per step | ms per step | share of the step |\n|---|---:|---:|---:|\n",
            self.name,
            p.steps,
            p.step_ms / steps,
            total / steps
        );
        for (name, (ms, calls)) in rows {
            out += &format!(
                "| {name} | {:.0} | {:.3} | {:.1}% |\n",
                *calls as f64 / steps,
                ms / steps,
                100.0 * ms / p.step_ms.max(1e-9)
            );
        }
        Some(out)
    }

    /// Makes this GPU's context the calling thread's (raw driver and cuBLASLt calls use it).
    pub(crate) fn bind(&self) -> Result<(), Error> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| gpu_error("binding the GPU's context", e))
    }

    /// `len` zeroed elements.
    pub(crate) fn alloc<T: DeviceRepr + ValidAsZeroBits>(
        &mut self,
        len: usize,
    ) -> Result<Buf<T>, Error> {
        let slice = self
            .stream
            .alloc_zeros::<T>(len.max(1))
            .map_err(|e| gpu_error("allocating GPU memory", e))?;
        let ptr = {
            let (ptr, _guard) = slice.device_ptr(&self.stream);
            ptr
        };
        self.allocated += len * std::mem::size_of::<T>();
        Ok(Buf { slice, ptr, len })
    }

    /// Bytes allocated through [`Gpu::alloc`].
    pub(crate) fn allocated(&self) -> usize {
        self.allocated
    }

    /// Copies `host` into the start of `buf` (stream-ordered).
    pub(crate) fn upload<T: DeviceRepr>(&self, host: &[T], buf: &mut Buf<T>) -> Result<(), Error> {
        self.upload_at(host, buf, 0)
    }

    /// Copies `host` into `buf` from element `at` (stream-ordered).
    pub(crate) fn upload_at<T: DeviceRepr>(
        &self,
        host: &[T],
        buf: &mut Buf<T>,
        at: usize,
    ) -> Result<(), Error> {
        assert!(at + host.len() <= buf.len, "upload past its buffer's end");
        let mut view = buf.slice.slice_mut(at..at + host.len());
        let begin = self.op_begin()?;
        self.stream
            .memcpy_htod(host, &mut view)
            .map_err(|e| gpu_error("copy to the GPU", e))?;
        self.op_end(begin, || "copy to the GPU".into())
    }

    /// Elements `range` of `buf` (waits for the stream).
    pub(crate) fn download<T: DeviceRepr + Default + Clone>(
        &self,
        buf: &Buf<T>,
        range: std::ops::Range<usize>,
    ) -> Result<Vec<T>, Error> {
        let mut host = vec![T::default(); range.len()];
        self.stream
            .memcpy_dtoh(&buf.slice.slice(range), &mut host)
            .map_err(|e| gpu_error("copy from the GPU", e))?;
        Ok(host)
    }

    /// Sets `len` elements from `at` to zero bytes.
    pub(crate) fn zero<T>(&self, buf: &Buf<T>, at: usize, len: usize) -> Result<(), Error> {
        let bytes = len * std::mem::size_of::<T>();
        let begin = self.op_begin()?;
        unsafe {
            cudarc::driver::result::memset_d8_async(buf.at(at), 0, bytes, self.stream.cu_stream())
        }
        .map_err(|e| gpu_error("memset", e))?;
        self.op_end(begin, || "memset".into())
    }

    /// Launches `kernel` on `grid` blocks of `block` threads.
    pub(crate) fn launch(
        &self,
        kernel: &str,
        grid: (u32, u32, u32),
        block: u32,
        shared: u32,
        args: &[Arg],
    ) -> Result<(), Error> {
        let f = &self.functions[kernel];
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::P(p) => b.arg(p),
                Arg::I(i) => b.arg(i),
                Arg::L(l) => b.arg(l),
                Arg::F(x) => b.arg(x),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: grid,
            block_dim: (block, 1, 1),
            shared_mem_bytes: shared,
        };
        let begin = self.op_begin()?;
        unsafe { b.launch(cfg) }.map_err(|e| gpu_error(kernel, e))?;
        self.op_end(begin, || kernel.to_string())
    }

    /// Waits for everything issued so far; reports a kernel fault as an error.
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.stream
            .synchronize()
            .map_err(|e| gpu_error("GPU work failed", e))
    }
}

/// Blocks for `n` items of `per_block` each.
pub(crate) fn blocks(n: usize, per_block: usize) -> u32 {
    n.div_ceil(per_block) as u32
}
