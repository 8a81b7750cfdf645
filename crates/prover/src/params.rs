//! Circuit parameters. Every circuit, and so every circuit digest, is a function of these alone.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Depth of the sparse Merkle state tree.
    pub tree_depth: usize,
    /// Transactions proved by one `basic` circuit.
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
        Self { tree_depth: 32, chunk_size: 91, arity: 2, levels: 5 }
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
        if !(1..=256).contains(&self.chunk_size) {
            return Err(format!("chunk size {} is outside 1..=256", self.chunk_size));
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
