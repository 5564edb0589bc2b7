//! Evaluation (`falconry eval`) and sampling (`falconry generate`).
//!
//! `eval` scores a text file: non-overlapping windows of `seq_len` predictions (each window
//! reads `seq_len + 1` tokens, the last may be shorter), loss = mean next-token cross entropy
//! over all `tokens` predictions, perplexity = `exp(loss)`.
//!
//! `generate` samples with a KV cache: the prompt goes through once, then one token per step,
//! each attending to the cached keys and values; top-k (10 by default, as HF's text-generation
//! pipeline is called in Falcon's model card) and temperature, stopping at EOS (id 11).

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{ElementConversion, FloatDType, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::attention::FalconBackend;
use crate::chat::{ChatTemplate, Message, Role};
use crate::finetune::{FinetuneConfig, FINETUNE_CONFIG};
use crate::model::FalconForCausalLM;
use crate::Error;

/// `falconry eval`'s output, printed as JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// Predicted tokens scored.
    pub tokens: usize,
    /// Mean cross entropy, nats per token.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
}

fn ids_tensor<B: Backend>(ids: &[u32], rows: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    let data: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
    let cols = data.len() / rows;
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

/// Scores `ids` in windows of `seq_len` predictions, `batch` windows per forward pass.
pub fn evaluate<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    ids: &[u32],
    seq_len: usize,
    batch: usize,
    dtype: FloatDType,
    device: &B::Device,
) -> EvalReport {
    let predicted = ids.len().saturating_sub(1);
    let starts: Vec<usize> = (0..predicted).step_by(seq_len.max(1)).collect();
    let (full, partial): (Vec<usize>, Vec<usize>) =
        starts.into_iter().partition(|&s| s + seq_len < ids.len());
    let mut sum = 0.0;
    for group in full.chunks(batch.max(1)) {
        let mut inputs = Vec::with_capacity(group.len() * seq_len);
        let mut targets = Vec::with_capacity(group.len() * seq_len);
        for &s in group {
            inputs.extend_from_slice(&ids[s..s + seq_len]);
            targets.extend_from_slice(&ids[s + 1..s + seq_len + 1]);
        }
        let rows = group.len();
        let loss = model.loss(
            ids_tensor(&inputs, rows, device),
            ids_tensor(&targets, rows, device),
            dtype,
        );
        sum += loss.into_scalar().elem::<f64>() * (rows * seq_len) as f64;
    }
    for s in partial {
        let n = ids.len() - 1 - s;
        let loss = model.loss(
            ids_tensor(&ids[s..s + n], 1, device),
            ids_tensor(&ids[s + 1..], 1, device),
            dtype,
        );
        sum += loss.into_scalar().elem::<f64>() * n as f64;
    }
    let loss = if predicted == 0 {
        f64::NAN
    } else {
        sum / predicted as f64
    };
    EvalReport {
        tokens: predicted,
        loss,
        perplexity: loss.exp(),
    }
}

/// Sampling settings of `falconry generate`.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleOptions {
    /// Tokens to add at most.
    pub max_new_tokens: usize,
    /// Sample among the `top_k` likeliest tokens (0: all).
    pub top_k: usize,
    /// Softmax temperature; 0 picks the likeliest token.
    pub temperature: f64,
    /// Seeds the sampler.
    pub seed: u64,
    /// Stop after this token (Falcon's `<|endoftext|>` is 11).
    pub eos_id: Option<u32>,
    /// Total length counting the prompt, as transformers' `max_length`; when set, it bounds
    /// the new tokens instead of `max_new_tokens`.
    pub max_length: Option<usize>,
    /// Sequences to sample from one prompt (sequence `i` seeded with `seed + i`).
    pub num_return_sequences: usize,
}

impl Default for SampleOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 50,
            top_k: 10,
            temperature: 1.0,
            seed: 0,
            eos_id: Some(11),
            max_length: None,
            num_return_sequences: 1,
        }
    }
}

/// Picks the next token from one row of logits.
fn sample_token(logits: &[f32], opts: &SampleOptions, rng: &mut ChaCha8Rng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Likeliest first; ties by id so the order is deterministic.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    if opts.temperature <= 0.0 {
        return order[0] as u32;
    }
    let k = if opts.top_k == 0 {
        order.len()
    } else {
        opts.top_k.min(order.len())
    };
    let top = &order[..k];
    let max = logits[top[0]] as f64;
    let weights: Vec<f64> = top
        .iter()
        .map(|&i| ((logits[i] as f64 - max) / opts.temperature).exp())
        .collect();
    let mut r = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (&i, w) in top.iter().zip(&weights) {
        r -= w;
        if r <= 0.0 {
            return i as u32;
        }
    }
    top[k - 1] as u32
}

