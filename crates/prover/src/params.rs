//! Circuit parameters. Every circuit, and so every circuit digest, is a function of these alone.

use serde::{Deserialize, Serialize};

/// The tallest `basic` trace: 2^16 rows of 641 columns is about 0.7 GB at blowup 2 before the
/// quotient, which a worker holds once per proof in flight.
pub const MAX_TRACE_ROWS: usize = 1 << 16;

/// Rows one transfer takes in the `basic` trace for a tree of `depth`: the transfer AIR's layout
/// (`stark::transfer`), which the chunk size's limit follows.
pub fn rows_per_transfer(depth: usize) -> usize {
    2 * depth + 8
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Depth of the sparse Merkle state tree.
    pub tree_depth: usize,
    /// Transactions proved by one `basic` STARK. Its trace has `2 * tree_depth + 8` rows per
    /// transaction, padded to a power of two: 455 fill 2^15 rows at depth 32.
    pub chunk_size: usize,
    /// Children verified by one `aggregate` proof.
    pub arity: usize,
    /// Aggregation levels between the chunks and the `final` proof. The tree has this fixed height
    /// so that the `final` circuit does not depend on the batch size, which is what lets a final
    /// proof verify the previous batch's final proof (cyclic recursion needs one circuit).
    pub levels: usize,
}

impl Default for Params {
    fn default() -> Self {
        Self { tree_depth: 32, chunk_size: 455, arity: 3, levels: 2 }
    }
}

impl Params {
    /// The most transactions one batch can hold.
    pub fn max_transactions(&self) -> usize {
        self.chunk_size * self.arity.pow(self.levels as u32)
    }

    /// The most chunks one batch can hold.
    pub fn max_chunks(&self) -> usize {
        self.arity.pow(self.levels as u32)
    }

    /// Checks the ranges the circuits support; the message names the parameter.
    pub fn validate(&self) -> Result<(), String> {
        if !(4..=32).contains(&self.tree_depth) {
            return Err(format!("tree depth {} is outside 4..=32", self.tree_depth));
        }
        let max_chunk = (MAX_TRACE_ROWS - 1) / rows_per_transfer(self.tree_depth);
        if !(1..=max_chunk).contains(&self.chunk_size) {
            return Err(format!(
                "chunk size {} is outside 1..={max_chunk} at tree depth {} (a basic trace holds at most {MAX_TRACE_ROWS} rows)",
                self.chunk_size, self.tree_depth
            ));
        }
        if !(2..=8).contains(&self.arity) {
            return Err(format!("arity {} is outside 2..=8", self.arity));
        }
        if !(1..=6).contains(&self.levels) {
            return Err(format!("levels {} is outside 1..=6", self.levels));
        }
        Ok(())
    }
}
