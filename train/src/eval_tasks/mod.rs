//! Multiple-choice benchmarks as EleutherAI's lm-evaluation-harness 0.4.13 scores them, the
//! Open LLM Leaderboard's four: ARC-Challenge (25-shot, `acc_norm`), HellaSwag (10-shot,
//! `acc_norm`), MMLU (5-shot, `acc`), TruthfulQA (0-shot, `mc2`); also ARC-Easy and mc1.
//! `shared/data/eval/EVAL-SPEC.md` describes lm-eval's rules; this follows its source.
//!
//! - Prompt (`ConfigurableTask.fewshot_context`): `description + Σ (query_f + " " +
//!   gold_f + "\n\n") + query`; continuations `" " + choice` (target delimiter `" "`, few-shot
//!   delimiter `"\n\n"`).
//! - Few-shot examples: the `default` sampler draws `Random(1234).sample(pool, n)`, one
//!   generator per task consumed document after document in file order (so `--limit` takes a
//!   prefix without changing the draws); when the few-shot pool is the evaluated split
//!   (HellaSwag here) it draws `n + 1` and drops the evaluated document. MMLU takes the first
//!   `n` dev rows (`first_n`). TruthfulQA is 0-shot whatever is asked, as its YAML fixes it.
//! - Scores (`metrics.rs`): `acc`, `acc_norm` (characters), mc2; the mean and its standard
//!   error per task; MMLU's 57 subjects pooled by size into `mmlu` and its four categories.
//! - Log-likelihoods (`score.rs`): lm-eval's token split, one KV-cached context per document.
//!
//! HellaSwag is approximate: its data here is a lossy dump of the validation set (no train
//! split: few-shot examples come from the validation items, as lm-eval does for a task with
//! none), so it equals lm-eval on that file, not the leaderboard's HellaSwag.

mod data;
mod metrics;
mod pyrandom;
mod score;
mod windows;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::FloatDType;
use serde::Serialize;
use serde_json::{json, Value};

use crate::attention::FalconBackend;
use crate::model::FalconForCausalLM;
use crate::Error;

pub use data::{McDoc, MMLU_SUBJECTS};
use metrics::{acc, acc_norm, mc2, mean, mean_stderr, pooled_stderr, weighted_mean};
use pyrandom::PyRandom;
pub use score::Encoded;
use score::{loglikelihoods, Request};
pub use windows::{TokenLosses, WindowScorer};

/// lm-eval's `fewshot_random_seed` (`lm_eval/defaults.py`, `DEFAULT_OTHER_SEED`).
pub const FEWSHOT_SEED: u64 = 1234;

/// The benchmarks `falconry eval-tasks` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Benchmark {
    /// ARC-Challenge test, few-shot from train.
    ArcChallenge,
    /// ARC-Easy test, few-shot from train.
    ArcEasy,
    /// HellaSwag validation (approximate, see the module docs).
    Hellaswag,
    /// MMLU test, 57 subjects, few-shot the first dev rows.
    Mmlu,
    /// TruthfulQA MC, single true answer.
    TruthfulqaMc1,
    /// TruthfulQA MC, probability mass of the true answers.
    TruthfulqaMc2,
}

impl Benchmark {
    /// Every benchmark, in the order of `--tasks` help.
    pub const ALL: [Benchmark; 6] = [
        Benchmark::ArcChallenge,
        Benchmark::ArcEasy,
        Benchmark::Hellaswag,
        Benchmark::Mmlu,
        Benchmark::TruthfulqaMc1,
        Benchmark::TruthfulqaMc2,
    ];