/// Continues `prompt` (at least one token) by up to `max_new_tokens`; returns the new tokens.
pub fn generate<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    prompt: &[u32],
    opts: &SampleOptions,
    dtype: FloatDType,
    device: &B::Device,
) -> Vec<u32> {
    assert!(
        !prompt.is_empty(),
        "generation needs a prompt of at least one token"
    );
    let budget = match opts.max_length {
        Some(total) => total.saturating_sub(prompt.len()),
        None => opts.max_new_tokens,
    };
    if budget == 0 {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut caches = model.empty_caches(1, device, dtype);
    let mut logits = model.forward_cached(ids_tensor(prompt, 1, device), 0, &mut caches, dtype);
    let mut pos = prompt.len();
    let mut out = Vec::new();
    while out.len() < budget {
        let row = logits
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("f32 logits");
        let next = sample_token(&row, opts, &mut rng);
        out.push(next);
        if Some(next) == opts.eos_id || out.len() == budget {
            break;
        }
        logits = model.forward_cached(ids_tensor(&[next], 1, device), pos, &mut caches, dtype);
        pos += 1;
    }
    out
}

/// Loads a tokenizer file (`tokenizer.json`).
pub fn load_tokenizer(path: &Path) -> Result<tokenizers::Tokenizer, Error> {
    tokenizers::Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// Encodes `text` without special tokens.
pub fn encode(tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>, Error> {
    tokenizer
        .encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| Error::Tokenizer {
            path: "<tokenizer>".into(),
            message: e.to_string(),
        })
}

/// `falconry eval --checkpoint DIR --input FILE --tokenizer FILE`: the model's loss and
/// perplexity on the text, in windows of the model's `max_position_embeddings` (at most 2048).
pub fn eval_text<B: FalconBackend>(
    checkpoint: &Path,
    input: &Path,
    tokenizer: &Path,
    device: &B::Device,
) -> Result<EvalReport, Error> {
    let model = crate::hf::load_hf::<B>(checkpoint, device)?;
    let text = std::fs::read_to_string(input).map_err(|e| Error::io(input, e))?;
    let ids = encode(&load_tokenizer(tokenizer)?, &text)?;
    let seq_len = model.config().max_position_embeddings.min(2048);
    Ok(evaluate(&model, &ids, seq_len, 1, FloatDType::F32, device))
}

/// `falconry generate`: `opts.num_return_sequences` samples for `prompt`. Plain, each is the
/// prompt and its continuation; with `chat`, the prompt is a user message rendered by the chat
/// template (the adapter's `finetune.toml` template, else the default) and each sample is the
/// assistant's reply. An `adapter` (PEFT folder) is applied without merging.
pub fn generate_text<B: FalconBackend>(
    checkpoint: &Path,
    adapter: Option<&Path>,
    tokenizer: &Path,
    prompt: &str,
    chat: bool,
    opts: &SampleOptions,
    device: &B::Device,
) -> Result<Vec<String>, Error> {
    let mut model = crate::hf::load_hf::<B>(checkpoint, device)?;
    let mut template = ChatTemplate::default();
    if let Some(dir) = adapter {
        model = crate::peft::load_adapter(model, dir, device)?.0;
        let config = dir.join(FINETUNE_CONFIG);
        if config.exists() {
            template = FinetuneConfig::from_toml_file(&config)?.template;
        }
    }
    let tokenizer = load_tokenizer(tokenizer)?;
    let eos = opts.eos_id.unwrap_or(11);
    let mut ids = if chat {
        let message = Message {
            role: Role::User,
            content: prompt.to_string(),
        };
        template.encode_prompt(&tokenizer, &[message], eos)?
    } else {
        encode(&tokenizer, prompt)?
    };
    if ids.is_empty() {
        ids.push(eos); // an empty prompt starts after a document boundary
    }
    (0..opts.num_return_sequences.max(1) as u64)
        .map(|i| {
            let opts = SampleOptions {
                seed: opts.seed + i,
                ..opts.clone()
            };
            let new = generate(&model, &ids, &opts, FloatDType::F32, device);
            let text = tokenizer.decode(&new, true).map_err(|e| Error::Tokenizer {
                path: "<tokenizer>".into(),
                message: e.to_string(),
            })?;
            Ok(if chat {
                text
            } else {
                format!("{prompt}{text}")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_and_top_k_sampling() {
        let logits = [0.0, 5.0, 1.0, 4.9, -3.0];
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let greedy = SampleOptions {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(sample_token(&logits, &greedy, &mut rng), 1);
        let top2 = SampleOptions {
            top_k: 2,
            ..Default::default()
        };
        let picks: Vec<u32> = (0..200)
            .map(|_| sample_token(&logits, &top2, &mut rng))
            .collect();
        assert!(picks.iter().all(|&p| p == 1 || p == 3));
        assert!(
            picks.contains(&1) && picks.contains(&3),
            "both of the top 2 get drawn"
        );
    }
}
