//! HF checkpoint folders: `config.json` + `model.safetensors` (or transformers' shards,
//! `model-0000N-of-0000M.safetensors` + `model.safetensors.index.json`) with transformers'
//! tensor names.
//!
//! `FalconForCausalLM.save_pretrained` writes `transformer.word_embeddings.weight`,
//! `transformer.h.{i}.self_attention.query_key_value.weight` (fused, `[qkv_dim, d]`),
//! `...self_attention.dense.weight`, `...mlp.dense_h_to_4h.weight`, `...mlp.dense_4h_to_h.weight`,
//! the LayerNorms (`input_layernorm` or `ln_attn` + `ln_mlp`, `.weight` and `.bias`) and
//! `transformer.ln_f.*`; `lm_head.weight` is left out because it is tied to the embedding.
//! PyTorch stores a linear weight `[d_out, d_in]`, Burn `[d_in, d_out]`: we transpose on the
//! way in and out and keep the fused QKV columns in HF's order (`model.rs` splits them as HF
//! does). Weights load from f32, bf16 or f16 and are saved as f32.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::{Param, ParamId};
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use falconry_shards::atomic;
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::attention::FalconBackend;
use crate::config::FalconConfig;
use crate::finetune::Quantize;
use crate::lora::layer_linears;
use crate::model::FalconForCausalLM;
use crate::nf4::{Nf4Tensor, Nf4Weight};
use crate::{write_atomic, Error};

/// Tensors by name: shape and f32 values.
pub type NamedTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// One named parameter of the model, as HF names it.
pub(crate) enum Slot<'a, B: Backend> {
    /// A linear weight: HF `[d_out, d_in]`, Burn `[d_in, d_out]`.
    Linear(&'a mut Param<Tensor<B, 2>>),
    /// A matrix stored the same way in both (the word embeddings).
    Matrix(&'a mut Param<Tensor<B, 2>>),
    /// A LayerNorm weight or bias.
    Vector(&'a mut Param<Tensor<B, 1>>),
}

impl<B: Backend> Slot<'_, B> {
    /// The parameter's id (the optimizer keys its state by it).
    pub(crate) fn id(&self) -> ParamId {
        match self {
            Slot::Linear(p) => p.id,
            Slot::Matrix(p) => p.id,
            Slot::Vector(p) => p.id,
        }
    }
}

/// Every parameter with its HF name, in a fixed order.
pub(crate) fn slots<B: Backend>(model: &mut FalconForCausalLM<B>) -> Vec<(String, Slot<'_, B>)> {
    let t = &mut model.transformer;
    let mut out = vec![(
        "transformer.word_embeddings.weight".to_string(),
        Slot::Matrix(&mut t.word_embeddings),
    )];
    for (i, layer) in t.h.iter_mut().enumerate() {
        let p = format!("transformer.h.{i}");
        for (name, ln) in [
            ("input_layernorm", layer.input_layernorm.as_mut()),
            ("ln_attn", layer.ln_attn.as_mut()),
            ("ln_mlp", layer.ln_mlp.as_mut()),
        ] {
            if let Some(ln) = ln {
                out.push((format!("{p}.{name}.weight"), Slot::Vector(&mut ln.gamma)));
                if let Some(beta) = ln.beta.as_mut() {
                    out.push((format!("{p}.{name}.bias"), Slot::Vector(beta)));
                }
            }
        }
        // Projections held in NF4 are frozen and have no f32 weight to load, save or update.
        for (path, linear) in layer_linears(&mut layer.self_attention, &mut layer.mlp) {
            if let Some(w) = linear.weight.as_mut() {
                out.push((format!("{p}.{path}.weight"), Slot::Linear(w)));
            }
        }
    }
    out.push((
        "transformer.ln_f.weight".into(),
        Slot::Vector(&mut t.ln_f.gamma),
    ));
    if let Some(beta) = t.ln_f.beta.as_mut() {
        out.push(("transformer.ln_f.bias".into(), Slot::Vector(beta)));
    }
    out
}

/// A safetensors file's bytes, mapped rather than read into memory (Falcon-7B is 14 GB).
pub(crate) fn map_file(path: &Path) -> Result<Mmap, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: as transformers and candle map them: a checkpoint is not rewritten while a model
    // loads from it (falconry writes its own through a temporary file and a rename).
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

/// A tensor read from safetensors, as f32.
pub(crate) struct Loaded {
    pub(crate) shape: Vec<usize>,
    pub(crate) data: Vec<f32>,
}

/// Decodes one safetensors tensor to f32.
pub(crate) fn to_f32(view: &TensorView<'_>, name: &str, path: &Path) -> Result<Loaded, Error> {
    let bytes = view.data();
    // In parallel: a 7B checkpoint is 6.9e9 values.
    let data = match view.dtype() {
        Dtype::F32 => bytes
            .par_chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .par_chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .par_chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            return Err(Error::Checkpoint {
                path: path.to_owned(),
                message: format!("tensor `{name}` has unsupported dtype {other:?}"),
            })
        }
    };
    Ok(Loaded {
        shape: view.shape().to_vec(),
        data,
    })
}

