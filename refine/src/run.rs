//! A refine run: input files in, one Parquet part per input file out, resumable.
//!
//! The folder follows the run-folder convention ([`crate::folder`]): inputs are expanded
//! (files, folders, globs) and sorted; task `i` of `n` takes the files whose number is `i` mod
//! `n`, under its lock on the folder ([`crate::lock`]). An input file is one unit, `part-KEY`,
//! `KEY` being 16 hex digits of its absolute path's hash ([`InputId::key`]), so its names do
//! not move when other inputs come or go: it becomes `part-KEY.parquet` (and
//! `_explain/part-KEY.jsonl`), then its marker `_done/part-KEY.json` records the file's
//! identity (path, size, hash of its first 64 KiB) and its funnel rows, last. A re-run skips
//! the files whose marker names them as they are now and redoes the rest from scratch, so an
//! interrupted run resumes without loss or duplicates. A different input set is refused
//! unless allowed ([`crate::inputs`]); when allowed, changed files are redone and the parts of
//! files no longer given are removed. Once every input's marker is present, `stats.json` is
//! their sum, in input order.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::{self, JsonlItem, ShardWriter};
use crate::folder::{
    all_file_records, commit_tmp, create_tmp, file_inputs, file_unit, plan_files, write_atomic,
    FileRecord, Markers, Task,
};
use crate::inputs::InputId;
use crate::lock::OutputLock;
use crate::pipeline::Dropped;
use crate::remote;
use crate::{
    Document, Error, Pipeline, ReadItem, RefineConfig, Result, RunStats, StageStats, WarcReader,
};

/// Documents handed to rayon at once; bounds memory to a few chunks of pages per thread.
const CHUNK: usize = 256;

/// The kinds of input `falconry refine` reads, told apart by file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// `.warc`, `.warc.gz`, `.wet`, `.wet.gz` (also `.arc`-less WARC spellings).
    Warc,
    /// `.jsonl`, `.jsonl.gz`, `.json.gz`: one `{"text", "url", ...}` a line.
    Jsonl,
    /// `.parquet` with a `content` or `text` column.
    Parquet,
}

impl InputKind {
    /// The kind of `path`, or `None` for a file refine does not read.
    pub fn of(path: &Path) -> Option<InputKind> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        if name.ends_with(".warc") || name.ends_with(".wet") {
            Some(InputKind::Warc)
        } else if name.ends_with(".jsonl") || name.ends_with(".json") {
            Some(InputKind::Jsonl)
        } else if name.ends_with(".parquet") {
            Some(InputKind::Parquet)
        } else {
            None
        }
    }
}

/// The files `falconry refine` reads ([`InputKind`]) among files, folders and glob patterns;
/// see [`expand_inputs_with`].
pub fn expand_inputs(patterns: &[PathBuf]) -> Result<Vec<PathBuf>> {
    expand_inputs_with(patterns, |path| InputKind::of(path).is_some())
}

