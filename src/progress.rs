//! Progress bars: shown on a terminal only, hidden for pipes, logs and CI.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `total` units, or a hidden one unless stderr is a terminal (and `TERM` isn't dumb).
fn bar(total: u64, what: &str) -> ProgressBar {
    let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
    if !std::io::stderr().is_terminal() || dumb {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_message(what.to_string());
    bar
}

/// A bar over `total` bytes of input.
pub fn bytes_bar(total: u64, what: &str) -> ProgressBar {
    let bar = bar(total, what);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{elapsed_precise}] {wide_bar} {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, {eta})")
            .expect("valid template"),
    );
    bar
}

/// A bar over `total` steps.
pub fn count_bar(total: u64, what: &str) -> ProgressBar {
    let bar = bar(total, what);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} step {pos}/{len} ({eta})",
        )
        .expect("valid template"),
    );
    bar
}
