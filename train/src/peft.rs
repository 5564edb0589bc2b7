//! PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, as HF `peft`
//! (0.21) writes them for a LoRA on `FalconForCausalLM`, so `PeftModel.from_pretrained` loads
//! ours and we load theirs.
//!
//! Tensors are named `base_model.model.{module}.lora_A.weight` (`[r, d_in]`) and
//! `...lora_B.weight` (`[d_out, r]`), PyTorch's layout; ours are transposed on the way in and
//! out. The config carries every key peft writes, with its defaults; reading accepts what we
//! can compute (plain LoRA: no DoRA, rsLoRA, biases or per-module ranks) and says what not.

use std::collections::BTreeSet;
use std::path::Path;

use burn::module::{Module, Param};
use burn::tensor::{Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use crate::attention::FalconBackend;
use crate::hf::{load_safetensors, save_safetensors, NamedTensors};
use crate::lora::{Lora, LoraConfig};
use crate::model::FalconForCausalLM;
use crate::{write_atomic, Error};

/// The adapter's config file.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The adapter's weights.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";

/// PEFT's name of the `A` or `B` matrix of the adapter on `module`.
pub(crate) fn adapter_tensor_name(module: &str, ab: &str) -> String {
    format!("base_model.model.{module}.lora_{ab}.weight")
}

fn host<B: burn::tensor::backend::Backend>(t: Tensor<B, 2>) -> (Vec<usize>, Vec<f32>) {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32");
    (shape, data)
}

/// `adapter_config.json` as peft 0.21 writes it for `config` (keys sorted, as it sorts them).
pub fn peft_config(config: &LoraConfig, base_model: &str) -> Value {
    let mut targets = config.target_modules.clone();
    targets.sort();
    targets.dedup();
    // peft writes an integral alpha as an integer (it is an int in its LoraConfig).
    let alpha = if config.alpha.fract() == 0.0 && config.alpha.abs() < 1e15 {
        json!(config.alpha as i64)
    } else {
        json!(config.alpha)
    };
    json!({
        "alora_invocation_tokens": null,
        "alpha_pattern": {},
        "arrow_config": null,
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "corda_config": null,
        "ensure_weight_tying": false,
        "eva_config": null,
        "exclude_modules": null,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "kasa_config": null,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_bias": false,
        "lora_dropout": config.dropout,
        "lora_ga_config": null,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "monteclora_config": null,
        "peft_type": "LORA",
        "peft_version": "0.21.2",
        "qalora_group_size": 16,
        "r": config.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "target_parameters": null,
        "task_type": "CAUSAL_LM",
        "trainable_token_indices": null,
        "use_bdlora": null,
        "use_dora": false,
        "use_qalora": false,
        "use_rslora": false,
        "velora_config": null
    })
}

/// Saves `model`'s adapters (and `config`) as a PEFT folder; `base_model` goes into
/// `base_model_name_or_path`.
pub fn save_adapter<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    config: &LoraConfig,
    base_model: &str,
    dir: &Path,
) -> Result<(), Error> {
    write_adapter(&adapter_tensors(model), config, base_model, dir)
}

/// `model`'s adapters under PEFT's names and layouts (`lora_A.weight` `[r, d_in]`,
/// `lora_B.weight` `[d_out, r]`).
pub(crate) fn adapter_tensors<B: FalconBackend>(model: &FalconForCausalLM<B>) -> NamedTensors {
    let mut model = model.clone();
    let mut tensors = NamedTensors::new();
    for (path, _, linear) in model.linears_mut() {
        if let Some(lora) = &linear.lora {
            tensors.insert(
                adapter_tensor_name(&path, "A"),
                host(lora.a.val().transpose()),
            );
            tensors.insert(
                adapter_tensor_name(&path, "B"),
                host(lora.b.val().transpose()),
            );
        }
    }
    tensors
}