    /// lm-eval's task name.
    pub fn name(self) -> &'static str {
        match self {
            Benchmark::ArcChallenge => "arc_challenge",
            Benchmark::ArcEasy => "arc_easy",
            Benchmark::Hellaswag => "hellaswag",
            Benchmark::Mmlu => "mmlu",
            Benchmark::TruthfulqaMc1 => "truthfulqa_mc1",
            Benchmark::TruthfulqaMc2 => "truthfulqa_mc2",
        }
    }

    /// The metrics lm-eval's YAML lists.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Benchmark::ArcChallenge | Benchmark::ArcEasy | Benchmark::Hellaswag => {
                &["acc", "acc_norm"]
            }
            _ => &["acc"],
        }
    }

    /// `metadata.version` of lm-eval's YAML (the mmlu group's is 2).
    pub fn version(self) -> f64 {
        match self {
            Benchmark::TruthfulqaMc1 | Benchmark::Mmlu => 2.0,
            Benchmark::TruthfulqaMc2 => 3.0,
            _ => 1.0,
        }
    }

    /// The leaderboard's shots and metric (`--tasks leaderboard`).
    pub fn leaderboard() -> [(Benchmark, usize); 4] {
        [
            (Benchmark::ArcChallenge, 25),
            (Benchmark::Hellaswag, 10),
            (Benchmark::Mmlu, 5),
            (Benchmark::TruthfulqaMc2, 0),
        ]
    }

    /// Why the score is not the benchmark's own, if it is not.
    pub fn approximate(self) -> Option<&'static str> {
        (self == Benchmark::Hellaswag).then_some(
            "derived text dump of the validation set (lossy preprocessing, 9542 of 10042 items, \
             few-shot examples from validation): not lm-eval's HellaSwag",
        )
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// One benchmark and its number of few-shot examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    /// The benchmark.
    pub benchmark: Benchmark,
    /// Few-shot examples per prompt.
    pub shots: usize,
}

/// Parses `--tasks`: names (`arc_challenge`, ...), `name:N` for N shots, or `leaderboard` (the
/// four with the leaderboard's shots). `shots` is the count for names without one (lm-eval's
/// default is 0); TruthfulQA is always 0-shot, as its YAML fixes `num_fewshot: 0`.
pub fn parse_tasks(list: &str, shots: Option<usize>) -> Result<Vec<TaskSpec>, String> {
    let mut out: Vec<TaskSpec> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let specs: Vec<TaskSpec> = if item == "leaderboard" {
            Benchmark::leaderboard()
                .into_iter()
                .map(|(benchmark, shots)| TaskSpec { benchmark, shots })
                .collect()
        } else {
            let (name, n) = match item.split_once(':') {
                Some((name, n)) => (
                    name,
                    Some(
                        n.parse::<usize>()
                            .map_err(|_| format!("{item:?}: shots must be a number"))?,
                    ),
                ),
                None => (item, None),
            };
            let benchmark = Benchmark::from_name(name).ok_or_else(|| {
                let names: Vec<&str> = Benchmark::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "unknown task {name:?}: one of {}, or leaderboard",
                    names.join(", ")
                )
            })?;
            let shots = match benchmark {
                Benchmark::TruthfulqaMc1 | Benchmark::TruthfulqaMc2 => 0,
                _ => n.or(shots).unwrap_or(0),
            };
            vec![TaskSpec { benchmark, shots }]
        };
        for spec in specs {
            if !out.iter().any(|s| s.benchmark == spec.benchmark) {
                out.push(spec);
            }
        }
    }
    if out.is_empty() {
        return Err("no task given".into());
    }
    Ok(out)
}

/// How a task picks its few-shot examples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampler {
    /// `ContextSampler`: `rnd.sample(pool, n)`; `exclude_eval_doc` when the pool is the
    /// evaluated split (draw `n + 1`, drop the evaluated document, keep `n`).
    Random {
        /// The pool is the evaluated split.
        exclude_eval_doc: bool,
    },
    /// `FirstNSampler`: the first `n` of the pool.
    FirstN,
}

/// One lm-eval task (a leaf: MMLU is 57 of them).
#[derive(Clone, Debug)]
pub struct Task {
    /// lm-eval's name (`arc_challenge`, `mmlu_anatomy`).
    pub name: String,
    /// The benchmark it belongs to.
    pub benchmark: Benchmark,
    /// The evaluated documents, in file order.
    pub eval_docs: Vec<McDoc>,
    /// The few-shot pool, in file order.
    pub fewshot_docs: Vec<McDoc>,
    /// How examples are drawn.
    pub sampler: Sampler,
    /// Text before the examples (MMLU's subject line).
    pub description: String,
}

