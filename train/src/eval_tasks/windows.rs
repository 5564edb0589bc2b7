//! Log-likelihoods through a function of fixed-shape token windows, the training step's own
//! forward pass (the CUDA engine's per-token cross-entropy). Each continuation is scored in a
//! window of its own, `(context + continuation)[-(L + 1):]` as lm-eval cuts it, padded at the
//! end to the smallest window length that holds it; windows of one length fill the rows of a
//! batch. The padding comes after the scored tokens, so causal attention never sees it.

use super::score::Encoded;
use super::Scorer;
use crate::Error;

/// Per-position cross-entropy of `[rows, seq + 1]` windows (inputs `w[..seq]`, targets
/// `w[1..]`): `[rows, seq]` values, `-log p(w[i + 1] | w[..=i])`.
pub trait TokenLosses {
    /// Rows per call for windows of `seq` positions.
    fn rows(&self, seq: usize) -> usize;
    /// The losses of `rows(seq)` windows, `[rows, seq + 1]` tokens.
    fn losses(&mut self, seq: usize, windows: &[u16]) -> Result<Vec<f32>, Error>;
}

/// A [`Scorer`] over [`TokenLosses`] with windows of the lengths in `seqs`.
pub struct WindowScorer<L> {
    losses: L,
    /// Window lengths (positions), ascending; the last bounds the context, as the model's
    /// `max_position_embeddings` does for lm-eval.
    seqs: Vec<usize>,
    max_len: usize,
}

/// One continuation to score: its window and where its tokens are.
struct Piece {
    doc: usize,
    choice: usize,
    /// `(context + continuation)[-(max_len + 1):]`.
    tokens: Vec<u16>,
    /// Scored tokens: the last `m` of the window.
    m: usize,
}

impl<L: TokenLosses> WindowScorer<L> {
    /// `seqs`: the window lengths `losses` takes; contexts are cut to `max_len` positions (at
    /// most the longest window).
    pub fn new(losses: L, mut seqs: Vec<usize>, max_len: usize) -> Self {
        seqs.sort_unstable();
        let longest = *seqs.last().expect("at least one window length");
        Self {
            losses,
            seqs,
            max_len: max_len.min(longest),
        }
    }

    /// The function the windows go through.
    pub fn into_inner(self) -> L {
        self.losses
    }
}

/// Documents per call: enough that every window length fills its batches (the engine is
/// made once per length and call).
const DOCS_PER_CALL: usize = 4096;

impl<L: TokenLosses> Scorer for WindowScorer<L> {
    fn docs_per_call(&self) -> usize {
        DOCS_PER_CALL
    }

