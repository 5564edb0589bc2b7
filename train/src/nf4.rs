//! 4-bit NormalFloat (NF4) with double-quantized block scales: QLoRA's format for the frozen
//! base weights (Dettmers et al. 2023), laid out exactly as bitsandbytes'
//! `quantize_4bit(x, blocksize=64, quant_type="nf4", compress_statistics=True)`:
//!
//! - the tensor is flattened (row-major, PyTorch's `[d_out, d_in]` for a weight) and cut into
//!   blocks of 64; each value is divided by its block's absmax and replaced by the nearest of
//!   the 16 NF4 levels ([`NF4_CODE`], quantiles of N(0, 1) with an exact 0); two codes a byte,
//!   the first in the high nibble;
//! - the block absmaxes lose their mean (`offset`) and are themselves quantized to 8 bits with
//!   bitsandbytes' signed dynamic map in blocks of 256 (one f32 absmax per 256 blocks): about
//!   0.127 bits per weight of scales instead of 0.5.
//!
//! [`Nf4Tensor`] holds the packed form on the host; [`Nf4Weight`] holds it on a device and
//! dequantizes there, for a matmul at a time (`lora.rs`), and again for that matmul's
//! backward ([`nf4_matmul_autodiff`]) instead of keeping the dequantized weight.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{ElementConversion, FloatDType, Int, Tensor, TensorData, TensorPrimitive};
use rayon::prelude::*;

#[cfg(doc)]
use crate::attention::FalconBackend;

/// The 16 NF4 levels, as bitsandbytes hard-codes them (`get_4bit_type("nf4")`).
#[allow(clippy::excessive_precision)]
pub const NF4_CODE: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// Values per NF4 block (one absmax each).
pub const BLOCK: usize = 64;
/// Block absmaxes per 8-bit scale block (QLoRA's double quantization).
pub const SCALE_BLOCK: usize = 256;
/// The NF4 code of 0.0, used to pad.
const ZERO_CODE: u8 = 7;

/// bitsandbytes' signed dynamic 8-bit map (`create_dynamic_map(signed=True)`): for exponents
/// 10^-6 .. 10^0, `2^i` means of a linspace(0.1, 1) each sign, plus 0 and 1; sorted. Computed
/// in f32 as torch computes it.
pub fn dynamic_code() -> [f32; 256] {
    let mut data = Vec::with_capacity(256);
    for i in 0..7 {
        let items = (1usize << i) + 1;
        // torch.linspace fills the first half from the start, the second back from the end.
        let step = (1.0f32 - 0.1f32) / (items - 1) as f32;
        let b: Vec<f32> = (0..items)
            .map(|k| {
                if k < items / 2 {
                    0.1f32 + step * k as f32
                } else {
                    1.0f32 - step * (items - 1 - k) as f32
                }
            })
            .collect();
        let scale = 10f64.powi(i - 6) as f32;
        for w in b.windows(2) {
            let mean = (w[0] + w[1]) / 2.0;
            data.push(scale * mean);
            data.push(-(scale * mean));
        }
    }
    data.push(0.0);
    data.push(1.0);
    data.sort_by(f32::total_cmp);
    data.try_into().expect("127 + 127 + 2 levels")
}

/// A tensor in NF4 with double-quantized scales, packed as bitsandbytes packs it.
#[derive(Clone, Debug, PartialEq)]
pub struct Nf4Tensor {
    /// The original shape.
    pub shape: Vec<usize>,
    /// NF4 codes, two a byte, the first in the high nibble (odd lengths end in a 0 code).
    pub packed: Vec<u8>,
    /// Per block of 64: its absmax minus `offset`, as an 8-bit dynamic-map code.
    pub scales: Vec<u8>,
    /// Per block of 256 `scales`: their absmax (f32).
    pub scale_absmax: Vec<f32>,
    /// The mean of the block absmaxes, subtracted before their quantization.
    pub offset: f32,
}

/// Index of the entry of the sorted `code` nearest `x`, the lower one on a tie (bitsandbytes'
/// CPU kernel: binary search to the left, then one step right only if strictly closer).
fn nearest(code: &[f32], x: f32) -> u8 {
    let right = code.partition_point(|&c| c <= x).min(code.len() - 1);
    let left = right.saturating_sub(1);
    let idx = if (x - code[right]).abs() < (x - code[left]).abs() {
        right
    } else {
        left
    };
    idx as u8
}