impl Task {
    /// The prompt of each of the first `limit` documents with `shots` examples, drawn as
    /// lm-eval draws them (one generator for the task, document after document).
    pub fn contexts(&self, shots: usize, limit: Option<usize>) -> Result<Vec<String>, Error> {
        let n = limit.map_or(self.eval_docs.len(), |l| l.min(self.eval_docs.len()));
        let pool = self.fewshot_docs.len();
        let needed = match self.sampler {
            Sampler::Random {
                exclude_eval_doc: true,
            } => shots + 1,
            _ => shots,
        };
        if shots > 0 && needed > pool {
            return Err(Error::Unsupported(format!(
                "{}: {shots} few-shot examples asked, the pool has {pool}",
                self.name
            )));
        }
        let mut rng = PyRandom::new(FEWSHOT_SEED);
        let mut out = Vec::with_capacity(n);
        for (i, doc) in self.eval_docs[..n].iter().enumerate() {
            let picks: Vec<usize> = match (shots, self.sampler) {
                (0, _) => Vec::new(),
                (_, Sampler::FirstN) => (0..shots).collect(),
                (_, Sampler::Random { exclude_eval_doc }) if exclude_eval_doc => rng
                    .sample(pool, shots + 1)
                    .into_iter()
                    .filter(|&j| j != i)
                    .take(shots)
                    .collect(),
                (_, Sampler::Random { .. }) => rng.sample(pool, shots),
            };
            let mut context = self.description.clone();
            for j in picks {
                let f = &self.fewshot_docs[j];
                context.push_str(&f.query);
                context.push(' ');
                context.push_str(&f.choices[f.gold]);
                context.push_str("\n\n");
            }
            context.push_str(&doc.query);
            out.push(context);
        }
        Ok(out)
    }
}

/// Reads a benchmark's files from `data` (the folder of `shared/data/eval`).
pub fn load_benchmark(benchmark: Benchmark, data: &Path) -> Result<Vec<Task>, Error> {
    let random = Sampler::Random {
        exclude_eval_doc: false,
    };
    let task = |eval_docs, fewshot_docs, sampler| Task {
        name: benchmark.name().into(),
        benchmark,
        eval_docs,
        fewshot_docs,
        sampler,
        description: String::new(),
    };
    Ok(match benchmark {
        Benchmark::ArcChallenge | Benchmark::ArcEasy => {
            let set = if benchmark == Benchmark::ArcChallenge {
                "ARC-Challenge"
            } else {
                "ARC-Easy"
            };
            let test = data::arc(&data::file(data, &format!("arc/{set}/{set}-Test.jsonl"))?)?;
            let train = data::arc(&data::file(data, &format!("arc/{set}/{set}-Train.jsonl"))?)?;
            vec![task(test, train, random)]
        }
        Benchmark::Hellaswag => {
            let docs = data::hellaswag(&data::file(
                data,
                "hellaswag/klosax-text/hellaswag_val_full.txt",
            )?)?;
            vec![task(
                docs.clone(),
                docs,
                Sampler::Random {
                    exclude_eval_doc: true,
                },
            )]
        }
        Benchmark::TruthfulqaMc1 | Benchmark::TruthfulqaMc2 => {
            let (mc1, mc2) = data::truthfulqa(&data::file(data, "truthfulqa/mc_task.json")?)?;
            let docs = if benchmark == Benchmark::TruthfulqaMc1 {
                mc1
            } else {
                mc2
            };
            vec![task(docs, Vec::new(), random)]
        }
        Benchmark::Mmlu => MMLU_SUBJECTS
            .iter()
            .map(|(subject, _)| {
                Ok(Task {
                    name: format!("mmlu_{subject}"),
                    benchmark,
                    eval_docs: data::mmlu(&data::file(
                        data,
                        &format!("mmlu/test/{subject}_test.csv"),
                    )?)?,
                    fewshot_docs: data::mmlu(&data::file(
                        data,
                        &format!("mmlu/dev/{subject}_dev.csv"),
                    )?)?,
                    sampler: Sampler::FirstN,
                    description: data::mmlu_description(subject),
                })
            })
            .collect::<Result<_, Error>>()?,
    })
}

