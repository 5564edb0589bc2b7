//! Log-likelihoods of continuations, as lm-eval's HF model computes them, with the shared
//! context run once per document.
//!
//! lm-eval (`TemplateLM._encode_pair`, `HFLM._loglikelihood_tokens`): trailing whitespace of the
//! context moves to the continuation; `ctx = tok(context)`, `cont = tok(context +
//! continuation)[len(ctx):]` (the continuation is the tail of the joint tokenisation, so a BPE
//! merge across the boundary is split as it does); the model reads `(ctx + cont)[-(L+1):][:-1]`
//! (`L` the model's `max_position_embeddings`) and `ll = Σ log_softmax(logits)[t-1, cont_t]`.
//!
//! Here: every choice of a document shares `ctx`, so `ctx[..n-1]` goes through the model once
//! into a KV cache; the choices then run as one batch `[C, S]` of `[ctx[n-1]] + cont[..m-1]`
//! (right-padded; causal attention keeps padding out of the real positions) reading that cache,
//! and only their `S` positions reach the LM head. Choices whose inputs are equal (MMLU's
//! one-token ` A`..` D`) run once. A choice too long for the window is left-truncated as lm-eval
//! does and scored on its own.

use burn::tensor::activation::log_softmax;
use burn::tensor::{FloatDType, Int, Tensor, TensorData};

use crate::attention::FalconBackend;
use crate::model::FalconForCausalLM;
use crate::Error;

use super::data::py_rstrip;

/// One document's requests: a context and its continuations (target delimiter included).
pub struct Request<'a> {
    /// The prompt.
    pub context: &'a str,
    /// `" " + choice` for each choice.
    pub continuations: Vec<String>,
}

/// Token ids of one document: the context and each continuation, split as lm-eval splits them.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// `tok(context)`.
    pub context: Vec<u32>,
    /// `tok(context + continuation)[len(context):]`, one per choice.
    pub continuations: Vec<Vec<u32>>,
}

fn tokenize(tokenizer: &tokenizers::Tokenizer, text: &str) -> Result<Vec<u32>, Error> {
    // `add_special_tokens` as transformers' `encode` defaults it: the tokenizer's own
    // post-processor decides (Falcon's adds nothing, so no BOS, as lm-eval's default).
    tokenizer
        .encode(text, true)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| Error::Tokenizer {
            path: "<tokenizer>".into(),
            message: e.to_string(),
        })
}

/// `_encode_pair` for every continuation of a request.
pub fn encode(tokenizer: &tokenizers::Tokenizer, req: &Request) -> Result<Encoded, Error> {
    let stripped = py_rstrip(req.context);
    let (context, moved) = req.context.split_at(stripped.len());
    if context.is_empty() {
        // lm-eval then conditions on BOS/EOS; none of these tasks has an empty context.
        return Err(Error::Unsupported(
            "an empty context (lm-eval's prefix-token path) is not supported".into(),
        ));
    }
    let ctx = tokenize(tokenizer, context)?;
    let mut continuations = Vec::with_capacity(req.continuations.len());
    for cont in &req.continuations {
        let whole = tokenize(tokenizer, &format!("{context}{moved}{cont}"))?;
        let tail = whole.get(ctx.len()..).unwrap_or_default().to_vec();
        if tail.is_empty() {
            return Err(Error::Unsupported(format!(
                "continuation {cont:?} adds no token to its context"
            )));
        }
        continuations.push(tail);
    }
    Ok(Encoded {
        context: ctx,
        continuations,
    })
}

/// Inputs that share a prefix: each row reads `prefix` (through the cache) then its `input`
/// and is scored on `targets` (`input.len() == targets.len()`).
struct Group {
    prefix: Vec<u32>,
    rows: Vec<(Vec<u32>, Vec<u32>)>,
    /// For each row, which request choice it scores.
    choice: Vec<usize>,
}

fn ids<B: FalconBackend>(rows: &[&[u32]], width: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    let mut data = Vec::with_capacity(rows.len() * width);
    for row in rows {
        data.extend(row.iter().map(|&t| t as i32));
        data.extend(std::iter::repeat_n(0, width - row.len()));
    }
    Tensor::from_data(TensorData::new(data, [rows.len(), width]), device)
}

