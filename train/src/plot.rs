//! `loss.png`: train and validation loss against step.

use std::path::Path;

use plotters::prelude::*;

use crate::trainer::Metrics;

/// Draws the loss curve of `history` into `path` (PNG, written to a temp name, then renamed).
pub fn loss_curve(history: &[Metrics], path: &Path) -> Result<(), String> {
    let series = |split: &str| -> Vec<(f64, f64)> {
        history.iter().filter(|m| m.split == split && m.loss.is_finite()).map(|m| (m.step as f64, m.loss)).collect()
    };
    let (train, val) = (series("train"), series("validation"));
    if train.is_empty() {
        return Ok(());
    }
    let x_max = train.iter().chain(&val).map(|p| p.0).fold(1.0, f64::max);
    let (lo, hi) = train.iter().chain(&val).fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let tmp = path.with_extension("png.tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption("falconry: loss", ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..x_max, (lo - pad)..(hi + pad))
            .map_err(|e| e.to_string())?;
        chart.configure_mesh().x_desc("step").y_desc("loss (nats/token)").draw().map_err(|e| e.to_string())?;
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
            chart.draw_series(val.iter().map(|&p| Circle::new(p, 3, RED.filled()))).map_err(|e| e.to_string())?;
        }
        chart.configure_series_labels().border_style(BLACK).background_style(WHITE).draw().map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
