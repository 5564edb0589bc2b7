//! The dedup run: six steps over a run folder, each resumable and shardable into tasks.
//!
//! | step | unit of work (`--task I --tasks N` takes every N-th from I) | writes |
//! |---|---|---|
//! | `signatures` | input shard | `signatures/shard-S/{meta.bin,bucket-B.bin}` |
//! | `buckets` | key-range bucket | `buckets/pairs-B.bin` |
//! | `components` | global (task 0) | `clusters/shard-S.jsonl`, `clusters/sizes.json` |
//! | `exact_substring` | global (task 0) | `exact/shard-S.jsonl` |
//! | `url_dedup` | URL hash partition | `urls/partition-P.jsonl` |
//! | `filter` | input shard | `part-S.parquet`, `stats/shard-S.json`, `explain/shard-S.jsonl` |
//!
//! The folder follows the run-folder convention ([`falconry_refine::folder`]): a unit's
//! marker `_done/<step>-NNNNN.json` (`_done/<step>.json` for a global step), holding the hash
//! of the input list it was made from, is written after its files, so a re-run skips finished
//! units and redoes the rest. When the last `filter` unit finishes, the shard stats merge into
//! `stats.json` after the rows of the `stats.json` beside the inputs (refine's funnel, which
//! dedup's rows `minhash`, `exact_substring`, `url_dedup` continue), and the explain files into
//! `explain.jsonl`. No file depends on the task split or the thread count.
//!
//! Each task holds its lock on the output folder while it runs ([`falconry_refine::lock`]).
//! Every file's work is keyed by its place in the sorted input list and every step depends
//! on all inputs, so the list (paths, sizes, head hashes) is recorded on the first run and a
//! different one is refused ([`falconry_refine::inputs`]); allowed, it makes every marker
//! stale (they record the old list's hash): the whole run is redone, and parts beyond the new
//! input count are removed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use falconry_refine::dataset::{read_parquet, ShardWriter};
use falconry_refine::folder::{write_atomic, Markers, Task};
use falconry_refine::inputs::{check_inputs, list_hash, InputId};
use falconry_refine::lock::OutputLock;
use falconry_refine::run::upstream_stats;
use falconry_refine::{Document, RunStats, StageStats};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::connected_components;
use crate::config::DedupConfig;
use crate::exact_substring::{apply_cuts, Cuts, ExactSubstring};
use crate::lsh::{bucket_pairs, doc_ref, split_ref, write_pairs, BucketWriter, DocRef};
use crate::meta::{read_meta, Meta, MetaWriter};
use crate::minhash::{MinHasher, Scratch};
use crate::url_dedup::{url_duplicates, UrlRecord};
use crate::{Error, Result};

/// One step of the run, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// MinHash band keys and meta per input shard.
    Signatures,
    /// Candidate pairs per key-range bucket.
    Buckets,
    /// Connected components; one kept document per cluster.
    Components,
    /// Suffix-array exact substring plan.
    ExactSubstring,
    /// URL duplicates per hash partition.
    UrlDedup,
    /// Applies all three and writes the Parquet shards.
    Filter,
}

impl Step {
    /// Every step, in run order.
    pub const ALL: [Step; 6] = [
        Step::Signatures,
        Step::Buckets,
        Step::Components,
        Step::ExactSubstring,
        Step::UrlDedup,
        Step::Filter,
    ];

    /// The name used by `--stage` and in `_done` markers.
    pub fn name(self) -> &'static str {
        match self {
            Step::Signatures => "signatures",
            Step::Buckets => "buckets",
            Step::Components => "components",
            Step::ExactSubstring => "exact_substring",
            Step::UrlDedup => "url_dedup",
            Step::Filter => "filter",
        }
    }

    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// How to run: all steps locally, or one step's share of a task array.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// This process's share of the step's units; requires `step`.
    pub task: Option<Task>,
    /// Only this step; `None` runs all in order.
    pub step: Option<Step>,
    /// Write `explain.jsonl`: one line per removed document.
    pub explain: bool,
    /// Redo the run on inputs that differ from those the folder was made from, instead of
    /// refusing them (`--allow-changed-inputs`).
    pub allow_changed_inputs: bool,
}

/// One `explain.jsonl` line: a removed document and what it duplicates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExplainLine {
    /// The removed document's id.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// The stage that removed it: `minhash`, `exact_substring` or `url_dedup`.
    pub stage: String,
    /// The drop reason (`duplicate`, `min_chars`, `duplicate_url`).
    pub reason: String,
    /// The id of the kept document it duplicates (`None` for `min_chars`).
    pub duplicate_of: Option<String>,
}

