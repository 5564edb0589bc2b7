//! Which inputs an output folder was made from, so that a re-run resumes only on the same
//! inputs: a changed input set is noticed, never silently skipped or processed twice.
//!
//! An input's identity is an [`InputId`]: its absolute path, its size and, where the stage
//! can afford to read it, the xxh3 of its first 64 KiB. Every stage records the sorted list of
//! its inputs in `DIR/_inputs.json` on its first run and compares the list on every later run
//! ([`check_inputs`]): an added, removed or changed input is refused with an error that names
//! them, unless the run is told `allow_changed` (`--allow-changed-inputs`); then the list is
//! replaced and the stage redoes what the change touches (each stage says what). Each
//! done-marker ([`crate::folder::Markers`]) also records the [`list_hash`] of the inputs its
//! unit was made from: for refine and tokenize its one input file (head hash included), for
//! dedup the whole list, so a marker from other inputs never counts as done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::folder::write_atomic;
use crate::remote;
use crate::{Error, Result};

/// The record of an output folder's inputs.
pub const INPUTS_FILE: &str = "_inputs.json";

/// Bytes of an input's head that its identity hashes.
pub const HEAD_BYTES: usize = 64 << 10;

/// An input file's identity.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputId {
    /// The absolute path (symbolic links resolved).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// xxh3-64 of its first [`HEAD_BYTES`] bytes, 16 hex digits; `None` where only the path
    /// and size are compared (refine's list of every task's inputs: reading the head of every
    /// file of a large crawl in every task would cost more than the task's own work).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_xxh3: Option<String>,
}

impl InputId {
    /// Path and size of `path`.
    pub fn stat(path: &Path) -> Result<InputId> {
        if remote::is_url(path) {
            return Ok(InputId {
                path: path.into(),
                size: remote::size(path)?,
                head_xxh3: None,
            });
        }
        let abs = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let size = std::fs::metadata(&abs)
            .map_err(|e| Error::io(path, e))?
            .len();
        Ok(InputId {
            path: abs,
            size,
            head_xxh3: None,
        })
    }

    /// Path, size and the hash of the head of `path`.
    pub fn read(path: &Path) -> Result<InputId> {
        let mut id = InputId::stat(path)?;
        let head = remote::head(&id.path, HEAD_BYTES as u64)?;
        id.head_xxh3 = Some(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&head)));
        Ok(id)
    }

    /// A name for what is made from this input that stays the same while the input stays
    /// where it is, whatever other inputs come and go: 16 hex digits of its path's xxh3.
    pub fn key(&self) -> String {
        format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(self.path.to_string_lossy().as_bytes())
        )
    }
}

/// How an input list differs from the one an output folder recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputChange {
    /// Inputs not in the recorded list.
    pub added: Vec<PathBuf>,
    /// Recorded inputs no longer given.
    pub removed: Vec<PathBuf>,
    /// Inputs whose size or head differs from the record.
    pub changed: Vec<PathBuf>,
}

impl InputChange {
    /// Whether the lists are the same.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (what, paths) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if paths.is_empty() {
                continue;
            }
            let mut names: Vec<String> = paths
                .iter()
                .take(3)
                .map(|p| p.display().to_string())
                .collect();
            if paths.len() > 3 {
                names.push(format!("and {} more", paths.len() - 3));
            }
            parts.push(format!("{} {what} ({})", paths.len(), names.join(", ")));
        }
        parts.join("; ")
    }
}

/// Compares `inputs` with the list `output` recorded (`_inputs.json`), writing it on a first
/// run. A different list is an [`Error::InputsChanged`] unless `allow_changed`, in which case
/// the record is replaced and the difference returned for the stage to act on.
pub fn check_inputs(output: &Path, inputs: &[InputId], allow_changed: bool) -> Result<InputChange> {
    std::fs::create_dir_all(output).map_err(|e| Error::io(output, e))?;
    let path = output.join(INPUTS_FILE);
    let recorded: Option<Vec<InputId>> = match std::fs::read(&path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| Error::Input {
            path: path.clone(),
            message: format!("not a list of inputs ({e}); remove it to start the folder afresh"),
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(&path, e)),
    };
    let change = match &recorded {
        Some(old) => diff(old, inputs),
        None => InputChange::default(),
    };
    if !change.is_empty() && !allow_changed {
        return Err(Error::InputsChanged {
            path: output.into(),
            message: format!(
                "the inputs differ from those this folder was made from: {}. Rerun with the same inputs to resume, \
                 pass --allow-changed-inputs to bring the folder up to date with these inputs, or choose another output folder",
                change.describe()
            ),
        });
    }
    if recorded.is_none() || !change.is_empty() {
        let json = serde_json::to_vec_pretty(inputs).expect("inputs serialize");
        write_atomic(&path, &json)?;
    }
    Ok(change)
}

fn diff(old: &[InputId], new: &[InputId]) -> InputChange {
    let old: BTreeMap<&Path, &InputId> = old.iter().map(|i| (i.path.as_path(), i)).collect();
    let new: BTreeMap<&Path, &InputId> = new.iter().map(|i| (i.path.as_path(), i)).collect();
    let mut change = InputChange::default();
    for (path, id) in &new {
        match old.get(path) {
            None => change.added.push(path.to_path_buf()),
            Some(o) if o != id => change.changed.push(path.to_path_buf()),
            Some(_) => {}
        }
    }
    change.removed = old
        .keys()
        .filter(|p| !new.contains_key(*p))
        .map(|p| p.to_path_buf())
        .collect();
    change
}

/// xxh3 of an input list (16 hex digits): what done-markers record of their inputs.
pub fn list_hash(inputs: &[InputId]) -> String {
    let json = serde_json::to_vec(inputs).expect("inputs serialize");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_records_then_changes_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
        std::fs::write(&a, "one").unwrap();
        std::fs::write(&b, "two").unwrap();
        let out = dir.path().join("out");
        let ids = |paths: &[&PathBuf]| -> Vec<InputId> {
            paths.iter().map(|p| InputId::read(p).unwrap()).collect()
        };
        assert!(check_inputs(&out, &ids(&[&a]), false).unwrap().is_empty());
        assert!(check_inputs(&out, &ids(&[&a]), false).unwrap().is_empty());
        let err = check_inputs(&out, &ids(&[&a, &b]), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("1 added")
                && err.contains("b.jsonl")
                && err.contains("--allow-changed-inputs"),
            "{err}"
        );
        // Same size, other bytes: the head hash tells.
        std::fs::write(&a, "uno").unwrap();
        let err = check_inputs(&out, &ids(&[&a]), false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 changed"), "{err}");
        let change = check_inputs(&out, &ids(&[&b]), true).unwrap();
        assert_eq!(change.added, [std::fs::canonicalize(&b).unwrap()]);
        assert_eq!(change.removed, [std::fs::canonicalize(&a).unwrap()]);
        assert!(check_inputs(&out, &ids(&[&b]), false).unwrap().is_empty());
    }

    #[test]
    fn key_depends_on_the_path_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "x").unwrap();
        let k = InputId::read(&a).unwrap().key();
        std::fs::write(&a, "longer").unwrap();
        assert_eq!(InputId::stat(&a).unwrap().key(), k);
        assert_eq!(k.len(), 16);
    }
}
