//! Merkle trees of plonky2's Poseidon, hashed eight leaves at a time where the CPU has AVX-512.
//!
//! A trace commitment is mostly leaf hashing: every leaf is a row of the extended trace, dozens
//! of permutations in a row, and plonky2 hashes one leaf at a time with its scalar permutation.
//! The leaves of one commitment all have the same length, so eight of them run through the
//! sponge together, one per lane of an AVX-512 register ([`avx512`]); the tree above them is
//! plonky2's. [`merkle_tree`] returns exactly what `MerkleTree::new` returns (same digests, same
//! layout), so nothing downstream can tell. Without AVX-512F it is plonky2's own code.

#[cfg(target_arch = "x86_64")]
mod avx512;

use plonky2::field::goldilocks_field::GoldilocksField;
use plonky2::field::types::{Field, PrimeField64};
use plonky2::hash::hash_types::HashOut;
use plonky2::hash::merkle_tree::{MerkleCap, MerkleTree};
use plonky2::hash::poseidon::{PoseidonHash, SPONGE_WIDTH};
use plonky2::plonk::config::Hasher;
use plonky2::util::log2_strict;
use rayon::prelude::*;

type F = GoldilocksField;

/// Which leaf hashing [`merkle_tree`] runs on this machine: `avx512` or `scalar`.
pub fn implementation() -> &'static str {
    if avx512_available() {
        "avx512"
    } else {
        "scalar"
    }
}

fn avx512_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// plonky2's permutation applied to eight states at once on AVX-512, for tests and benchmarks
/// that compare it with `Poseidon::poseidon`: `None` where the CPU lacks AVX-512F.
pub fn poseidon_x8(states: &[[F; SPONGE_WIDTH]; 8]) -> Option<[[F; SPONGE_WIDTH]; 8]> {
    #[cfg(target_arch = "x86_64")]
    if avx512_available() {
        // SAFETY: the CPU has AVX-512F, checked just above.
        return Some(unsafe { avx512::poseidon(states) });
    }
    let _ = states;
    None
}

/// `PoseidonHash::hash_or_noop` of every leaf, in order, on all of rayon's threads.
pub fn leaf_hashes(leaves: &[Vec<F>]) -> Vec<HashOut<F>> {
    const GROUP: usize = 8;
    let simd = avx512_available();
    let mut out = vec![HashOut::ZERO; leaves.len()];
    // Chunks of 64 leaves: enough work per rayon task, whole groups of eight.
    out.par_chunks_mut(8 * GROUP).zip(leaves.par_chunks(8 * GROUP)).for_each(|(out, leaves)| {
        for (out, group) in out.chunks_mut(GROUP).zip(leaves.chunks(GROUP)) {
            if !(simd && hash_group(group, out)) {
                for (o, leaf) in out.iter_mut().zip(group) {
                    *o = PoseidonHash::hash_or_noop(leaf);
                }
            }
        }
    });
    out
}

/// Hashes eight leaves of one length (more than four elements, so not a no-op) on AVX-512;
/// false, with nothing written, for any other group.
fn hash_group(group: &[Vec<F>], out: &mut [HashOut<F>]) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let len = group[0].len();
        if group.len() != avx512::LANES || len <= 4 || group.iter().any(|leaf| leaf.len() != len) {
            return false;
        }
        let inputs: [&[F]; avx512::LANES] = core::array::from_fn(|l| group[l].as_slice());
        // SAFETY: only called when AVX-512F is present (`leaf_hashes`).
        let digests = unsafe { avx512::hash_no_pad(inputs) };
        for (o, digest) in out.iter_mut().zip(digests) {
            *o = HashOut { elements: digest.map(|x| F::from_canonical_u64(GoldilocksField(x).to_canonical_u64())) };
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (group, out);
        false
    }
}

/// `MerkleTree::new(leaves, cap_height)`, with the leaves hashed by [`leaf_hashes`].
pub fn merkle_tree(leaves: Vec<Vec<F>>, cap_height: usize) -> MerkleTree<F, PoseidonHash> {
    let log_leaves = log2_strict(leaves.len());
    assert!(cap_height <= log_leaves, "cap height {cap_height} is above the tree's {log_leaves} levels");
    let hashes = leaf_hashes(&leaves);
    if cap_height == log_leaves {
        return MerkleTree { leaves, digests: Vec::new(), cap: MerkleCap(hashes) };
    }
    let mut digests = vec![HashOut::ZERO; 2 * (leaves.len() - (1 << cap_height))];
    let subtree_digests = digests.len() >> cap_height;
    let subtree_leaves = leaves.len() >> cap_height;
    let cap = digests
        .par_chunks_exact_mut(subtree_digests)
        .zip(hashes.par_chunks_exact(subtree_leaves))
        .map(|(digests, hashes)| fill_subtree(digests, hashes))
        .collect();
    MerkleTree { leaves, digests, cap: MerkleCap(cap) }
}

