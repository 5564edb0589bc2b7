//! Claims: which running task is doing a unit right now, so that tasks that share the units of
//! a phase (dedup's `components` and `exact_substring`, whose phases every task of the array
//! runs in turn) never do the same unit at once.
//!
//! A unit is done only by the task that holds its claim, `_claims/<unit>.G.json`: created
//! whole and at once (written under a temporary name and hard-linked into place, which fails
//! when the name exists, so exactly one creator wins), holding the claimant's host, pid, task
//! and Slurm job. The claimant does the unit, writes its completion marker, then removes the
//! claim. Every other task skips a claimed unit and waits for its marker; it only reads a unit
//! once the marker is there.
//!
//! A claim whose claimant is gone is taken over by creating the next generation `G+1` (again
//! one creator wins). Gone means: a process of this host that no longer runs; a claimant of
//! another Slurm job (a resubmission: `falconry slurm --resume` refuses while a job of the run
//! is queued, so the old one has ended) or of another restart of it; a claimant of the same
//! task number in another process (one process per task holds the folder's lock,
//! [`crate::lock::OutputLock`]); or a claim whose heartbeat stopped: the claimant touches its
//! claim every [`HEARTBEAT`], and a claim this process sees unchanged for [`Claims::stale_after`]
//! (measured on this process's clock, so clocks of other hosts do not matter) belongs to a
//! task that died on another host.
//!
//! A task that takes a claim checks the marker again before working: the claimant before it may
//! have finished between the check and the claim.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::folder::Task;
use crate::lock::{hostname, pid_alive};
use crate::{Error, Result};

/// The folder of claims inside an output folder.
pub const CLAIMS_DIR: &str = "_claims";

/// How often a claimant touches its claim.
pub const HEARTBEAT: Duration = Duration::from_secs(20);

/// A claim's content: who does the unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claimant {
    /// The claimant's process id.
    pub pid: u32,
    /// The host it runs on.
    pub host: String,
    /// Its task number.
    pub task: usize,
    /// The number of tasks its run is split into.
    pub tasks: usize,
    /// `SLURM_ARRAY_JOB_ID` (else `SLURM_JOB_ID`), with `.RESTART` after a requeue; `None`
    /// outside Slurm.
    pub job: Option<String>,
}

impl Claimant {
    fn me(task: Task) -> Claimant {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let job = var("SLURM_ARRAY_JOB_ID")
            .or_else(|| var("SLURM_JOB_ID"))
            .map(|j| match var("SLURM_RESTART_COUNT") {
                Some(r) if r != "0" => format!("{j}.{r}"),
                _ => j,
            });
        Claimant {
            pid: std::process::id(),
            host: hostname(),
            task: task.index,
            tasks: task.count,
            job,
        }
    }

    /// Whether `self`, looking at another claimant's claim, knows that claimant has ended.
    fn sees_gone(&self, other: &Claimant) -> bool {
        let same_process = other.host == self.host && other.pid == self.pid;
        if same_process {
            return false;
        }
        (other.host == self.host && !pid_alive(other.pid))
            || matches!((&self.job, &other.job), (Some(a), Some(b)) if a != b)
            || (other.task == self.task && other.tasks == self.tasks)
    }
}

/// The claims of an output folder, as one task sees them.
#[derive(Debug)]
pub struct Claims {
    dir: PathBuf,
    me: Claimant,
    /// A claim unchanged this long (on this process's clock) is a dead claimant's.
    pub stale_after: Duration,
    /// Per claim file: its last modification time and when this process first saw that time.
    seen: Mutex<HashMap<PathBuf, (SystemTime, Instant)>>,
}

/// Distinguishes the temporary files of threads of one process.
static NEXT_TMP: AtomicU64 = AtomicU64::new(0);

