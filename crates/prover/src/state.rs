//! The rollup state: accounts, their leaf encoding and the sparse Merkle tree that commits to them.
//!
//! Encoding, shared by the native code here and the circuits in `circuits`:
//! - an address is 20 bytes, read as five big-endian `u32` limbs;
//! - a balance (`u128`) is four `u32` limbs and a nonce (`u64`) two, least significant first;
//! - an account's leaf position is the low `depth` bits of the first element of
//!   `Poseidon(address limbs)`; two accounts of one state on the same position make it invalid;
//! - an empty account (balance 0, nonce 0) is the zero digest, so that empty subtrees have fixed
//!   hashes; any other account is `Poseidon(address limbs ‖ balance limbs ‖ nonce limbs)`;
//! - a parent is `Poseidon` two-to-one compression of its left and right children; bit `i` of the
//!   position says whether the node on level `i` is a right child.

use std::collections::HashMap;
use std::fmt;

use plonky2::field::types::{Field, PrimeField64};
use plonky2::hash::hash_types::HashOut;
use plonky2::hash::hashing::hash_n_to_hash_no_pad;
use plonky2::hash::poseidon::{PoseidonHash, PoseidonPermutation};
use plonky2::plonk::config::Hasher;

use crate::F;

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The five big-endian `u32` limbs the circuits work with.
    pub fn limbs(&self) -> [u32; 5] {
        std::array::from_fn(|i| u32::from_be_bytes(self.0[4 * i..4 * i + 4].try_into().unwrap()))
    }

    pub fn field_limbs(&self) -> [F; 5] {
        self.limbs().map(F::from_canonical_u32)
    }

    /// The leaf position of this address in a tree of the given depth.
    pub fn position(&self, depth: usize) -> u64 {
        let h = hash_n_to_hash_no_pad::<F, PoseidonPermutation<F>>(&self.field_limbs());
        debug_assert!(depth <= 32, "Params::validate keeps the depth at most 32");
        h.elements[0].to_canonical_u64() & ((1u64 << depth) - 1)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The balance and nonce of one account.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    pub balance: u128,
    pub nonce: u64,
}

impl Account {
    pub fn is_empty(&self) -> bool {
        self.balance == 0 && self.nonce == 0
    }
}

pub fn u128_limbs(x: u128) -> [F; 4] {
    std::array::from_fn(|i| F::from_canonical_u32((x >> (32 * i)) as u32))
}

pub fn u64_limbs(x: u64) -> [F; 2] {
    std::array::from_fn(|i| F::from_canonical_u32((x >> (32 * i)) as u32))
}

pub type Digest = HashOut<F>;

pub fn zero_digest() -> Digest {
    HashOut { elements: [F::ZERO; 4] }
}

/// The leaf of an account at `address`.
pub fn leaf_hash(address: &Address, account: &Account) -> Digest {
    if account.is_empty() {
        return zero_digest();
    }
    let mut input = Vec::with_capacity(11);
    input.extend(address.field_limbs());
    input.extend(u128_limbs(account.balance));
    input.extend(u64_limbs(account.nonce));
    hash_n_to_hash_no_pad::<F, PoseidonPermutation<F>>(&input)
}

/// One step of a Merkle path: the parent of `node` and `sibling`, `node` being the right child when
/// `is_right` is set.
pub fn parent(node: Digest, sibling: Digest, is_right: bool) -> Digest {
    if is_right {
        PoseidonHash::two_to_one(sibling, node)
    } else {
        PoseidonHash::two_to_one(node, sibling)
    }
}

/// The root reached from `leaf` at `position` through `siblings` (leaf level first).
pub fn root_from_path(leaf: Digest, position: u64, siblings: &[Digest]) -> Digest {
    siblings
        .iter()
        .enumerate()
        .fold(leaf, |node, (level, sibling)| parent(node, *sibling, (position >> level) & 1 == 1))
}

