//! `s3://` inputs (issue 12) against moto's S3 server (`moto_server`, from PyPI, pinned;
//! `tests/s3/start.sh` installs it in a virtualenv on first use), reached through a proxy on
//! 127.0.0.1 that cuts every connection after 256 KiB: `s3://bucket/prefix/`, a `.paths.gz`
//! listing of keys in the bucket, and JSONL and Parquet objects refine into the bytes the
//! local files refine into, by `falconry refine` and by `falconry run`. If moto does not start,
//! the test fails.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use falconry_refine::inputs::InputId;

use crate::pipeline::{falcon_tokenizer, pipeline_config};
use crate::remote::{text_inputs, DROP_AFTER};
use crate::util::{data_dir, repo, TestCommand};

/// The bucket the test fills.
const BUCKET: &str = "crawl";

/// moto_server, stopped (by pid) when dropped, also when the test fails.
struct Moto {
    port: u16,
    pid: String,
    dir: tempfile::TempDir,
}

impl Moto {
    fn start() -> Moto {
        let dir = tempfile::tempdir().unwrap();
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-venv");
        let out = Command::new(repo().join("tests/s3/start.sh"))
            .arg(&venv)
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "moto_server did not start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let (port, pid) = stdout.trim().split_once(' ').unwrap();
        Moto {
            port: port.parse().unwrap(),
            pid: pid.into(),
            dir,
        }
    }

    /// Creates the bucket and uploads `(key, file)` pairs with boto3 (moto's own client).
    fn put(&self, files: &[(String, PathBuf)]) {
        let python = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-venv/bin/python");
        let out = Command::new(python)
            .arg(repo().join("tests/s3/put.py"))
            .arg(format!("http://127.0.0.1:{}", self.port))
            .arg(BUCKET)
            .args(
                files
                    .iter()
                    .map(|(key, file)| format!("{key}={}", file.display())),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "upload: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("moto.log")).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

/// Forwards 127.0.0.1 connections to moto and hangs up on each after [`DROP_AFTER`] bytes of
/// answers: object bodies break mid-stream, as over a bad network.
struct Proxy {
    port: u16,
    cuts: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(to: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cuts = Arc::new(AtomicUsize::new(0));
        let counter = cuts.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                let (mut c_in, mut s_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                });
                let counter = counter.clone();
                std::thread::spawn(move || forward_answers(server, client, &counter));
            }
        });
        Proxy { port, cuts }
    }
}

/// Copies the server's answers to the client until [`DROP_AFTER`] bytes, then closes both.
fn forward_answers(mut server: TcpStream, mut client: TcpStream, cuts: &AtomicUsize) {
    let mut sent = 0;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min(DROP_AFTER - sent),
        };
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n;
        if sent == DROP_AFTER {
            cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// `falconry ARGS` with the standard AWS environment pointing at `port`.
fn falconry(port: u16, args: &[&str], code: i32) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_falconry"))
        .args(args)
        .current_dir(repo())
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "falconry")
        .env("AWS_SECRET_ACCESS_KEY", "falconry")
        .env("AWS_REGION", "us-east-1")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("SLURM_ARRAY_TASK_COUNT")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "falconry {args:?}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `part-KEY.parquet` of `input` in a refine folder (the key depends on the path alone: no
/// request, so this process needs no AWS settings).
fn part(dir: &Path, input: &Path) -> Vec<u8> {
    let path = match input.to_string_lossy().starts_with("s3://") {
        true => input.to_path_buf(),
        false => std::fs::canonicalize(input).unwrap(),
    };
    let key = InputId {
        path,
        size: 0,
        head_xxh3: None,
    }
    .key();
    std::fs::read(dir.join(format!("part-{key}.parquet"))).unwrap()
}

