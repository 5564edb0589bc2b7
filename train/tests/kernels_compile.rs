//! The CUDA engine's kernels compile, as the engine compiles them at run time (NVRTC, through
//! ptxas), for every architecture it builds for, on a machine without a GPU; and the Hopper
//! build's machine code has no warpgroup MMA reading A registers that its loop rewrites later
//! (the register reuse that made the first warpgroup-MMA forward wrong).

use std::process::Command;

#[test]
fn kernels_compile_for_sm80_sm90_and_sm90a_without_operand_hazards() {
    let python = std::env::var("FALCONRY_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../bench/nvrtc_check.py");
    let out = Command::new(python)
        .arg(script)
        .output()
        .expect("python3 runs");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kernels.cu does not compile or has a hazard (pip install nvidia-cuda-nvrtc-cu12 \
         nvidia-cuda-nvdisasm):\n{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for arch in ["sm_80: ok", "sm_90: ok", "sm_90a: ok", " 0 operand hazards"] {
        assert!(printed.contains(arch), "{arch} missing from:\n{printed}");
    }
}
