//! LoRA / PEFT parity on the fixtures of `scripts/lora_fixture.py`: adapters written by HF
//! `peft` load into falconry and give peft's logits (within 1e-4, f32), merged or not; falconry
//! writes them back as peft wrote them (same tensors, same config); QLoRA's NF4 base stays
//! close; only adapters train.
//!
//! Set `FALCONRY_LORA_SAVE_DIR` to keep the adapters falconry writes (with
//! `falconry_logits.safetensors`) for `python scripts/lora_fixture.py --check DIR/<name> --base
//! train/tests/fixtures/<base>`.

mod common;

use common::max_abs_diff;

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use falconry_train::{
    load_adapter, load_hf, save_adapter, CpuBackend, CpuTrainBackend, FalconForCausalLM,
    LoraConfig, Nf4Tensor, ADAPTER_CONFIG, ADAPTER_WEIGHTS,
};
use safetensors::SafeTensors;

type B = CpuBackend;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn f32s(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    let data = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), data)
}

/// (input ids `[B, T]`, peft's logits, peft's merged-model logits).
fn expected(dir: &Path) -> (Tensor<B, 2, Int>, Vec<f32>, Vec<f32>) {
    let buf = std::fs::read(dir.join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let ids = st.tensor("input_ids").unwrap();
    let shape = [ids.shape()[0], ids.shape()[1]];
    let ids: Vec<i64> = ids
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let ids = Tensor::from_data(TensorData::new(ids, shape), &Default::default());
    (ids, f32s(&st, "logits").1, f32s(&st, "merged_logits").1)
}

fn logits<Bk: falconry_train::FalconBackend>(
    model: &FalconForCausalLM<Bk>,
    ids: Tensor<Bk, 2, Int>,
) -> Vec<f32> {
    model
        .forward(ids, FloatDType::F32)
        .into_data()
        .into_vec::<f32>()
        .unwrap()
}

/// peft's adapter -> falconry: peft's logits; merged: peft's merged logits; written back out:
/// peft's tensors (bit for bit) and config (all but the base model's path).
fn check(name: &str, base: &str) {
    let dir = fixture(&format!("lora/{name}"));
    let device = Default::default();
    let (ids, want, want_merged) = expected(&dir);
    let model = load_hf::<B>(&fixture(base), &device).unwrap();
    let plain = logits(&model, ids.clone());
    let (model, config) = load_adapter(model, &dir, &device).unwrap();
    let got = logits(&model, ids.clone());
    let diff = max_abs_diff(&got, &want);
    println!(
        "{name}: max |falconry - peft| = {diff:.2e} (adapter moves logits by {:.2})",
        max_abs_diff(&plain, &want)
    );
    assert!(diff < 1e-4, "{name}: max |falconry - peft| = {diff}");
    assert!(max_abs_diff(&plain, &want) > 0.1, "the adapter must matter");

    let merged = logits(&model.clone().merge_lora(), ids.clone());
    let diff = max_abs_diff(&merged, &want_merged);
    println!("{name}: merged: max |falconry - peft| = {diff:.2e}");
    assert!(diff < 1e-4, "{name} merged: {diff}");

    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("FALCONRY_LORA_SAVE_DIR").map(|d| PathBuf::from(d).join(name));
    let out = keep.clone().unwrap_or_else(|| tmp.path().join(name));
    save_adapter(
        &model,
        &config,
        &format!("train/tests/fixtures/{base}"),
        &out,
    )
    .unwrap();
    let read = |d: &Path| std::fs::read(d.join(ADAPTER_WEIGHTS)).unwrap();
    let (ours, theirs) = (read(&out), read(&dir));
    let (ours, theirs) = (
        SafeTensors::deserialize(&ours).unwrap(),
        SafeTensors::deserialize(&theirs).unwrap(),
    );
    let mut names = ours.names();
    names.sort();
    let mut want_names = theirs.names();
    want_names.sort();
    assert_eq!(names, want_names);
    for n in names {
        assert_eq!(f32s(&ours, n), f32s(&theirs, n), "{n}");
    }
    // peft lists target_modules in its set's (hash-seeded) order; we sort them.
    let json = |d: &Path| -> serde_json::Value {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join(ADAPTER_CONFIG)).unwrap())
                .unwrap();
        v["target_modules"]
            .as_array_mut()
            .unwrap()
            .sort_by_key(|t| t.to_string());
        v
    };
    assert_eq!(
        json(&out),
        json(&dir),
        "adapter_config.json as peft writes it"
    );
    if keep.is_some() {
        let [b, t] = ids.dims();
        let ids: Vec<u8> = ids
            .into_data()
            .convert::<i64>()
            .into_vec::<i64>()
            .unwrap()
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let logits: Vec<u8> = got.iter().flat_map(|x| x.to_le_bytes()).collect();
        let view = |dtype, shape: Vec<usize>, data| {
            safetensors::tensor::TensorView::new(dtype, shape, data).unwrap()
        };
        let vocab = model.config().vocab_size;
        let bytes = safetensors::serialize(
            [
                (
                    "input_ids",
                    view(safetensors::Dtype::I64, vec![b, t], &ids[..]),
                ),
                (
                    "logits",
                    view(safetensors::Dtype::F32, vec![b, t, vocab], &logits[..]),
                ),
            ],
            None,
        )
        .unwrap();
        std::fs::write(out.join("falconry_logits.safetensors"), bytes).unwrap();
    }
}