impl Claims {
    /// The claims of `output` (its `_claims/` folder is created), for task `task`.
    pub fn open(output: &Path, task: Task) -> Result<Claims> {
        let dir = output.join(CLAIMS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Claims {
            dir,
            me: Claimant::me(task),
            stale_after: HEARTBEAT * 15,
            seen: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, unit: &str, generation: u64) -> PathBuf {
        self.dir.join(format!("{unit}.{generation}.json"))
    }

    /// The newest generation of `unit`'s claim present, if any.
    fn newest(&self, unit: &str) -> Option<u64> {
        let mut newest = None;
        let mut g = 0;
        while self.path(unit, g).exists() {
            newest = Some(g);
            g += 1;
        }
        newest
    }

    /// Claims `unit` for this task: `None` while a running task holds it. The caller checks
    /// the unit's marker again after claiming, then works, marks, and drops the claim.
    pub fn try_claim(&self, unit: &str) -> Result<Option<Claim>> {
        let generation = match self.newest(unit) {
            None => 0,
            Some(g) => {
                let path = self.path(unit, g);
                if !self.gone(&path)? {
                    return Ok(None);
                }
                tracing::warn!("taking over {}: its claimant has ended", path.display());
                g + 1
            }
        };
        let path = self.path(unit, generation);
        if !self.create(&path)? {
            return Ok(None);
        }
        Ok(Some(Claim::hold(path, unit, generation, self.dir.clone())))
    }

    /// Whether the claimant of the claim at `path` has ended (a claim that vanished meanwhile
    /// has: its claimant finished).
    fn gone(&self, path: &Path) -> Result<bool> {
        let (bytes, modified) =
            match std::fs::read(path).and_then(|b| Ok((b, std::fs::metadata(path)?.modified()?))) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
                Err(e) => return Err(Error::io(path, e)),
            };
        // Claims are created whole; one that does not parse is another version's: ended.
        let Ok(other) = serde_json::from_slice::<Claimant>(&bytes) else {
            return Ok(true);
        };
        if self.me.sees_gone(&other) {
            return Ok(true);
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (at, since) = seen.entry(path.to_path_buf()).or_insert((modified, now));
        if *at != modified {
            (*at, *since) = (modified, now);
        }
        Ok(now.duration_since(*since) >= self.stale_after)
    }

    /// Creates `path` holding this claimant, whole, unless it exists; whether it did.
    fn create(&self, path: &Path) -> Result<bool> {
        let n = NEXT_TMP.fetch_add(1, Ordering::Relaxed);
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".{n}.{}.tmp", self.me.pid));
        let tmp = path.with_file_name(name);
        let json = serde_json::to_vec(&self.me).expect("claimant serializes");
        std::fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&json).and_then(|_| f.sync_all()))
            .map_err(|e| Error::io(&tmp, e))?;
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Removes what is left of `unit`'s claims (a claimant that ended after marking it); call
    /// only once the unit is marked done.
    pub fn clear(&self, unit: &str) -> Result<()> {
        if let Some(g) = self.newest(unit) {
            remove_generations(&self.dir, unit, g)?;
        }
        Ok(())
    }
}

/// Removes generations `newest..=0` of `unit`'s claim, newest first (so that the newest left
/// is always an ended claimant's, which the next claimant takes over).
fn remove_generations(dir: &Path, unit: &str, newest: u64) -> Result<()> {
    for g in (0..=newest).rev() {
        let path = dir.join(format!("{unit}.{g}.json"));
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&path, e)),
            _ => {}
        }
    }
    Ok(())
}

/// A held claim: its heartbeat runs until it is dropped, which removes it.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    dir: PathBuf,
    unit: String,
    generation: u64,
    stop: Option<Sender<()>>,
    beat: Option<JoinHandle<()>>,
}

impl Claim {
    fn hold(path: PathBuf, unit: &str, generation: u64, dir: PathBuf) -> Claim {
        let (stop, rx) = channel::<()>();
        let p = path.clone();
        let beat = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(HEARTBEAT) {
                let touched = std::fs::File::options()
                    .write(true)
                    .open(&p)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                if let Err(e) = touched {
                    tracing::debug!("heartbeat of {}: {e}", p.display());
                }
            }
        });
        Claim {
            path,
            dir,
            unit: unit.into(),
            generation,
            stop: Some(stop),
            beat: Some(beat),
        }
    }

    /// The claim file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(beat) = self.beat.take() {
            let _ = beat.join();
        }
        if let Err(e) = remove_generations(&self.dir, &self.unit, self.generation) {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_claim(claims: &Claims, unit: &str, g: u64, who: &Claimant) {
        std::fs::write(claims.path(unit, g), serde_json::to_vec(who).unwrap()).unwrap();
    }

    #[test]
    fn one_claimant_at_a_time_and_ended_ones_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let a = Claims::open(dir.path(), Task { index: 0, count: 3 }).unwrap();
        let b = Claims::open(dir.path(), Task { index: 1, count: 3 }).unwrap();
        let held = a.try_claim("u").unwrap().expect("free");
        // The same process, another task: the claimant runs.
        assert!(b.try_claim("u").unwrap().is_none());
        assert!(a.try_claim("u").unwrap().is_none());
        drop(held);
        assert!(!a.path("u", 0).exists());
        let again = b.try_claim("u").unwrap().expect("released");
        drop(again);

        // A process of this host that has ended.
        let mut dead = b.me.clone();
        dead.pid = u32::MAX - 1;
        write_claim(&a, "v", 0, &dead);
        let took = a.try_claim("v").unwrap().expect("dead pid");
        assert_eq!(took.path(), a.path("v", 1));
        drop(took);
        assert!(!a.path("v", 0).exists() && !a.path("v", 1).exists());

        // Another host: alive until its heartbeat stops, or another Slurm job's.
        let mut far = b.me.clone();
        far.host = "elsewhere".into();
        far.task = 2;
        write_claim(&a, "w", 0, &far);
        assert!(a.try_claim("w").unwrap().is_none());
        let mut quick = Claims::open(dir.path(), Task { index: 0, count: 3 }).unwrap();
        quick.stale_after = Duration::ZERO;
        assert!(quick.try_claim("w").unwrap().is_some());
        far.job = Some("41".into());
        write_claim(&a, "x", 0, &far);
        let mut next = a.me.clone();
        next.job = Some("42".into());
        assert!(next.sees_gone(&far) && !a.me.sees_gone(&far));
    }
}
