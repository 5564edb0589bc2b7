//! The run-folder convention, written once: refine, dedup and tokenize write their output
//! folders the same way, so that any of them can be killed at any moment (even by `kill -9`)
//! and the same command again finishes with the bytes of an uninterrupted run.
//!
//! - **Units and tasks.** A stage's work is a list of units (an input file, a dedup bucket,
//!   a global step); unit `k` belongs to task `k mod N` ([`Task`]), so a SLURM job array
//!   splits it with no coordination.
//! - **Inputs.** Listed by [`crate::run::expand_inputs_with`] (sorted), recorded and checked
//!   by [`crate::inputs`]: a changed input set is refused, never silently skipped or redone.
//! - **One writer per folder and task**: [`crate::lock::OutputLock`]. Taking over the lock
//!   of a writer that died sweeps the temporary files it left ([`sweep_temporaries`]).
//! - **Atomic files.** Every file is written under a temporary name (`NAME.PID.tmp`), made
//!   durable (fsync) and renamed into place: [`write_atomic`], or [`create_tmp`] then
//!   [`commit_tmp`] for a file written as a stream. A reader never sees half a file.
//! - **Completion markers.** A unit ends with `_done/<unit>.json` ([`Markers`]), written
//!   after every file of the unit: the hash of the inputs it was made from and what it
//!   reports (its funnel rows, the shards it wrote). A re-run skips the units whose marker
//!   names the same inputs and redoes the others from scratch, overwriting what they left.
//! - **Only what inputs and config decide.** No file holds a timing, a clock time, a process
//!   id or the number of threads or tasks, so a run split into tasks or threads, or killed and
//!   resumed, writes the same bytes as one uninterrupted run. Timings go to the caller (the
//!   CLI prints them; `falconry run` keeps them in `manifest.json`).
//!
//! Per-file stages (refine, tokenize: one unit per input file, named `part-KEY` after
//! [`InputId::key`]) plan their task with [`plan_files`].

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::inputs::{check_inputs, list_hash, InputId};
use crate::{Error, Result};

/// Which share of the units this process handles: unit `k` is task `k mod count`'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// This task's number, `0..count`.
    pub index: usize,
    /// How many tasks split the units.
    pub count: usize,
}

impl Default for Task {
    fn default() -> Self {
        Task { index: 0, count: 1 }
    }
}

impl Task {
    /// Task `index` of `count`; an error unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Task> {
        if index >= count {
            return Err(Error::Config {
                path: "<flags>".into(),
                message: format!("--task {index} must be below --tasks {count}"),
            });
        }
        Ok(Task { index, count })
    }

    /// Whether unit number `k` belongs to this task.
    pub fn owns(&self, k: usize) -> bool {
        k % self.count == self.index
    }

    /// This task's units among `0..n`.
    pub fn units(&self, n: usize) -> impl Iterator<Item = usize> {
        (self.index..n).step_by(self.count.max(1))
    }
}

// --- atomic files -----------------------------------------------------------------------

/// The temporary sibling a file is written under before its rename: `NAME.PID.tmp`, so that
/// two processes writing one file (tasks of a job array ending together) never share one.
/// Input listings skip it (its name does not end as an input's does).
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// The process id in a temporary file's name (`NAME.PID.tmp`, or `NAME.PID.tmp.EXT` for a
/// writer that needs the final extension); `None` for any other name.
pub fn tmp_pid(name: &str) -> Option<u32> {
    let at = name.rfind(".tmp")?;
    let rest = &name[at + 4..];
    if !(rest.is_empty() || rest.starts_with('.')) {
        return None;
    }
    let head = &name[..at];
    let dot = head.rfind('.')?;
    head[dot + 1..].parse().ok()
}

/// The temporary files this process is writing, for [`remove_temporaries`].
static TEMPORARIES: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn temporaries() -> MutexGuard<'static, BTreeSet<PathBuf>> {
    TEMPORARIES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates the temporary file of `path` ([`tmp_path`]) for writing, registered for removal