fn tensor_data<B: Backend, const D: usize>(
    t: Tensor<B, D>,
) -> Result<(Vec<usize>, Vec<f32>), Error> {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .map_err(|e| Error::Safetensors(format!("{e:?}")))?;
    Ok((shape, data))
}

/// Every parameter of `model` under its HF name, f32, HF layout.
pub(crate) fn named_tensors<B: Backend>(
    model: &FalconForCausalLM<B>,
) -> Result<NamedTensors, Error> {
    let mut model = model.clone();
    let mut out = BTreeMap::new();
    for (name, slot) in slots(&mut model) {
        let entry = match slot {
            Slot::Linear(p) => tensor_data(p.val().transpose())?,
            Slot::Matrix(p) => tensor_data(p.val())?,
            Slot::Vector(p) => tensor_data(p.val())?,
        };
        out.insert(name, entry);
    }
    Ok(out)
}

/// Writes named f32 tensors as one safetensors file (metadata `format: pt`, which transformers
/// expects), atomically, streamed from the tensors themselves: a 1B model's AdamW moments
/// (10 GB) are not copied in memory on the way out.
pub fn save_safetensors(path: &Path, tensors: &NamedTensors) -> Result<(), Error> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({ "format": "pt" }));
    let mut offset = 0;
    for (name, (shape, data)) in tensors {
        let end = offset + 4 * data.len();
        header.insert(
            name.clone(),
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, end] }),
        );
        offset = end;
    }
    let mut head = serde_json::to_vec(&header).expect("json value serializes");
    // The data starts 8-byte aligned, as safetensors' own writer pads it.
    head.resize(head.len().next_multiple_of(8), b' ');
    let shard_error = |e| crate::data::shard_error(path, e);
    let (tmp, file) = atomic::create_tmp(path).map_err(shard_error)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 22, file);
    let written = (|| {
        out.write_all(&(head.len() as u64).to_le_bytes())?;
        out.write_all(&head)?;
        for (_, data) in tensors.values() {
            // Little-endian f32, as the format stores it (every target falconry builds for).
            out.write_all(bytemuck::cast_slice(data))?;
        }
        out.flush()
    })();
    written.map_err(|e| Error::io(&tmp, e))?;
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    atomic::commit_tmp(file, &tmp, path).map_err(shard_error)
}

/// Reads every tensor of a safetensors file as f32.
pub fn load_safetensors(path: &Path) -> Result<NamedTensors, Error> {
    let buf = map_file(path)?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| Error::Checkpoint {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let t = to_f32(&view, &name, path)?;
            Ok((name, (t.shape, t.data)))
        })
        .collect()
}

/// Saves `model` as a HF folder: `config.json` + `model.safetensors`, each written atomically.
pub fn save_hf<B: FalconBackend>(model: &FalconForCausalLM<B>, dir: &Path) -> Result<(), Error> {
    write_hf(model.config(), &named_tensors(model)?, dir)
}

/// [`save_hf`] from HF-named, HF-laid-out tensors on the host.
pub(crate) fn write_hf(
    config: &FalconConfig,
    params: &NamedTensors,
    dir: &Path,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let json = serde_json::to_vec_pretty(&config.to_hf_value()).expect("json value serializes");
    write_atomic(&dir.join("config.json"), &json)?;
    save_safetensors(&dir.join("model.safetensors"), params)
}

/// Loads a HF Falcon folder (`config.json` + `model.safetensors`, or the shards of
/// `model.safetensors.index.json`) onto `device`.
pub fn load_hf<B: FalconBackend>(
    dir: &Path,
    device: &B::Device,
) -> Result<FalconForCausalLM<B>, Error> {
    load_hf_as(dir, Quantize::None, device)
}

