//! `FalconConfig`: the model's shape, read from `configs/model/*.toml` or from a HF
//! `config.json` the way transformers' `FalconConfig` reads it.
//!
//! transformers accepts old key names beside the new ones (`n_layer`, `n_head`, `n_embed`,
//! `n_head_kv` from the `RefinedWeb` remote-code era; `rope_theta` at the top level or inside
//! `rope_parameters`), and a `multi_query` model without `new_decoder_architecture` has exactly
//! one K/V head whatever `num_kv_heads` says (`FalconAttention.__init__`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Error;

/// The shape of a Falcon model. Field names are HF transformers' `FalconConfig` names.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FalconConfig {
    /// Vocabulary size; 65,024 for the Falcon tokenizer (ids fit in u16).
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// Number of decoder blocks.
    pub num_hidden_layers: usize,
    /// Number of query heads; `head_dim = hidden_size / num_attention_heads`.
    pub num_attention_heads: usize,
    /// Number of K/V heads (groups) for `new_decoder_architecture`; see [`Self::kv_heads`].
    pub num_kv_heads: usize,
    /// falcon-7b style: one K/V head shared by all query heads.
    #[serde(default = "yes")]
    pub multi_query: bool,
    /// falcon-40b style: grouped K/V heads and two LayerNorms (`ln_attn`, `ln_mlp`).
    #[serde(default)]
    pub new_decoder_architecture: bool,
    /// LayerNorms per block under `new_decoder_architecture`: 2 (`ln_attn` + `ln_mlp`, the
    /// default) or 1 (`input_layernorm` only).
    #[serde(default = "two")]
    pub num_ln_in_parallel_attn: usize,
    /// MLP width; 4 x `hidden_size` in every Falcon.
    pub ffn_hidden_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    /// RoPE base.
    #[serde(default = "theta")]
    pub rope_theta: f64,
    /// Longest sequence the model is meant for (RoPE itself has no table to outgrow).
    #[serde(default = "max_pos")]
    pub max_position_embeddings: usize,
}

fn yes() -> bool {
    true
}
fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-5
}
fn theta() -> f64 {
    1e4
}
fn max_pos() -> usize {
    2048
}

/// How `query_key_value`'s output columns are laid out (`FalconAttention._split_heads`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkvLayout {
    /// `new_decoder_architecture`: per K/V group, its `q/kv` query heads, then `k`, then `v`.
    Grouped,
    /// falcon-7b: all query heads, then one `k` head, then one `v` head.
    MultiQuery,
    /// Neither: per head `q, k, v` interleaved (falcon-rw).
    PerHead,
}

impl FalconConfig {
    /// falcon-7b: 32 x 4544, 71 heads, multi-query.
    pub fn falcon_7b() -> Self {
        Self::preset(include_str!("../../configs/model/falcon-7b.toml"))
    }
    /// falcon-40b: 60 x 8192, 128 heads in 8 K/V groups.
    pub fn falcon_40b() -> Self {
        Self::preset(include_str!("../../configs/model/falcon-40b.toml"))
    }
    /// falcon-124m: 12 x 768, 12 heads, multi-query.
    pub fn falcon_124m() -> Self {
        Self::preset(include_str!("../../configs/model/falcon-124m.toml"))
    }
    /// falcon-350m: 24 x 1024, 16 heads in 2 K/V groups.
    pub fn falcon_350m() -> Self {
        Self::preset(include_str!("../../configs/model/falcon-350m.toml"))
    }
    /// falcon-1b: 28 x 2048, 32 heads, multi-query; fills one 80 GB card.
    pub fn falcon_1b() -> Self {
        Self::preset(include_str!("../../configs/model/falcon-1b.toml"))
    }
    /// falcon-tiny: 2 x 64, 4 heads, for tests.
    pub fn falcon_tiny() -> Self {
        Self::preset(include_str!("../../configs/model/falcon-tiny.toml"))
    }

    fn preset(text: &str) -> Self {
        // The presets are committed files checked by a test; a parse failure is a build bug.
        toml::from_str(text).expect("committed model preset parses")
    }

    /// Reads a `configs/model/*.toml` file and validates it.
    pub fn from_toml_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config: Self = toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// K/V heads the attention really has, as `FalconAttention.__init__` decides:
    /// `num_kv_heads` under `new_decoder_architecture` or without `multi_query`, else 1.
    pub fn kv_heads(&self) -> usize {
        if self.new_decoder_architecture || !self.multi_query {
            self.num_kv_heads
        } else {
            1
        }
    }

    /// The fused QKV column layout.
    pub fn qkv_layout(&self) -> QkvLayout {
        if self.new_decoder_architecture {
            QkvLayout::Grouped
        } else if self.multi_query {
            QkvLayout::MultiQuery
        } else {
            QkvLayout::PerHead
        }
    }