/// One document's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ItemResult {
    /// The task (`mmlu_anatomy` for MMLU).
    pub task: String,
    /// Index in the evaluated split.
    pub doc: usize,
    /// Log-likelihood of each choice.
    pub lls: Vec<f64>,
    /// The document's metrics (`acc`, `acc_norm`).
    pub metrics: BTreeMap<String, f64>,
}

/// The per-document metrics of `doc` from its log-likelihoods.
pub fn doc_metrics(benchmark: Benchmark, doc: &McDoc, lls: &[f64]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    match benchmark {
        Benchmark::TruthfulqaMc2 => {
            m.insert("acc".into(), mc2(lls, &doc.labels));
        }
        b => {
            m.insert("acc".into(), acc(lls, doc.gold));
            if b.metrics().contains(&"acc_norm") {
                m.insert("acc_norm".into(), acc_norm(lls, &doc.choices, doc.gold));
            }
        }
    }
    m
}

/// A metric of a task or group: its mean and standard error over `n` documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Score {
    /// `acc`, `acc_norm`.
    pub metric: String,
    /// The mean.
    pub value: f64,
    /// lm-eval's standard error (`None`: fewer than two documents, lm-eval's `"N/A"`).
    pub stderr: Option<f64>,
}

/// A task's or group's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TaskResult {
    /// lm-eval's name: a task, a subject (`mmlu_anatomy`) or a group (`mmlu`, `mmlu_stem`).
    pub name: String,
    /// The benchmark.
    pub benchmark: Benchmark,
    /// Few-shot examples per prompt.
    pub shots: usize,
    /// Documents scored.
    pub n: usize,
    /// Documents in the split.
    pub n_original: usize,
    /// The metrics.
    pub scores: Vec<Score>,
    /// Subtasks, for a group.
    pub subtasks: Vec<String>,
}

/// Aggregates per-document metrics into a task's result.
pub fn task_result(task: &Task, shots: usize, items: &[ItemResult]) -> TaskResult {
    let scores = task
        .benchmark
        .metrics()
        .iter()
        .map(|&metric| {
            let xs: Vec<f64> = items.iter().map(|it| it.metrics[metric]).collect();
            Score {
                metric: metric.into(),
                value: mean(&xs),
                stderr: mean_stderr(&xs),
            }
        })
        .collect();
    TaskResult {
        name: task.name.clone(),
        benchmark: task.benchmark,
        shots,
        n: items.len(),
        n_original: task.eval_docs.len(),
        scores,
        subtasks: Vec::new(),
    }
}

/// A group over leaf results (`aggregate_metric_list: acc, weight_by_size: true`): the
/// size-weighted mean and the pooled standard error of `acc`.
pub fn group_result(name: &str, leaves: &[&TaskResult]) -> TaskResult {
    let values: Vec<f64> = leaves.iter().map(|r| r.scores[0].value).collect();
    let sizes: Vec<usize> = leaves.iter().map(|r| r.n).collect();
    let stderrs: Option<Vec<f64>> = leaves.iter().map(|r| r.scores[0].stderr).collect();
    TaskResult {
        name: name.into(),
        benchmark: leaves[0].benchmark,
        shots: leaves[0].shots,
        n: sizes.iter().sum(),
        n_original: leaves.iter().map(|r| r.n_original).sum(),
        scores: vec![Score {
            metric: "acc".into(),
            value: weighted_mean(&values, &sizes),
            stderr: stderrs.map(|s| pooled_stderr(&s, &sizes)),
        }],
        subtasks: leaves.iter().map(|r| r.name.clone()).collect(),
    }
}

/// What `falconry eval-tasks` does, apart from printing.
#[derive(Clone, Debug)]
pub struct EvalTasksOptions {
    /// The benchmarks and their shots.
    pub tasks: Vec<TaskSpec>,
    /// Documents per task at most (per MMLU subject, as lm-eval's `--limit`).
    pub limit: Option<usize>,
    /// The folder of `shared/data/eval`.
    pub data: PathBuf,
    /// Compute precision (lm-eval's `dtype`).
    pub dtype: FloatDType,
}

/// The results of one run: per benchmark its leaf tasks, groups and documents.
#[derive(Clone, Debug, Default)]
pub struct EvalTasksReport {
    /// Task and subject results, then groups, in `--tasks` order.
    pub results: Vec<TaskResult>,
    /// Every document scored.
    pub items: Vec<ItemResult>,
}