/// should the process be interrupted before [`commit_tmp`] renames it into place. Every file
/// falconry's stages write goes through this pair (or [`write_atomic`]).
pub fn create_tmp(path: &Path) -> Result<(PathBuf, File)> {
    let tmp = tmp_path(path);
    let file = create_tmp_at(&tmp)?;
    Ok((tmp, file))
}

/// [`create_tmp`] under a name of the caller's (a writer that needs the final extension:
/// `NAME.PID.tmp.png`).
pub fn create_tmp_at(tmp: &Path) -> Result<File> {
    let mut live = temporaries();
    let file = File::create(tmp).map_err(|e| Error::io(tmp, e))?;
    live.insert(tmp.to_path_buf());
    Ok(file)
}

/// Makes the finished temporary file `tmp` durable (fsync) and renames it to `path`.
pub fn commit_tmp(file: File, tmp: &Path, path: &Path) -> Result<()> {
    file.sync_all().map_err(|e| Error::io(tmp, e))?;
    drop(file);
    std::fs::rename(tmp, path).map_err(|e| Error::io(path, e))?;
    temporaries().remove(tmp);
    Ok(())
}

/// Writes `bytes` to `path` atomically: a temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (tmp, mut file) = create_tmp(path)?;
    file.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
    commit_tmp(file, &tmp, path)
}

/// Deletes every temporary file this process is writing and keeps any new one from being
/// created: for an interrupted process (`SIGINT`), which exits next. Returns how many it removed.
pub fn remove_temporaries() -> usize {
    let live = temporaries();
    let removed = live
        .iter()
        .filter(|p| std::fs::remove_file(p).is_ok())
        .count();
    // Held until the process exits: a thread that starts another file waits here.
    std::mem::forget(live);
    removed
}

/// Removes, under `dir` (recursively), the temporary files ([`tmp_pid`]) of the processes for
/// which `dead(pid)` holds: what a writer killed outright (`kill -9`, a node lost) left
/// behind. Returns how many it removed.
pub fn sweep_temporaries(dir: &Path, dead: &dyn Fn(u32) -> bool) -> Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        let is_dir = entry.file_type().map_err(|e| Error::io(&path, e))?.is_dir();
        if is_dir {
            removed += sweep_temporaries(&path, dead)?;
        } else if let Some(pid) = entry.file_name().to_str().and_then(tmp_pid) {
            if dead(pid) {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&path, e)),
                }
            }
        }
    }
    Ok(removed)
}

// --- completion markers ------------------------------------------------------------------

/// The folder of completion markers inside an output folder.
pub const DONE_DIR: &str = "_done";

/// A unit's completion marker, `_done/<unit>.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Marker<T> {
    /// What the unit was made from: [`list_hash`] of its inputs. A marker that names other
    /// inputs is stale: its unit is redone.
    pub inputs: String,
    /// What the unit reports (its funnel rows, the files it wrote).
    pub record: T,
}

/// The completion markers of an output folder.
#[derive(Clone, Debug)]
pub struct Markers {
    dir: PathBuf,
}

impl Markers {
    /// The markers of `output` (its `_done/` folder is created).
    pub fn open(output: &Path) -> Result<Markers> {
        let dir = output.join(DONE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Markers { dir })
    }

    /// The marker file of `unit`.
    pub fn path(&self, unit: &str) -> PathBuf {
        self.dir.join(format!("{unit}.json"))
    }

