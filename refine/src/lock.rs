//! One writer per output folder and task: every stage takes an [`OutputLock`] before it writes.
//!
//! Two runs writing one folder would share temporary names and done-markers and corrupt it
//! silently, so a run holds `DIR/_lock/task-NNNNN.json` (its task's number) while it writes:
//! an exclusive `flock` on that file, which the operating system drops when the holder exits
//! or dies, and inside it the holder's pid, host, task split and start time, for the error a
//! second writer gets. A lock file left by a dead process (pid gone, no `flock`) is stale: the
//! next run takes it over, and removes the temporary files that dead writers left in the
//! folder ([`sweep_temporaries`]: a process killed outright cleans nothing up). Tasks of one job array (`--task I --tasks N`) hold different files
//! and write side by side; a run whose task split differs from a live run's on the same host
//! is refused too, since the two would read the same inputs into the same folder.
//!
//! Where the file system does not support `flock` (some network mounts), the pid alone
//! decides: a lock whose pid is alive on this host, or that names another host, is held.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::folder::{sweep_temporaries, Task};
use crate::{Error, Result};

/// The folder of lock files inside an output folder.
const LOCK_DIR: &str = "_lock";

/// Who holds a lock: the content of a lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The writer's process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// Its task number.
    pub task: usize,
    /// The number of tasks its run is split into.
    pub tasks: usize,
    /// When it took the lock (RFC 3339, UTC).
    pub started: String,
}

impl Holder {
    fn me(task: Task) -> Holder {
        Holder {
            pid: std::process::id(),
            host: hostname(),
            task: task.index,
            tasks: task.count,
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// Whether the holder may still be running: alive on this host, or on another host (which
    /// this one cannot tell).
    fn may_be_alive(&self) -> bool {
        self.host != hostname() || pid_alive(self.pid)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} on host {} (task {} of {}, since {})",
            self.pid, self.host, self.task, self.tasks, self.started
        )
    }
}

/// The exclusive right of this process to write task `task`'s share of a folder; released
/// (and its file removed) when dropped.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    /// Holds the `flock` while open.
    _file: File,
}

impl OutputLock {
    /// Takes the lock of `task` on the folder `dir` (created if missing). Fails with
    /// [`Error::Busy`], naming the holder, while another live process holds it or writes the
    /// folder with another task split.
    pub fn acquire(dir: &Path, task: Task) -> Result<OutputLock> {
        let locks = dir.join(LOCK_DIR);
        std::fs::create_dir_all(&locks).map_err(|e| Error::io(&locks, e))?;
        let path = locks.join(format!("task-{:05}.json", task.index));
        let me = Holder::me(task);
        // A holder that releases the lock removes its file: retry on the new file then.
        for _ in 0..100 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io(&path, e))?;
            let previous = read_holder(&mut file);
            match file.try_lock() {
                Ok(()) => {
                    if !same_file(&file, &path) {
                        continue;
                    }
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(busy(dir, &path, previous.as_ref()));
                }
                // No `flock` here: the pid decides.
                Err(std::fs::TryLockError::Error(e)) => {
                    tracing::debug!("no flock on {}: {e}; checking the pid only", path.display());
                    if let Some(h) = previous
                        .as_ref()
                        .filter(|h| h.may_be_alive() && h.pid != me.pid)
                    {
                        return Err(busy(dir, &path, Some(h)));
                    }
                }
            }
            check_other_tasks(dir, &locks, &path, &me)?;
            if let Some(old) = &previous {
                tracing::warn!("taking over the stale lock {} of {old}", path.display());
                sweep_dead_writers(dir, &locks, &path)?;
            }
            let json = serde_json::to_vec_pretty(&me).expect("holder serializes");
            file.set_len(0).map_err(|e| Error::io(&path, e))?;
            file.rewind().map_err(|e| Error::io(&path, e))?;
            file.write_all(&json)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(&path, e))?;
            return Ok(OutputLock { path, _file: file });
        }
        Err(Error::Busy {
            path: dir.into(),
            message: format!("could not take {} (it keeps changing)", path.display()),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still locked; a process waiting on the old file sees it is gone.
        let _ = std::fs::remove_file(&self.path);
    }
}

