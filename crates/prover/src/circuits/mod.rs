//! The circuits of every round, built deterministically from [`Params`] and on first use.
//!
//! `basic` proofs are STARKs of the transfer AIR ([`crate::stark`]), which needs no circuit data:
//! its shape is the [`TransferStark`] and the trace height. `basic` and `aggregate` proofs share
//! one public layout ([`ChunkPublicTargets`]): the state root and transaction commitment before
//! and after a run of transactions, and how many there were. Level 1 aggregates verify `basic`
//! proofs, level `l` aggregates verify level `l - 1`, and `final` verifies level `params.levels`.

pub mod aggregate;
pub mod cache;
pub mod chain;

use std::sync::Arc;

use common::Round;
use once_cell::sync::OnceCell;
use plonky2::hash::hash_types::HashOutTarget;
use plonky2::iop::target::Target;
use plonky2::plonk::circuit_builder::CircuitBuilder;

use crate::params::Params;
use crate::stark::transfer::trace_rows;
use crate::stark::TransferStark;
use crate::{D, F};
use aggregate::{AggregateCircuit, ChildCircuit};
use cache::{load_or_build, CircuitCache};
use chain::{CompressCircuit, FinalCircuit};

/// The public values of a `basic` or `aggregate` proof.
#[derive(Clone, Copy)]
pub struct ChunkPublicTargets {
    pub root_before: HashOutTarget,
    pub root_after: HashOutTarget,
    pub commit_before: HashOutTarget,
    pub commit_after: HashOutTarget,
    pub count: Target,
}

/// The public values of a chunk: roots and transaction commitments before and after, and the count.
pub const CHUNK_PUBLIC_LEN: usize = crate::stark::transfer::PUBLIC_INPUTS;

pub(crate) fn register_chunk_public(b: &mut CircuitBuilder<F, D>, p: &ChunkPublicTargets) {
    b.register_public_inputs(&p.root_before.elements);
    b.register_public_inputs(&p.root_after.elements);
    b.register_public_inputs(&p.commit_before.elements);
    b.register_public_inputs(&p.commit_after.elements);
    b.register_public_input(p.count);
}

pub(crate) fn chunk_public(pis: &[Target]) -> ChunkPublicTargets {
    let hash = |at: usize| HashOutTarget { elements: pis[at..at + 4].try_into().unwrap() };
    ChunkPublicTargets {
        root_before: hash(0),
        root_after: hash(4),
        commit_before: hash(8),
        commit_after: hash(12),
        count: pis[16],
    }
}

/// The cache name of the aggregate circuit of `level` (1-based).
fn aggregate_name(level: usize) -> String {
    format!("aggregate-{level}")
}

/// Every circuit of one parameter set, each loaded from the cache or built the first time a task
/// needs it, and then shared by every thread of the process.
pub struct CircuitSet {
    params: Params,
    cache: Option<Arc<dyn CircuitCache>>,
    /// Names this set's entries in the cache ([`cache::set_key`]).
    cache_key: String,
    aggregates: Vec<OnceCell<AggregateCircuit>>,
    final_: OnceCell<FinalCircuit>,
    compress: OnceCell<CompressCircuit>,
}

impl CircuitSet {
    /// A set that builds every circuit itself.
    pub fn new(params: Params) -> Self {
        Self::with_cache(params, None)
    }

    /// A set that looks for its circuits in `cache` first and saves the ones it builds there.
    pub fn with_cache(params: Params, cache: Option<Arc<dyn CircuitCache>>) -> Self {
        Self {
            params,
            cache,
            cache_key: cache::set_key(&params),
            aggregates: (0..params.levels).map(|_| OnceCell::new()).collect(),
            final_: OnceCell::new(),
            compress: OnceCell::new(),
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// The AIR of the `basic` round.
    pub fn basic_stark(&self) -> TransferStark {
        TransferStark { depth: self.params.tree_depth }
    }

    /// The height of every `basic` trace: one chunk's transfers, padded to a power of two.
    pub fn basic_rows(&self) -> usize {
        trace_rows(self.params.chunk_size, self.params.tree_depth)
    }

    /// The aggregate circuit of `level` (1-based).
    pub fn aggregate(&self, level: usize) -> &AggregateCircuit {
        assert!((1..=self.params.levels).contains(&level), "aggregate level {level} out of range");
        self.aggregates[level - 1].get_or_init(|| {
            self.load_or_build(&aggregate_name(level), || {
                let child = if level == 1 {
                    ChildCircuit::Basic {
                        stark: self.basic_stark(),
                        degree_bits: self.basic_rows().trailing_zeros() as usize,
                    }
                } else {
                    ChildCircuit::Aggregate(&self.aggregate(level - 1).data)
                };
                AggregateCircuit::build(child, self.params.arity)
            })
        })
    }

    pub fn final_circuit(&self) -> &FinalCircuit {
        self.final_.get_or_init(|| {
            self.load_or_build("final", || FinalCircuit::build(&self.aggregate(self.params.levels).data))
        })
    }

    pub fn compress(&self) -> &CompressCircuit {
        self.compress.get_or_init(|| self.load_or_build("compress", || CompressCircuit::build(self.final_circuit())))
    }

    /// Loads, or builds, every circuit that tasks of `round` prove with or decode their inputs
    /// with, so that the first such task does not wait for them.
    pub fn prepare(&self, round: Round) {
        match round {
            // A STARK has no circuit to build.
            Round::Witness | Round::Basic => {}
            Round::Aggregate => {
                for level in 1..=self.params.levels {
                    self.aggregate(level);
                }
            }
            Round::Final => {
                self.aggregate(self.params.levels);
                self.final_circuit();
            }
            Round::Compress => {
                self.final_circuit();
                self.compress();
            }
        }
    }

    /// Loads the circuits of the rounds after `basic` that the cache already holds, and builds
    /// none. Run on a spare thread while the basic proofs run, it takes the loading off the
    /// serial end of a job (the upper aggregation levels, `final` and `compress` run one task at
    /// a time). A circuit the cache lacks is left to the task that needs it: building it here
    /// would take the CPU from the basic proofs, which measured slower (docs/benchmarks.md).
    pub fn load_cached(&self) {
        let Some(cache) = self.cache.as_deref() else { return };
        for (i, cell) in self.aggregates.iter().enumerate() {
            self.fill_from(cache, cell, &aggregate_name(i + 1));
        }
        self.fill_from(cache, &self.final_, "final");
        self.fill_from(cache, &self.compress, "compress");
    }

    fn fill_from<T: cache::Cached>(&self, cache: &dyn CircuitCache, cell: &OnceCell<T>, name: &str) {
        // A task that needs the circuit meanwhile waits for this load instead of loading it
        // again; an entry that is missing leaves the cell empty for the task to build.
        let _ = cell.get_or_try_init(|| cache::load(cache, &self.cache_key, name).ok_or(()));
    }

    fn load_or_build<T: cache::Cached>(&self, name: &str, build: impl FnOnce() -> T) -> T {
        load_or_build(self.cache.as_ref(), &self.cache_key, name, build)
    }
}