impl Nf4Tensor {
    /// Quantizes `values` of `shape` (row-major).
    ///
    /// # Panics
    /// If `values` does not have `shape`'s length.
    pub fn quantize(values: &[f32], shape: &[usize]) -> Self {
        assert_eq!(
            values.len(),
            shape.iter().product::<usize>(),
            "values vs shape"
        );
        // bucketize against the midpoints: ties go to the lower level.
        let mids: Vec<f32> = NF4_CODE.windows(2).map(|w| (w[0] + w[1]) / 2.0).collect();
        // Whole blocks per task (a 7B model is 6.5e9 values); BLOCK is even, so only the last
        // task can end on half a byte.
        let parts: Vec<(Vec<u8>, Vec<f32>)> = values
            .par_chunks(BLOCK * 4096)
            .map(|chunk| {
                let mut codes = Vec::with_capacity(chunk.len() + 1);
                let mut absmax = Vec::with_capacity(chunk.len().div_ceil(BLOCK));
                for block in chunk.chunks(BLOCK) {
                    let am = block.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1e-38);
                    absmax.push(am);
                    // bitsandbytes multiplies full blocks by the reciprocal, divides the short
                    // last one.
                    let inv = 1.0 / am;
                    let full = block.len() == BLOCK;
                    codes.extend(block.iter().map(|&x| {
                        let s = if full { x * inv } else { x / am };
                        mids.partition_point(|&m| m < s.clamp(-1.0, 1.0)) as u8
                    }));
                }
                if codes.len() % 2 == 1 {
                    codes.push(ZERO_CODE);
                }
                let packed = codes.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
                (packed, absmax)
            })
            .collect();
        let packed: Vec<u8> = parts.iter().flat_map(|(p, _)| p).copied().collect();
        let absmax: Vec<f32> = parts.iter().flat_map(|(_, a)| a).copied().collect();

        // Double quantization: center, then 8-bit dynamic map per block of 256.
        let offset = (absmax.iter().map(|&a| a as f64).sum::<f64>() / absmax.len() as f64) as f32;
        let centered: Vec<f32> = absmax.iter().map(|&a| a - offset).collect();
        let dynamic = dynamic_code();
        let mut scales = Vec::with_capacity(centered.len());
        let mut scale_absmax = Vec::with_capacity(centered.len().div_ceil(SCALE_BLOCK));
        for block in centered.chunks(SCALE_BLOCK) {
            let am = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
            scale_absmax.push(am);
            scales.extend(block.iter().map(|&c| nearest(&dynamic, c / am)));
        }
        Self {
            shape: shape.to_vec(),
            packed,
            scales,
            scale_absmax,
            offset,
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each block's absmax, recovered from its 8-bit scale (`code * absmax2 + offset`, f32).
    pub fn block_absmax(&self) -> Vec<f32> {
        let dynamic = dynamic_code();
        self.scales
            .iter()
            .enumerate()
            .map(|(b, &q)| dynamic[q as usize] * self.scale_absmax[b / SCALE_BLOCK] + self.offset)
            .collect()
    }

    /// The values back, f32 (`NF4_CODE[code] * block absmax`).
    pub fn dequantize(&self) -> Vec<f32> {
        let absmax = self.block_absmax();
        self.packed
            .iter()
            .flat_map(|&p| [p >> 4, p & 0xF])
            .take(self.len())
            .enumerate()
            .map(|(i, q)| NF4_CODE[q as usize] * absmax[i / BLOCK])
            .collect()
    }
}

/// An NF4 matrix on a device: eight codes an int, scales as codes, dequantized by
/// [`Nf4Weight::dequantize`] with tensor ops (so on the GPU too) when a matmul needs it.
#[derive(Module, Debug)]
pub struct Nf4Weight<B: Backend> {
    /// NF4 codes, value `8w + k` in bits `4k..4k + 4` of word `w`; padded with 0 codes to a
    /// whole number of blocks.
    words: Tensor<B, 1, Int>,
    /// 8-bit scale codes, padded with 0 codes to a whole number of scale blocks.
    scales: Tensor<B, 1, Int>,
    /// f32 absmax per scale block.
    scale_absmax: Tensor<B, 1>,
    #[module(skip)]
    offset: f32,
    #[module(skip)]
    shape: [usize; 2],
}

impl<B: Backend> Nf4Weight<B> {
    /// Moves a host [`Nf4Tensor`] of rank 2 to `device`.
    ///
    /// # Panics
    /// If `t` is not a matrix.
    pub fn new(t: &Nf4Tensor, device: &B::Device) -> Self {
        let shape: [usize; 2] = t
            .shape
            .clone()
            .try_into()
            .expect("an NF4 weight is a matrix");
        let blocks = t.len().div_ceil(BLOCK);
        let mut codes: Vec<u8> = t.packed.iter().flat_map(|&p| [p >> 4, p & 0xF]).collect();
        codes.resize(blocks * BLOCK, ZERO_CODE);
        let words: Vec<i64> = codes
            .chunks(8)
            .map(|c| {
                let w = c
                    .iter()
                    .enumerate()
                    .fold(0u32, |w, (k, &q)| w | (q as u32) << (4 * k));
                // Wrapped into i32 so the word fits any int backend; the shifts below only
                // read bits 0..32.
                w as i32 as i64
            })
            .collect();
        let mut scales: Vec<i64> = t.scales.iter().map(|&q| q as i64).collect();
        scales.resize(t.scale_absmax.len() * SCALE_BLOCK, 0);
        let int = |v: Vec<i64>| {
            let n = v.len();
            Tensor::<B, 1, Int>::from_data(TensorData::new(v, [n]), device)
        };
        Self {
            words: int(words),
            scales: int(scales),
            scale_absmax: Tensor::from_data(
                TensorData::new(t.scale_absmax.clone(), [t.scale_absmax.len()]),
                device,
            ),
            offset: t.offset,
            shape,
        }
    }

