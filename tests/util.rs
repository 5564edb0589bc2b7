//! Helpers for the end-to-end tests: a temp run folder, the built binary, shared data.

pub use falconry_refine::test_data_dir as data_dir;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `falconry` invocation in a fresh temporary folder.
pub struct TestCommand {
    pub dir: tempfile::TempDir,
}

impl TestCommand {
    pub fn new() -> Self {
        TestCommand {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `falconry ARGS` from the repository root.
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_falconry"))
            .args(args)
            .current_dir(repo())
            .env_remove("SLURM_ARRAY_TASK_ID")
            .env_remove("SLURM_ARRAY_TASK_COUNT")
            .output()
            .expect("run falconry")
    }

    /// Runs and asserts the exit code, printing stderr on mismatch.
    pub fn assert_exit_code(&self, args: &[&str], code: i32) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "falconry {args:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Reads `stats.json` of an output folder.
    pub fn stats(&self, out: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path(out).join("stats.json")).expect("stats.json");
        serde_json::from_str(&text).expect("stats.json is JSON")
    }
}

/// The row of stage `name` in a stats.json value.
pub fn stage<'a>(stats: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    stats["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {stats}"))
}
