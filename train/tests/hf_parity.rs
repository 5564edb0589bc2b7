//! HF parity: falconry's logits on the fixtures of `scripts/falcon_fixture.py` (transformers'
//! `FalconForCausalLM`, f32) match within 1e-4, for all three fused-QKV layouts and for
//! transformers' sharded folders; a folder falconry saves loads back to the same logits.
//!
//! Set `FALCONRY_HF_SAVE_DIR` to also keep the saved folders (with `falconry_logits.safetensors`)
//! for `python scripts/falcon_fixture.py --check DIR/<arch>`.

mod common;

use common::max_abs_diff;

use std::path::{Path, PathBuf};

use burn::tensor::{FloatDType, Int, Tensor, TensorData};
use falconry_train::{load_hf, load_hf_as, save_hf, CpuBackend, Quantize};
use safetensors::{Dtype, SafeTensors};

type B = CpuBackend;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// (input ids `[B, T]`, expected logits `[B, T, V]` flattened).
fn expected(dir: &Path) -> (Vec<i64>, [usize; 2], Vec<f32>, [usize; 3]) {
    let buf = std::fs::read(dir.join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&buf).unwrap();
    let ids = st.tensor("input_ids").unwrap();
    assert_eq!(ids.dtype(), Dtype::I64);
    let ids_shape = [ids.shape()[0], ids.shape()[1]];
    let ids = ids
        .data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let logits = st.tensor("logits").unwrap();
    let shape = [logits.shape()[0], logits.shape()[1], logits.shape()[2]];
    let logits = logits
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (ids, ids_shape, logits, shape)
}

fn logits_of(dir: &Path, ids: &[i64], shape: [usize; 2]) -> Vec<f32> {
    let device = Default::default();
    let model = load_hf::<B>(dir, &device).unwrap();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids.to_vec(), shape), &device);
    model
        .forward(ids, FloatDType::F32)
        .into_data()
        .into_vec::<f32>()
        .unwrap()
}

fn check(arch: &str) {
    let dir = fixture(arch);
    let (ids, ids_shape, want, shape) = expected(&dir);
    let got = logits_of(&dir, &ids, ids_shape);
    assert_eq!(got.len(), shape.iter().product::<usize>());
    let diff = max_abs_diff(&got, &want);
    assert!(
        diff < 1e-4,
        "{arch}: max |falconry - transformers| = {diff}"
    );

    // Save, load back, same logits.
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("FALCONRY_HF_SAVE_DIR").map(|d| PathBuf::from(d).join(arch));
    let out = keep.clone().unwrap_or_else(|| tmp.path().join(arch));
    let device = Default::default();
    save_hf(&load_hf::<B>(&dir, &device).unwrap(), &out).unwrap();
    let again = logits_of(&out, &ids, ids_shape);
    assert!(
        max_abs_diff(&again, &got) == 0.0,
        "{arch}: reloaded logits differ"
    );
    if keep.is_some() {
        let bytes = |v: &[u8]| v.to_vec();
        let ids_bytes: Vec<u8> = ids.iter().flat_map(|x| x.to_le_bytes()).collect();
        let logit_bytes: Vec<u8> = got.iter().flat_map(|x| x.to_le_bytes()).collect();
        let views = vec![
            (
                "input_ids",
                safetensors::tensor::TensorView::new(Dtype::I64, ids_shape.to_vec(), &ids_bytes)
                    .unwrap(),
            ),
            (
                "logits",
                safetensors::tensor::TensorView::new(Dtype::F32, shape.to_vec(), &logit_bytes)
                    .unwrap(),
            ),
        ];
        let data = safetensors::serialize(views, None).unwrap();
        std::fs::write(out.join("falconry_logits.safetensors"), bytes(&data)).unwrap();
    }
}

#[test]
fn falcon_7b_style_matches_transformers() {
    check("falcon-7b-style");
}

#[test]
fn falcon_40b_style_matches_transformers() {
    check("falcon-40b-style");
}

#[test]
fn falcon_rw_style_matches_transformers() {
    check("falcon-rw-style");
}