    /// The matrix's shape.
    pub fn dims(&self) -> [usize; 2] {
        self.shape
    }

    /// The dequantized matrix, f32.
    pub fn dequantize(&self) -> Tensor<B, 2> {
        dequantize(&self.parts())
    }

    /// The device tensors as backend primitives, for [`FalconBackend::nf4_matmul`].
    pub fn parts(&self) -> Nf4Parts<B> {
        Nf4Parts {
            words: self.words.clone().into_primitive(),
            scales: self.scales.clone().into_primitive(),
            scale_absmax: self.scale_absmax.clone().into_primitive().tensor(),
            offset: self.offset,
            shape: self.shape,
        }
    }
}

/// An [`Nf4Weight`] as backend primitives: what an autodiff operation can keep as its state
/// (handles to the packed tensors, no copy).
#[derive(Clone, Debug)]
pub struct Nf4Parts<B: Backend> {
    words: IntTensor<B>,
    scales: IntTensor<B>,
    scale_absmax: FloatTensor<B>,
    offset: f32,
    shape: [usize; 2],
}

/// The dequantized matrix `[d_out, d_in]`, f32.
fn dequantize<B: Backend>(w: &Nf4Parts<B>) -> Tensor<B, 2> {
    let words = Tensor::<B, 1, Int>::from_primitive(w.words.clone());
    let scales = Tensor::<B, 1, Int>::from_primitive(w.scales.clone());
    let scale_absmax =
        Tensor::<B, 1>::from_primitive(TensorPrimitive::Float(w.scale_absmax.clone()));
    let device = words.device();
    let table =
        |v: &[f32]| Tensor::<B, 1>::from_data(TensorData::new(v.to_vec(), [v.len()]), &device);
    let [n_words] = words.dims();
    let [n_scales] = scales.dims();
    let blocks = n_words * 8 / BLOCK;

    let absmax = table(&dynamic_code()[..])
        .select(0, scales)
        .reshape([n_scales / SCALE_BLOCK, SCALE_BLOCK])
        .mul(scale_absmax.unsqueeze_dim(1))
        .add_scalar(w.offset)
        .reshape([n_scales])
        .narrow(0, 0, blocks); // [blocks]
    let codes = Tensor::stack::<2>(
        (0..8)
            .map(|k| {
                words
                    .clone()
                    .bitwise_right_shift_scalar((4 * k).elem())
                    .bitwise_and_scalar(0xF.elem())
            })
            .collect(),
        1,
    )
    .reshape([n_words * 8]); // [words, 8] row-major: value 8w + k
    let values = table(&NF4_CODE[..])
        .select(0, codes)
        .reshape([blocks, BLOCK])
        .mul(absmax.unsqueeze_dim(1));
    let [rows, cols] = w.shape;
    values
        .reshape([blocks * BLOCK])
        .narrow(0, 0, rows * cols)
        .reshape([rows, cols])
}

/// `x Wᵀ`, `W` dequantized and cast to `x`'s dtype.
///
/// # Shapes
/// - x: `[B, T, d_in]`, W: `[d_out, d_in]` -> `[B, T, d_out]`
pub(crate) fn nf4_matmul<B: Backend>(x: FloatTensor<B>, w: &Nf4Parts<B>) -> FloatTensor<B> {
    let x = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(x));
    let weight = dequantize(w).cast(FloatDType::from(x.dtype()));
    x.matmul(weight.transpose().unsqueeze())
        .into_primitive()
        .tensor()
}

