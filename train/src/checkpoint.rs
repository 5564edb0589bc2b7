//! Training checkpoints: `OUTPUT/checkpoints/step-NNNNNN/` holds a HF folder
//! (`config.json` + `model.safetensors`, loadable by transformers), `optimizer.safetensors`
//! (AdamW moments under `<hf name>.exp_avg` / `.exp_avg_sq`, flattened, Burn's `[d_in, d_out]`
//! order for linear weights) and `trainer_state.json` (step, optimizer step, seed: the data
//! order of step `s` is a function of `(seed, s)`, so these are the whole RNG state).
//!
//! A checkpoint is written into `.step-NNNNNN.tmp/` and renamed into place last (llm.c's
//! `DONE_` marker idea): a folder named `step-*` is always complete, and the highest one wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::attention::FalconTrainBackend;
use crate::config::FalconConfig;
use crate::hf::{self, slots, NamedTensors};
use crate::model::FalconForCausalLM;
use crate::optim::{AdamW, AdamWConfig, Moments};
use crate::{write_atomic, Error};

/// What besides weights and moments a resumed run needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer updates done (the next step's index).
    pub step: usize,
    /// AdamW's bias-correction step count.
    pub optimizer_step: usize,
    /// The data seed (windows of step `s` are drawn from `(seed, s)`).
    pub seed: u64,
    /// Training tokens consumed so far.
    pub tokens: u64,
}

/// The folder name of the checkpoint after `step` updates.
pub fn checkpoint_name(step: usize) -> String {
    format!("step-{step:06}")
}

/// The complete checkpoint with the highest step under `root`, if any.
pub fn latest_checkpoint(root: &Path) -> Option<(usize, PathBuf)> {
    std::fs::read_dir(root)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let step = name.strip_prefix("step-")?.parse::<usize>().ok()?;
            Some((step, e.path()))
        })
        .max_by_key(|(step, _)| *step)
}

/// A checkpoint's tensors on the host: the weights (HF names and layouts) and the AdamW
/// moments (`<hf name>.exp_avg` / `.exp_avg_sq`, flattened, Burn's order for linear weights).
pub struct CheckpointTensors {
    /// The model's weights, as `model.safetensors` holds them.
    pub params: NamedTensors,
    /// The moments, as `optimizer.safetensors` holds them.
    pub moments: NamedTensors,
}

/// Writes a checkpoint of `model` and `optim` as `root/step-NNNNNN`, atomically.
pub fn save_checkpoint<B: FalconTrainBackend>(
    root: &Path,
    model: &FalconForCausalLM<B>,
    optim: &AdamW<B>,
    state: &TrainerState,
) -> Result<PathBuf, Error> {
    let params = hf::named_tensors(model)?;
    let mut moments = BTreeMap::new();
    let mut model = model.clone();
    for (pname, slot) in slots(&mut model) {
        if let Some(m) = optim.moments.get(&slot.id()) {
            for (suffix, t) in [("exp_avg", &m.exp_avg), ("exp_avg_sq", &m.exp_avg_sq)] {
                let data = t
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .into_vec::<f32>()
                    .map_err(|e| Error::Safetensors(format!("{e:?}")))?;
                moments.insert(format!("{pname}.{suffix}"), (vec![data.len()], data));
            }
        }
    }
    let tensors = CheckpointTensors { params, moments };
    write_checkpoint(root, model.config(), &tensors, state)
}

/// [`save_checkpoint`] from tensors on the host (the CUDA engine's, which never pass through a
/// Burn model).
pub fn write_checkpoint(
    root: &Path,
    config: &FalconConfig,
    tensors: &CheckpointTensors,
    state: &TrainerState,
) -> Result<PathBuf, Error> {
    let name = checkpoint_name(state.step);
    let tmp = root.join(format!(".{name}.tmp"));
    let dir = root.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    hf::write_hf(config, &tensors.params, &tmp)?;
    hf::save_safetensors(&tmp.join("optimizer.safetensors"), &tensors.moments)?;
    let json = serde_json::to_vec_pretty(state).expect("state serializes");
    write_atomic(&tmp.join("trainer_state.json"), &json)?;

    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Loads a checkpoint folder: the model, an optimizer holding its moments, and the state.
pub fn load_checkpoint<B: FalconTrainBackend>(
    dir: &Path,
    optim_config: AdamWConfig,
    device: &B::Device,
) -> Result<(FalconForCausalLM<B>, AdamW<B>, TrainerState), Error> {
    let mut model = hf::load_hf::<B>(dir, device)?;
    let state = read_state(dir)?;
    let mut moments = hf::load_safetensors(&dir.join("optimizer.safetensors"))?;
    let mut optim = AdamW::<B>::new(optim_config);
    optim.step = state.optimizer_step;
    for (pname, slot) in slots(&mut model) {
        let mut moment = |suffix: &str| {
            moments
                .remove(&format!("{pname}.{suffix}"))
                .map(|(_, data)| {
                    let n = data.len();
                    Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(data, [n]), device)
                })
        };
        if let (Some(exp_avg), Some(exp_avg_sq)) = (moment("exp_avg"), moment("exp_avg_sq")) {
            optim.moments.insert(
                slot.id(),
                Moments {
                    exp_avg,
                    exp_avg_sq,
                },
            );
        }
    }
    Ok((model, optim, state))
}

/// [`load_checkpoint`] onto the host, for the CUDA engine: the tensors as
/// [`write_checkpoint`] takes them, and the state.
pub fn read_checkpoint(dir: &Path) -> Result<(CheckpointTensors, TrainerState), Error> {
    let tensors = CheckpointTensors {
        params: hf::load_safetensors(&dir.join("model.safetensors"))?,
        moments: hf::load_safetensors(&dir.join("optimizer.safetensors"))?,
    };
    Ok((tensors, read_state(dir)?))
}

fn read_state(dir: &Path) -> Result<TrainerState, Error> {
    let path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Checkpoint {
        path,
        message: e.to_string(),
    })
}