impl EvalTasksReport {
    /// The headline rows: each benchmark's own result (the `mmlu` group, not its subjects).
    pub fn headline(&self) -> Vec<&TaskResult> {
        self.results
            .iter()
            .filter(|r| r.name == r.benchmark.name())
            .collect()
    }

    /// lm-eval 0.4.13's `results.json` layout: `results` (per task and group: `name`, `alias`,
    /// `sample_len`, `"acc,none"`, `"acc_stderr,none"`, ...), `group_subtasks`, `versions`,
    /// `n-shot`, `higher_is_better`, `n-samples`, `config`; plus `approximate`, naming the
    /// scores that are not the benchmark's own.
    pub fn to_lm_eval_json(&self, config: Value) -> Value {
        let mut results = serde_json::Map::new();
        let mut group_subtasks = serde_json::Map::new();
        let mut versions = serde_json::Map::new();
        let mut n_shot = serde_json::Map::new();
        let mut higher = serde_json::Map::new();
        let mut n_samples = serde_json::Map::new();
        let mut approximate = serde_json::Map::new();
        for r in &self.results {
            let alias = match r.name.strip_prefix("mmlu_") {
                Some(sub) if r.subtasks.is_empty() => format!("  - {sub}"),
                Some(sub) => format!(" - {sub}"),
                None => r.name.clone(),
            };
            let mut row = serde_json::Map::new();
            row.insert("name".into(), json!(r.name));
            row.insert("alias".into(), json!(alias));
            row.insert("sample_len".into(), json!(r.n));
            for s in &r.scores {
                row.insert(format!("{},none", s.metric), json!(s.value));
                row.insert(
                    format!("{}_stderr,none", s.metric),
                    s.stderr.map_or(json!("N/A"), |e| json!(e)),
                );
            }
            results.insert(r.name.clone(), Value::Object(row));
            versions.insert(r.name.clone(), json!(r.benchmark.version()));
            n_shot.insert(r.name.clone(), json!(r.shots));
            let better = r.scores.iter().map(|s| (s.metric.clone(), json!(true)));
            higher.insert(r.name.clone(), Value::Object(better.collect()));
            if let Some(why) = r.benchmark.approximate() {
                approximate.insert(r.name.clone(), json!(why));
            }
            if r.subtasks.is_empty() {
                let counts = json!({"original": r.n_original, "effective": r.n});
                n_samples.insert(r.name.clone(), counts);
            } else {
                group_subtasks.insert(r.name.clone(), json!(r.subtasks));
            }
        }
        json!({
            "results": results,
            "group_subtasks": group_subtasks,
            "versions": versions,
            "n-shot": n_shot,
            "higher_is_better": higher,
            "n-samples": n_samples,
            "config": config,
            "approximate": approximate,
        })
    }
}

/// What turns documents into log-likelihoods.
pub trait Scorer {
    /// The log-likelihood of each continuation of each document, in order.
    fn score(&mut self, docs: &[Encoded]) -> Result<Vec<Vec<f64>>, Error>;
    /// Documents per call of [`Scorer::score`]: one for a scorer that takes them one at a time
    /// (the progress bar moves with each), many for one that batches them.
    fn docs_per_call(&self) -> usize {
        1
    }
}

/// Burn's model, one document at a time: its context's KV cache computed once and shared by
/// the continuations.
pub struct ModelScorer<'a, B: FalconBackend> {
    /// The model.
    pub model: &'a FalconForCausalLM<B>,
    /// Compute precision.
    pub dtype: FloatDType,
    /// Where it runs.
    pub device: B::Device,
}

impl<B: FalconBackend> Scorer for ModelScorer<'_, B> {
    fn score(&mut self, docs: &[Encoded]) -> Result<Vec<Vec<f64>>, Error> {
        Ok(docs
            .iter()
            .map(|enc| loglikelihoods(self.model, enc, self.dtype, &self.device))
            .collect())
    }
}