/// [`nf4_matmul`] as one autodiff operation whose state is the packed weight: the backward
/// (`dx = dy W`) dequantizes it again, so between forward and backward a frozen projection
/// costs its 4 bits a weight, not a dequantized copy (QLoRA's memory; Burn's own matmul would
/// keep `W` for `dx`). The weight gets no gradient: it is frozen.
pub(crate) fn nf4_matmul_autodiff<B: Backend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    w: Nf4Parts<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    #[derive(Debug)]
    struct Nf4Matmul;

    impl<B: Backend> Backward<B, 1> for Nf4Matmul {
        type State = Nf4Parts<B>;

        fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
            let grad_out = Tensor::<B, 3>::from_primitive(TensorPrimitive::Float(
                grads.consume::<B>(&ops.node),
            ));
            let weight = dequantize(&ops.state).cast(FloatDType::from(grad_out.dtype()));
            let [parent] = ops.parents;
            if let Some(node) = parent {
                let grad_x = grad_out.matmul(weight.unsqueeze());
                grads.register::<B>(node.id, grad_x.into_primitive().tensor());
            }
        }
    }

    let inner = Nf4Parts::<B> {
        words: w.words,
        scales: w.scales,
        scale_absmax: w.scale_absmax.primitive,
        offset: w.offset,
        shape: w.shape,
    };
    match Nf4Matmul
        .prepare::<C>([x.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => {
            let out = nf4_matmul::<B>(x.primitive, &inner);
            prep.finish(inner, out)
        }
        OpsKind::UnTracked(prep) => prep.finish(nf4_matmul::<B>(x.primitive, &inner)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    use crate::attention::FalconBackend;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn hex_f32(s: &str) -> Vec<f32> {
        hex(s)
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// The fixture's inputs (scripts/nf4_fixture.py `draw`): splitmix64, 12 uniforms k/2^24
    /// summed minus 6, times `1 + row % 5`; exact in f64, then f32.
    fn draw(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for _ in 0..cols {
                let s: f64 = (0..12)
                    .map(|_| (next() >> 40) as f64 / (1u64 << 24) as f64)
                    .sum();
                out.push(((s - 6.0) * (1 + r % 5) as f64) as f32);
            }
        }
        out
    }

    fn fixture() -> Value {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nf4/bnb.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
    }

    /// NF4's levels are bitsandbytes' exactly; the dynamic map within an ulp (torch's
    /// vectorized linspace rounds a few of its 127 means differently).
    #[test]
    fn tables_equal_bitsandbytes() {
        let f = fixture();
        assert_eq!(hex_f32(f["nf4_code"].as_str().unwrap()), NF4_CODE.to_vec());
        let want = hex_f32(f["dynamic_code"].as_str().unwrap());
        let diff = max_diff(&dynamic_code(), &want);
        assert!(diff <= 6e-8, "dynamic map off by {diff}");
    }

    /// Same packed codes and 8-bit scales as bitsandbytes, scale absmaxes and offset within
    /// f32 rounding (torch sums the mean in another order), dequantized values within 1e-6, on
    /// a short-last-block row and on 260 blocks (two scale blocks).
    #[test]
    fn quantize_equals_bitsandbytes() {
        for case in fixture()["cases"].as_array().unwrap() {
            let (rows, cols) = (
                case["rows"].as_u64().unwrap() as usize,
                case["cols"].as_u64().unwrap() as usize,
            );
            let x = draw(rows, cols, case["seed"].as_u64().unwrap());
            let sum: f64 = x.iter().map(|&v| v as f64).sum();
            assert!(
                (sum - case["input_sum"].as_f64().unwrap()).abs() < 1e-6,
                "inputs drawn alike"
            );

            let q = Nf4Tensor::quantize(&x, &[rows, cols]);
            assert_eq!(
                q.packed,
                hex(case["packed"].as_str().unwrap()),
                "{rows}x{cols} codes"
            );
            assert_eq!(
                q.scales,
                hex(case["scales"].as_str().unwrap()),
                "{rows}x{cols} scales"
            );
            let rel = |a: f32, b: f32| (a - b).abs() / b.abs();
            let want = hex_f32(case["scale_absmax"].as_str().unwrap());
            for (a, b) in q.scale_absmax.iter().zip(&want) {
                assert!(rel(*a, *b) < 1e-6, "scale absmax {a} vs {b}");
            }
            let offset = hex_f32(case["offset"].as_str().unwrap())[0];
            assert!(
                rel(q.offset, offset) < 1e-6,
                "offset {} vs {offset}",
                q.offset
            );

            let deq = q.dequantize();
            if let Some(want) = case.get("dequantized") {
                let want = hex_f32(want.as_str().unwrap());
                let err = max_diff(&deq, &want);
                println!("{rows}x{cols}: max |falconry - bitsandbytes| dequantized = {err:e}");
                assert!(err < 1e-6, "dequantized vs bitsandbytes: {err}");
            }
            // 4 bits per value: within half the widest NF4 gap (0.152, between -1 and -0.696)
            // of each block's absmax, plus the 8-bit scale's error (a few percent).
            let absmax = q.block_absmax();
            for (i, (a, b)) in x.iter().zip(&deq).enumerate() {
                assert!(
                    (a - b).abs() <= 0.18 * absmax[i / BLOCK],
                    "value {i}: {a} -> {b}"
                );
            }
        }
    }

    #[test]
    fn codes_do_not_depend_on_how_the_blocks_are_shared_out() {
        // Past one task's 4096 blocks, ending on half a byte (the fixture cases are one task).
        let (rows, cols) = (2 * 4096 + 3, BLOCK + 1);
        let x = draw(rows, cols, 11);
        let whole = Nf4Tensor::quantize(&x, &[rows, cols]);
        let split = BLOCK * 4096;
        let mut packed = Vec::new();
        for part in x.chunks(split) {
            packed.extend(Nf4Tensor::quantize(part, &[part.len()]).packed);
        }
        assert_eq!(x.len() % 2, 1);
        assert_eq!(whole.packed, packed);
    }

    #[test]
    fn device_dequantize_equals_host() {
        type B = burn::backend::NdArray<f32>;
        let x = draw(24, 96, 7);
        let q = Nf4Tensor::quantize(&x, &[24, 96]);
        let w = Nf4Weight::<B>::new(&q, &Default::default());
        let got = w.dequantize().into_data().into_vec::<f32>().unwrap();
        assert_eq!(got, q.dequantize());
    }

    /// The NF4 operation computes Burn's matmul on the dequantized weight, and the same input
    /// gradient, without keeping that weight.
    #[test]
    fn nf4_matmul_and_its_gradient_equal_the_dequantized_matmul() {
        type A = Autodiff<crate::CpuBackend>;
        let device = Default::default();
        let (d_in, d_out) = (96, 40);
        let q = Nf4Tensor::quantize(&draw(d_out, d_in, 7), &[d_out, d_in]);
        let w = Nf4Weight::<A>::new(&q, &device);
        let tensor = |rows, cols, seed| {
            Tensor::<A, 3>::from_data(
                TensorData::new(draw(rows, cols, seed), [2, 5, cols]),
                &device,
            )
        };
        let (x, r) = (tensor(10, d_in, 8).require_grad(), tensor(10, d_out, 9));
        let y = Tensor::<A, 3>::from_primitive(TensorPrimitive::Float(A::nf4_matmul(
            x.clone().into_primitive().tensor(),
            w.parts(),
        )));
        let grads = (y.clone() * r.clone()).sum().backward();
        let x2 = x.clone().detach().require_grad();
        let y2 = x2.clone().matmul(w.dequantize().transpose().unsqueeze());
        let grads2 = (y2.clone() * r).sum().backward();
        let vec = |t: Tensor<crate::CpuBackend, 3>| t.into_data().into_vec::<f32>().unwrap();
        assert_eq!(vec(y.inner()), vec(y2.inner()));
        let (gx, gx2) = (x.grad(&grads).unwrap(), x2.grad(&grads2).unwrap());
        assert!(max_diff(&vec(gx), &vec(gx2)) < 1e-5);
    }
}