#[test]
fn peft_adapter_falcon_7b_style() {
    check("peft-7b-style", "falcon-7b-style");
}

#[test]
fn peft_adapter_falcon_40b_style() {
    check("peft-40b-style", "falcon-40b-style");
}

/// QLoRA: the NF4 model (weights dequantized on the fly, adapter on top) computes what the f32
/// model computes with each projection replaced by its NF4 round trip on the host.
#[test]
fn nf4_base_computes_its_dequantized_weights() {
    let dir = fixture("lora/peft-7b-style");
    let device = Default::default();
    let (ids, want, _) = expected(&dir);
    let base = load_hf::<B>(&fixture("falcon-7b-style"), &device).unwrap();
    let mut rounded = base.clone();
    for (_, _, linear) in rounded.linears_mut() {
        let w = linear.weight.as_mut().unwrap();
        let [d_in, d_out] = w.dims();
        let hf = w.val().transpose().into_data().into_vec::<f32>().unwrap();
        let back = Nf4Tensor::quantize(&hf, &[d_out, d_in]).dequantize();
        let t = Tensor::<B, 2>::from_data(TensorData::new(back, [d_out, d_in]), &device);
        *w = Param::from_tensor(t.transpose());
    }
    let (quantized, _) = load_adapter(base.quantize_nf4(), &dir, &device).unwrap();
    let (rounded, _) = load_adapter(rounded, &dir, &device).unwrap();
    let got = logits(&quantized, ids.clone());
    let diff = max_abs_diff(&got, &logits(&rounded, ids));
    let off = max_abs_diff(&got, &want);
    println!("nf4 base: max |on the fly - host round trip| = {diff:.2e}; vs the f32 base {off:.3}");
    assert!(diff < 1e-4, "nf4: {diff}");
    assert!(off > 1e-3, "4 bits are not f32");
}

/// LoRA's frozen base held in a dtype other than f32 (bf16 on the GPU; f64 here: the CPU
/// backend has no bf16) computes the same logits, merged or not.
#[test]
fn base_held_in_another_dtype_computes_the_same() {
    let dir = fixture("lora/peft-7b-style");
    let device = Default::default();
    let (ids, _, _) = expected(&dir);
    let base = load_hf::<B>(&fixture("falcon-7b-style"), &device).unwrap();
    let (plain, _) = load_adapter(base.clone(), &dir, &device).unwrap();
    let (held, _) = load_adapter(base.base_in(FloatDType::F64), &dir, &device).unwrap();
    let mut probe = held.clone();
    for (_, _, linear) in probe.linears_mut() {
        assert_eq!(linear.weight.as_ref().unwrap().val().dtype(), DType::F64);
    }
    let diff = max_abs_diff(&logits(&held, ids.clone()), &logits(&plain, ids.clone()));
    let merged = max_abs_diff(
        &logits(&held.merge_lora(), ids.clone()),
        &logits(&plain.merge_lora(), ids),
    );
    println!("base in f64: max |logits - f32 base's| = {diff:.2e}, merged {merged:.2e}");
    assert!(diff < 1e-5 && merged < 1e-5, "{diff} {merged}");
}

/// With adapters on, a backward pass gives gradients to the adapters and to nothing else.
#[test]
fn only_adapters_get_gradients() {
    struct Count<'a> {
        grads: &'a GradientsParams,
        with: usize,
        without: usize,
    }
    impl<Bk: burn::tensor::backend::AutodiffBackend> ModuleVisitor<Bk> for Count<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<Bk, D>>) {
            if self.grads.get::<Bk::InnerBackend, D>(p.id).is_some() {
                self.with += 1;
            } else {
                self.without += 1;
            }
        }
    }
    let device = Default::default();
    let config = LoraConfig {
        r: 2,
        alpha: 4.0,
        dropout: 0.0,
        target_modules: vec!["query_key_value".into(), "dense_4h_to_h".into()],
    };
    for quantize in [false, true] {
        let model = load_hf::<CpuTrainBackend>(&fixture("falcon-7b-style"), &device).unwrap();
        let model = if quantize {
            model.quantize_nf4()
        } else {
            model
        };
        let model = model.with_lora(&config, &device);
        let ids = Tensor::<CpuTrainBackend, 2, Int>::from_data(
            TensorData::new(vec![1i64, 5, 9, 2, 7, 3], [1, 6]),
            &device,
        );
        let targets = ids.clone();
        let loss = model.loss(ids, targets, FloatDType::F32);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut count = Count {
            grads: &grads,
            with: 0,
            without: 0,
        };
        model.visit(&mut count);
        // 2 layers x 2 targeted projections x (A, B); frozen: the embedding, 2 x 2 LayerNorm
        // tensors, ln_f's 2 and (unless in NF4) 2 x 4 projections.
        assert_eq!(count.with, 8, "quantize {quantize}");
        assert_eq!(count.without, if quantize { 7 } else { 15 });
    }
}