/// Expands files, folders and glob patterns into a sorted, de-duplicated list; every stage
/// finds its inputs through this. Folders are walked recursively for the files `keep`
/// accepts, skipping names that start with `_` or `.` (a run's bookkeeping: `_done/`,
/// `_explain/`, temporary files). URLs (`http(s)://`, `s3://bucket/key`) are taken as they
/// are, `s3://bucket/prefix/` for the objects under it, and `.paths.gz` listings for their
/// entries ([`remote`]). A path that matches nothing, and a folder that holds no
/// input file, are errors, so typos and wrong folders don't pass as a run over nothing.
pub fn expand_inputs_with(
    patterns: &[PathBuf],
    keep: impl Fn(&Path) -> bool + Copy,
) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for pattern in patterns {
        if remote::is_listing(pattern) {
            let before = files.len();
            files.extend(remote::listing(pattern)?.into_iter().filter(|p| keep(p)));
            if files.len() == before {
                return Err(Error::Input {
                    path: pattern.clone(),
                    message: "no input file in this listing (of the kinds this stage reads)".into(),
                });
            }
        } else if remote::is_prefix(pattern) {
            let before = files.len();
            files.extend(
                remote::list_prefix(pattern)?
                    .into_iter()
                    .filter(|p| keep(p)),
            );
            if files.len() == before {
                return Err(Error::Input {
                    path: pattern.clone(),
                    message: "no input file under this prefix (of the kinds this stage reads)"
                        .into(),
                });
            }
        } else if remote::is_url(pattern) || pattern.is_file() {
            files.push(pattern.clone());
        } else if pattern.is_dir() {
            let before = files.len();
            walk(pattern, keep, &mut files)?;
            if files.len() == before {
                return Err(Error::Input {
                    path: pattern.clone(),
                    message: "no input file in this folder (of the kinds this stage reads)".into(),
                });
            }
        } else {
            let text = pattern.to_string_lossy();
            let matches = glob::glob(&text).map_err(|e| Error::Input {
                path: pattern.clone(),
                message: format!("bad glob pattern: {e}"),
            })?;
            let before = files.len();
            for m in matches.flatten() {
                if m.is_dir() {
                    walk(&m, keep, &mut files)?;
                } else {
                    files.push(m);
                }
            }
            if files.len() == before {
                return Err(Error::Input {
                    path: pattern.clone(),
                    message: "no such file, folder or glob match".into(),
                });
            }
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn walk(dir: &Path, keep: impl Fn(&Path) -> bool + Copy, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        let bookkeeping = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(['_', '.']));
        if bookkeeping {
            continue;
        }
        if path.is_dir() {
            walk(&path, keep, out)?;
        } else if keep(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// One `--explain` line: the fate of one input document.
#[derive(Debug, Serialize, Deserialize)]
pub struct Explain {
    /// The document's id.
    pub id: String,
    /// Its URL.
    pub url: String,
    /// Whether it reached the output.
    pub kept: bool,
    /// The stage that dropped it, or null.
    pub stage: Option<String>,
    /// The rule that fired, or null.
    pub reason: Option<String>,
    /// Language label, when `language_id` ran.
    pub language: Option<String>,
    /// Language score, when `language_id` ran.
    pub language_score: Option<f32>,
}

/// What one refine invocation does.
pub struct RunOptions<'a> {
    /// Sorted input files (see [`expand_inputs`]).
    pub inputs: &'a [PathBuf],
    /// The output folder.
    pub output: &'a Path,
    /// This process's share of the inputs.
    pub task: Task,
    /// Where to write `--explain` lines, if asked.
    pub explain: Option<&'a Path>,
    /// Called with each input file's compressed size once it is done (progress bars).
    pub on_file_done: &'a (dyn Fn(u64) + Sync),
    /// Bring a folder made from other inputs up to date with these instead of refusing
    /// (`--allow-changed-inputs`): new and changed files are refined, the parts of files no
    /// longer given are removed.
    pub allow_changed_inputs: bool,
}

/// The part an input file becomes: `part-KEY.parquet`.
fn part(output: &Path, unit: &str) -> PathBuf {
    output.join(format!("{unit}.parquet"))
}

fn explain_part(output: &Path, unit: &str) -> PathBuf {
    output.join("_explain").join(format!("{unit}.jsonl"))
}

/// Runs the refine stage over this task's inputs and returns the merged funnel of every
/// finished input file in `output` (this task's and any other's). `stats.json` is written once
/// every input file is done, by whichever task finishes last.
pub fn refine(config: &RefineConfig, opts: &RunOptions) -> Result<RunStats> {
    let start = Instant::now();
    let pipeline = Pipeline::from_config(config)?;
    let _lock = OutputLock::acquire(opts.output, opts.task)?;
    let explain_dir = opts.output.join("_explain");
    std::fs::create_dir_all(&explain_dir).map_err(|e| Error::io(&explain_dir, e))?;
    let markers = Markers::open(opts.output)?;
    let remove_outputs = |unit: &str| -> Result<()> {
        for file in [part(opts.output, unit), explain_part(opts.output, unit)] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&file, e))
                }
                _ => {}
            }
        }
        Ok(())
    };
    let plan = plan_files(
        opts.output,
        opts.inputs,
        opts.task,
        opts.allow_changed_inputs,
        &markers,
        &remove_outputs,
    )?;
    tracing::info!(files = plan.todo.len(), "refine");
    plan.todo.par_iter().try_for_each(|id| -> Result<()> {
        let _span = tracing::debug_span!("file", path = %id.path.display()).entered();
        let unit = file_unit(id);
        let stats = refine_file(config, &pipeline, &id.path, &unit, opts)?;
        let bytes_in = stats.bytes_in;
        markers.write(
            &unit,
            &file_inputs(id),
            &FileRecord {
                input: id.clone(),
                report: stats,
            },
        )?;
        (opts.on_file_done)(bytes_in);
        Ok(())
    })?;
    let mut total = RunStats::default();
    match all_file_records::<RunStats>(&markers, &plan.listed)? {
        Some(records) => {
            for r in &records {
                total += &r.report;
            }
            let json = serde_json::to_vec_pretty(&total).expect("stats serialize");
            write_atomic(&opts.output.join("stats.json"), &json)?;
        }
        // Another task still works: this one's files only.
        None => {
            for id in &plan.listed {
                if let Some(m) = markers.read::<FileRecord<RunStats>>(&file_unit(id))? {
                    total += &m.record.report;
                }
            }
        }
    }
    total.seconds = start.elapsed().as_secs_f64();
    if let Some(explain) = opts.explain {
        concat_explain(opts, &plan.listed, explain)?;
    }
    Ok(total)
}

