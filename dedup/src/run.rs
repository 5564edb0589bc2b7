//! The dedup run: six steps over a run folder, each resumable and shardable into tasks.
//!
//! | step | unit of work (`--task I --tasks N` takes every N-th from I) | writes |
//! |---|---|---|
//! | `signatures` | input shard | `signatures/shard-S/{meta.bin,bucket-B.bin}` |
//! | `buckets` | key-range bucket | `buckets/pairs-B.bin` |
//! | `components` | pair file, then key range of documents (= shard), in rounds | `components/`, `clusters/shard-S.jsonl`, `clusters/sizes.json` |
//! | `exact_substring` | shard, then window-hash range, then shard | `exact/work/`, `exact/shard-S.jsonl` |
//! | `url_dedup` | shard, then URL-key range, then shard | `urls/work/`, `urls/shard-S.jsonl` |
//! | `filter` | input shard | `part-S.parquet`, `stats/shard-S.json`, `explain/shard-S.jsonl` |
//!
//! `components`, `exact_substring` and `url_dedup` are sorts on disk ([`crate::sorted_runs`]): a phase's
//! units write sorted runs that the next phase's units read by key range, so a task holds
//! the `memory_limit_gb` budget whatever the corpus size. Every task of the array runs every
//! phase; a unit is done only under its claim ([`falconry_refine::claim`]): a task takes its
//! own units, then any unit no running task has claimed (so a phase never waits on a task
//! that is not running), waits for the markers of the units other tasks hold, and only then
//! reads the phase's runs for the next phase. No unit is written by two tasks at once, and
//! none is read before its marker.
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

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use falconry_refine::claim::Claims;
use falconry_refine::dataset::{read_parquet, ShardWriter};
use falconry_refine::folder::{write_atomic, Markers, Task};
use falconry_refine::inputs::{check_inputs, list_hash, InputId};
use falconry_refine::lock::OutputLock;
use falconry_refine::run::upstream_stats;
use falconry_refine::{Document, RunStats, StageStats};
use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::components::{keep_first, push_both, roots, star_round, Dropped, Member};
use crate::config::{DedupConfig, PARALLEL_UNITS};
use crate::exact_substring::{apply_cuts, for_each_window, merge_windows, Cut, Cuts, Window};
use crate::lsh::DocRef;
use crate::lsh::{bucket_pairs, doc_ref, for_each_pair, split_ref, write_pairs, BucketWriter};
use crate::meta::{for_each_meta, read_meta, Meta, MetaWriter};
use crate::minhash::{MinHasher, Scratch};
use crate::sorted_runs::{key_range, merge_range, run_files, Record, RunWriter};
use crate::url_dedup::UrlRecord;
use crate::{Error, Result};

/// One step of the run, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// MinHash band keys and meta per input shard.
    Signatures,
    /// Candidate pairs per key-range bucket.
    Buckets,
    /// Connected components in rounds over sorted runs; one kept document per cluster.
    Components,
    /// Exact substring plan from hashed windows sorted on disk.
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

    /// The most units any phase of the step has over `shards` input shards: the size of a
    /// task array that leaves no task idle.
    pub fn units(self, config: &DedupConfig, shards: usize) -> usize {
        match self {
            Step::Signatures | Step::ExactSubstring | Step::Filter => shards,
            Step::Buckets => config.minhash.buckets,
            Step::Components => config.minhash.buckets.max(shards),
            Step::UrlDedup => config.url_dedup.partitions.max(shards),
        }
    }
}

/// What a unit that wrote sorted runs records in its marker.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct RunsRecord {
    /// Run files written (`PREFIX-00000.run` ...).
    runs: usize,
    /// Large-star rounds: whether this range's input was a forest of stars.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    star: bool,
    /// The keep phase: cluster size -> clusters in this range.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    sizes: BTreeMap<u64, u64>,
}

impl RunsRecord {
    /// The record of a unit that wrote its runs with `w` and nothing else.
    fn written<R: Record>(w: RunWriter<R>) -> Result<Self> {
        Ok(RunsRecord {
            runs: w.finish()?,
            ..Default::default()
        })
    }
}