/// Writes a PEFT folder: `adapter_config.json` (for `base_model`) and
/// `adapter_model.safetensors` with `tensors` (PEFT names), each atomically.
pub(crate) fn write_adapter(
    tensors: &NamedTensors,
    config: &LoraConfig,
    base_model: &str,
    dir: &Path,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    if tensors.is_empty() {
        return Err(Error::Unsupported(
            "the model has no LoRA adapters to save".into(),
        ));
    }
    let json = serde_json::to_vec_pretty(&peft_config(config, base_model)).expect("json");
    write_atomic(&dir.join(ADAPTER_CONFIG), &json)?;
    save_safetensors(&dir.join(ADAPTER_WEIGHTS), tensors)
}

/// Reads a PEFT `adapter_config.json` into a [`LoraConfig`], refusing LoRA variants that
/// compute something else.
pub fn read_adapter_config(dir: &Path) -> Result<LoraConfig, Error> {
    let path = dir.join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let bad = |message: String| Error::Config {
        path: path.clone(),
        message,
    };
    let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    if v["peft_type"] != "LORA" {
        return Err(bad(format!(
            "peft_type is {}, not \"LORA\"",
            v["peft_type"]
        )));
    }
    for (key, plain) in [
        ("use_dora", json!(false)),
        ("use_rslora", json!(false)),
        ("fan_in_fan_out", json!(false)),
        ("bias", json!("none")),
        ("rank_pattern", json!({})),
        ("alpha_pattern", json!({})),
        ("layers_to_transform", Value::Null),
    ] {
        if v.get(key).is_some_and(|x| *x != plain) {
            return Err(bad(format!(
                "{key} = {} is not supported (only {plain})",
                v[key]
            )));
        }
    }
    let targets = match &v["target_modules"] {
        Value::Array(a) => a
            .iter()
            .map(|t| t.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>(),
        _ => None,
    }
    .ok_or_else(|| bad("target_modules must be a list of module names".into()))?;
    let config = LoraConfig {
        r: v["r"].as_u64().ok_or_else(|| bad("r is missing".into()))? as usize,
        alpha: v["lora_alpha"]
            .as_f64()
            .ok_or_else(|| bad("lora_alpha is missing".into()))?,
        dropout: v["lora_dropout"].as_f64().unwrap_or(0.0),
        target_modules: targets,
    };
    config.validate().map_err(bad)?;
    Ok(config)
}

/// Loads a PEFT folder's adapters onto `model` (whose base is frozen); returns the model and
/// the adapter's config. Every targeted projection must have its two tensors, and every tensor
/// must belong to one.
pub fn load_adapter<B: FalconBackend>(
    model: FalconForCausalLM<B>,
    dir: &Path,
    device: &B::Device,
) -> Result<(FalconForCausalLM<B>, LoraConfig), Error> {
    let config = read_adapter_config(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS);
    let tensors = load_safetensors(&path)?;
    let model =
        set_adapters(model, &tensors, &config, device).map_err(|message| Error::Checkpoint {
            path: path.clone(),
            message,
        })?;
    Ok((model, config))
}

/// The PEFT names and shapes of the adapters `config` puts on `model`'s projections.
pub(crate) fn adapter_shapes<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    config: &LoraConfig,
) -> Vec<(String, Vec<usize>)> {
    let mut model = model.clone();
    let mut shapes = Vec::new();
    for (module, name, linear) in model.linears_mut() {
        if config.target_modules.iter().any(|t| t == name) {
            let [d_in, d_out] = linear.dims();
            shapes.push((adapter_tensor_name(&module, "A"), vec![config.r, d_in]));
            shapes.push((adapter_tensor_name(&module, "B"), vec![d_out, config.r]));
        }
    }
    shapes
}

/// Fresh adapters of the given PEFT names and shapes, as PEFT draws them: `lora_A` uniform in
/// +-1/sqrt(d_in), `lora_B` zero (so a fresh adapter changes nothing); seeded by `seed`, so
/// that Burn's step and the CUDA engine start a run from the same adapters.
pub fn fresh_adapters(shapes: &[(String, Vec<usize>)], seed: u64) -> NamedTensors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    shapes
        .iter()
        .map(|(name, shape)| {
            let len = shape.iter().product();
            let data = if name.ends_with(".lora_A.weight") {
                let bound = 1.0 / (shape[1] as f32).sqrt();
                (0..len).map(|_| rng.random_range(-bound..bound)).collect()
            } else {
                vec![0.0; len]
            };
            (name.clone(), (shape.clone(), data))
        })
        .collect()
}

