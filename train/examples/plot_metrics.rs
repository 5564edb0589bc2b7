//! Draws `loss.png` from a run's `metrics.jsonl` (for runs on machines without fonts).
//!
//! ```text
//! cargo run -p falconry-train --example plot_metrics -- RUN/metrics.jsonl RUN/loss.png
//! ```

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [metrics, png] = args.as_slice() else {
        return Err("usage: plot_metrics METRICS.jsonl OUT.png".into());
    };
    let history = falconry_train::read_metrics(metrics)?;
    falconry_train::loss_curve(&history, png)?;
    Ok(())
}