    /// The marker of `unit`, whatever inputs it names; `None` when there is none. A marker that
    /// does not read as one (an older format) counts as absent: its unit is redone.
    pub fn read<T: DeserializeOwned>(&self, unit: &str) -> Result<Option<Marker<T>>> {
        let path = self.path(unit);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&path, e)),
        };
        match serde_json::from_slice(&bytes) {
            Ok(marker) => Ok(Some(marker)),
            Err(e) => {
                tracing::warn!(
                    "{}: not a done-marker ({e}); its unit is redone",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// The record of `unit` when it is done from `inputs`.
    pub fn done<T: DeserializeOwned>(&self, unit: &str, inputs: &str) -> Result<Option<T>> {
        Ok(self
            .read::<T>(unit)?
            .filter(|m| m.inputs == inputs)
            .map(|m| m.record))
    }

    /// Whether `unit` is done from `inputs`.
    pub fn is_done(&self, unit: &str, inputs: &str) -> Result<bool> {
        Ok(self.done::<serde::de::IgnoredAny>(unit, inputs)?.is_some())
    }

    /// Marks `unit` done from `inputs`, with its record. Call it after every file of the unit
    /// is in place.
    pub fn write<T: Serialize>(&self, unit: &str, inputs: &str, record: &T) -> Result<()> {
        let marker = Marker {
            inputs: inputs.to_string(),
            record,
        };
        let mut json = serde_json::to_vec_pretty(&marker).expect("marker serializes");
        json.push(b'\n');
        write_atomic(&self.path(unit), &json)
    }

    /// Unmarks `unit` (nothing to do when it has no marker).
    pub fn remove(&self, unit: &str) -> Result<()> {
        let path = self.path(unit);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&path, e)),
            _ => Ok(()),
        }
    }
}

// --- per-file stages ---------------------------------------------------------------------

/// The unit (and output name stem) of an input file in a per-file stage: `part-KEY`.
pub fn file_unit(input: &InputId) -> String {
    format!("part-{}", input.key())
}

/// The record of a per-file stage's marker: the input file as it was, and the stage's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord<T> {
    /// The input file (path, size, head hash) the unit was made from.
    pub input: InputId,
    /// What the stage reports for it.
    pub report: T,
}

/// What a task of a per-file stage has to do.
#[derive(Debug)]
pub struct FilePlan {
    /// Every input of the run (path and size), in list order.
    pub listed: Vec<InputId>,
    /// This task's inputs (head hash included) that have no marker from their current version.
    pub todo: Vec<InputId>,
}

/// Plans task `task` of a per-file stage (one unit per input file, [`file_unit`]) over
/// `inputs` into `output`: checks the input list against the folder's record
/// ([`check_inputs`]); removes with `remove_outputs(unit)` the outputs of inputs no longer given
/// (their marker first, so no marker outlives its outputs); returns this task's inputs whose
/// marker is missing. A marker made from another version of its file (same path, other size
/// or head) is refused unless `allow_changed`, and removed when allowed: the file is redone.
pub fn plan_files(
    output: &Path,
    inputs: &[PathBuf],
    task: Task,
    allow_changed: bool,
    markers: &Markers,
    remove_outputs: &dyn Fn(&str) -> Result<()>,
) -> Result<FilePlan> {
    // Every task compares the whole list by path and size; each reads the heads of its own
    // files only (its markers check those).
    let listed: Vec<InputId> = inputs
        .iter()
        .map(|p| InputId::stat(p))
        .collect::<Result<_>>()?;
    let change = check_inputs(output, &listed, allow_changed)?;
    for path in &change.removed {
        let unit = file_unit(&InputId {
            path: path.clone(),
            size: 0,
            head_xxh3: None,
        });
        markers.remove(&unit)?;
        remove_outputs(&unit)?;
        tracing::info!(
            "removed the outputs of {} (no longer given)",
            path.display()
        );
    }
    let mut todo = Vec::new();
    for (_, path) in inputs.iter().enumerate().filter(|(k, _)| task.owns(*k)) {
        let id = InputId::read(path)?;
        let unit = file_unit(&id);
        let Some(marker) = markers.read::<FileRecord<serde::de::IgnoredAny>>(&unit)? else {
            todo.push(id);
            continue;
        };
        if marker.inputs == file_inputs(&id) {
            continue;
        }
        if !allow_changed {
            let was = &marker.record.input;
            return Err(Error::InputsChanged {
                path: output.into(),
                message: format!(
                    "input {} changed since its outputs were made here (size {} -> {}, head hash {} -> {}); \
                     pass --allow-changed-inputs to redo it, or choose another output folder",
                    path.display(),
                    was.size,
                    id.size,
                    was.head_xxh3.as_deref().unwrap_or("-"),
                    id.head_xxh3.as_deref().unwrap_or("-"),
                ),
            });
        }
        // Not done until its new marker is written.
        markers.remove(&unit)?;
        todo.push(id);
    }
    Ok(FilePlan { listed, todo })
}