/// transformers' sharded form (`model-0000N-of-00005.safetensors` + the index), as the hub's
/// Falcon-7B and -40B are stored; and NF4 on load (QLoRA's base never on the device in f32)
/// computes what quantizing the loaded f32 model does.
#[test]
fn sharded_checkpoint_matches_transformers_and_loads_into_nf4() {
    let dir = fixture("falcon-40b-style-sharded");
    assert!(!dir.join("model.safetensors").exists());
    check("falcon-40b-style-sharded");

    let device = Default::default();
    let (ids, shape, _, _) = expected(&dir);
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, shape), &device);
    let logits = |m: falconry_train::FalconForCausalLM<B>| {
        m.forward(ids.clone(), FloatDType::F32)
            .into_data()
            .into_vec::<f32>()
            .unwrap()
    };
    let mut on_load = load_hf_as::<B>(&dir, Quantize::Nf4, &device).unwrap();
    assert!(on_load
        .linears_mut()
        .iter()
        .all(|(_, _, l)| l.weight.is_none() && l.nf4.is_some()));
    let after = load_hf::<B>(&dir, &device).unwrap().quantize_nf4();
    let (a, b) = (logits(on_load), logits(after));
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    let plain = logits(load_hf::<B>(&dir, &device).unwrap());
    assert!(max_abs_diff(&a, &plain) > 1e-3, "NF4 changes the logits");

    // A shard the index names but the folder lacks is an error naming it.
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("model-00003-of-00005.safetensors") {
            std::fs::copy(&p, tmp.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    let err = load_hf::<B>(tmp.path(), &device).unwrap_err().to_string();
    assert!(err.contains("model-00003-of-00005.safetensors"), "{err}");
    std::fs::remove_file(tmp.path().join("model.safetensors.index.json")).unwrap();
    let err = load_hf::<B>(tmp.path(), &device).unwrap_err().to_string();
    assert!(err.contains("model.safetensors.index.json"), "{err}");
}

/// Greedy decoding through the KV cache picks what a full forward pass over the whole
/// sequence picks, step after step (cached keys carry the right RoPE positions).
fn kv_cache_matches_full_forward(arch: &str) {
    use falconry_train::{generate, SampleOptions};
    let device = Default::default();
    let model = load_hf::<B>(&fixture(arch), &device).unwrap();
    let prompt = [3u32, 17, 42, 5];
    let opts = SampleOptions {
        max_new_tokens: 8,
        temperature: 0.0,
        eos_id: None,
        ..SampleOptions::default()
    };
    let cached = generate(&model, &prompt, &opts, FloatDType::F32, &device);
    let mut seq: Vec<u32> = prompt.to_vec();
    for _ in 0..8 {
        let ids: Vec<i64> = seq.iter().map(|&t| t as i64).collect();
        let n = ids.len();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, n]), &device);
        let logits = model
            .forward(ids, FloatDType::F32)
            .narrow(1, n - 1, 1)
            .flatten::<1>(0, 2);
        let row = logits.into_data().into_vec::<f32>().unwrap();
        let best = (0..row.len())
            .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
            .unwrap();
        seq.push(best as u32);
    }
    assert_eq!(cached, seq[prompt.len()..].to_vec(), "{arch}");
}

#[test]
fn kv_cache_decoding_matches_full_forward() {
    for arch in ["falcon-7b-style", "falcon-40b-style", "falcon-rw-style"] {
        kv_cache_matches_full_forward(arch);
    }
}

/// A freshly initialised model, saved as is, is the model that computes: Burn's parameters
/// are lazy, and a save through a clone taken before first use once wrote other random values.
#[test]
fn fresh_model_saves_its_own_weights() {
    use burn::tensor::backend::Backend;
    let device = Default::default();
    B::seed(&device, 3);
    let model = falconry_train::FalconConfig::falcon_tiny().init::<B>(&device);
    let dir = tempfile::tempdir().unwrap();
    save_hf(&model, dir.path()).unwrap();
    let reloaded = load_hf::<B>(dir.path(), &device).unwrap();
    let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1i64, 5, 9, 2], [1, 4]), &device);
    let a = model
        .forward(ids.clone(), FloatDType::F32)
        .into_data()
        .into_vec::<f32>()
        .unwrap();
    let b = reloaded
        .forward(ids, FloatDType::F32)
        .into_data()
        .into_vec::<f32>()
        .unwrap();
    assert!(
        max_abs_diff(&a, &b) < 1e-6,
        "saved weights differ from the model's"
    );
}
