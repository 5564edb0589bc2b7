//! SIGINT (Ctrl-C) and SIGTERM (`scancel`, a job's time limit): remove the temporary files of
//! this process, then exit 130 (143 for SIGTERM) as the README's exit codes say.
//!
//! The signals are blocked in every thread (the mask is set before any other thread starts,
//! and threads inherit it) and taken by one thread of its own with `sigwait`, so the clean-up
//! runs as ordinary code, not in a signal handler. It deletes every temporary file the
//! stages have open ([`falconry_refine::folder::remove_temporaries`], which also keeps new
//! ones from being started) and the temporary names (`*.tmp*`) in the folders registered with
//! [`clean_on_interrupt`] (the trainer's checkpoints). Finished outputs and their done-markers
//! stay: the same command again resumes. The output lock needs no clean-up: its `flock`
//! goes with the process, and the next run takes the file over.

use std::path::PathBuf;
use std::sync::Mutex;

/// Folders whose `*.tmp*` entries an interruption removes.
static FOLDERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Registers `dir`: an interruption removes its entries whose name contains `.tmp`. Only for
/// a folder this process holds the lock of.
pub fn clean_on_interrupt(dir: PathBuf) {
    FOLDERS.lock().unwrap_or_else(|e| e.into_inner()).push(dir);
}

fn clean_up() -> usize {
    let mut removed = falconry_refine::folder::remove_temporaries();
    for dir in FOLDERS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_name().to_string_lossy().contains(".tmp") {
                continue;
            }
            let gone = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed += usize::from(gone.is_ok());
        }
    }
    removed
}

/// Blocks SIGINT and SIGTERM in this thread (and so in every thread started after) and starts
/// the thread that takes them.
#[cfg(unix)]
pub fn install() {
    // SAFETY: plain libc calls on a sigset_t this function owns; the set is moved into the
    // waiting thread, which only reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return; // signals keep their default action
        }
        std::thread::spawn(move || {
            let mut signal: libc::c_int = 0;
            if libc::sigwait(&set, &mut signal) != 0 {
                return;
            }
            let removed = clean_up();
            let name = if signal == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            eprintln!(
                "falconry: interrupted ({name}): removed {removed} temporary file(s); finished work is kept, the same command resumes"
            );
            std::process::exit(128 + signal);
        });
    }
}

#[cfg(not(unix))]
pub fn install() {}

/// A failed CUDA allocation panics inside CubeCL's device thread, and the run then ends in a
/// cascade of panics from every task that waited on it. This ends it at the first, in one line
/// that says what to change, with the temporary files removed (exit 1, a failure).
pub fn exit_on_gpu_out_of_memory() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Some(bytes) = info.payload_as_str().and_then(gpu_allocation_failed) {
            let removed = clean_up();
            eprintln!(
                "falconry: out of GPU memory (an allocation of {bytes} bytes failed); a smaller batch_size or seq_len, or --quantize nf4 for fine-tuning, needs less; removed {removed} temporary file(s)"
            );
            std::process::exit(1);
        }
        default(info);
    }));
}

/// The size in CubeCL's allocation failure (`can't allocate buffer of size: N`), if `message`
/// is one.
fn gpu_allocation_failed(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("can't allocate buffer of size: ")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubecl_allocation_failures_are_recognised() {
        // As CubeCL 0.10's CUDA server panics (seen on an H100 under a 24 GB MPS limit).
        let seen =
            "called `Result::unwrap()` on an `Err` value: can't allocate buffer of size: 335020032";
        assert_eq!(gpu_allocation_failed(seen), Some("335020032"));
        assert_eq!(gpu_allocation_failed("index out of bounds"), None);
    }
}
