//! The CUDA engine on several GPUs of one host: one engine per GPU, each rank's gradients
//! averaged with the others' by NCCL block by block as its backward produces them (see
//! `Engine::join`), every rank then taking the same AdamW step.
//!
//! Rank 0's engine lives on the caller's thread, which also evaluates and writes checkpoints
//! from it; ranks 1.. each live on a thread of their own (an engine's GPU handles stay on the
//! thread that made them) and take one job at a time. A rank that fails aborts the group's
//! communicators, so the others return from their collectives and every rank's step fails
//! with the first failure's reason.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::{Collective, Engine, State};
use crate::config::FalconConfig;
use crate::optim::AdamWConfig;
use crate::Error;

enum Job {
    Load(Arc<State>),
    Step(Vec<Vec<u16>>, f64),
}

/// Ranks 1.. of a group: where to send jobs, where results come back.
struct Worker {
    jobs: Sender<Job>,
    results: Receiver<Result<(f64, f64), Error>>,
    thread: Option<JoinHandle<()>>,
}

/// Engines on `ordinals`, data parallel.
pub struct EngineGroup {
    lead: Engine,
    workers: Vec<Worker>,
    collective: Arc<Collective>,
}

impl EngineGroup {
    /// An engine per GPU in `ordinals` (rank `i` on `ordinals[i]`), each for micro-batches of
    /// `batch` x `seq`, joined in one NCCL group.
    pub fn new(
        config: &FalconConfig,
        batch: usize,
        seq: usize,
        optim: AdamWConfig,
        recompute: bool,
        ordinals: &[usize],
    ) -> Result<Self, Error> {
        let collective = Arc::new(Collective::new(ordinals)?);
        let mut lead = Engine::new(config, batch, seq, optim.clone(), recompute, ordinals[0])?;
        lead.join(collective.clone(), 0)?;
        let mut workers = Vec::new();
        for (rank, &ordinal) in ordinals.iter().enumerate().skip(1) {
            let (jobs, inbox) = channel::<Job>();
            let (outbox, results) = channel();
            let (config, optim, collective) = (config.clone(), optim.clone(), collective.clone());
            let thread = std::thread::spawn(move || {
                let made = Engine::new(&config, batch, seq, optim, recompute, ordinal)
                    .and_then(|mut e| e.join(collective.clone(), rank).map(|()| e));
                let mut engine = match made {
                    Ok(e) => {
                        let _ = outbox.send(Ok((0.0, 0.0)));
                        e
                    }
                    Err(e) => {
                        let _ = outbox.send(Err(e));
                        return;
                    }
                };
                for job in inbox {
                    let result = match job {
                        Job::Load(state) => engine.set_state(&state).map(|()| (0.0, 0.0)),
                        Job::Step(micro, lr) => engine.step(&micro, lr),
                    };
                    if let Err(e) = &result {
                        collective.abort(format!("rank {rank} on GPU {ordinal}: {e}"));
                    }
                    if outbox.send(result).is_err() {
                        return;
                    }
                }
            });
            workers.push(Worker {
                jobs,
                results,
                thread: Some(thread),
            });
        }
        let group = Self {
            lead,
            workers,
            collective,
        };
        group.collect()?;
        Ok(group)
    }

    /// GPUs in the group.
    pub fn ranks(&self) -> usize {
        self.collective.world()
    }

    /// Every worker's result of its last job; the first failure if any.
    fn collect(&self) -> Result<Vec<(f64, f64)>, Error> {
        let mut out = Vec::new();
        let mut failure = None;
        for (i, w) in self.workers.iter().enumerate() {
            match w.results.recv() {
                Ok(Ok(r)) => out.push(r),
                Ok(Err(e)) => {
                    failure.get_or_insert(e);
                }
                Err(_) => {
                    failure.get_or_insert(Error::Gpu(format!("rank {} ended", i + 1)));
                }
            }
        }
        failure.map_or(Ok(out), Err)
    }

    fn send(&self, job: impl Fn() -> Job) -> Result<(), Error> {
        for (i, w) in self.workers.iter().enumerate() {
            w.jobs
                .send(job())
                .map_err(|_| Error::Gpu(format!("rank {} ended", i + 1)))?;
        }
        Ok(())
    }

    /// Rank 0's engine: weights loaded into it reach every rank through [`EngineGroup::sync`].
    pub fn lead(&mut self) -> &mut Engine {
        &mut self.lead
    }

    /// Rank 0's engine, to read from (checkpoints).
    pub fn lead_ref(&self) -> &Engine {
        &self.lead
    }

    /// Copies rank 0's weights and optimizer state to every other rank.
    pub fn sync(&mut self) -> Result<(), Error> {
        let state = Arc::new(self.lead.state()?);
        self.send(|| Job::Load(state.clone()))?;
        self.collect().map(|_| ())
    }

    /// One optimizer step; `micro` holds each rank's micro-batches in rank order. The loss is
    /// the mean over ranks.
    pub fn step(&mut self, micro: &[Vec<u16>], lr: f64) -> Result<(f64, f64), Error> {
        let per_rank = micro.len() / self.ranks();
        let mut chunks = micro.chunks(per_rank);
        let own = chunks.next().expect("rank 0's micro-batches");
        for (w, chunk) in self.workers.iter().zip(chunks) {
            w.jobs
                .send(Job::Step(chunk.to_vec(), lr))
                .map_err(|_| Error::Gpu("a rank ended".into()))?;
        }
        let result = self.lead.step(own, lr);
        if let Err(e) = &result {
            self.collective.abort(format!("rank 0: {e}"));
        }
        let others = self.collect();
        // The first failure, wherever it happened, is what every rank reports.
        match (result, others) {
            (Ok(r), Ok(_)) => Ok(r),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }
}

impl Drop for EngineGroup {
    fn drop(&mut self) {
        for w in &mut self.workers {
            // Closing the job channel ends the worker's loop.
            let (closed, _) = channel();
            drop(std::mem::replace(&mut w.jobs, closed));
            if let Some(t) = w.thread.take() {
                let _ = t.join();
            }
        }
    }
}
