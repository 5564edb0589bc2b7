//! End-to-end tests of the `falconry` binary (one test binary, as ripgrep does).

mod util;

mod chain;
mod cli;
mod dedup;
mod pipeline;
mod readback;
mod refine;
mod remote;
mod runfolder;
mod s3;
mod slurm;
mod train;