/// The funnel so far: the sum of the `stats.json` files beside a stage's inputs (the folders
/// given, or the folders of the files given), if any. dedup's and tokenize's rows continue it.
pub fn upstream_stats(inputs: &[PathBuf]) -> Result<RunStats> {
    let mut total = RunStats::default();
    let mut dirs: Vec<&Path> = inputs
        .iter()
        .map(|input| {
            if input.is_dir() {
                input.as_path()
            } else {
                input.parent().unwrap_or(Path::new("."))
            }
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in dirs {
        let path = dir.join("stats.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let stats: RunStats = serde_json::from_slice(&bytes).map_err(|e| Error::Input {
                    path: path.clone(),
                    message: format!("not a stats.json: {e}"),
                })?;
                total += &stats;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&path, e)),
        }
    }
    Ok(total)
}

fn concat_explain(opts: &RunOptions, inputs: &[InputId], explain: &Path) -> Result<()> {
    let (tmp, file) = create_tmp(explain)?;
    let mut out = BufWriter::new(file);
    for id in inputs {
        let part = explain_part(opts.output, &file_unit(id));
        if let Ok(bytes) = std::fs::read(&part) {
            out.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| Error::io(&tmp, e.into_error()))?;
    Ok(commit_tmp(file, &tmp, explain)?)
}

/// Reads one input file through the pipeline into `part-KEY.parquet`; returns its funnel.
fn refine_file(
    config: &RefineConfig,
    pipeline: &Pipeline,
    path: &Path,
    unit: &str,
    opts: &RunOptions,
) -> Result<RunStats> {
    let bytes_in = remote::size(path)?;
    let mut read = StageStats::new("read");
    let mut rows = pipeline.new_stats();
    let mut writer = ShardWriter::create(&part(opts.output, unit), &config.output)?;
    let mut explain = match opts.explain {
        Some(_) => {
            let p = explain_part(opts.output, unit);
            let (tmp, file) = create_tmp(&p)?;
            Some((BufWriter::new(file), tmp, p))
        }
        None => None,
    };
    let mut chunk: Vec<Document> = Vec::with_capacity(CHUNK);
    let mut flush = |chunk: &mut Vec<Document>, rows: &mut Vec<StageStats>| -> Result<()> {
        let results: Vec<(Document, std::result::Result<(), Dropped>, Vec<StageStats>)> = chunk
            .par_drain(..)
            .map(|mut doc| {
                let mut local = pipeline.new_stats();
                let verdict = pipeline.apply(&mut doc, &mut local);
                (doc, verdict, local)
            })
            .collect();
        for (doc, verdict, local) in results {
            for (row, add) in rows.iter_mut().zip(&local) {
                *row += add;
            }
            if let Some((out, _, p)) = explain.as_mut() {
                let line = Explain {
                    id: doc.id.clone(),
                    url: doc.url.clone(),
                    kept: verdict.is_ok(),
                    stage: verdict.err().map(|d| d.stage.to_string()),
                    reason: verdict.err().map(|d| d.reason.to_string()),
                    language: doc.language.clone(),
                    language_score: doc.language_score,
                };
                serde_json::to_writer(&mut *out, &line).expect("explain serialize");
                out.write_all(b"\n").map_err(|e| Error::io(&*p, e))?;
            }
            if verdict.is_ok() {
                writer.write(doc)?;
            }
        }
        Ok(())
    };
    let mut push =
        |doc: Document, chunk: &mut Vec<Document>, rows: &mut Vec<StageStats>| -> Result<()> {
            chunk.push(doc);
            if chunk.len() >= CHUNK {
                flush(chunk, rows)?;
            }
            Ok(())
        };
    match InputKind::of(path) {
        Some(InputKind::Warc) => {
            for item in WarcReader::open(path, &config.read)? {
                match item {
                    ReadItem::Doc(doc) => {
                        read.keep();
                        push(doc, &mut chunk, &mut rows)?;
                    }
                    ReadItem::Skip(reason) => read.drop(reason),
                }
            }
        }
        Some(InputKind::Jsonl) => {
            for item in dataset::read_jsonl(path)? {
                match item? {
                    JsonlItem::Doc(doc) => {
                        read.keep();
                        push(doc, &mut chunk, &mut rows)?;
                    }
                    JsonlItem::Skip(reason) => read.drop(reason),
                }
            }
        }
        Some(InputKind::Parquet) => {
            for doc in dataset::read_parquet(path)? {
                read.keep();
                push(doc?, &mut chunk, &mut rows)?;
            }
        }
        None => {
            return Err(Error::Input {
                path: path.into(),
                message: "not a WARC, JSONL or Parquet file".into(),
            })
        }
    }
    flush(&mut chunk, &mut rows)?;
    writer.finish()?;
    if let Some((out, tmp, p)) = explain {
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        commit_tmp(file, &tmp, &p)?;
    }
    let mut stages = vec![read];
    stages.extend(rows);
    Ok(RunStats {
        stages,
        seconds: 0.0,
        bytes_in,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_kinds_by_name() {
        assert_eq!(
            InputKind::of(Path::new("a/CC-MAIN-x.warc.gz")),
            Some(InputKind::Warc)
        );
        assert_eq!(
            InputKind::of(Path::new("a/x.warc.wet.gz")),
            Some(InputKind::Warc)
        );
        assert_eq!(InputKind::of(Path::new("x.WARC")), Some(InputKind::Warc));
        assert_eq!(
            InputKind::of(Path::new("x.jsonl.gz")),
            Some(InputKind::Jsonl)
        );
        assert_eq!(
            InputKind::of(Path::new("x.parquet")),
            Some(InputKind::Parquet)
        );
        assert_eq!(InputKind::of(Path::new("x.warc.wat.gz")), None);
        assert_eq!(InputKind::of(Path::new("README.md")), None);
    }

    #[test]
    fn folders_skip_run_bookkeeping_and_unread_kinds() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "a.warc.gz",
            "b.jsonl",
            "notes.txt",
            "_explain/part-00000.jsonl",
            ".c.jsonl.tmp",
            "sub/d.parquet",
        ] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let names: Vec<_> = expand_inputs(&[dir.path().to_owned()])
            .unwrap()
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["a.warc.gz", "b.jsonl", "sub/d.parquet"]);
    }

    #[test]
    fn folder_without_inputs_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("notes.txt"), "").unwrap();
        let err = expand_inputs(&[dir.path().to_owned()])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no input file in this folder")
                && err.contains(&*dir.path().to_string_lossy()),
            "{err}"
        );
    }

    #[test]
    fn missing_input_is_an_error() {
        let err = expand_inputs(&[PathBuf::from("/nonexistent/*.warc.gz")]).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
    }

    /// Config with the filters off: these tests are about reading, not about quality.
    fn reading_only() -> RefineConfig {
        let mut config = RefineConfig::default();
        config.language_id.enabled = false;
        config.repetition.enabled = false;
        config.quality.enabled = false;
        config.line_correction.enabled = false;
        config
    }

    /// `n` JSONL lines, gzipped (several deflate blocks, so a cut leaves whole lines before it).
    fn jsonl_gz(n: usize) -> Vec<u8> {
        use flate2::{write::GzEncoder, Compression};
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        for i in 0..n {
            let line = format!(
                "{{\"text\":\"document {i} {}\",\"url\":\"https://e.com/{i}\"}}\n",
                "word ".repeat(i % 50)
            );
            gz.write_all(line.as_bytes()).unwrap();
        }
        gz.finish().unwrap()
    }

    /// Runs refine on one file in a thread; a run that does not end in 60 s fails the test
    /// instead of hanging it.
    fn refine_with_deadline(input: &Path, out: &Path) -> RunStats {
        let name = input_name(input);
        let (input, out) = (input.to_path_buf(), out.to_path_buf());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let inputs = vec![input];
            let _ = tx.send(
                refine(&reading_only(), &opts(&inputs, &out, false)).map_err(|e| e.to_string()),
            );
        });
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(stats) => stats.unwrap(),
            Err(_) => panic!("refine of {name} still running after 60 s"),
        }
    }

    fn input_name(p: &Path) -> String {
        p.file_name().unwrap().to_string_lossy().into_owned()
    }

    #[test]
    fn damaged_jsonl_gz_is_a_counted_skip_keeping_the_lines_before() {
        let dir = tempfile::tempdir().unwrap();
        let whole = jsonl_gz(4000);
        // Truncated: the first 60% of the bytes.
        let truncated = dir.path().join("truncated.jsonl.gz");
        std::fs::write(&truncated, &whole[..whole.len() * 6 / 10]).unwrap();
        // Corrupt: garbage over 64 bytes in the middle of the deflate stream.
        let corrupt = dir.path().join("corrupt.jsonl.gz");
        let mut bad = whole.clone();
        let mid = bad.len() / 2;
        bad[mid..mid + 64]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= 0x5a ^ i as u8);
        std::fs::write(&corrupt, &bad).unwrap();
        for (input, reason) in [(&truncated, "truncated"), (&corrupt, "corrupt_gzip")] {
            let out = dir.path().join(format!("out-{reason}"));
            let stats = refine_with_deadline(input, &out);
            let read = &stats.stages[0];
            assert_eq!(read.dropped.get(reason), Some(&1), "{reason}: {read:?}");
            // The whole lines before the damage are kept, none after it.
            assert!(
                read.output > 1000 && read.output < 4000,
                "{reason}: {read:?}"
            );
            assert!(out.join("stats.json").exists());
            let rows = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                .map(|p| dataset::read_parquet(&p).unwrap().count() as u64)
                .sum::<u64>();
            assert_eq!(rows, read.output, "{reason}");
        }
    }

    fn write_jsonl_inputs(dir: &Path, files: std::ops::Range<usize>) {
        std::fs::create_dir_all(dir).unwrap();
        for f in files {
            let lines: String = (0..5)
                .map(|i| {
                    format!("{{\"text\":\"file {f} doc {i}\",\"url\":\"https://e.com/{f}/{i}\"}}\n")
                })
                .collect();
            std::fs::write(dir.join(format!("f{f}.jsonl")), lines).unwrap();
        }
    }

    fn opts<'a>(
        inputs: &'a [PathBuf],
        out: &'a Path,
        allow_changed_inputs: bool,
    ) -> RunOptions<'a> {
        RunOptions {
            inputs,
            output: out,
            task: Task::default(),
            explain: None,
            on_file_done: &|_| {},
            allow_changed_inputs,
        }
    }

    /// Every row of every part, as `url`s, sorted.
    fn urls_out(out: &Path) -> Vec<String> {
        let mut urls: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .flat_map(|p| {
                dataset::read_parquet(&p)
                    .unwrap()
                    .map(|d| d.unwrap().url)
                    .collect::<Vec<_>>()
            })
            .collect();
        urls.sort();
        urls
    }

    fn expected_urls(files: std::ops::Range<usize>) -> Vec<String> {
        let mut urls: Vec<String> = files
            .flat_map(|f| (0..5).map(move |i| format!("https://e.com/{f}/{i}")))
            .collect();
        urls.sort();
        urls
    }

    #[test]
    fn jsonl_run_resumes_without_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        write_jsonl_inputs(&input, 0..3);
        let inputs = expand_inputs(&[input]).unwrap();
        let out = dir.path().join("out");
        let first = refine(&reading_only(), &opts(&inputs, &out, false)).unwrap();
        assert_eq!(first.stages[0].output, 15);
        // Lose one file's output as an interruption would, then resume.
        let unit = file_unit(&InputId::stat(&inputs[1]).unwrap());
        std::fs::remove_file(Markers::open(&out).unwrap().path(&unit)).unwrap();
        std::fs::remove_file(part(&out, &unit)).unwrap();
        let second = refine(&reading_only(), &opts(&inputs, &out, false)).unwrap();
        assert_eq!(second.stages, first.stages);
        assert_eq!(urls_out(&out), expected_urls(0..3));
    }

    /// Issue 11: resume was keyed by an input's place in the sorted list, so a file added
    /// between runs made the rerun skip the new file and redo an old one (duplicates).
    #[test]
    fn an_added_input_is_refused_then_refined_once_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        // f1 and f3 first; f0 and f2 sort before and between them.
        write_jsonl_inputs(&input, 1..2);
        write_jsonl_inputs(&input, 3..4);
        let out = dir.path().join("out");
        let before = expand_inputs(std::slice::from_ref(&input)).unwrap();
        refine(&reading_only(), &opts(&before, &out, false)).unwrap();
        write_jsonl_inputs(&input, 0..1);
        write_jsonl_inputs(&input, 2..3);
        let after = expand_inputs(std::slice::from_ref(&input)).unwrap();
        let err = refine(&reading_only(), &opts(&after, &out, false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 added")
                && err.contains("f0.jsonl")
                && err.contains("--allow-changed-inputs"),
            "{err}"
        );
        assert_eq!(
            urls_out(&out),
            [expected_urls(1..2), expected_urls(3..4)].concat()
        );
        let stats = refine(&reading_only(), &opts(&after, &out, true)).unwrap();
        assert_eq!(stats.stages[0].output, 20);
        assert_eq!(urls_out(&out), expected_urls(0..4));
        // Now the same inputs resume without the flag.
        refine(&reading_only(), &opts(&after, &out, false)).unwrap();
        assert_eq!(urls_out(&out), expected_urls(0..4));
    }

    #[test]
    fn a_changed_or_removed_input_is_refused_then_redone_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in");
        write_jsonl_inputs(&input, 0..3);
        let out = dir.path().join("out");
        let inputs = expand_inputs(std::slice::from_ref(&input)).unwrap();
        refine(&reading_only(), &opts(&inputs, &out, false)).unwrap();
        // Same size, other text: only the head hash tells.
        let f1 = input.join("f1.jsonl");
        let text = std::fs::read_to_string(&f1)
            .unwrap()
            .replace("file 1 doc", "FILE 1 DOC");
        std::fs::write(&f1, text).unwrap();
        let err = refine(&reading_only(), &opts(&inputs, &out, false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("f1.jsonl") && err.contains("changed"), "{err}");
        refine(&reading_only(), &opts(&inputs, &out, true)).unwrap();
        let docs: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .flat_map(|p| {
                dataset::read_parquet(&p)
                    .unwrap()
                    .map(|d| d.unwrap().content)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(docs.len(), 15);
        assert_eq!(
            docs.iter().filter(|c| c.starts_with("FILE 1 DOC")).count(),
            5
        );
        // A removed input: refused, then its part goes.
        std::fs::remove_file(input.join("f2.jsonl")).unwrap();
        let fewer = expand_inputs(std::slice::from_ref(&input)).unwrap();
        let err = refine(&reading_only(), &opts(&fewer, &out, false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 removed") && err.contains("f2.jsonl"),
            "{err}"
        );
        let stats = refine(&reading_only(), &opts(&fewer, &out, true)).unwrap();
        assert_eq!(stats.stages[0].output, 10);
        assert_eq!(urls_out(&out), expected_urls(0..2));
    }
}