/// `clusters/sizes.json`: the cluster-size histogram of the `minhash` stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterReport {
    /// Clusters of two or more documents.
    pub clusters: u64,
    /// Documents in those clusters.
    pub documents: u64,
    /// Documents removed (all but one per cluster).
    pub removed: u64,
    /// Candidate pairs read.
    pub pairs: u64,
    /// Cluster size -> number of clusters.
    pub sizes: BTreeMap<u64, u64>,
}

#[derive(Serialize, Deserialize)]
struct Removed {
    row: u32,
    duplicate_of: String,
}

#[derive(Serialize, Deserialize)]
struct ExactPlan {
    row: u32,
    cuts: Cuts,
    drop: bool,
}

#[derive(Serialize, Deserialize)]
struct UrlRemoved {
    shard: usize,
    row: u32,
    duplicate_of: String,
}

/// The input shards of a run: files, folders (their `*.parquet`, recursively) and globs,
/// sorted. A shard's index in this list names all its work files.
pub fn list_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let parquet = |p: &Path| p.extension().is_some_and(|e| e == "parquet");
    Ok(falconry_refine::run::expand_inputs_with(inputs, parquet)?)
}

/// Runs dedup over `inputs` into `output`; returns the funnel (the rows of the inputs'
/// `stats.json`, then dedup's) once every shard is filtered (partial rows before that).
pub fn run_dedup(
    inputs: &[PathBuf],
    output: &Path,
    config: &DedupConfig,
    options: &RunOptions,
) -> Result<RunStats> {
    config.validate().map_err(|message| Error::Config {
        path: "<config>".into(),
        message,
    })?;
    if let Some(task) = options.task {
        if options.step.is_none() {
            return Err(Error::Config {
                path: "<flags>".into(),
                message: "--task needs --stage".into(),
            });
        }
        Task::new(task.index, task.count)?;
    }
    let task = options.task.unwrap_or_default();
    let _lock = OutputLock::acquire(output, task)?;
    let shards = list_inputs(inputs)?;
    let ids: Vec<InputId> = shards
        .iter()
        .map(|p| InputId::read(p))
        .collect::<falconry_refine::Result<_>>()?;
    let change = check_inputs(output, &ids, options.allow_changed_inputs)?;
    let upstream = upstream_stats(inputs)?;
    let run = Run::new(
        shards,
        list_hash(&ids),
        output,
        config,
        options.explain,
        upstream,
    )?;
    if !change.is_empty() {
        run.remove_parts_beyond_inputs()?;
    }
    let steps: Vec<Step> = options.step.map_or(Step::ALL.to_vec(), |s| vec![s]);
    for step in steps {
        let _span = tracing::info_span!("dedup", step = step.name(), task = task.index).entered();
        run.step(step, task)?;
    }
    run.stats()
}

struct Run<'a> {
    shards: Vec<PathBuf>,
    /// [`list_hash`] of the inputs: what a marker must record to count as done.
    inputs: String,
    out: PathBuf,
    config: &'a DedupConfig,
    explain: bool,
    markers: Markers,
    /// The funnel rows of the inputs' `stats.json`, which dedup's continue.
    upstream: RunStats,
}

