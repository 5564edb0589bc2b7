//! `falconry eval-tasks` against lm-evaluation-harness 0.4.13, without Python: the fixtures
//! `tests/fixtures/eval-falcon-*/lm_eval.json` hold what lm_eval computed on those checkpoints
//! (`scripts/lm_eval_parity.py`: per document the SHA-256 of the prompt, as its `prompt_hash`,
//! and each choice's log-likelihood; per task its metrics): eval-falcon-mqa at `--limit 200`
//! (MMLU 10 per subject), eval-falcon-grouped at `--limit 25` (MMLU 2); arc_challenge 25-shot,
//! arc_easy 0, hellaswag 10, mmlu 5, truthfulqa 0.
//!
//! - prompts: every prompt's hash equals lm_eval's (templates, few-shot draws, delimiters);
//! - scoring: falconry's metrics on lm_eval's log-likelihoods are lm_eval's metrics (acc and
//!   acc_norm exactly, mc2 and the MMLU pooling to the last bits of float summation);
//! - the model: falconry's log-likelihoods on the first documents of every task are lm_eval's
//!   within 1e-4 relative (the whole limit is `scripts/lm_eval_parity.py`'s job: CPU time).

mod common;

use common::test_data;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::FloatDType;
use falconry_train::{
    doc_metrics, eval_tasks, group_result, load_benchmark, load_hf, load_tokenizer, task_result,
    Benchmark, CpuBackend, EvalTasksOptions, ItemResult, ModelScorer, TaskSpec,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

type B = CpuBackend;

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

#[derive(Deserialize)]
struct Fixture {
    limit: usize,
    mmlu_limit: usize,
    shots: BTreeMap<String, usize>,
    tasks: BTreeMap<String, FixtureTask>,
}

#[derive(Deserialize)]
struct FixtureTask {
    #[serde(default)]
    items: Vec<FixtureItem>,
    /// `"acc"`, `"acc_stderr"`, ... (lm_eval's keys without `,none`): Python's repr of the
    /// float, or `"N/A"`.
    #[serde(default)]
    metrics: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct FixtureItem {
    doc: usize,
    prompt_hash: String,
    /// Python's repr of each float: serde_json's default parser can be one ulp off.
    lls: Vec<String>,
}

impl FixtureItem {
    fn lls(&self) -> Vec<f64> {
        self.lls.iter().map(|x| x.parse().unwrap()).collect()
    }
}

fn fixture(name: &str) -> Fixture {
    let path = fixture_dir(name).join("lm_eval.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn specs(f: &Fixture) -> Vec<TaskSpec> {
    Benchmark::ALL
        .into_iter()
        .map(|benchmark| TaskSpec {
            benchmark,
            shots: f.shots[benchmark.name()],
        })
        .collect()
}

fn limit(f: &Fixture, b: Benchmark) -> usize {
    if b == Benchmark::Mmlu {
        f.mmlu_limit
    } else {
        f.limit
    }
}

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs().max(1e-30)
}

#[test]
fn prompts_equal_lm_evals() {
    let f = fixture("eval-falcon-mqa");
    let data = test_data().join("eval");
    let mut checked = 0;
    for spec in specs(&f) {
        for task in load_benchmark(spec.benchmark, &data).unwrap() {
            let want = &f.tasks[&task.name].items;
            let contexts = task
                .contexts(spec.shots, Some(limit(&f, spec.benchmark)))
                .unwrap();
            assert_eq!(contexts.len(), want.len(), "{}", task.name);
            for (context, item) in contexts.iter().zip(want) {
                let hash = format!("{:x}", Sha256::digest(context.as_bytes()));
                assert!(
                    hash.starts_with(&item.prompt_hash),
                    "{} doc {}: prompt differs from lm_eval's:\n{context}",
                    task.name,
                    item.doc
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 1000, "{checked} prompts");
}

/// lm_eval's metric value (a number, or "N/A").
fn number(v: &str) -> Option<f64> {
    v.parse().ok()
}

#[test]
fn metrics_on_lm_evals_loglikelihoods_equal_lm_evals() {
    for name in ["eval-falcon-mqa", "eval-falcon-grouped"] {
        let f = fixture(name);
        let data = test_data().join("eval");
        for spec in specs(&f) {
            let tasks = load_benchmark(spec.benchmark, &data).unwrap();
            let mut leaves = Vec::new();
            for task in &tasks {
                let items: Vec<ItemResult> = f.tasks[&task.name]
                    .items
                    .iter()
                    .map(|it| ItemResult {
                        task: task.name.clone(),
                        doc: it.doc,
                        metrics: doc_metrics(task.benchmark, &task.eval_docs[it.doc], &it.lls()),
                        lls: it.lls(),
                    })
                    .collect();
                leaves.push(task_result(task, spec.shots, &items));
            }
            let mut results = leaves.clone();
            if spec.benchmark == Benchmark::Mmlu {
                results.push(group_result("mmlu", &leaves.iter().collect::<Vec<_>>()));
            }
            for r in &results {
                let want = &f.tasks[&r.name].metrics;
                for s in &r.scores {
                    let v = number(&want[&s.metric]).unwrap();
                    let se = number(&want[&format!("{}_stderr", s.metric)]);
                    let exact = r.benchmark != Benchmark::TruthfulqaMc2 && r.name != "mmlu";
                    if exact {
                        assert_eq!(s.value, v, "{name} {} {}", r.name, s.metric);
                        assert_eq!(s.stderr, se, "{name} {} {} stderr", r.name, s.metric);
                    } else {
                        // Sums of fractions: the same up to the order of float additions.
                        assert!(
                            close(s.value, v, 1e-12),
                            "{name} {} {}: {} vs {v}",
                            r.name,
                            s.metric,
                            s.value
                        );
                        assert!(
                            close(s.stderr.unwrap(), se.unwrap(), 1e-9),
                            "{name} {} stderr",
                            r.name
                        );
                    }
                }
            }
        }
    }
}

/// falconry's own log-likelihoods on the first `n` documents of every task (first `n_mmlu`
/// of each MMLU subject) against lm_eval's.
/// (`n_mmlu` 0: MMLU left out, its 57 subjects cost minutes in a debug build; its prompts and
/// metrics are checked above, its one-token choices by `score.rs`'s unit test.)
fn loglikelihoods_match(name: &str, n: usize, n_mmlu: usize) {
    let f = fixture(name);
    let device = Default::default();
    let model = load_hf::<B>(&fixture_dir(name), &device).unwrap();
    let tokenizer = load_tokenizer(&test_data().join("tokenizer/falcon/tokenizer.json")).unwrap();
    let mut worst = 0.0f64;
    for spec in specs(&f) {
        if spec.benchmark == Benchmark::Mmlu && n_mmlu == 0 {
            continue;
        }
        let limit = if spec.benchmark == Benchmark::Mmlu {
            n_mmlu
        } else {
            n
        };
        let opts = EvalTasksOptions {
            tasks: vec![spec],
            limit: Some(limit),
            data: test_data().join("eval"),
            dtype: FloatDType::F32,
        };
        let mut scorer = ModelScorer {
            model: &model,
            dtype: FloatDType::F32,
            device,
        };
        let report = eval_tasks(&mut scorer, &tokenizer, &opts, &mut |_, _, _| {}).unwrap();
        for item in &report.items {
            let want = &f.tasks[&item.task].items[item.doc];
            assert_eq!(want.doc, item.doc);
            assert_eq!(
                item.lls.len(),
                want.lls.len(),
                "{} doc {}",
                item.task,
                item.doc
            );
            for (got, want) in item.lls.iter().zip(&want.lls()) {
                worst = worst.max((got - want).abs() / want.abs());
                assert!(
                    close(*got, *want, 1e-4),
                    "{name} {} doc {}: ll {got} vs lm_eval {want}",
                    item.task,
                    item.doc
                );
            }
        }
    }
    eprintln!("{name}: worst relative difference {worst:.2e}");
}

#[test]
fn loglikelihoods_equal_lm_evals_multi_query() {
    loglikelihoods_match("eval-falcon-mqa", 3, 0);
}

#[test]
fn loglikelihoods_equal_lm_evals_grouped_kv() {
    loglikelihoods_match("eval-falcon-grouped", 2, 0);
}

#[test]
fn missing_benchmark_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_benchmark(Benchmark::ArcEasy, dir.path())
        .unwrap_err()
        .to_string();
    assert!(e.contains("ARC-Easy-Test.jsonl"), "{e}");
}
