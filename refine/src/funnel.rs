//! The funnel: the share of documents left after each stage, beside RefinedWeb's Figure 2.

use std::fmt::Write;

use crate::RunStats;

/// RefinedWeb (Penedo et al. 2023), Figure 2: % of CommonCrawl documents left after each stage.
pub const REFINEDWEB_FIGURE_2: &[(&str, f64)] = &[
    ("url_filter", 97.76),
    ("extraction", 96.31),
    ("language_id", 47.51),
    ("repetition", 35.97),
    ("quality", 30.15),
    ("line_correction", 23.34),
    ("minhash", 14.50),
    ("url_dedup", 11.67),
];

/// One funnel line: a stage and the % of input documents still left after it.
#[derive(Clone, Debug, PartialEq)]
pub struct FunnelRow {
    /// Stage name.
    pub stage: String,
    /// Documents left after the stage.
    pub documents: u64,
    /// `documents` as % of the documents that entered the pipeline (`read`'s output).
    pub percent: f64,
    /// RefinedWeb's figure for the stage, where the paper gives one.
    pub paper: Option<f64>,
}

/// The funnel rows of a run. 100% is the documents `read` produced; `read` itself (records
/// that were not documents) is not a row.
pub fn rows(stats: &RunStats) -> Vec<FunnelRow> {
    let Some(first) = stats.stages.first() else {
        return Vec::new();
    };
    let base = if first.name == "read" {
        first.output
    } else {
        first.input
    };
    stats
        .stages
        .iter()
        .filter(|s| s.name != "read")
        .map(|s| FunnelRow {
            stage: s.name.clone(),
            documents: s.output,
            percent: if base == 0 {
                0.0
            } else {
                100.0 * s.output as f64 / base as f64
            },
            paper: REFINEDWEB_FIGURE_2
                .iter()
                .find(|(n, _)| *n == s.name)
                .map(|(_, p)| *p),
        })
        .collect()
}

/// The funnel as a Markdown table, with RefinedWeb's column beside ours.
pub fn table(stats: &RunStats) -> String {
    let mut out =
        String::from("| stage | documents | % kept | RefinedWeb % |\n|---|---:|---:|---:|\n");
    if let Some(read) = stats.stages.iter().find(|s| s.name == "read") {
        let _ = writeln!(
            out,
            "| read (documents in) | {} | 100.00 | 100.00 |",
            read.output
        );
    }
    for row in rows(stats) {
        let paper = row
            .paper
            .map_or_else(|| "-".to_string(), |p| format!("{p:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {:.2} | {} |",
            row.stage, row.documents, row.percent, paper
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StageStats;

    #[test]
    fn percent_is_of_documents_read() {
        let mut read = StageStats::new("read");
        for _ in 0..4 {
            read.keep();
        }
        read.drop("request");
        let mut ex = StageStats::new("extraction");
        for _ in 0..3 {
            ex.keep();
        }
        ex.drop("empty");
        let stats = RunStats {
            stages: vec![read, ex],
            ..Default::default()
        };
        let rows = rows(&stats);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].percent, 75.0);
        assert_eq!(rows[0].paper, Some(96.31));
        assert!(table(&stats).contains("| extraction | 3 | 75.00 | 96.31 |"));
    }
}