    fn score(&mut self, docs: &[Encoded]) -> Result<Vec<Vec<f64>>, Error> {
        let mut pieces = Vec::new();
        for (doc, enc) in docs.iter().enumerate() {
            for (choice, cont) in enc.continuations.iter().enumerate() {
                let whole: Vec<u32> = enc.context.iter().chain(cont).copied().collect();
                let start = whole.len().saturating_sub(self.max_len + 1);
                let tokens = whole[start..]
                    .iter()
                    .map(|&t| {
                        u16::try_from(t).map_err(|_| {
                            Error::Unsupported(format!("token id {t} does not fit 16 bits"))
                        })
                    })
                    .collect::<Result<Vec<u16>, Error>>()?;
                pieces.push(Piece {
                    doc,
                    choice,
                    tokens,
                    m: cont.len(),
                });
            }
        }
        // Shortest first: each window length's pieces run together, one length at a time.
        pieces.sort_by_key(|p| p.tokens.len());
        let mut lls: Vec<Vec<f64>> = docs
            .iter()
            .map(|e| vec![0.0; e.continuations.len()])
            .collect();
        let mut at = 0;
        while at < pieces.len() {
            let inputs = pieces[at].tokens.len() - 1;
            let seq = *self
                .seqs
                .iter()
                .find(|&&s| s >= inputs)
                .expect("windows are cut to the longest length");
            let rows = self.losses.rows(seq);
            let fit = pieces[at..]
                .iter()
                .take(rows)
                .take_while(|p| p.tokens.len() - 1 <= seq)
                .count();
            let batch = &pieces[at..at + fit];
            let mut windows = vec![0u16; rows * (seq + 1)];
            for (r, p) in batch.iter().enumerate() {
                windows[r * (seq + 1)..][..p.tokens.len()].copy_from_slice(&p.tokens);
            }
            let losses = self.losses.losses(seq, &windows)?;
            for (r, p) in batch.iter().enumerate() {
                // Position i predicts token i + 1: the last m tokens come from the m
                // positions before the window's last.
                let end = p.tokens.len() - 1;
                let row = &losses[r * seq..][end - p.m..end];
                lls[p.doc][p.choice] = -row.iter().map(|&x| x as f64).sum::<f64>();
            }
            at += batch.len();
        }
        Ok(lls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval_tasks::ModelScorer;
    use crate::model::FalconForCausalLM;
    use crate::{CpuBackend, FalconConfig};
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{FloatDType, Int, Tensor, TensorData};

    type B = CpuBackend;

    /// Burn's forward pass as a fixed-shape loss function, as the engine computes it.
    struct Forward<'a> {
        model: &'a FalconForCausalLM<B>,
        rows: usize,
        calls: Vec<usize>,
    }

    impl TokenLosses for Forward<'_> {
        fn rows(&self, _seq: usize) -> usize {
            self.rows
        }
        fn losses(&mut self, seq: usize, windows: &[u16]) -> Result<Vec<f32>, Error> {
            assert_eq!(windows.len(), self.rows * (seq + 1));
            self.calls.push(seq);
            let device = Default::default();
            let ids: Vec<i32> = windows.iter().map(|&t| t as i32).collect();
            let all =
                Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [self.rows, seq + 1]), &device);
            let logits = self
                .model
                .forward(all.clone().narrow(1, 0, seq), FloatDType::F32);
            let v = self.model.config().vocab_size;
            let logp: Vec<f32> = log_softmax(logits, 2).into_data().into_vec().unwrap();
            Ok((0..self.rows * seq)
                .map(|i| {
                    let (r, t) = (i / seq, i % seq);
                    -logp[i * v + windows[r * (seq + 1) + t + 1] as usize]
                })
                .collect())
        }
    }

    /// Windows padded into batches give what the KV-cached scorer gives, for continuations
    /// that fit and for ones that are cut on the left.
    #[test]
    fn windows_equal_cached_scoring() {
        let device = Default::default();
        let mut config = FalconConfig::falcon_tiny();
        config.max_position_embeddings = 16;
        let model = config.init::<B>(&device);
        let docs = vec![
            Encoded {
                context: vec![5, 9, 2, 7, 1, 3],
                continuations: vec![vec![4], vec![8], vec![4, 6, 2]],
            },
            Encoded {
                context: vec![11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22],
                // 12 + 8 > 17: cut on the left.
                continuations: vec![vec![1, 2, 3, 4, 5, 6, 7, 8], vec![9]],
            },
            Encoded {
                context: vec![3],
                continuations: vec![vec![2, 2]],
            },
        ];
        let want = ModelScorer {
            model: &model,
            dtype: FloatDType::F32,
            device,
        }
        .score(&docs)
        .unwrap();
        let mut windows = WindowScorer::new(
            Forward {
                model: &model,
                rows: 2,
                calls: Vec::new(),
            },
            vec![16, 4, 8],
            config.max_position_embeddings,
        );
        let got = windows.score(&docs).unwrap();
        for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
            assert!((g - w).abs() < 1e-4 * w.abs().max(1.0), "{g} vs {w}");
        }
        // Six pieces of 3 tokens (a window of 4), 7, 7 and 9 (two of 8), 13 and 17 (16).
        assert_eq!(windows.into_inner().calls, [4, 8, 8, 16]);
    }
}