/// Scores the tasks of `opts` (`opts.dtype` is the scorer's business). `progress(task, done,
/// total)` follows the documents.
pub fn eval_tasks(
    scorer: &mut dyn Scorer,
    tokenizer: &tokenizers::Tokenizer,
    opts: &EvalTasksOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalTasksReport, Error> {
    // Read every file first: a missing or malformed one fails before any scoring.
    let loaded: Vec<(TaskSpec, Vec<Task>)> = opts
        .tasks
        .iter()
        .map(|spec| Ok((*spec, load_benchmark(spec.benchmark, &opts.data)?)))
        .collect::<Result<_, Error>>()?;
    let mut report = EvalTasksReport::default();
    for (spec, tasks) in &loaded {
        let total: usize = tasks
            .iter()
            .map(|t| {
                opts.limit
                    .map_or(t.eval_docs.len(), |l| l.min(t.eval_docs.len()))
            })
            .sum();
        // Every document of the benchmark (all MMLU subjects) in one list: a batching scorer
        // fills its batches across tasks.
        let mut encoded = Vec::new();
        for task in tasks {
            let contexts = task.contexts(spec.shots, opts.limit)?;
            for (context, doc) in contexts.iter().zip(&task.eval_docs) {
                let req = Request {
                    context,
                    continuations: doc.choices.iter().map(|c| format!(" {c}")).collect(),
                };
                encoded.push(score::encode(tokenizer, &req)?);
            }
        }
        let mut lls = Vec::with_capacity(encoded.len());
        for chunk in encoded.chunks(scorer.docs_per_call()) {
            lls.extend(scorer.score(chunk)?);
            progress(spec.benchmark.name(), lls.len(), total);
        }
        let mut lls = lls.into_iter();
        let mut leaves = Vec::new();
        for task in tasks {
            let n = opts
                .limit
                .map_or(task.eval_docs.len(), |l| l.min(task.eval_docs.len()));
            let items: Vec<ItemResult> = task.eval_docs[..n]
                .iter()
                .zip(lls.by_ref())
                .enumerate()
                .map(|(i, (doc, lls))| ItemResult {
                    task: task.name.clone(),
                    doc: i,
                    metrics: doc_metrics(task.benchmark, doc, &lls),
                    lls,
                })
                .collect();
            leaves.push(task_result(task, spec.shots, &items));
            report.items.extend(items);
        }
        if spec.benchmark == Benchmark::Mmlu {
            let all: Vec<&TaskResult> = leaves.iter().collect();
            let mut groups = vec![group_result("mmlu", &all)];
            for category in ["stem", "other", "social_sciences", "humanities"] {
                let members: Vec<&TaskResult> = leaves
                    .iter()
                    .filter(|r| {
                        MMLU_SUBJECTS
                            .iter()
                            .any(|(s, c)| *c == category && r.name == format!("mmlu_{s}"))
                    })
                    .collect();
                groups.push(group_result(&format!("mmlu_{category}"), &members));
            }
            report.results.extend(groups);
        }
        report.results.extend(leaves);
    }
    Ok(report)
}

/// `falconry eval-tasks`: loads the checkpoint (HF folder) and the tokenizer, then
/// [`eval_tasks`] through the CUDA engine (bf16 on the cuda build, unless
/// `FALCONRY_ENGINE=burn`) or Burn's model.
pub fn eval_tasks_checkpoint<B: FalconBackend>(
    checkpoint: &Path,
    tokenizer: &Path,
    opts: &EvalTasksOptions,
    device: &B::Device,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalTasksReport, Error> {
    let model = crate::hf::load_hf::<B>(checkpoint, device)?;
    let tokenizer = crate::inference::load_tokenizer(tokenizer)?;
    // bf16 on the cuda build: the training engine's forward pass, batched windows.
    #[cfg(feature = "cuda")]
    if opts.dtype == FloatDType::BF16 && std::env::var("FALCONRY_ENGINE").as_deref() != Ok("burn") {
        match crate::cuda::EngineLosses::new(&model, 0) {
            Ok(losses) => {
                tracing::info!("scoring with the CUDA engine");
                let (seqs, max_len) = (losses.seqs(), losses.max_len());
                let mut scorer = WindowScorer::new(losses, seqs, max_len);
                return eval_tasks(&mut scorer, &tokenizer, opts, progress);
            }
            Err(e) => tracing::info!("scoring with Burn's model: {e}"),
        }
    }
    let mut scorer = ModelScorer {
        model: &model,
        dtype: crate::trainer::compute_dtype::<B>(opts.dtype, device),
        device: device.clone(),
    };
    eval_tasks(&mut scorer, &tokenizer, opts, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_lists() {
        let t = parse_tasks("leaderboard", Some(3)).unwrap();
        let got: Vec<(&str, usize)> = t.iter().map(|s| (s.benchmark.name(), s.shots)).collect();
        assert_eq!(
            got,
            [
                ("arc_challenge", 25),
                ("hellaswag", 10),
                ("mmlu", 5),
                ("truthfulqa_mc2", 0)
            ]
        );
        let t = parse_tasks("arc_easy,mmlu:2,truthfulqa_mc1:5", Some(3)).unwrap();
        let got: Vec<(&str, usize)> = t.iter().map(|s| (s.benchmark.name(), s.shots)).collect();
        assert_eq!(got, [("arc_easy", 3), ("mmlu", 2), ("truthfulqa_mc1", 0)]);
        assert!(parse_tasks("arc", None)
            .unwrap_err()
            .contains("unknown task"));
        assert!(parse_tasks("mmlu:x", None).is_err());
    }

    fn doc(q: &str, gold: usize) -> McDoc {
        McDoc {
            query: q.into(),
            choices: vec!["no".into(), "yes".into()],
            gold,
            labels: vec![],
        }
    }

    #[test]
    fn prompts_and_draws_as_lm_eval() {
        // 30 pool docs, 2 shots: Random(1234).sample(range(30), 2) then the next draw.
        let pool: Vec<McDoc> = (0..30).map(|i| doc(&format!("q{i}"), i % 2)).collect();
        let task = Task {
            name: "t".into(),
            benchmark: Benchmark::ArcEasy,
            eval_docs: vec![doc("Q", 0), doc("R", 1)],
            fewshot_docs: pool.clone(),
            sampler: Sampler::Random {
                exclude_eval_doc: false,
            },
            description: "D\n\n".into(),
        };
        let mut rng = PyRandom::new(1234);
        let (a, b) = (rng.sample(30, 2), rng.sample(30, 2));
        let shot = |j: usize| format!("q{j} {}\n\n", if j % 2 == 1 { "yes" } else { "no" });
        let ctx = task.contexts(2, None).unwrap();
        assert_eq!(ctx[0], format!("D\n\n{}{}Q", shot(a[0]), shot(a[1])));
        assert_eq!(ctx[1], format!("D\n\n{}{}R", shot(b[0]), shot(b[1])));
        assert_eq!(task.contexts(2, Some(1)).unwrap(), ctx[..1]);
        assert_eq!(task.contexts(0, None).unwrap(), ["D\n\nQ", "D\n\nR"]);
        // First-n takes the pool's head; too many shots is an error naming the task.
        let first = Task {
            sampler: Sampler::FirstN,
            ..task.clone()
        };
        assert!(first.contexts(2, None).unwrap()[1].starts_with("D\n\nq0 no\n\nq1 yes\n\nR"));
        assert!(task
            .contexts(31, None)
            .unwrap_err()
            .to_string()
            .contains("t:"));
    }

    #[test]
    fn eval_doc_exclusion_draws_one_more() {
        // The pool is the evaluated split: n + 1 drawn, the document itself dropped.
        let docs: Vec<McDoc> = (0..40).map(|i| doc(&format!("q{i}"), 0)).collect();
        let task = Task {
            name: "t".into(),
            benchmark: Benchmark::Hellaswag,
            eval_docs: docs.clone(),
            fewshot_docs: docs,
            sampler: Sampler::Random {
                exclude_eval_doc: true,
            },
            description: String::new(),
        };
        let ctx = task.contexts(3, Some(40)).unwrap();
        let mut rng = PyRandom::new(1234);
        for (i, c) in ctx.iter().enumerate() {
            let picks: Vec<usize> = rng
                .sample(40, 4)
                .into_iter()
                .filter(|&j| j != i)
                .take(3)
                .collect();
            let want: String = picks.iter().map(|j| format!("q{j} no\n\n")).collect();
            assert_eq!(*c, format!("{want}q{i}"));
        }
    }
}