impl<'a> Run<'a> {
    fn new(
        shards: Vec<PathBuf>,
        inputs: String,
        out: &Path,
        config: &'a DedupConfig,
        explain: bool,
        upstream: RunStats,
    ) -> Result<Self> {
        for dir in [
            "signatures",
            "buckets",
            "clusters",
            "exact",
            "urls",
            "stats",
            "explain",
        ] {
            let d = out.join(dir);
            std::fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        Ok(Run {
            shards,
            inputs,
            out: out.into(),
            config,
            explain,
            markers: Markers::open(out)?,
            upstream,
        })
    }

    /// Removes `part-S.parquet` (and its stats) for `S` past the inputs, left by a run on more.
    fn remove_parts_beyond_inputs(&self) -> Result<()> {
        for entry in std::fs::read_dir(&self.out)
            .map_err(|e| Error::io(&self.out, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let shard = name
                .strip_prefix("part-")
                .and_then(|n| n.strip_suffix(".parquet"))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(s) = shard.filter(|&s| s >= self.shards.len()) {
                for path in [entry.path(), self.shard_file("stats", s, "json")] {
                    match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            return Err(Error::io(&path, e))
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether a unit's marker is present and was made from these inputs.
    fn done(&self, unit: &str) -> Result<bool> {
        Ok(self.markers.is_done(unit, &self.inputs)?)
    }

    /// Units of work of a sharded step; `None` for a global one.
    fn units(&self, step: Step) -> Option<usize> {
        match step {
            Step::Signatures | Step::Filter => Some(self.shards.len()),
            Step::Buckets => Some(self.config.minhash.buckets),
            Step::UrlDedup => Some(self.config.url_dedup.partitions),
            Step::Components | Step::ExactSubstring => None,
        }
    }

    /// The name of a unit's marker: `<step>-NNNNN`, or `<step>` for a global step.
    fn unit_name(step: Step, unit: Option<usize>) -> String {
        match unit {
            Some(u) => format!("{}-{u:05}", step.name()),
            None => step.name().to_string(),
        }
    }

    fn step_done(&self, step: Step) -> Result<bool> {
        match self.units(step) {
            Some(n) => {
                for u in 0..n {
                    if !self.done(&Self::unit_name(step, Some(u)))? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            None => self.done(&Self::unit_name(step, None)),
        }
    }

    fn require(&self, step: Step, before: &[Step]) -> Result<()> {
        for &b in before {
            if !self.step_done(b)? {
                return Err(Error::WorkFile {
                    path: self.out.join("_done"),
                    message: format!("step `{}` needs `{}` finished first", step.name(), b.name()),
                });
            }
        }
        Ok(())
    }

    fn step(&self, step: Step, task: Task) -> Result<()> {
        let prior: Vec<Step> = Step::ALL.into_iter().take_while(|&s| s != step).collect();
        self.require(step, &prior)?;
        let work = |unit: Option<usize>| -> Result<()> {
            let name = Self::unit_name(step, unit);
            if self.done(&name)? {
                return Ok(());
            }
            match (step, unit) {
                (Step::Signatures, Some(s)) => self.signatures(s)?,
                (Step::Buckets, Some(b)) => self.buckets(b)?,
                (Step::Components, None) => self.components()?,
                (Step::ExactSubstring, None) => self.exact_substring()?,
                (Step::UrlDedup, Some(p)) => self.url_dedup(p)?,
                (Step::Filter, Some(s)) => self.filter(s)?,
                _ => unreachable!("units() decides which steps are sharded"),
            }
            Ok(self.markers.write(&name, &self.inputs, &())?)
        };
        match self.units(step) {
            None if task.index == 0 => work(None)?,
            None => tracing::info!("global step `{}` runs in task 0 only", step.name()),
            Some(n) => {
                let mine: Vec<usize> = task.units(n).collect();
                // Shards parallelise inside (batches of documents); buckets and partitions across.
                if matches!(step, Step::Signatures) {
                    mine.into_iter().try_for_each(|u| work(Some(u)))?;
                } else {
                    mine.into_par_iter().try_for_each(|u| work(Some(u)))?;
                }
            }
        }
        if step == Step::Filter && self.step_done(Step::Filter)? {
            self.merge()?;
        }
        Ok(())
    }

    fn shard_dir(&self, shard: usize) -> PathBuf {
        self.out
            .join("signatures")
            .join(format!("shard-{shard:05}"))
    }

    fn shard_file(&self, dir: &str, shard: usize, ext: &str) -> PathBuf {
        self.out.join(dir).join(format!("shard-{shard:05}.{ext}"))
    }

    fn read_docs(&self, shard: usize) -> Result<impl Iterator<Item = Result<Document>>> {
        Ok(read_parquet(&self.shards[shard])?.map(|d| d.map_err(Error::from)))
    }

    // --- step 1: signatures -------------------------------------------------------------

    fn signatures(&self, shard: usize) -> Result<()> {
        let dir = self.shard_dir(shard);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut meta = MetaWriter::create(&dir.join("meta.bin"))?;
        let minhash = self
            .config
            .minhash
            .enabled
            .then(|| MinHasher::new(&self.config.minhash));
        let mut buckets = match minhash {
            Some(_) => Some(BucketWriter::create(&dir, self.config.minhash.buckets)?),
            None => None,
        };
        let mut docs = self.read_docs(shard)?;
        let mut row: u32 = 0;
        loop {
            let batch: Vec<Document> = docs.by_ref().take(2048).collect::<Result<_>>()?;
            if batch.is_empty() {
                break;
            }
            if let (Some(hasher), Some(writer)) = (&minhash, &mut buckets) {
                let keys: Vec<Vec<u64>> = batch
                    .par_iter()
                    .map_init(Scratch::default, |scratch, d| {
                        let mut k = Vec::new();
                        hasher.band_keys(&d.content, scratch, &mut k);
                        k
                    })
                    .collect();
                for (i, k) in keys.iter().enumerate() {
                    writer.add(row + i as u32, k)?;
                }
            }
            for d in &batch {
                meta.add(&Meta::of(d))?;
            }
            row += batch.len() as u32;
        }
        if let Some(w) = buckets {
            w.finish()?;
        }
        meta.finish()
    }

    fn meta(&self, shard: usize) -> Result<Vec<Meta>> {
        read_meta(&self.shard_dir(shard).join("meta.bin"))
    }

    // --- step 2: buckets ----------------------------------------------------------------

    fn pairs_file(&self, bucket: usize) -> PathBuf {
        self.out
            .join("buckets")
            .join(format!("pairs-{bucket:05}.bin"))
    }

    fn buckets(&self, bucket: usize) -> Result<()> {
        let pairs = if self.config.minhash.enabled {
            let dirs: Vec<(usize, PathBuf)> = (0..self.shards.len())
                .map(|s| (s, self.shard_dir(s)))
                .collect();
            bucket_pairs(&dirs, bucket)?
        } else {
            Vec::new()
        };
        write_pairs(&self.pairs_file(bucket), &pairs)
    }

    // --- step 3: components -------------------------------------------------------------

    fn components(&self) -> Result<()> {
        let files: Vec<PathBuf> = (0..self.config.minhash.buckets)
            .map(|b| self.pairs_file(b))
            .collect();
        let pairs: u64 = files
            .iter()
            .map(|f| f.metadata().map_or(0, |m| m.len() / 16))
            .sum();
        let clusters = connected_components(&files)?;
        // Keep facts of clustered documents only, shard by shard (nodes are sorted).
        let mut facts: Vec<Meta> = Vec::with_capacity(clusters.nodes.len());
        let mut i = 0;
        while i < clusters.nodes.len() {
            let (shard, _) = split_ref(clusters.nodes[i]);
            let meta = self.meta(shard)?;
            while i < clusters.nodes.len() && split_ref(clusters.nodes[i]).0 == shard {
                let row = split_ref(clusters.nodes[i]).1 as usize;
                let m = meta.get(row).cloned().ok_or_else(|| Error::WorkFile {
                    path: self.shard_dir(shard).join("meta.bin"),
                    message: format!("no row {row}"),
                })?;
                facts.push(m);
                i += 1;
            }
        }
        // The kept document of each cluster, by index of its root.
        let mut best: HashMap<u32, u32> = HashMap::new();
        let mut sizes: HashMap<u32, u64> = HashMap::new();
        for (i, &r) in clusters.root.iter().enumerate() {
            *sizes.entry(r).or_default() += 1;
            let b = best.entry(r).or_insert(i as u32);
            if facts[i].keep_order() < facts[*b as usize].keep_order() {
                *b = i as u32;
            }
        }
        let mut removed: BTreeMap<usize, Vec<Removed>> = BTreeMap::new();
        for (i, &r) in clusters.root.iter().enumerate() {
            let keep = best[&r] as usize;
            if keep != i {
                let (shard, row) = split_ref(clusters.nodes[i]);
                removed.entry(shard).or_default().push(Removed {
                    row,
                    duplicate_of: facts[keep].id.clone(),
                });
            }
        }
        let mut report = ClusterReport {
            clusters: sizes.len() as u64,
            documents: facts.len() as u64,
            pairs,
            ..Default::default()
        };
        for &s in sizes.values() {
            *report.sizes.entry(s).or_default() += 1;
        }
        report.removed = report.documents - report.clusters;
        for shard in 0..self.shards.len() {
            let lines = removed.remove(&shard).unwrap_or_default();
            write_jsonl(&self.shard_file("clusters", shard, "jsonl"), &lines)?;
        }
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        Ok(write_atomic(
            &self.out.join("clusters").join("sizes.json"),
            &json,
        )?)
    }

    fn minhash_removed(&self, shard: usize) -> Result<HashMap<u32, String>> {
        let lines: Vec<Removed> = read_jsonl(&self.shard_file("clusters", shard, "jsonl"))?;
        Ok(lines.into_iter().map(|r| (r.row, r.duplicate_of)).collect())
    }

    // --- step 4: exact substring --------------------------------------------------------

    fn exact_substring(&self) -> Result<()> {
        let cfg = &self.config.exact_substring;
        let mut plans: Vec<Vec<ExactPlan>> = (0..self.shards.len()).map(|_| Vec::new()).collect();
        if cfg.enabled {
            let mut corpus = ExactSubstring::new(cfg);
            for shard in 0..self.shards.len() {
                let removed = self.minhash_removed(shard)?;
                for (row, doc) in self.read_docs(shard)?.enumerate() {
                    let doc = doc?;
                    if !removed.contains_key(&(row as u32)) {
                        corpus.add(doc_ref(shard, row as u32), &doc.content);
                    }
                }
            }
            tracing::info!(units = corpus.len(), "suffix array");
            let mut cuts: BTreeMap<DocRef, Cuts> = corpus.repeated_spans()?.into_iter().collect();
            for (shard, plan) in plans.iter_mut().enumerate() {
                let removed = self.minhash_removed(shard)?;
                for (row, doc) in self.read_docs(shard)?.enumerate() {
                    let doc = doc?;
                    let row = row as u32;
                    if removed.contains_key(&row) {
                        continue;
                    }
                    // Only a document that lost text can be "left" too short.
                    let Some(c) = cuts.remove(&doc_ref(shard, row)) else {
                        continue;
                    };
                    let drop = apply_cuts(&doc.content, cfg.unit, &c)
                        .trim()
                        .chars()
                        .count()
                        < cfg.min_chars;
                    plan.push(ExactPlan { row, cuts: c, drop });
                }
            }
        }
        for (shard, lines) in plans.iter().enumerate() {
            write_jsonl(&self.shard_file("exact", shard, "jsonl"), lines)?;
        }
        Ok(())
    }

    fn exact_plan(&self, shard: usize) -> Result<HashMap<u32, ExactPlan>> {
        let lines: Vec<ExactPlan> = read_jsonl(&self.shard_file("exact", shard, "jsonl"))?;
        Ok(lines.into_iter().map(|p| (p.row, p)).collect())
    }

    // --- step 5: URL dedup --------------------------------------------------------------

    fn url_file(&self, partition: usize) -> PathBuf {
        self.out
            .join("urls")
            .join(format!("partition-{partition:05}.jsonl"))
    }

    fn url_dedup(&self, partition: usize) -> Result<()> {
        let parts = self.config.url_dedup.partitions as u64;
        let mut lines = Vec::new();
        if self.config.url_dedup.enabled {
            let metas: Vec<Vec<Meta>> = (0..self.shards.len())
                .map(|s| self.meta(s))
                .collect::<Result<_>>()?;
            let dumps: BTreeSet<&str> = metas.iter().flatten().map(|m| m.dump.as_str()).collect();
            let rank: HashMap<&str, u32> = dumps
                .into_iter()
                .enumerate()
                .map(|(i, d)| (d, i as u32))
                .collect();
            let mut records = Vec::new();
            for (shard, meta) in metas.iter().enumerate() {
                let gone = self.minhash_removed(shard)?;
                let exact = self.exact_plan(shard)?;
                for (row, m) in meta.iter().enumerate() {
                    let row = row as u32;
                    let dropped =
                        gone.contains_key(&row) || exact.get(&row).is_some_and(|p| p.drop);
                    if m.url_key != 0 && m.url_key % parts == partition as u64 && !dropped {
                        records.push(UrlRecord {
                            key: m.url_key,
                            dump_rank: rank[m.dump.as_str()],
                            doc: doc_ref(shard, row),
                        });
                    }
                }
            }
            for (dropped, kept) in url_duplicates(&mut records) {
                let (shard, row) = split_ref(dropped);
                let (ks, kr) = split_ref(kept);
                lines.push(UrlRemoved {
                    shard,
                    row,
                    duplicate_of: metas[ks][kr as usize].id.clone(),
                });
            }
        }
        write_jsonl(&self.url_file(partition), &lines)
    }

    fn url_removed(&self, shard: usize) -> Result<HashMap<u32, String>> {
        let mut out = HashMap::new();
        for p in 0..self.config.url_dedup.partitions {
            let lines: Vec<UrlRemoved> = read_jsonl(&self.url_file(p))?;
            out.extend(
                lines
                    .into_iter()
                    .filter(|l| l.shard == shard)
                    .map(|l| (l.row, l.duplicate_of)),
            );
        }
        Ok(out)
    }

    // --- step 6: filter -----------------------------------------------------------------

    fn filter(&self, shard: usize) -> Result<()> {
        let cfg = self.config;
        let minhash = self.minhash_removed(shard)?;
        let exact = self.exact_plan(shard)?;
        let urls = self.url_removed(shard)?;
        let mut rows = [
            StageStats::new("minhash"),
            StageStats::new("exact_substring"),
            StageStats::new("url_dedup"),
        ];
        let mut explain = Vec::new();
        let mut note = |d: &Document, stage: &str, reason: &str, of: Option<&String>| {
            explain.push(ExplainLine {
                id: d.id.clone(),
                url: d.url.clone(),
                stage: stage.into(),
                reason: reason.into(),
                duplicate_of: of.cloned(),
            })
        };
        let mut writer = ShardWriter::create(
            &self.out.join(format!("part-{shard:05}.parquet")),
            &cfg.output,
        )?;
        for (row, doc) in self.read_docs(shard)?.enumerate() {
            let mut doc = doc?;
            let row = row as u32;
            if let Some(of) = minhash.get(&row) {
                rows[0].drop("duplicate");
                note(&doc, "minhash", "duplicate", Some(of));
                continue;
            }
            rows[0].keep();
            if let Some(plan) = exact.get(&row) {
                if plan.drop {
                    rows[1].drop("min_chars");
                    note(&doc, "exact_substring", "min_chars", None);
                    continue;
                }
                doc.content = apply_cuts(&doc.content, cfg.exact_substring.unit, &plan.cuts);
            }
            rows[1].keep();
            if let Some(of) = urls.get(&row) {
                rows[2].drop("duplicate_url");
                note(&doc, "url_dedup", "duplicate_url", Some(of));
                continue;
            }
            rows[2].keep();
            writer.write(doc)?;
        }
        writer.finish()?;
        let enabled = [
            cfg.minhash.enabled,
            cfg.exact_substring.enabled,
            cfg.url_dedup.enabled,
        ];
        let stats = RunStats {
            stages: rows
                .into_iter()
                .zip(enabled)
                .filter(|(_, on)| *on)
                .map(|(r, _)| r)
                .collect(),
            seconds: 0.0,
            bytes_in: self.shards[shard].metadata().map_or(0, |m| m.len()),
        };
        let json = serde_json::to_vec_pretty(&stats).unwrap_or_default();
        write_atomic(&self.shard_file("stats", shard, "json"), &json)?;
        if self.explain {
            write_jsonl(&self.shard_file("explain", shard, "jsonl"), &explain)?;
        }
        Ok(())
    }

    // --- merge --------------------------------------------------------------------------

    /// The upstream rows, then the sum of the shard stats written so far.
    fn stats(&self) -> Result<RunStats> {
        let mut total = self.upstream.clone();
        for shard in 0..self.shards.len() {
            let path = self.shard_file("stats", shard, "json");
            if let Ok(bytes) = std::fs::read(&path) {
                let s: RunStats = serde_json::from_slice(&bytes).map_err(|e| Error::WorkFile {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                total += &s;
            }
        }
        Ok(total)
    }

    /// Writes `stats.json` and `explain.jsonl` of the whole run.
    fn merge(&self) -> Result<()> {
        let stats = self.stats()?;
        let json = serde_json::to_vec_pretty(&stats).unwrap_or_default();
        write_atomic(&self.out.join("stats.json"), &json)?;
        if self.explain {
            let mut all = Vec::new();
            for shard in 0..self.shards.len() {
                let path = self.shard_file("explain", shard, "jsonl");
                all.extend(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
            }
            write_atomic(&self.out.join("explain.jsonl"), &all)?;
        }
        Ok(())
    }
}

/// Writes JSON lines atomically.
fn write_jsonl<T: Serialize>(path: &Path, lines: &[T]) -> Result<()> {
    let mut buf = Vec::new();
    for l in lines {
        serde_json::to_writer(&mut buf, l).map_err(|e| Error::WorkFile {
            path: path.into(),
            message: e.to_string(),
        })?;
        buf.write_all(b"\n").map_err(|e| Error::io(path, e))?;
    }
    Ok(write_atomic(path, &buf)?)
}

/// Reads JSON lines written by [`write_jsonl`].
fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| Error::io(path, e))?;
        out.push(serde_json::from_str(&line).map_err(|e| Error::WorkFile {
            path: path.into(),
            message: e.to_string(),
        })?);
    }
    Ok(out)
}