/// A phase gives up past this many rounds (large-star/small-star needs O(log^2 n)).
const MAX_ROUNDS: usize = 200;

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
        task,
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
    /// Which running task does which unit of a phase.
    claims: Claims,
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
        task: Task,
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
            claims: Claims::open(out, task)?,
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

    /// Units of a step's last phase: their markers say the step is done.
    fn units(&self, step: Step) -> usize {
        match step {
            Step::Components | Step::UrlDedup => self.shards.len(),
            _ => step.units(self.config, self.shards.len()),
        }
    }

    /// The name of a unit's marker: `<step>-NNNNN`.
    fn unit_name(step: &str, unit: usize) -> String {
        format!("{step}-{unit:05}")
    }

    fn step_done(&self, step: Step) -> Result<bool> {
        for u in 0..self.units(step) {
            if !self.done(&Self::unit_name(step.name(), u))? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs the units `0..n` of one phase (markers `<name>-NNNNN`) and returns every unit's
    /// record, in unit order, once all are marked. A unit is done only under its claim
    /// ([`Claims`]): this task's units first, then any other unit no running task has claimed
    /// (so a phase never waits on a task that is not running); a unit another task holds is
    /// left to it, and read only after its marker appears.
    fn phase<T, F>(&self, name: &str, n: usize, task: Task, work: F) -> Result<Vec<T>>
    where
        T: Serialize + DeserializeOwned + Send,
        F: Fn(usize) -> Result<T> + Sync,
    {
        let run = |u: usize| -> Result<()> {
            let unit = Self::unit_name(name, u);
            if self.done(&unit)? {
                return Ok(());
            }
            let Some(claim) = self.claims.try_claim(&unit)? else {
                return Ok(());
            };
            // The claimant before may have marked it between the check and the claim.
            if !self.done(&unit)? {
                let record = work(u)?;
                self.markers.write(&unit, &self.inputs, &record)?;
            }
            drop(claim);
            Ok(())
        };
        let mine: Vec<usize> = task.units(n).collect();
        let rest: Vec<usize> = (0..n)
            .map(|k| (task.index + k) % n)
            .filter(|u| !task.owns(*u))
            .collect();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(PARALLEL_UNITS.min(rayon::current_num_threads()))
            .build()
            .map_err(|e| Error::WorkFile {
                path: self.out.clone(),
                message: format!("thread pool: {e}"),
            })?;
        pool.install(|| {
            mine.into_par_iter().try_for_each(run)?;
            rest.par_iter().try_for_each(|&u| run(u))
        })?;
        // Units other tasks hold: wait for their markers; take over a claim whose task ended.
        let mut left: Vec<usize> = (0..n).map(|k| (task.index + k) % n).collect();
        let mut pause = Duration::from_millis(10);
        loop {
            let mut open = Vec::new();
            for u in left {
                if !self.done(&Self::unit_name(name, u))? {
                    open.push(u);
                }
            }
            left = open;
            if left.is_empty() {
                break;
            }
            tracing::debug!("{name}: waiting on {} units of other tasks", left.len());
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
            pool.install(|| left.par_iter().try_for_each(|&u| run(u)))?;
        }
        (0..n)
            .map(|u| {
                let unit = Self::unit_name(name, u);
                let record = self
                    .markers
                    .done::<T>(&unit, &self.inputs)?
                    .ok_or_else(|| Error::WorkFile {
                        path: self.markers.path(&unit),
                        message: "unit not finished".into(),
                    })?;
                // A claimant that ended after marking left its claim: nobody needs it now.
                self.claims.clear(&unit)?;
                Ok(record)
            })
            .collect()
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
        let work = |unit: usize| -> Result<()> {
            let name = Self::unit_name(step.name(), unit);
            if self.done(&name)? {
                return Ok(());
            }
            match step {
                Step::Signatures => self.signatures(unit)?,
                Step::Buckets => self.buckets(unit)?,
                Step::Filter => self.filter(unit)?,
                Step::Components | Step::ExactSubstring | Step::UrlDedup => {
                    unreachable!("phased steps write their own markers")
                }
            }
            Ok(self.markers.write(&name, &self.inputs, &())?)
        };
        let mine: Vec<usize> = task.units(self.units(step)).collect();
        match step {
            Step::Components => self.components(task)?,
            Step::ExactSubstring => self.exact_substring(task)?,
            Step::UrlDedup => self.url_dedup(task)?,
            // Shards parallelise inside (batches of documents); buckets and filters across.
            Step::Signatures => mine.into_iter().try_for_each(work)?,
            _ => mine.into_par_iter().try_for_each(work)?,
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

    /// Calls `f(row, meta)` on every row of a shard's meta, one row in memory at a time.
    fn for_each_meta(
        &self,
        shard: usize,
        mut f: impl FnMut(u32, Meta) -> Result<()>,
    ) -> Result<()> {
        let mut row = 0u32;
        for_each_meta(&self.shard_dir(shard).join("meta.bin"), |m| {
            f(row, m)?;
            row += 1;
            Ok(())
        })
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

    /// The key range of shard `s`'s documents (`s << 32 ..`); the last reaches `u64::MAX`.
    fn doc_range(&self, shard: usize) -> (u64, u64) {
        let n = self.shards.len().max(1);
        key_range(shard, n, (n as u128) << 32)
    }

    /// The sorted runs of unit `u` of a phase, in `dir`.
    fn unit_writer<R: Record>(&self, dir: &Path, u: usize) -> Result<RunWriter<R>> {
        RunWriter::create(dir, &format!("unit-{u:05}"), self.config.run_budget())
    }

    /// The run files of a phase `dir/unit-NNNNN-KKKKK.run` from its units' records.
    fn phase_runs(dir: &Path, records: &[RunsRecord]) -> Vec<PathBuf> {
        records
            .iter()
            .enumerate()
            .flat_map(|(u, r)| run_files(dir, &format!("unit-{u:05}"), r.runs))
            .collect()
    }

    fn components(&self, task: Task) -> Result<()> {
        let work = self.out.join("components");
        let shards = self.shards.len();
        let round_dir = |r: usize| work.join(format!("round-{r:03}"));
        // Round 0: the pair files, each edge in both directions.
        let buckets = self.config.minhash.buckets;
        let recs = self.phase("components-r000", buckets, task, |b| {
            let mut w = self.unit_writer(&round_dir(0), b)?;
            let mut failed = Ok(());
            for_each_pair(&self.pairs_file(b), |x, y| {
                if failed.is_ok() {
                    failed = push_both(&mut w, x, y);
                }
            })?;
            failed?;
            RunsRecord::written(w)
        })?;
        let mut input = Self::phase_runs(&round_dir(0), &recs);
        let mut round = 1;
        loop {
            let large = round % 2 == 1;
            let dir = round_dir(round);
            let recs = self.phase(&format!("components-r{round:03}"), shards, task, |u| {
                let (lo, hi) = self.doc_range(u);
                let mut w = self.unit_writer(&dir, u)?;
                let star = star_round(large, &mut merge_range(&input, lo, hi)?, &mut w)?;
                Ok(RunsRecord {
                    runs: w.finish()?,
                    star,
                    ..Default::default()
                })
            })?;
            // A large-star round whose input was all stars changed nothing: it is the answer.
            if large && recs.iter().all(|r| r.star) {
                break;
            }
            input = Self::phase_runs(&dir, &recs);
            round += 1;
            if round > MAX_ROUNDS {
                return Err(Error::WorkFile {
                    path: work,
                    message: format!("components did not converge in {MAX_ROUNDS} rounds"),
                });
            }
        }
        // Each clustered document's root, joined with its facts, sorted by root.
        let members_dir = work.join("members");
        let recs = self.phase("components-members", shards, task, |u| {
            let (lo, hi) = self.doc_range(u);
            let meta = self.meta(u)?;
            let mut w = self.unit_writer(&members_dir, u)?;
            roots(&mut merge_range(&input, lo, hi)?, |doc, root| {
                let row = split_ref(doc).1 as usize;
                let m = meta.get(row).ok_or_else(|| Error::WorkFile {
                    path: self.shard_dir(u).join("meta.bin"),
                    message: format!("no row {row}"),
                })?;
                let len = 24 + m.id.len();
                let member = Member {
                    root,
                    timestamp: m.timestamp,
                    id: m.id.clone(),
                    doc,
                };
                w.push(member, len)
            })?;
            RunsRecord::written(w)
        })?;
        let members = Self::phase_runs(&members_dir, &recs);
        // Per root range: the first of each cluster in keep order stays.
        let dropped_dir = work.join("dropped");
        let kept = self.phase("components-keep", shards, task, |u| {
            let (lo, hi) = self.doc_range(u);
            let mut w = self.unit_writer(&dropped_dir, u)?;
            let sizes = keep_first(&mut merge_range::<Member>(&members, lo, hi)?, &mut w)?;
            Ok(RunsRecord {
                runs: w.finish()?,
                sizes,
                ..Default::default()
            })
        })?;
        let dropped = Self::phase_runs(&dropped_dir, &kept);
        // Per shard: its removed rows.
        self.phase("components", shards, task, |u| {
            self.write_removed(&dropped, u, "clusters")?;
            if u == 0 {
                self.cluster_report(&kept)?;
            }
            Ok(())
        })?;
        Ok(())
    }

    /// `clusters/sizes.json` from the keep phase's histograms.
    fn cluster_report(&self, kept: &[RunsRecord]) -> Result<()> {
        let mut report = ClusterReport {
            pairs: (0..self.config.minhash.buckets)
                .map(|b| self.pairs_file(b).metadata().map_or(0, |m| m.len() / 16))
                .sum(),
            ..Default::default()
        };
        for (&size, &n) in kept.iter().flat_map(|r| &r.sizes) {
            *report.sizes.entry(size).or_default() += n;
            report.clusters += n;
            report.documents += size * n;
        }
        report.removed = report.documents - report.clusters;
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        Ok(write_atomic(
            &self.out.join("clusters").join("sizes.json"),
            &json,
        )?)
    }

    /// `DIR/shard-S.jsonl`: the rows of shard `S` among the [`Dropped`] runs, with the ids
    /// they were removed in favour of.
    fn write_removed(&self, dropped: &[PathBuf], shard: usize, dir: &str) -> Result<()> {
        let (lo, hi) = self.doc_range(shard);
        let mut lines = Vec::new();
        let mut m = merge_range::<Dropped>(dropped, lo, hi)?;
        while let Some(d) = m.next_record()? {
            lines.push(Removed {
                row: split_ref(d.doc).1,
                duplicate_of: d.kept,
            });
        }
        write_jsonl(&self.shard_file(dir, shard, "jsonl"), &lines)
    }

    /// The rows [`Self::write_removed`] wrote for a shard.
    fn removed(&self, shard: usize, dir: &str) -> Result<HashMap<u32, String>> {
        let lines: Vec<Removed> = read_jsonl(&self.shard_file(dir, shard, "jsonl"))?;
        Ok(lines.into_iter().map(|r| (r.row, r.duplicate_of)).collect())
    }

    fn minhash_removed(&self, shard: usize) -> Result<HashMap<u32, String>> {
        self.removed(shard, "clusters")
    }

    // --- step 4: exact substring --------------------------------------------------------

    fn exact_substring(&self, task: Task) -> Result<()> {
        let cfg = &self.config.exact_substring;
        let shards = self.shards.len();
        let work = self.out.join("exact").join("work");
        let (windows_dir, cuts_dir) = (work.join("windows"), work.join("cuts"));
        // Per shard: every window of the documents MinHash kept.
        let recs = self.phase("exact_substring-windows", shards, task, |u| {
            let mut w = self.unit_writer(&windows_dir, u)?;
            if cfg.enabled {
                let removed = self.minhash_removed(u)?;
                for (row, doc) in self.read_docs(u)?.enumerate() {
                    let doc = doc?;
                    if removed.contains_key(&(row as u32)) {
                        continue;
                    }
                    let d = doc_ref(u, row as u32);
                    let mut failed = Ok(());
                    for_each_window(&doc.content, cfg.unit, cfg.min_span, |pos, hash| {
                        if failed.is_ok() {
                            failed = w.push(Window { hash, doc: d, pos }, 20);
                        }
                    });
                    failed?;
                }
            }
            RunsRecord::written(w)
        })?;
        let windows = Self::phase_runs(&windows_dir, &recs);
        // Per hash range: every window after the first of its content is cut.
        let recs = self.phase("exact_substring-repeats", shards, task, |u| {
            let (lo, hi) = key_range(u, shards, 1u128 << 64);
            let mut w = self.unit_writer(&cuts_dir, u)?;
            let mut m = merge_range::<Window>(&windows, lo, hi)?;
            let mut first: Option<u64> = None;
            while let Some(win) = m.next_record()? {
                if first == Some(win.hash) {
                    w.push(
                        Cut {
                            doc: win.doc,
                            pos: win.pos,
                        },
                        12,
                    )?;
                }
                first = Some(win.hash);
            }
            RunsRecord::written(w)
        })?;
        let cuts = Self::phase_runs(&cuts_dir, &recs);
        // Per shard: cut windows merged into ranges; documents left too short dropped.
        self.phase("exact_substring", shards, task, |u| {
            let (lo, hi) = self.doc_range(u);
            let mut by_doc: BTreeMap<DocRef, Vec<u32>> = BTreeMap::new();
            let mut m = merge_range::<Cut>(&cuts, lo, hi)?;
            while let Some(c) = m.next_record()? {
                by_doc.entry(c.doc).or_default().push(c.pos);
            }
            let mut plan = Vec::new();
            if !by_doc.is_empty() {
                for (row, doc) in self.read_docs(u)?.enumerate() {
                    let doc = doc?;
                    let row = row as u32;
                    let Some(starts) = by_doc.remove(&doc_ref(u, row)) else {
                        continue;
                    };
                    let c = merge_windows(&starts, cfg.min_span as u32);
                    // Only a document that lost text can be "left" too short.
                    let drop = apply_cuts(&doc.content, cfg.unit, &c)
                        .trim()
                        .chars()
                        .count()
                        < cfg.min_chars;
                    plan.push(ExactPlan { row, cuts: c, drop });
                }
            }
            write_jsonl(&self.shard_file("exact", u, "jsonl"), &plan)?;
            Ok(())
        })?;
        Ok(())
    }

    fn exact_plan(&self, shard: usize) -> Result<HashMap<u32, ExactPlan>> {
        let lines: Vec<ExactPlan> = read_jsonl(&self.shard_file("exact", shard, "jsonl"))?;
        Ok(lines.into_iter().map(|p| (p.row, p)).collect())
    }

    // --- step 5: URL dedup --------------------------------------------------------------

    /// Sorted on disk like `exact_substring`: per shard its surviving documents' URLs, per
    /// range of URL keys the first of each URL in keep order, per shard its removed rows.
    fn url_dedup(&self, task: Task) -> Result<()> {
        let shards = self.shards.len();
        let ranges = self.config.url_dedup.partitions.max(shards);
        let work = self.out.join("urls").join("work");
        let (urls_dir, dropped_dir) = (work.join("urls"), work.join("dropped"));
        let recs = self.phase("url_dedup-urls", shards, task, |u| {
            let mut w = self.unit_writer(&urls_dir, u)?;
            if self.config.url_dedup.enabled {
                let gone = self.minhash_removed(u)?;
                let exact = self.exact_plan(u)?;
                self.for_each_meta(u, |row, m| {
                    let dropped =
                        gone.contains_key(&row) || exact.get(&row).is_some_and(|p| p.drop);
                    if m.url_key == 0 || dropped {
                        return Ok(());
                    }
                    let rec = UrlRecord {
                        key: m.url_key,
                        dump: m.dump,
                        doc: doc_ref(u, row),
                        id: m.id,
                    };
                    let len = rec.encoded_len();
                    w.push(rec, len)
                })?;
            }
            RunsRecord::written(w)
        })?;
        let urls = Self::phase_runs(&urls_dir, &recs);
        let recs = self.phase("url_dedup-keep", ranges, task, |u| {
            let (lo, hi) = key_range(u, ranges, 1u128 << 64);
            let mut w = self.unit_writer(&dropped_dir, u)?;
            keep_first(&mut merge_range::<UrlRecord>(&urls, lo, hi)?, &mut w)?;
            RunsRecord::written(w)
        })?;
        let dropped = Self::phase_runs(&dropped_dir, &recs);
        self.phase("url_dedup", shards, task, |u| {
            self.write_removed(&dropped, u, "urls")
        })?;
        Ok(())
    }

    // --- step 6: filter -----------------------------------------------------------------

    fn filter(&self, shard: usize) -> Result<()> {
        let cfg = self.config;
        let minhash = self.minhash_removed(shard)?;
        let exact = self.exact_plan(shard)?;
        let urls = self.removed(shard, "urls")?;
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
