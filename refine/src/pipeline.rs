//! The runner: applies the configured stages in order and counts each verdict.

use crate::extract::Extractor;
use crate::filters::language_id::LanguageId;
use crate::filters::url_filter::UrlFilter;
use crate::filters::{line_correction::LineCorrection, quality::Quality, repetition::Repetition};
use crate::{Document, RefineConfig, Stage, StageStats, Verdict};

/// Where a document left the pipeline, for `--explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// The stage that dropped it.
    pub stage: &'static str,
    /// The rule that fired (a config key).
    pub reason: &'static str,
}

/// The configured stages, in pipeline order; immutable and shared across threads.
pub struct Pipeline {
    stages: Vec<Box<dyn Stage>>,
}

impl Pipeline {
    /// Builds the enabled stages of `config` in RefinedWeb's order.
    pub fn from_config(config: &RefineConfig) -> crate::Result<Self> {
        let mut stages: Vec<Box<dyn Stage>> = Vec::new();
        if config.url_filter.enabled {
            stages.push(Box::new(UrlFilter::new(&config.url_filter)?));
        }
        if config.extraction.enabled {
            stages.push(Box::new(Extractor::new(&config.extraction)));
        }
        if config.language_id.enabled {
            stages.push(Box::new(LanguageId::new(&config.language_id)?));
        }
        if config.repetition.enabled {
            stages.push(Box::new(Repetition::new(&config.repetition)));
        }
        if config.quality.enabled {
            stages.push(Box::new(Quality::new(&config.quality)?));
        }
        if config.line_correction.enabled {
            stages.push(Box::new(LineCorrection::new(&config.line_correction)));
        }
        Ok(Pipeline { stages })
    }

    /// A pipeline of the given stages, in order.
    pub fn new(stages: Vec<Box<dyn Stage>>) -> Self {
        Pipeline { stages }
    }

    /// The stages, in order (benchmarks time them one by one).
    pub fn stages(&self) -> &[Box<dyn Stage>] {
        &self.stages
    }

    /// Names of the stages, in order.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Empty funnel rows, one per stage, to pass to [`Pipeline::apply`].
    pub fn new_stats(&self) -> Vec<StageStats> {
        self.stages
            .iter()
            .map(|s| StageStats::new(s.name()))
            .collect()
    }

    /// Runs `doc` through the stages until one drops it, counting into `stats`
    /// (from [`Pipeline::new_stats`]). `Ok(())` means the document survived.
    pub fn apply(&self, doc: &mut Document, stats: &mut [StageStats]) -> Result<(), Dropped> {
        for (stage, row) in self.stages.iter().zip(stats.iter_mut()) {
            match stage.apply(doc) {
                Verdict::Keep => row.keep(),
                Verdict::Drop(reason) => {
                    row.drop(reason);
                    return Err(Dropped {
                        stage: stage.name(),
                        reason,
                    });
                }
            }
        }
        Ok(())
    }
}
