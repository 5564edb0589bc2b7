//! Stages, their verdicts, and the counts that make the funnel.

use std::collections::BTreeMap;
use std::ops::AddAssign;

use serde::{Deserialize, Serialize};

use crate::Document;

/// What a stage decided about one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass the (possibly rewritten) document on.
    Keep,
    /// Drop it; the reason is the rule's config key, as in `stats.json` and `--explain`.
    Drop(&'static str),
}

/// One step of the pipeline: a pure decision on one document.
///
/// A stage is built once from its validated config and shared across rayon threads. It may
/// annotate or rewrite the document but does no I/O and no counting: the runner counts.
pub trait Stage: Send + Sync {
    /// Stable name, as in `stats.json`, `--explain` and configs (`"repetition"`).
    fn name(&self) -> &'static str;
    /// Decides on one document.
    fn apply(&self, doc: &mut Document) -> Verdict;
}

/// One funnel row: how many documents a stage saw, passed on, and dropped by reason.
/// `+=` merges the rows of threads, files and tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageStats {
    /// The stage's name.
    pub name: String,
    /// Documents (or, for `read`, records) that reached the stage.
    #[serde(rename = "in")]
    pub input: u64,
    /// Documents passed on.
    #[serde(rename = "out")]
    pub output: u64,
    /// Drops by reason; sorted keys keep `stats.json` byte-stable.
    pub dropped: BTreeMap<String, u64>,
}

impl StageStats {
    /// An empty row for the stage `name`.
    pub fn new(name: &str) -> Self {
        StageStats {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Counts one document passed on.
    pub fn keep(&mut self) {
        self.input += 1;
        self.output += 1;
    }

    /// Counts one document dropped for `reason`.
    pub fn drop(&mut self, reason: &str) {
        self.input += 1;
        *self.dropped.entry(reason.to_string()).or_default() += 1;
    }
}

impl AddAssign<&StageStats> for StageStats {
    fn add_assign(&mut self, other: &StageStats) {
        if self.name.is_empty() {
            self.name.clone_from(&other.name);
        }
        self.input += other.input;
        self.output += other.output;
        for (reason, n) in &other.dropped {
            *self.dropped.entry(reason.clone()).or_default() += n;
        }
    }
}

/// The `stats.json` of a run: the funnel rows in pipeline order and input bytes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunStats {
    /// One row per stage, in pipeline order.
    pub stages: Vec<StageStats>,
    /// Wall-clock seconds of the invocation that returned these stats. Never written to a
    /// file: an output holds only what inputs and config decide ([`crate::folder`]), so that
    /// a resumed run writes the bytes of an uninterrupted one.
    #[serde(skip)]
    pub seconds: f64,
    /// Bytes of input read (compressed size on disk).
    pub bytes_in: u64,
}

impl AddAssign<&RunStats> for RunStats {
    /// Merges rows by stage name, keeping first-seen order; seconds and bytes add up.
    fn add_assign(&mut self, other: &RunStats) {
        for row in &other.stages {
            match self.stages.iter_mut().find(|r| r.name == row.name) {
                Some(mine) => *mine += row,
                None => self.stages.push(row.clone()),
            }
        }
        self.seconds += other.seconds;
        self.bytes_in += other.bytes_in;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_merge_by_name() {
        let mut a = RunStats::default();
        let mut read = StageStats::new("read");
        read.keep();
        read.drop("not_html");
        a.stages.push(read.clone());
        let mut b = a.clone();
        let mut ex = StageStats::new("extraction");
        ex.drop("empty");
        b.stages.push(ex);
        a += &b;
        assert_eq!(a.stages.len(), 2);
        assert_eq!(a.stages[0].input, 4);
        assert_eq!(a.stages[0].output, 2);
        assert_eq!(a.stages[0].dropped["not_html"], 2);
        assert_eq!(a.stages[1].dropped["empty"], 1);
        let json = serde_json::to_string(&a.stages[0]).unwrap();
        assert!(
            json.contains("\"in\":4") && json.contains("\"out\":2"),
            "{json}"
        );
    }
}