fn busy(dir: &Path, path: &Path, holder: Option<&Holder>) -> Error {
    let who = holder.map_or_else(|| "another process".to_string(), |h| h.to_string());
    Error::Busy {
        path: dir.into(),
        message: format!(
            "another falconry run is writing this folder: {who} holds {}; wait for it to finish or choose another output folder",
            path.display()
        ),
    }
}

/// Refuses to write beside a live run of this host that splits the inputs differently.
fn check_other_tasks(dir: &Path, locks: &Path, mine: &Path, me: &Holder) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(locks) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path == mine {
            continue;
        }
        let Ok(mut file) = File::open(&path) else {
            continue;
        };
        if let Some(h) = read_holder(&mut file) {
            if h.tasks != me.tasks && h.host == me.host && pid_alive(h.pid) && h.pid != me.pid {
                return Err(Error::Busy {
                    path: dir.into(),
                    message: format!(
                        "{h} is writing this folder with --tasks {}, this run has --tasks {}; one task split per folder",
                        h.tasks, me.tasks
                    ),
                });
            }
        }
    }
    Ok(())
}

/// Removes the temporary files of writers that no longer run on this host, unless a writer of
/// another host holds a lock on the folder too (its pids mean nothing here).
fn sweep_dead_writers(dir: &Path, locks: &Path, mine: &Path) -> Result<()> {
    let host = hostname();
    let remote = std::fs::read_dir(locks)
        .map_err(|e| Error::io(locks, e))?
        .flatten()
        .filter(|e| e.path() != mine)
        .filter_map(|e| read_holder(&mut File::open(e.path()).ok()?))
        .any(|h| h.host != host);
    if remote {
        tracing::debug!(
            "a writer of another host shares {}: no sweep",
            dir.display()
        );
        return Ok(());
    }
    let removed = sweep_temporaries(dir, &|pid| !pid_alive(pid))?;
    if removed > 0 {
        tracing::info!(
            "removed {removed} temporary file(s) left in {} by writers that died",
            dir.display()
        );
    }
    Ok(())
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether `file` is still the file at `path` (not removed or replaced since it was opened).
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

/// This host's name, as the lock file records it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Whether process `pid` exists on this host (Linux: `/proc/PID`; elsewhere assumed alive).
pub fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_writer_is_refused_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let first = OutputLock::acquire(dir.path(), Task::default()).unwrap();
        let err = OutputLock::acquire(dir.path(), Task::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id()))
                && err.contains("another falconry run"),
            "{err}"
        );
        // Another task of a job array writes beside it.
        let other = OutputLock::acquire(dir.path(), Task { index: 1, count: 2 }).unwrap();
        drop(other);
        drop(first);
        assert!(!dir.path().join("_lock/task-00000.json").exists());
        OutputLock::acquire(dir.path(), Task::default()).unwrap();
    }

    #[test]
    fn stale_lock_of_a_dead_pid_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("_lock/task-00000.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // Pids stay below 2^22 on Linux: this one cannot be alive.
        let dead = Holder {
            pid: 4_000_000_000,
            host: hostname(),
            task: 0,
            tasks: 1,
            started: "2020-01-01T00:00:00Z".into(),
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        // What the dead writer left half written, and what a live one (this process) writes.
        let left = dir.path().join("part-0.parquet.4000000000.tmp");
        let live = crate::folder::tmp_path(&dir.path().join("part-1.parquet"));
        std::fs::write(&left, "half").unwrap();
        std::fs::write(&live, "writing").unwrap();
        let lock = OutputLock::acquire(dir.path(), Task::default()).unwrap();
        let now: Holder = serde_json::from_slice(&std::fs::read(lock.path()).unwrap()).unwrap();
        assert_eq!((now.pid, now.host), (std::process::id(), hostname()));
        assert!(!left.exists() && live.exists());
    }
}
