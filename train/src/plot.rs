//! `loss.png`: train and validation loss against step.

use std::path::Path;

use plotters::prelude::*;

use crate::trainer::Metrics;

/// DejaVu Sans, embedded: plots need no font from the system (`assets/fonts/NOTICE.md`).
const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Makes the embedded font plotters' `sans-serif` (and the other generic families), once per
/// process; every plot of falconry (the CLI's funnel too) calls this before drawing.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for family in ["sans-serif", "serif", "monospace"] {
            for style in [
                FontStyle::Normal,
                FontStyle::Bold,
                FontStyle::Italic,
                FontStyle::Oblique,
            ] {
                // The bytes are a valid TrueType font: a test draws with them.
                let _ = plotters::style::register_font(family, style, FONT);
            }
        }
    });
}

/// Draws the loss curve of `history` into `path` (PNG, written to a temp name, then renamed).
/// Should text fail to draw all the same, the curve is drawn without it: train blue,
/// validation red.
pub fn loss_curve(history: &[Metrics], path: &Path) -> Result<(), String> {
    register_font();
    draw(history, path, true).or_else(|_| draw(history, path, false))
}

fn draw(history: &[Metrics], path: &Path, text: bool) -> Result<(), String> {
    let series = |split: &str| -> Vec<(f64, f64)> {
        history
            .iter()
            .filter(|m| m.split == split)
            .filter_map(|m| m.loss.filter(|l| l.is_finite()).map(|l| (m.step as f64, l)))
            .collect()
    };
    let (train, val) = (series("train"), series("validation"));
    if train.is_empty() {
        return Ok(());
    }
    let x_max = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = train
        .iter()
        .chain(&val)
        .fold((f64::MAX, f64::MIN), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let pad = ((hi - lo) * 0.05).max(1e-3);
    // `loss.PID.tmp.png`: plotters picks the format from the extension.
    let tmp = path.with_extension(format!("{}.tmp.png", std::process::id()));
    drop(falconry_shards::atomic::create_tmp_at(&tmp).map_err(|e| e.to_string())?);
    {
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut builder = ChartBuilder::on(&root);
        builder.margin(12);
        if text {
            builder
                .caption("falconry: loss", ("sans-serif", 22))
                .x_label_area_size(36)
                .y_label_area_size(52);
        }
        let mut chart = builder
            .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        if text {
            chart
                .configure_mesh()
                .x_desc("step")
                .y_desc("loss (nats/token)")
                .draw()
                .map_err(|e| e.to_string())?;
        } else {
            chart
                .configure_mesh()
                .disable_x_mesh()
                .disable_y_mesh()
                .x_labels(0)
                .y_labels(0)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(LineSeries::new(train, &BLUE))
            .map_err(|e| e.to_string())?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
        if !val.is_empty() {
            chart
                .draw_series(LineSeries::new(val.clone(), RED.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label("validation")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], RED));
            chart
                .draw_series(val.iter().map(|&p| Circle::new(p, 3, RED.filled())))
                .map_err(|e| e.to_string())?;
        }
        if text {
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    let file = std::fs::File::open(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    falconry_shards::atomic::commit_tmp(file, &tmp, path).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(step: usize, split: &str, loss: f64) -> Metrics {
        Metrics::loss_row(step, split, loss, 0)
    }

    /// The text is drawn with the embedded font (not the fallback without text), whatever
    /// fonts the system has.
    #[test]
    fn loss_curve_draws_its_text_with_the_embedded_font() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        let history: Vec<Metrics> = (1..20)
            .map(|s| metrics(s, "train", 10.0 / s as f64))
            .chain([metrics(10, "validation", 1.5)])
            .collect();
        register_font();
        draw(&history, &path, true).unwrap();
        let with_text = std::fs::metadata(&path).unwrap().len();
        draw(&history, &path, false).unwrap();
        let without = std::fs::metadata(&path).unwrap().len();
        assert!(
            with_text > without,
            "{with_text} bytes with text, {without} without"
        );
    }
}
