//! The circuit parameters as command-line flags, shared by `leader` and `worker` (with the same
//! environment variables, so that one deployment setting serves both).

use clap::Args;

use crate::params::Params;

/// Circuit parameters. Every circuit and so the circuit digest follows from these.
#[derive(Args, Debug, Clone)]
pub struct ParamsArgs {
    /// Depth of the sparse Merkle state tree.
    #[arg(long, env = "ZKFLEET_TREE_DEPTH", default_value_t = Params::default().tree_depth)]
    pub tree_depth: usize,
    /// Transactions per basic proof.
    #[arg(long, env = "ZKFLEET_CHUNK_SIZE", default_value_t = Params::default().chunk_size)]
    pub chunk_size: usize,
    /// Children per aggregate proof.
    #[arg(long, env = "ZKFLEET_ARITY", default_value_t = Params::default().arity)]
    pub arity: usize,
    /// Aggregation levels; a batch holds at most chunk-size × arity^levels transactions.
    #[arg(long, env = "ZKFLEET_LEVELS", default_value_t = Params::default().levels)]
    pub levels: usize,
}

impl ParamsArgs {
    pub fn params(&self) -> Params {
        Params { tree_depth: self.tree_depth, chunk_size: self.chunk_size, arity: self.arity, levels: self.levels }
    }
}