#[test]
fn s3_objects_prefixes_and_listings_refine_into_the_local_bytes() {
    let root = std::fs::canonicalize(data_dir()).unwrap();
    let local = falconry_refine::run::expand_inputs(&[root.join("warc")]).unwrap();
    let t = TestCommand::new();
    let path = |rel: &str| t.path(rel).to_string_lossy().into_owned();

    // The local runs: the WARCs, and text inputs made from what they refine into.
    let warc = root.join("warc").to_string_lossy().into_owned();
    t.assert_exit_code(
        &["-q", "refine", "--input", &warc, "--output", &path("files")],
        0,
    );
    let text = text_inputs(&t.path("files"), &t.path("text"));
    let text_arg = t.path("text").to_string_lossy().into_owned();
    t.assert_exit_code(
        &[
            "-q",
            "refine",
            "--input",
            &text_arg,
            "--output",
            &path("text-files"),
        ],
        0,
    );

    // The bucket: every WARC under its path in shared/data, the text inputs under text/, and
    // CommonCrawl's kind of listing (keys relative to the bucket) under listings/.
    let mut objects: Vec<(String, PathBuf)> = Vec::new();
    let mut keys = Vec::new();
    for file in &local {
        let key = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        keys.push(key.clone());
        objects.push((key, file.clone()));
    }
    for file in &text {
        objects.push((
            format!("text/{}", file.file_name().unwrap().to_string_lossy()),
            file.clone(),
        ));
    }
    let listing = t.path("warc.paths.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(keys.join("\n").as_bytes()).unwrap();
    std::fs::write(&listing, gz.finish().unwrap()).unwrap();
    objects.push(("listings/warc.paths.gz".into(), listing));

    let moto = Moto::start();
    moto.put(&objects);
    let proxy = Proxy::start(moto.port);
    let s3 = |key: &str| format!("s3://{BUCKET}/{key}");

    // A prefix: each WARC's part has the bytes of the local file's part.
    falconry(
        proxy.port,
        &[
            "-q",
            "refine",
            "--input",
            &s3("warc/"),
            "--output",
            &path("prefix"),
        ],
        0,
    );
    assert_eq!(t.stats("prefix"), t.stats("files"), "{}", moto.log());
    for (file, key) in local.iter().zip(&keys) {
        assert!(
            part(&t.path("prefix"), Path::new(&s3(key))) == part(&t.path("files"), file),
            "{key} and {} differ",
            file.display()
        );
    }
    assert!(
        proxy.cuts.load(Ordering::SeqCst) > 0,
        "no connection was cut"
    );

    // The listing names the same objects: the same folder.
    let listing = s3("listings/warc.paths.gz");
    falconry(
        proxy.port,
        &[
            "-q",
            "refine",
            "--input",
            &listing,
            "--output",
            &path("listing"),
        ],
        0,
    );
    crate::pipeline::assert_same_tree(&t.path("prefix"), &t.path("listing"));

    // `falconry run` takes the listing the same way.
    let config = pipeline_config(&t, &falcon_tokenizer());
    let config = config.to_string_lossy();
    falconry(
        proxy.port,
        &[
            "-q",
            "run",
            "--config",
            &config,
            "--input",
            &listing,
            "--output",
            &path("run"),
            "--stages",
            "refine",
        ],
        0,
    );
    assert_eq!(t.stats("run/refine"), t.stats("files"));
    for key in &keys {
        let url = s3(key);
        assert!(
            part(&t.path("run/refine"), Path::new(&url))
                == part(&t.path("listing"), Path::new(&url)),
            "{url}"
        );
    }

    // JSONL (streamed) and Parquet (ranged reads of blocks) objects.
    falconry(
        proxy.port,
        &[
            "-q",
            "refine",
            "--input",
            &s3("text/"),
            "--output",
            &path("text-s3"),
        ],
        0,
    );
    assert_eq!(t.stats("text-s3"), t.stats("text-files"));
    for file in &text {
        let url = s3(&format!(
            "text/{}",
            file.file_name().unwrap().to_string_lossy()
        ));
        assert!(
            part(&t.path("text-s3"), Path::new(&url)) == part(&t.path("text-files"), file),
            "{url}"
        );
    }

    // A key that is not there is an error that names it.
    let missing = s3("warc/none.warc.gz");
    let out = falconry(
        proxy.port,
        &["refine", "--input", &missing, "--output", &path("none")],
        1,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&missing), "{err}");
}
