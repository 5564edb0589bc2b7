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

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use falconry_shards::atomic::{
    commit_tmp, create_tmp, create_tmp_at, remove_temporaries, sweep_temporaries, tmp_path,
    write_atomic,
};

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
        Ok(write_atomic(&self.path(unit), &json)?)
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