/// [`load_hf`], the projections held as `quantize` says. With [`Quantize::Nf4`] each one is
/// quantized on the host as it is read, so its f32 weight never reaches the device (QLoRA's
/// frozen base: Falcon-7B's projections take 3.7 GB instead of 26). Tensors are read one
/// weight file at a time; parameters are not drawn before they are set (Burn's lazy init).
pub fn load_hf_as<B: FalconBackend>(
    dir: &Path,
    quantize: Quantize,
    device: &B::Device,
) -> Result<FalconForCausalLM<B>, Error> {
    let config = FalconConfig::from_hf_json(&dir.join("config.json"))?;
    let mut model = config.undrawn::<B>(device);
    let mut nf4: BTreeMap<String, Nf4Tensor> = BTreeMap::new();
    {
        let mut open: BTreeMap<String, Slot<'_, B>> = slots(&mut model).into_iter().collect();
        let first = for_each_tensor(dir, |name, view, path| {
            let key = checkpoint_key(name, |k| open.contains_key(k));
            let Some(slot) = open.remove(&key) else {
                return Ok(()); // lm_head.weight (tied) and anything else the model lacks
            };
            let t = to_f32(view, name, path)?;
            let bad = |message| Error::Checkpoint {
                path: path.to_owned(),
                message,
            };
            match slot {
                Slot::Linear(p) if quantize == Quantize::Nf4 => {
                    let [d_in, d_out] = p.lazy_shape().dims::<2>();
                    check_shape(&key, &t.shape, &[d_out, d_in]).map_err(bad)?;
                    nf4.insert(key, Nf4Tensor::quantize(&t.data, &t.shape));
                }
                slot => set_slot(slot, &key, &t.shape, t.data, device).map_err(bad)?,
            }
            Ok(())
        })?;
        if let Some(name) = open.keys().next() {
            return Err(missing(&first, name));
        }
    }
    for (path, _, linear) in model.linears_mut() {
        if let Some(q) = nf4.remove(&format!("{path}.weight")) {
            linear.weight = None;
            linear.nf4 = Some(Nf4Weight::new(&q, device));
        }
    }
    Ok(model)
}

/// Calls `f` with every tensor of the HF folder `dir` (name as stored, its view, its file), one
/// mapped weight file at a time; returns the first file (where errors about the whole point).
pub(crate) fn for_each_tensor(
    dir: &Path,
    mut f: impl FnMut(&str, &TensorView<'_>, &Path) -> Result<(), Error>,
) -> Result<PathBuf, Error> {
    let files = weight_files(dir)?;
    for path in &files {
        let buf = map_file(path)?;
        let st = SafeTensors::deserialize(&buf).map_err(|e| Error::Checkpoint {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for (name, view) in st.tensors() {
            f(&name, &view, path)?;
        }
    }
    Ok(files[0].clone())
}

/// The model's name for checkpoint tensor `name`: FalconModel checkpoints (no LM head) name
/// tensors without `transformer.`.
pub(crate) fn checkpoint_key(name: &str, known: impl Fn(&str) -> bool) -> String {
    if known(name) {
        name.to_string()
    } else {
        format!("transformer.{name}")
    }
}

/// The error for a tensor the checkpoint lacks.
pub(crate) fn missing(file: &Path, name: &str) -> Error {
    Error::Checkpoint {
        path: file.to_owned(),
        message: format!("missing tensor `{name}`"),
    }
}

/// The weight files of a HF folder: `model.safetensors`, else the shards that
/// `model.safetensors.index.json` maps tensor names to (transformers shards a model past
/// 5 GB so; the hub's Falcon-7B and -40B come that way).
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    let text = match std::fs::read_to_string(&index) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Checkpoint {
                path: single,
                message: "no model.safetensors or model.safetensors.index.json in the folder \
                          (falconry reads safetensors: transformers' save_pretrained writes them)"
                    .into(),
            })
        }
        Err(e) => return Err(Error::io(&index, e)),
    };
    let bad = |message: String| Error::Checkpoint {
        path: index.clone(),
        message,
    };
    let map: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let Some(weight_map) = map.get("weight_map").and_then(|m| m.as_object()) else {
        return Err(bad("no `weight_map` object".into()));
    };
    let mut files = std::collections::BTreeSet::new();
    for file in weight_map.values() {
        let file = file.as_str().unwrap_or_default();
        // A shard is a file beside the index, nothing else.
        if file.is_empty() || Path::new(file).file_name() != Some(std::ffi::OsStr::new(file)) {
            return Err(bad(format!("`{file}` is not a file name in the folder")));
        }
        files.insert(dir.join(file));
    }
    Ok(files.into_iter().collect())
}

fn check_shape(name: &str, got: &[usize], want: &[usize]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("`{name}` has shape {got:?}, config says {want:?}"))
    }
}

/// Sets one parameter from its HF-laid-out f32 tensor.
fn set_slot<B: Backend>(
    slot: Slot<'_, B>,
    name: &str,
    shape: &[usize],
    data: Vec<f32>,
    device: &B::Device,
) -> Result<(), String> {
    match slot {
        Slot::Linear(p) => {
            let [d_in, d_out] = p.lazy_shape().dims::<2>();
            check_shape(name, shape, &[d_out, d_in])?;
            let w = Tensor::<B, 2>::from_data(TensorData::new(data, [d_out, d_in]), device);
            *p = Param::from_tensor(w.transpose());
        }
        Slot::Matrix(p) => {
            let dims = p.lazy_shape().dims::<2>();
            check_shape(name, shape, &dims)?;
            *p = Param::from_tensor(Tensor::from_data(TensorData::new(data, dims), device));
        }
        Slot::Vector(p) => {
            let dims = p.lazy_shape().dims::<1>();
            check_shape(name, shape, &dims)?;
            *p = Param::from_tensor(Tensor::from_data(TensorData::new(data, dims), device));
        }
    }
    Ok(())
}
