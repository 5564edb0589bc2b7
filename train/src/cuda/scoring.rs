//! Log-likelihood scoring on the engine (`falconry eval-tasks` on the cuda build): windows of
//! one length at a time through an inference engine made for that length.

use burn::tensor::backend::Backend;

use super::engine::SEQ_MULTIPLE;
use super::Engine;
use crate::eval_tasks::TokenLosses;
use crate::hf::{self, NamedTensors};
use crate::model::FalconForCausalLM;
use crate::{Error, FalconConfig};

/// Tokens per forward pass: as many as a training micro-batch of 8 x 2048.
const TOKENS_PER_CALL: usize = 16_384;

/// [`TokenLosses`] of a model's weights on GPU `ordinal`.
pub struct EngineLosses {
    config: FalconConfig,
    weights: NamedTensors,
    ordinal: usize,
    /// The engine of the last window length.
    engine: Option<(usize, Engine)>,
}

impl EngineLosses {
    /// The engine for `model`, or why it cannot run it.
    pub fn new<B: Backend>(model: &FalconForCausalLM<B>, ordinal: usize) -> Result<Self, Error> {
        let config = model.config().clone();
        if let Some(why) = super::unsupported(&config, SEQ_MULTIPLE) {
            return Err(Error::Unsupported(why));
        }
        Ok(Self {
            weights: hf::named_tensors(model)?,
            config,
            ordinal,
            engine: None,
        })
    }

    /// The window lengths: 128, 256, ... doubling to the model's positions (rounded up to the
    /// engine's multiple), so that a window is at most about twice its tokens.
    pub fn seqs(&self) -> Vec<usize> {
        let max = self
            .config
            .max_position_embeddings
            .next_multiple_of(SEQ_MULTIPLE);
        let mut seqs: Vec<usize> = std::iter::successors(Some(128), |s| Some(s * 2))
            .take_while(|&s| s < max)
            .collect();
        seqs.push(max);
        seqs
    }

    /// The model's positions (the longest context lm-eval gives it).
    pub fn max_len(&self) -> usize {
        self.config.max_position_embeddings
    }
}

impl TokenLosses for EngineLosses {
    fn rows(&self, seq: usize) -> usize {
        (TOKENS_PER_CALL / seq).max(1)
    }

    fn losses(&mut self, seq: usize, windows: &[u16]) -> Result<Vec<f32>, Error> {
        if self.engine.as_ref().map(|(s, _)| *s) != Some(seq) {
            // The last length's engine goes first: its memory is needed.
            self.engine = None;
            let mut engine = Engine::inference(&self.config, self.rows(seq), seq, self.ordinal)?;
            engine.load_weights(&self.weights)?;
            self.engine = Some((seq, engine));
        }
        let (_, engine) = self.engine.as_mut().expect("made above");
        engine.token_losses(windows)
    }
}
