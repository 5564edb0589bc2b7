//! The CUDA engine's kernels compile, as the engine compiles them at run time (NVRTC, through
//! ptxas), for every architecture it builds for, on a machine without a GPU.

use std::process::Command;

#[test]
fn kernels_compile_with_nvrtc_for_sm80_sm90_and_sm90a() {
    let python = std::env::var("FALCONRY_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/nvrtc_check.py");
    let out = Command::new(python)
        .arg(script)
        .output()
        .expect("python3 runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kernels.cu does not compile (pip install nvidia-cuda-nvrtc-cu12):\n{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for arch in ["sm_80: ok", "sm_90: ok", "sm_90a: ok"] {
        assert!(printed.contains(arch), "{arch} missing from:\n{printed}");
    }
}