/// A sparse Merkle tree that keeps only the nodes that differ from an empty subtree.
#[derive(Clone)]
pub struct SparseMerkleTree {
    depth: usize,
    /// `empty[l]` is the root of an empty subtree of height `l`.
    empty: Vec<Digest>,
    /// Non-empty nodes by (level, index); level 0 holds the leaves.
    nodes: HashMap<(usize, u64), Digest>,
}

impl SparseMerkleTree {
    pub fn new(depth: usize) -> Self {
        let mut empty = vec![zero_digest()];
        for l in 0..depth {
            empty.push(PoseidonHash::two_to_one(empty[l], empty[l]));
        }
        Self { depth, empty, nodes: HashMap::new() }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn root(&self) -> Digest {
        self.node(self.depth, 0)
    }

    fn node(&self, level: usize, index: u64) -> Digest {
        self.nodes.get(&(level, index)).copied().unwrap_or(self.empty[level])
    }

    /// The siblings of the leaf at `position`, leaf level first.
    pub fn path(&self, position: u64) -> Vec<Digest> {
        (0..self.depth).map(|l| self.node(l, (position >> l) ^ 1)).collect()
    }

    pub fn set(&mut self, position: u64, leaf: Digest) {
        let mut node = leaf;
        let mut index = position;
        for level in 0..=self.depth {
            if node == self.empty[level] {
                self.nodes.remove(&(level, index));
            } else {
                self.nodes.insert((level, index), node);
            }
            if level == self.depth {
                break;
            }
            node = parent(node, self.node(level, index ^ 1), index & 1 == 1);
            index >>= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(b: u8) -> Address {
        let mut a = [0u8; 20];
        a[0] = b;
        a[19] = b.wrapping_mul(7);
        Address(a)
    }

    #[test]
    fn empty_tree_root_is_the_empty_subtree_hash() {
        let t = SparseMerkleTree::new(8);
        let mut h = zero_digest();
        for _ in 0..8 {
            h = PoseidonHash::two_to_one(h, h);
        }
        assert_eq!(t.root(), h);
    }

    #[test]
    fn paths_recompute_the_root_after_updates() {
        let mut t = SparseMerkleTree::new(16);
        for i in 0..50u8 {
            let a = addr(i);
            let leaf = leaf_hash(&a, &Account { balance: 1000 + i as u128, nonce: i as u64 });
            t.set(a.position(16), leaf);
        }
        for i in 0..50u8 {
            let a = addr(i);
            let pos = a.position(16);
            let leaf = leaf_hash(&a, &Account { balance: 1000 + i as u128, nonce: i as u64 });
            assert_eq!(root_from_path(leaf, pos, &t.path(pos)), t.root());
        }
    }

    #[test]
    fn emptying_every_leaf_restores_the_empty_root() {
        let mut t = SparseMerkleTree::new(12);
        let empty_root = t.root();
        for i in 0..20u8 {
            let a = addr(i);
            t.set(a.position(12), leaf_hash(&a, &Account { balance: 5, nonce: 0 }));
        }
        assert_ne!(t.root(), empty_root);
        for i in 0..20u8 {
            t.set(addr(i).position(12), zero_digest());
        }
        assert_eq!(t.root(), empty_root);
        assert!(t.nodes.is_empty(), "an empty tree keeps no nodes");
    }

    #[test]
    fn leaf_commits_to_address_balance_and_nonce() {
        let a = addr(1);
        let base = leaf_hash(&a, &Account { balance: 10, nonce: 1 });
        assert_ne!(base, leaf_hash(&addr(2), &Account { balance: 10, nonce: 1 }));
        assert_ne!(base, leaf_hash(&a, &Account { balance: 11, nonce: 1 }));
        assert_ne!(base, leaf_hash(&a, &Account { balance: 10, nonce: 2 }));
        assert_eq!(leaf_hash(&a, &Account::default()), zero_digest());
    }

    #[test]
    fn limbs_are_little_endian_u32() {
        let l = u128_limbs((7u128 << 96) | (3u128 << 32) | 9);
        assert_eq!(l.map(|x| x.to_canonical_u64()), [9, 3, 0, 7]);
        assert_eq!(addr(0x12).limbs()[0], 0x1200_0000);
    }
}
