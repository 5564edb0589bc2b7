//! The command line contract: subcommands, exit codes, outputs.

use crate::util::{stage, TestCommand};

#[test]
fn usage_errors_exit_2() {
    let t = TestCommand::new();
    t.assert_exit_code(&["refine"], 2);
    t.assert_exit_code(&["no-such-command"], 2);
}

/// Issue 11: bad flag values exited 1 (failure) instead of the README's 2 (usage error).
#[test]
fn bad_flag_values_exit_2() {
    let t = TestCommand::new();
    let out = t.path("out");
    let out = out.to_str().unwrap();
    fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [base, extra].concat()
    }
    let refine = [
        "refine",
        "--input",
        "examples/sample.warc.gz",
        "--output",
        out,
    ];
    let tokenize = [
        "tokenize",
        "--input",
        "examples/sample.warc.gz",
        "--output",
        out,
        "--tokenizer",
        "none.json",
    ];
    let refine = |extra: &[&'static str]| with(&refine, extra);
    let tokenize = |extra: &[&'static str]| with(&tokenize, extra);
    for args in [
        refine(&["--task", "3", "--tasks", "2"]),
        refine(&["--tasks", "0"]),
        refine(&["--task", "-1"]),
        tokenize(&["--dtype", "uint8"]),
        tokenize(&["--validation-fraction", "1.5"]),
        tokenize(&["--shard-tokens", "0"]),
        vec![
            "dedup", "--input", "examples", "--output", out, "--stage", "nope",
        ],
        vec![
            "dedup", "--input", "examples", "--output", out, "--task", "1", "--tasks", "2",
        ],
        vec![
            "generate",
            "--checkpoint",
            "none",
            "--tokenizer",
            "none",
            "--prompt",
            "x",
            "--temperature",
            "-1",
        ],
        vec![
            "finetune",
            "--checkpoint",
            "none",
            "--data",
            "none",
            "--output",
            out,
            "--quantize",
            "nf8",
        ],
        vec!["merge", "--checkpoint", "none", "--output", out],
    ] {
        let o = t.assert_exit_code(&args, 2);
        assert!(
            !String::from_utf8_lossy(&o.stderr).is_empty(),
            "{args:?}: no message"
        );
    }
    assert!(!t.path("out").exists(), "a usage error writes nothing");
}

/// Issue 11: a folder with no input file ran over nothing and exited 0.
#[test]
fn folder_without_inputs_is_an_error() {
    let t = TestCommand::new();
    let empty = t.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("README.txt"), "no crawl here").unwrap();
    let out = t.path("out");
    for stage in ["refine", "dedup"] {
        let o = t.assert_exit_code(
            &[
                stage,
                "--input",
                empty.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
            ],
            1,
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("no input file in this folder") && err.contains("empty"),
            "{stage}: {err}"
        );
    }
}

#[test]
fn missing_input_names_the_path() {
    let t = TestCommand::new();
    let out = t.path("out");
    let o = t.assert_exit_code(
        &[
            "refine",
            "--input",
            "nope/*.warc.gz",
            "--output",
            out.to_str().unwrap(),
        ],
        1,
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope/*.warc.gz"));
}

#[test]
fn train_devices_zero_is_a_usage_error_and_two_need_cuda() {
    let t = TestCommand::new();
    let out = t.path("run");
    let args = |n: &'static str| {
        [
            "train",
            "--config",
            "configs/train/falcon-tiny-cpu.toml",
            "--data",
            "none",
            "--output",
            out.to_str().unwrap(),
            "--devices",
            n,
        ]
    };
    t.assert_exit_code(&args("0"), 2);
    if cfg!(not(feature = "cuda")) {
        let o = t.assert_exit_code(&args("2"), 1);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("needs the cuda build"), "{err}");
    }
}

#[test]
fn bad_config_names_file_and_key() {
    let t = TestCommand::new();
    std::fs::write(t.path("bad.toml"), "[output]\nzstd_level = 99\n").unwrap();
    let out = t.path("out");
    let o = t.assert_exit_code(
        &[
            "refine",
            "--input",
            "examples/sample.warc.gz",
            "--output",
            out.to_str().unwrap(),
            "--config",
            t.path("bad.toml").to_str().unwrap(),
        ],
        1,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("zstd_level"),
        "{err}"
    );
}

#[test]
fn jsonl_input_runs_and_writes_stats() {
    let t = TestCommand::new();
    let input = t.path("in.jsonl");
    std::fs::write(
        &input,
        "{\"text\":\"one\",\"url\":\"https://a.example/1\"}\n{broken\n",
    )
    .unwrap();
    let out = t.path("out");
    t.assert_exit_code(
        &[
            "refine",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ],
        0,
    );
    let stats = t.stats("out");
    let read = stage(&stats, "read");
    assert_eq!(read["in"], 2);
    assert_eq!(read["out"], 1);
    assert_eq!(read["dropped"]["bad_json"], 1);
    let parts = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".parquet")
        })
        .count();
    assert_eq!(parts, 1, "one part per input file");
}

/// Issue 11: the binary linked fontconfig, freetype, libpng, expat and brotli only to draw
/// PNGs, and did not start where they were missing. The plots' font is embedded now.
#[test]
fn binary_links_no_font_or_image_library() {
    let Ok(out) = std::process::Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_falconry"))
        .output()
    else {
        eprintln!("no ldd on this machine: skipped");
        return;
    };
    let libs = String::from_utf8_lossy(&out.stdout);
    for lib in ["fontconfig", "freetype", "png", "expat", "brotli"] {
        assert!(!libs.contains(lib), "falconry links {lib}:\n{libs}");
    }
}

/// Issue 11: the language-ID model's default path was compiled in from the source tree; a
/// copied binary finds the model beside it, and draws its funnel with its own font.
#[test]
fn a_copied_binary_finds_its_model_beside_it() {
    let t = TestCommand::new();
    let bin = t.path("opt/falconry/bin");
    std::fs::create_dir_all(bin.join("models")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_falconry"), bin.join("falconry")).unwrap();
    let model = bin.join("models/lid.176.ftz");
    std::fs::copy(crate::util::repo().join("models/lid.176.ftz"), &model).unwrap();
    let sample = crate::util::repo().join("examples/sample.warc.gz");
    let out = std::process::Command::new(bin.join("falconry"))
        .args([
            "refine",
            "--input",
            sample.to_str().unwrap(),
            "--output",
            "out",
        ])
        .current_dir(t.dir.path())
        .env_remove("FALCONRY_LID_MODEL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(model.to_str().unwrap()),
        "the model beside the binary is used:\n{err}"
    );
    assert!(t.path("out/funnel.png").exists());
}
