//! The RefinedWeb document filters (paper §3.1, App. G), one module per stage.

pub mod line_correction;
pub mod quality;
pub mod repetition;
pub mod text;