/// Puts adapters from PEFT-named `tensors` on the projections of `model` that `config`
/// targets, the base frozen; the adapters are trainable. Every targeted projection must have
/// its two tensors, and every tensor must belong to one (the message says which not).
pub(crate) fn set_adapters<B: FalconBackend>(
    model: FalconForCausalLM<B>,
    tensors: &NamedTensors,
    config: &LoraConfig,
    device: &B::Device,
) -> Result<FalconForCausalLM<B>, String> {
    let mut unused: BTreeSet<&String> = tensors.keys().collect();
    let mut model = model.no_grad();
    for (module, name, linear) in model.linears_mut() {
        if !config.target_modules.iter().any(|t| t == name) {
            continue;
        }
        let [d_in, d_out] = linear.dims();
        let mut read = |ab: &str, want: [usize; 2]| -> Result<Param<Tensor<B, 2>>, String> {
            let key = adapter_tensor_name(&module, ab);
            let (shape, data) = tensors
                .get(&key)
                .ok_or_else(|| format!("missing tensor `{key}`"))?;
            if shape[..] != want {
                return Err(format!(
                    "`{key}` has shape {shape:?}, expected {want:?} (r = {})",
                    config.r
                ));
            }
            unused.remove(&key);
            let w = Tensor::<B, 2>::from_data(TensorData::new(data.clone(), want), device);
            Ok(Param::from_tensor(w.transpose().require_grad()))
        };
        let a = read("A", [config.r, d_in])?;
        let b = read("B", [d_out, config.r])?;
        linear.lora = Some(Lora::from_parts(a, b, config));
    }
    if let Some(name) = unused.iter().next() {
        return Err(format!(
            "tensor `{name}` belongs to no targeted Falcon projection"
        ));
    }
    Ok(model)
}

/// Files of a HF checkpoint folder besides the weights that a merged folder keeps.
const CHECKPOINT_EXTRAS: [&str; 4] = [
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// `falconry merge`: the base checkpoint with the adapter folded in, saved as a full HF folder
/// (`config.json`, `model.safetensors`, and the base's tokenizer and generation files).
pub fn merge_adapter<B: FalconBackend>(
    checkpoint: &Path,
    adapter: &Path,
    output: &Path,
    device: &B::Device,
) -> Result<(), Error> {
    let base = crate::hf::load_hf::<B>(checkpoint, device)?;
    let (model, _) = load_adapter(base, adapter, device)?;
    crate::hf::save_hf(&model.merge_lora(), output)?;
    for name in CHECKPOINT_EXTRAS {
        let from = checkpoint.join(name);
        if from.exists() {
            let bytes = std::fs::read(&from).map_err(|e| Error::io(&from, e))?;
            write_atomic(&output.join(name), &bytes)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_adapters_draw_a_within_its_bound_and_zero_b_from_the_seed() {
        let shapes = vec![
            ("m.lora_A.weight".to_string(), vec![4, 9]),
            ("m.lora_B.weight".to_string(), vec![3, 4]),
        ];
        let fresh = fresh_adapters(&shapes, 1);
        let (shape, a) = &fresh["m.lora_A.weight"];
        assert_eq!(shape, &vec![4, 9]);
        assert!(a.iter().all(|x| x.abs() <= 1.0 / 3.0), "U(+-1/sqrt(d_in))");
        assert!(a.iter().filter(|&&x| x != 0.0).count() == 36);
        assert!(fresh["m.lora_B.weight"].1.iter().all(|&x| x == 0.0));
        assert_eq!(fresh, fresh_adapters(&shapes, 1));
        assert_ne!(fresh, fresh_adapters(&shapes, 2));
    }
}
