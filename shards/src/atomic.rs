//! Atomic files, the one way every falconry output is written: under a temporary name
//! (`NAME.PID.tmp`), made durable (fsync), renamed into place, so a reader (or a re-run after
//! `kill -9`) never sees half a file. [`write_atomic`] for bytes in hand; [`create_tmp`] then
//! [`commit_tmp`] for a file written as a stream. Temporaries are registered so an interrupted
//! process removes its own ([`remove_temporaries`]); a run taking over a dead writer's folder
//! removes what it left ([`sweep_temporaries`]). Here, beside the shard format, so that the
//! trainer writes its files the same way without pulling in the data stages.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::{Error, Result};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