/// The `inputs` a per-file unit's marker names: the hash of its one input file.
pub fn file_inputs(input: &InputId) -> String {
    list_hash(std::slice::from_ref(input))
}

/// The records of every listed input's marker, in list order, once all are present (a marker
/// counts when it names the listed file's path and size: its task checked the head); `None`
/// while any is missing. What a per-file stage sums into its folder's summary
/// (`stats.json`, `meta.json`), which is so written only once, from every unit.
pub fn all_file_records<T: DeserializeOwned>(
    markers: &Markers,
    listed: &[InputId],
) -> Result<Option<Vec<FileRecord<T>>>> {
    let mut records = Vec::with_capacity(listed.len());
    for id in listed {
        let Some(marker) = markers.read::<FileRecord<T>>(&file_unit(id))? else {
            return Ok(None);
        };
        let r = marker.record;
        if r.input.path != id.path || r.input.size != id.size {
            return Ok(None);
        }
        records.push(r);
    }
    Ok(Some(records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_split_units_disjointly() {
        let tasks: Vec<Task> = (0..3).map(|i| Task::new(i, 3).unwrap()).collect();
        for k in 0..20 {
            assert_eq!(tasks.iter().filter(|t| t.owns(k)).count(), 1);
        }
        assert_eq!(tasks[1].units(8).collect::<Vec<_>>(), [1, 4, 7]);
        assert!(Task::new(3, 3).is_err());
    }

    #[test]
    fn temporary_names_carry_the_pid() {
        let tmp = tmp_path(Path::new("/x/part-00.parquet"));
        let name = tmp.file_name().unwrap().to_str().unwrap();
        assert_eq!(tmp_pid(name), Some(std::process::id()));
        assert_eq!(tmp_pid("funnel.123.tmp.png"), Some(123));
        assert_eq!(tmp_pid("part-00.parquet"), None);
        assert_eq!(tmp_pid("notes.tmpl"), None);
        assert_eq!(tmp_pid("a.tmp"), None);
    }

    #[test]
    fn sweep_removes_the_temporaries_of_dead_writers_only() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("_done");
        std::fs::create_dir_all(&sub).unwrap();
        for name in ["a.bin.7.tmp", "_done/b.json.7.tmp", "c.bin.8.tmp", "d.bin"] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        let removed = sweep_temporaries(dir.path(), &|pid| pid == 7).unwrap();
        assert_eq!(removed, 2);
        assert!(dir.path().join("c.bin.8.tmp").exists() && dir.path().join("d.bin").exists());
        assert!(!sub.join("b.json.7.tmp").exists());
    }

    #[test]
    fn markers_count_only_for_their_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let markers = Markers::open(dir.path()).unwrap();
        assert!(!markers.is_done("filter-00000", "aa").unwrap());
        markers.write("filter-00000", "aa", &7u32).unwrap();
        assert!(markers.is_done("filter-00000", "aa").unwrap());
        assert!(!markers.is_done("filter-00000", "bb").unwrap());
        assert_eq!(markers.done::<u32>("filter-00000", "aa").unwrap(), Some(7));
        // A marker of another format is not done, and not an error.
        std::fs::write(markers.path("old"), "{\"seconds\": 1.0}").unwrap();
        assert!(!markers.is_done("old", "aa").unwrap());
        markers.remove("filter-00000").unwrap();
        markers.remove("filter-00000").unwrap();
        assert!(!markers.path("filter-00000").exists());
    }
}