/// Sum of the log-probabilities of `targets` for each row of a group.
fn score_group<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    group: &Group,
    dtype: FloatDType,
    device: &B::Device,
) -> Vec<f64> {
    // Equal inputs run once; targets are gathered per row.
    let mut unique: Vec<&[u32]> = Vec::new();
    let row_of: Vec<usize> = group
        .rows
        .iter()
        .map(
            |(input, _)| match unique.iter().position(|u| *u == &input[..]) {
                Some(u) => u,
                None => {
                    unique.push(input);
                    unique.len() - 1
                }
            },
        )
        .collect();
    let width = unique.iter().map(|u| u.len()).max().unwrap_or(1);
    let mut caches = if group.prefix.is_empty() {
        model.empty_caches(unique.len(), device, dtype)
    } else {
        let mut one = model.empty_caches(1, device, dtype);
        // Only the cache is wanted; forward_cached takes the LM head at one position only.
        let _ = model.forward_cached(
            ids::<B>(&[&group.prefix], group.prefix.len(), device),
            0,
            &mut one,
            dtype,
        );
        one.iter().map(|c| c.repeat_batch(unique.len())).collect()
    };
    let logits = model.forward_cached_all(
        ids::<B>(&unique, width, device),
        group.prefix.len(),
        &mut caches,
        dtype,
    ); // [U, S, V]
    let [u, s, v] = logits.dims();
    let logp = log_softmax(logits.reshape([u * s, v]), 1); // [U S, V]
                                                           // One gathered log-probability per scored token: row u, position t -> u * S + t.
    let mut flat_rows = Vec::new();
    let mut flat_targets = Vec::new();
    for ((_, targets), &r) in group.rows.iter().zip(&row_of) {
        for (t, &target) in targets.iter().enumerate() {
            flat_rows.push((r * s + t) as i32);
            flat_targets.push(target as i32);
        }
    }
    let k = flat_rows.len();
    let picked = logp
        .select(
            0,
            Tensor::<B, 1, Int>::from_data(TensorData::new(flat_rows, [k]), device),
        )
        .gather(
            1,
            Tensor::<B, 2, Int>::from_data(TensorData::new(flat_targets, [k, 1]), device),
        ); // [K, 1]
    let values = picked
        .into_data()
        .convert::<f32>()
        .into_vec::<f32>()
        .expect("f32 log-probabilities");
    let mut out = Vec::with_capacity(group.rows.len());
    let mut at = 0;
    for (_, targets) in &group.rows {
        out.push(
            values[at..at + targets.len()]
                .iter()
                .map(|&x| x as f64)
                .sum(),
        );
        at += targets.len();
    }
    out
}

/// The log-likelihood of each continuation of one encoded document, in choice order.
pub fn loglikelihoods<B: FalconBackend>(
    model: &FalconForCausalLM<B>,
    enc: &Encoded,
    dtype: FloatDType,
    device: &B::Device,
) -> Vec<f64> {
    let max_len = model.config().max_position_embeddings;
    let n = enc.context.len();
    let mut shared = Group {
        prefix: enc.context[..n - 1].to_vec(),
        rows: Vec::new(),
        choice: Vec::new(),
    };
    let mut alone = Vec::new();
    for (i, cont) in enc.continuations.iter().enumerate() {
        let m = cont.len();
        if n + m <= max_len + 1 {
            let mut input = vec![enc.context[n - 1]];
            input.extend_from_slice(&cont[..m - 1]);
            shared.rows.push((input, cont.clone()));
            shared.choice.push(i);
        } else {
            // lm-eval's left truncation: `(ctx + cont)[-(L+1):][:-1]`; the last m inputs
            // predict the continuation.
            let whole: Vec<u32> = enc.context.iter().chain(cont).copied().collect();
            let window = &whole[whole.len() - (max_len + 1)..whole.len() - 1];
            let split = window.len() - m;
            alone.push(Group {
                prefix: window[..split].to_vec(),
                rows: vec![(window[split..].to_vec(), cont.clone())],
                choice: vec![i],
            });
        }
    }
    let mut lls = vec![0.0; enc.continuations.len()];
    for group in std::iter::once(&shared).chain(&alone) {
        if group.rows.is_empty() {
            continue;
        }
        for (ll, &i) in score_group(model, group, dtype, device)
            .into_iter()
            .zip(&group.choice)
        {
            lls[i] = ll;
        }
    }
    lls
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CpuBackend, FalconConfig};

    type B = CpuBackend;

    /// The cached, batched path equals scoring each `ctx + cont` with a plain forward pass.
    #[test]
    fn cached_batches_equal_plain_forward() {
        let device = Default::default();
        let mut config = FalconConfig::falcon_tiny();
        config.max_position_embeddings = 12;
        let model = config.init::<B>(&device);
        let enc = Encoded {
            context: vec![5, 9, 2, 7, 1, 3],
            // One token, two equal one-token inputs, a longer one, one past the window (6 + 8 > 13).
            continuations: vec![
                vec![4],
                vec![8],
                vec![4, 6, 2],
                vec![1, 2, 3, 4, 5, 6, 7, 8],
            ],
        };
        let got = loglikelihoods(&model, &enc, FloatDType::F32, &device);
        for (i, cont) in enc.continuations.iter().enumerate() {
            let whole: Vec<u32> = enc.context.iter().chain(cont).copied().collect();
            let start = whole
                .len()
                .saturating_sub(config.max_position_embeddings + 1);
            let window = &whole[start..whole.len() - 1];
            let logits = model.forward(ids::<B>(&[window], window.len(), &device), FloatDType::F32);
            let logp: Vec<f32> = log_softmax(logits, 2).into_data().into_vec().unwrap();
            let v = config.vocab_size;
            let want: f64 = (0..cont.len())
                .map(|j| {
                    let pos = window.len() - cont.len() + j;
                    logp[pos * v + cont[j] as usize] as f64
                })
                .sum();
            assert!(
                (got[i] - want).abs() < 1e-4 * want.abs().max(1.0),
                "choice {i}: {} vs {want}",
                got[i]
            );
        }
    }
}