    /// Output width of `query_key_value`: `(heads + 2 kv_heads) x head_dim`.
    pub fn qkv_dim(&self) -> usize {
        (self.num_attention_heads + 2 * self.kv_heads()) * self.head_dim()
    }

    /// Whether blocks carry `ln_attn` + `ln_mlp` rather than one `input_layernorm`.
    pub fn two_layernorms(&self) -> bool {
        self.new_decoder_architecture && self.num_ln_in_parallel_attn == 2
    }

    /// Parameter count (the tied embedding counted once).
    pub fn num_params(&self) -> usize {
        let d = self.hidden_size;
        let ln = 2 * d * if self.two_layernorms() { 2 } else { 1 };
        let block = d * self.qkv_dim() + d * d + 2 * d * self.ffn_hidden_size + ln;
        self.vocab_size * d + self.num_hidden_layers * block + 2 * d
    }

    /// Checks the combinations the model cannot run.
    pub fn validate(&self) -> Result<(), String> {
        let (d, h) = (self.hidden_size, self.num_attention_heads);
        if h == 0 || d % h != 0 {
            return Err(format!(
                "hidden_size {d} is not a multiple of num_attention_heads {h}"
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        let kv = self.kv_heads();
        if kv == 0 || h % kv != 0 {
            return Err(format!(
                "num_attention_heads {h} is not a multiple of the {kv} K/V heads"
            ));
        }
        if self.qkv_layout() == QkvLayout::PerHead && kv != h {
            return Err(format!(
                "without multi_query, num_kv_heads ({kv}) must equal num_attention_heads ({h})"
            ));
        }
        if !(1..=2).contains(&self.num_ln_in_parallel_attn) {
            return Err("num_ln_in_parallel_attn must be 1 or 2".into());
        }
        if self.vocab_size == 0 || self.num_hidden_layers == 0 || self.ffn_hidden_size == 0 {
            return Err(
                "vocab_size, num_hidden_layers and ffn_hidden_size must be positive".into(),
            );
        }
        Ok(())
    }

    /// Reads a HF `config.json` as transformers does (old and new key names alike).
    pub fn from_hf_json(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Config {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Self::from_hf_value(&value).map_err(|message| Error::Config {
            path: path.to_owned(),
            message,
        })
    }

    /// [`Self::from_hf_json`] on a parsed value.
    pub fn from_hf_value(v: &serde_json::Value) -> Result<Self, String> {
        let get = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k).filter(|x| !x.is_null()));
        let usize_of = |keys: &[&str], default: Option<usize>| -> Result<usize, String> {
            match get(keys) {
                Some(x) => x
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| format!("`{}` is not a non-negative integer", keys[0])),
                None => default.ok_or_else(|| format!("missing `{}`", keys[0])),
            }
        };
        let bool_of = |key: &str, default: bool| -> Result<bool, String> {
            match get(&[key]) {
                Some(x) => x
                    .as_bool()
                    .ok_or_else(|| format!("`{key}` is not a boolean")),
                None => Ok(default),
            }
        };
        // Features this model does not implement: refuse rather than compute something else.
        if bool_of("alibi", false)? {
            return Err("alibi position biases are not supported (RoPE only)".into());
        }
        if bool_of("bias", false)? {
            return Err("linear biases (`bias: true`) are not supported".into());
        }
        if !bool_of("parallel_attn", true)? {
            return Err("sequential attention (`parallel_attn: false`) is not supported".into());
        }
        if let Some(act) = get(&["activation"]).and_then(|a| a.as_str()) {
            if act != "gelu" {
                return Err(format!(
                    "activation `{act}` is not supported (exact gelu only)"
                ));
            }
        }
        let rope_theta = match get(&["rope_parameters", "rope_scaling"]) {
            Some(p)
                if p.get("rope_type")
                    .and_then(|t| t.as_str())
                    .unwrap_or("default")
                    != "default" =>
            {
                return Err("only the default RoPE type is supported".into())
            }
            Some(p) if p.get("rope_theta").is_some() => p["rope_theta"].as_f64(),
            _ => get(&["rope_theta"]).and_then(|t| t.as_f64()),
        }
        .unwrap_or(1e4);

        let hidden_size = usize_of(&["hidden_size", "n_embed"], Some(4544))?;
        let num_attention_heads = usize_of(&["num_attention_heads", "n_head"], Some(71))?;
        let new_decoder_architecture = bool_of("new_decoder_architecture", false)?;
        let config = Self {
            vocab_size: usize_of(&["vocab_size"], Some(65024))?,
            hidden_size,
            num_hidden_layers: usize_of(&["num_hidden_layers", "n_layer"], Some(32))?,
            num_attention_heads,
            num_kv_heads: usize_of(&["num_kv_heads", "n_head_kv"], Some(num_attention_heads))?,
            multi_query: bool_of("multi_query", true)?,
            new_decoder_architecture,
            num_ln_in_parallel_attn: usize_of(
                &["num_ln_in_parallel_attn"],
                Some(if new_decoder_architecture { 2 } else { 1 }),
            )?,
            ffn_hidden_size: usize_of(&["ffn_hidden_size"], Some(4 * hidden_size))?,
            layer_norm_epsilon: get(&["layer_norm_epsilon"])
                .and_then(|x| x.as_f64())
                .unwrap_or(1e-5),
            rope_theta,
            max_position_embeddings: usize_of(&["max_position_embeddings"], Some(2048))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// The `config.json` transformers writes for this model (current key names).
    pub fn to_hf_value(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["FalconForCausalLM"],
            "model_type": "falcon",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_kv_heads": self.num_kv_heads,
            "multi_query": self.multi_query,
            "new_decoder_architecture": self.new_decoder_architecture,
            "num_ln_in_parallel_attn": if self.new_decoder_architecture { Some(self.num_ln_in_parallel_attn) } else { None },
            "ffn_hidden_size": self.ffn_hidden_size,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "rope_theta": self.rope_theta,
            "max_position_embeddings": self.max_position_embeddings,
            "alibi": false,
            "bias": false,
            "parallel_attn": true,
            "activation": "gelu",
            "tie_word_embeddings": true,
            "bos_token_id": 11,
            "eos_token_id": 11,
            "torch_dtype": "float32",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presets_parse_and_validate() {
        for (c, params_m) in [
            (FalconConfig::falcon_tiny(), 4),
            (FalconConfig::falcon_124m(), 121),
            (FalconConfig::falcon_350m(), 324),
            (FalconConfig::falcon_1b(), 1315),
            (FalconConfig::falcon_7b(), 6921),
            (FalconConfig::falcon_40b(), 41303),
        ] {
            c.validate().unwrap();
            assert_eq!(c.num_params() / 1_000_000, params_m, "{c:?}");
        }
        let b7 = FalconConfig::falcon_7b();
        assert_eq!((b7.kv_heads(), b7.head_dim(), b7.qkv_dim()), (1, 64, 4672));
        let b40 = FalconConfig::falcon_40b();
        assert_eq!((b40.kv_heads(), b40.qkv_layout()), (8, QkvLayout::Grouped));
        assert!(b40.two_layernorms() && !b7.two_layernorms());
    }

    #[test]
    fn old_key_names_read_as_new() {
        let old = json!({"n_layer": 2, "n_head": 4, "n_embed": 32, "vocab_size": 100,
                          "multi_query": true, "num_kv_heads": 4});
        let c = FalconConfig::from_hf_value(&old).unwrap();
        assert_eq!(
            (c.num_hidden_layers, c.num_attention_heads, c.hidden_size),
            (2, 4, 32)
        );
        // multi_query without new_decoder_architecture: one K/V head whatever num_kv_heads says.
        assert_eq!(c.kv_heads(), 1);
        assert_eq!(c.ffn_hidden_size, 128);
    }

    #[test]
    fn rope_theta_from_either_place() {
        let base = json!({"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8});
        let mut a = base.clone();
        a["rope_theta"] = json!(500.0);
        let mut b = base.clone();
        b["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 700.0});
        assert_eq!(FalconConfig::from_hf_value(&a).unwrap().rope_theta, 500.0);
        assert_eq!(FalconConfig::from_hf_value(&b).unwrap().rope_theta, 700.0);
        assert_eq!(FalconConfig::from_hf_value(&base).unwrap().rope_theta, 1e4);
    }

    #[test]
    fn new_architecture_keeps_kv_groups() {
        let v = json!({"num_hidden_layers": 1, "num_attention_heads": 8, "hidden_size": 32,
                       "num_kv_heads": 2, "new_decoder_architecture": true});
        let c = FalconConfig::from_hf_value(&v).unwrap();
        assert_eq!((c.kv_heads(), c.num_ln_in_parallel_attn), (2, 2));
        let back = FalconConfig::from_hf_value(&c.to_hf_value()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unsupported_features_are_errors() {
        let base = json!({"num_hidden_layers": 1, "num_attention_heads": 2, "hidden_size": 8});
        for (k, v) in [
            ("alibi", json!(true)),
            ("bias", json!(true)),
            ("parallel_attn", json!(false)),
            ("activation", json!("relu")),
        ] {
            let mut c = base.clone();
            c[k] = v;
            assert!(FalconConfig::from_hf_value(&c).is_err(), "{k}");
        }
        let mut c = base.clone();
        c["hidden_size"] = json!(9);
        assert!(FalconConfig::from_hf_value(&c).is_err());
    }
}
