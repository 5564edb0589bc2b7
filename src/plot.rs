//! `funnel.png`: % of documents left after each stage, ours beside RefinedWeb's Figure 2.

use std::path::Path;

use anyhow::{anyhow, Result};
use falconry_refine::folder;
use falconry_refine::funnel::FunnelRow;
use plotters::prelude::*;

/// Draws grouped bars (ours, the paper's) per stage into `path`, atomically.
pub fn funnel(rows: &[FunnelRow], path: &Path) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    falconry_train::register_font();
    let err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    // `NAME.PID.tmp.png`: plotters picks the format from the extension; the pid keeps the
    // tasks of a job array, which all draw the funnel, apart. Registered, so an interruption
    // removes it.
    let tmp = path.with_extension(format!("{}.tmp.png", std::process::id()));
    drop(folder::create_tmp_at(&tmp)?);
    {
        let root = BitMapBackend::new(&tmp, (960, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let n = rows.len() as u32;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "falconry funnel vs RefinedWeb (Figure 2)",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(52)
            .build_cartesian_2d((0u32..n).into_segmented(), 0.0..100.0)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_desc("% of documents left")
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => rows
                    .get(*i as usize)
                    .map(|r| r.stage.clone())
                    .unwrap_or_default(),
                _ => String::new(),
            })
            .draw()
            .map_err(|e| err(&e))?;
        chart
            .draw_series(rows.iter().enumerate().map(|(i, r)| {
                let i = i as u32;
                Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::CenterOf(i), r.percent),
                    ],
                    BLUE.mix(0.8).filled(),
                )
            }))
            .map_err(|e| err(&e))?
            .label("falconry")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BLUE.mix(0.8).filled()));
        chart
            .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
                let i = i as u32;
                r.paper.map(|p| {
                    Rectangle::new(
                        [
                            (SegmentValue::CenterOf(i), 0.0),
                            (SegmentValue::Exact(i + 1), p),
                        ],
                        RED.mix(0.6).filled(),
                    )
                })
            }))
            .map_err(|e| err(&e))?
            .label("RefinedWeb")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], RED.mix(0.6).filled()));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let file = std::fs::File::open(&tmp).map_err(|e| anyhow!("{}: {e}", tmp.display()))?;
    Ok(folder::commit_tmp(file, &tmp, path)?)
}