/// plonky2's subtree layout: the left subtree's digests, the left child's digest, the right
/// child's, then the right subtree's (a node's digest is stored by its parent). Returns the root.
fn fill_subtree(digests: &mut [HashOut<F>], hashes: &[HashOut<F>]) -> HashOut<F> {
    debug_assert_eq!(hashes.len(), digests.len() / 2 + 1);
    if digests.is_empty() {
        return hashes[0];
    }
    let (left, right) = digests.split_at_mut(digests.len() / 2);
    let (left_digest, left) = left.split_last_mut().expect("a subtree above a leaf has two digests");
    let (right_digest, right) = right.split_first_mut().expect("a subtree above a leaf has two digests");
    let (left_hashes, right_hashes) = hashes.split_at(hashes.len() / 2);
    let (l, r) = rayon::join(|| fill_subtree(left, left_hashes), || fill_subtree(right, right_hashes));
    *left_digest = l;
    *right_digest = r;
    PoseidonHash::two_to_one(l, r)
}

#[cfg(test)]
mod tests {
    use plonky2::field::types::{Field64, Sample};
    use plonky2::hash::poseidon::Poseidon;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn canonical(state: &[F; SPONGE_WIDTH]) -> [u64; SPONGE_WIDTH] {
        state.map(|x| x.to_canonical_u64())
    }

    /// A million random states, a fifth of their elements at or above p (plonky2's field allows
    /// those), and the edges: the AVX-512 permutation gives plonky2's field elements.
    #[test]
    fn the_avx512_permutation_is_plonky2s_on_a_million_states() {
        if poseidon_x8(&[[F::ZERO; SPONGE_WIDTH]; 8]).is_none() {
            eprintln!("skipped: no AVX-512F on this CPU");
            return;
        }
        let mut rng = ChaCha8Rng::seed_from_u64(29);
        let edges = [0, 1, F::ORDER - 1, F::ORDER, F::ORDER + 1, 0xffff_ffff_0000_0000, 1 << 63, u64::MAX];
        let mut batches = vec![edges.map(|e| [GoldilocksField(e); SPONGE_WIDTH])];
        while batches.len() * 8 < 1_000_000 {
            batches.push(core::array::from_fn(|_| {
                core::array::from_fn(|_| {
                    if rng.gen_ratio(1, 5) {
                        GoldilocksField(rng.gen_range(F::ORDER..=u64::MAX))
                    } else {
                        GoldilocksField(rng.gen())
                    }
                })
            }));
        }
        for (n, batch) in batches.iter().enumerate() {
            let ours = poseidon_x8(batch).expect("checked above");
            for (lane, (state, out)) in batch.iter().zip(&ours).enumerate() {
                let theirs = <F as Poseidon>::poseidon(*state);
                assert_eq!(canonical(out), canonical(&theirs), "state {}: {state:?}", 8 * n + lane);
            }
        }
    }

    /// Every shape a commitment can have, all-cap and no-op leaves included: the tree is
    /// `MerkleTree::new`'s, digest for digest.
    #[test]
    fn the_tree_is_plonky2s() {
        for (log_leaves, width, cap_height) in
            [(0, 9, 0), (3, 1, 0), (3, 4, 2), (3, 5, 3), (4, 8, 1), (6, 13, 4), (7, 641, 4), (9, 16, 0)]
        {
            let leaves: Vec<Vec<F>> = (0..1 << log_leaves).map(|_| F::rand_vec(width)).collect();
            let ours = merkle_tree(leaves.clone(), cap_height);
            let theirs = MerkleTree::<F, PoseidonHash>::new(leaves, cap_height);
            let shape = format!("2^{log_leaves} leaves of {width}, cap height {cap_height}");
            assert_eq!(ours.cap, theirs.cap, "{shape}");
            assert_eq!(ours.digests, theirs.digests, "{shape}");
            assert_eq!(ours.leaves, theirs.leaves, "{shape}");
        }
    }
}
