//! The `basic` circuit: one chunk of transactions applied to the state tree.
//!
//! Each of the `chunk_size` slots proves one transfer: the sender's leaf is in the tree, its nonce
//! matches, its balance covers the value; the debited sender gives an intermediate root; the
//! receiver's leaf is in that tree, its credited balance does not overflow; the credited receiver
//! gives the next root. A slot whose `active` flag is off changes nothing, which pads the last
//! chunk. Only new balances and nonces and the transaction fields are range checked: every other
//! limb is hashed into a leaf that was written by this circuit or by the trusted pre-state.

use plonky2::field::types::Field;
use plonky2::fri::reduction_strategies::FriReductionStrategy;
use plonky2::fri::FriConfig;
use plonky2::hash::hash_types::HashOutTarget;
use plonky2::hash::hashing::PlonkyPermutation;
use plonky2::hash::poseidon::PoseidonHash;
use plonky2::iop::target::{BoolTarget, Target};
use plonky2::iop::witness::{PartialWitness, WitnessWrite};
use plonky2::plonk::circuit_builder::CircuitBuilder;
use plonky2::plonk::circuit_data::{CircuitConfig, CircuitData};
use plonky2::plonk::config::AlgebraicHasher;
use plonky2::plonk::proof::ProofWithPublicInputs;
use plonky2::util::serialization::{Buffer, IoResult, Read, Write};

use super::cache::Cached;
use super::{register_chunk_public, ChunkPublicTargets};
use crate::execute::{from_hash4, ChunkWitness};
use crate::params::Params;
use crate::state::{u128_limbs, u64_limbs, Address};
use crate::{C, D, F};

struct SlotTargets {
    active: BoolTarget,
    from: [Target; 5],
    to: [Target; 5],
    value: [Target; 4],
    nonce: [Target; 2],
    sender_balance: [Target; 4],
    sender_path: Vec<HashOutTarget>,
    receiver_balance: [Target; 4],
    receiver_nonce: [Target; 2],
    receiver_path: Vec<HashOutTarget>,
}

pub struct BasicCircuit {
    pub data: CircuitData<F, C, D>,
    root_before: HashOutTarget,
    commit_before: HashOutTarget,
    slots: Vec<SlotTargets>,
}

fn virtual_array<const N: usize>(b: &mut CircuitBuilder<F, D>) -> [Target; N] {
    std::array::from_fn(|_| b.add_virtual_target())
}

/// `x` and its limbs are now known to be below 2^32.
fn range_check_all(b: &mut CircuitBuilder<F, D>, limbs: &[Target]) {
    for &l in limbs {
        b.range_check(l, 32);
    }
}

/// `t = low + 2^32·high` for a `t` below 2^33, in one row: the 33 bits of `t` (one `BaseSumGate`)
/// make `low` a 32-bit value and `high` a bit. `split_low_high` takes two rows for the same, one
/// range check for each part; a transfer has ten such splits.
fn split_u32_carry(b: &mut CircuitBuilder<F, D>, t: Target) -> (Target, BoolTarget) {
    let bits = b.split_le(t, 33);
    let high = bits[32];
    let low = b.mul_const_add(-F::from_canonical_u64(1 << 32), high.target, t);
    (low, high)
}

/// Limb-wise `a - b`; returns the difference and whether it underflowed.
fn sub_u32_limbs<const N: usize>(
    b: &mut CircuitBuilder<F, D>,
    x: [Target; N],
    y: [Target; N],
) -> ([Target; N], Target) {
    let two32 = b.constant(F::from_canonical_u64(1 << 32));
    let one = b.one();
    let mut borrow = b.zero();
    let out = std::array::from_fn(|i| {
        // t = x + 2^32 - y - borrow lies in [0, 2^33): its bit 32 is "no borrow".
        let t = b.add(x[i], two32);
        let t = b.sub(t, y[i]);
        let t = b.sub(t, borrow);
        let (low, no_borrow) = split_u32_carry(b, t);
        borrow = b.sub(one, no_borrow.target);
        low
    });
    (out, borrow)
}

/// Limb-wise `a + b`; returns the sum and the carry out of the top limb.
fn add_u32_limbs<const N: usize>(
    b: &mut CircuitBuilder<F, D>,
    x: [Target; N],
    y: [Target; N],
) -> ([Target; N], Target) {
    let mut carry = b.zero();
    let out = std::array::from_fn(|i| {
        let t = b.add(x[i], y[i]);
        let t = b.add(t, carry);
        let (low, high) = split_u32_carry(b, t);
        carry = high.target;
        low
    });
    (out, carry)
}

/// `active * x == 0`: the constraint holds only for active slots.
fn assert_zero_if(b: &mut CircuitBuilder<F, D>, active: BoolTarget, x: Target) {
    let gated = b.mul(active.target, x);
    b.assert_zero(gated);
}

fn assert_hash_eq_if(b: &mut CircuitBuilder<F, D>, active: BoolTarget, x: HashOutTarget, y: HashOutTarget) {
    for i in 0..4 {
        let diff = b.sub(x.elements[i], y.elements[i]);
        assert_zero_if(b, active, diff);
    }
}

pub(super) fn select_hash(
    b: &mut CircuitBuilder<F, D>,
    cond: BoolTarget,
    x: HashOutTarget,
    y: HashOutTarget,
) -> HashOutTarget {
    HashOutTarget { elements: std::array::from_fn(|i| b.select(cond, x.elements[i], y.elements[i])) }
}

/// The position bits (leaf level first) of an address, as `Address::position` defines them.
fn position_bits(b: &mut CircuitBuilder<F, D>, address: [Target; 5], depth: usize) -> Vec<BoolTarget> {
    let h = b.hash_n_to_hash_no_pad::<PoseidonHash>(address.to_vec());
    let (low, high) = b.split_low_high(h.elements[0], depth, 64);
    // `low + high·2^depth` may also decompose `h + p` when that stays below 2^64, which would give
    // one address two positions. Only the largest `high` can do that: rule out the non-canonical
    // sums it allows (all of them below depth 32; every nonzero `low` at depth 32).
    debug_assert!(depth <= 32, "Params::validate keeps the depth at most 32");
    let max_high = b.constant(F::from_canonical_u64((1u64 << (64 - depth)) - 1));
    let is_max = b.is_equal(high, max_high);
    let forbidden = if depth < 32 { b.add_const(low, F::ONE) } else { low };
    let violation = b.mul(is_max.target, forbidden);
    b.assert_zero(violation);
    b.split_le(low, depth)
}

/// The leaf of an account, as `state::leaf_hash` defines it.
fn leaf(b: &mut CircuitBuilder<F, D>, address: [Target; 5], balance: [Target; 4], nonce: [Target; 2]) -> HashOutTarget {
    let mut input = address.to_vec();
    input.extend(balance);
    input.extend(nonce);
    let hashed = b.hash_n_to_hash_no_pad::<PoseidonHash>(input);
    let sum = balance.iter().chain(nonce.iter()).fold(b.zero(), |acc, &l| b.add(acc, l));
    // Limbs are below 2^32, so their sum is zero only when all of them are.
    let zero = b.zero();
    let is_empty = b.is_equal(sum, zero);
    let zero_hash = HashOutTarget { elements: [zero; 4] };
    select_hash(b, is_empty, zero_hash, hashed)
}

/// The root reached from `leaf` along `path`, one Poseidon row per level.
fn merkle_root(b: &mut CircuitBuilder<F, D>, leaf: HashOutTarget, bits: &[BoolTarget], path: &[HashOutTarget]) -> HashOutTarget {
    let zero = b.zero();
    let mut node = leaf;
    for (bit, sibling) in bits.iter().zip(path) {
        // Two-to-one compression: node and sibling in the rate, a zero capacity.
        let mut state = <PoseidonHash as AlgebraicHasher<F>>::AlgebraicPermutation::new(std::iter::repeat(zero));
        state.set_from_slice(&node.elements, 0);
        state.set_from_slice(&sibling.elements, 4);
        let out = PoseidonHash::permute_swapped(state, *bit, b);
        node = HashOutTarget { elements: out.squeeze()[..4].try_into().unwrap() };
    }
    node
}

/// The standard recursion configuration, except that FRI stops folding at a final polynomial of
/// up to 2^6 coefficients instead of 2^5. At the default parameters (2^14 rows) that saves one
/// folding layer, and so one Merkle path and one coset interpolation per query, in the circuit
/// that verifies the proof: two such verifications then fit the 2^13 rows of a level 1 aggregate
/// (8,016 gates, against 8,361 with the standard folding). Soundness does not depend on the final
/// polynomial's size: it is set by the rate, the number of queries and the proof of work.
pub fn basic_config() -> CircuitConfig {
    let standard = CircuitConfig::standard_recursion_config();
    CircuitConfig {
        fri_config: FriConfig { reduction_strategy: FriReductionStrategy::ConstantArityBits(4, 6), ..standard.fri_config.clone() },
        ..standard
    }
}

/// What `define` leaves for `prove` to fill in.
struct Inputs {
    root_before: HashOutTarget,
    commit_before: HashOutTarget,
    slots: Vec<SlotTargets>,
}

impl BasicCircuit {
    pub fn build(params: &Params) -> Self {
        let mut b = CircuitBuilder::<F, D>::new(basic_config());
        let Inputs { root_before, commit_before, slots } = Self::define(&mut b, params);
        let data = b.build::<C>();
        Self { data, root_before, commit_before, slots }
    }

    /// Gates the circuit has at `params` before `build` adds its own (public input hashing,
    /// constants) and pads to a power of two: a first estimate of whether a chunk size fits its
    /// rows. Only a build tells for sure (`examples/basic_rows.rs --build`).
    pub fn gate_count(params: &Params) -> usize {
        let mut b = CircuitBuilder::<F, D>::new(basic_config());
        Self::define(&mut b, params);
        b.num_gates()
    }

    fn define(b: &mut CircuitBuilder<F, D>, params: &Params) -> Inputs {
        let depth = params.tree_depth;
        let root_before = b.add_virtual_hash();
        let commit_before = b.add_virtual_hash();
        let mut root = root_before;
        let mut commit = commit_before;
        let mut count = b.zero();
        let mut slots = Vec::with_capacity(params.chunk_size);

        for _ in 0..params.chunk_size {
            let s = SlotTargets {
                active: b.add_virtual_bool_target_safe(),
                from: virtual_array(b),
                to: virtual_array(b),
                value: virtual_array(b),
                nonce: virtual_array(b),
                sender_balance: virtual_array(b),
                sender_path: (0..depth).map(|_| b.add_virtual_hash()).collect(),
                receiver_balance: virtual_array(b),
                receiver_nonce: virtual_array(b),
                receiver_path: (0..depth).map(|_| b.add_virtual_hash()).collect(),
            };
            range_check_all(b, &s.from);
            range_check_all(b, &s.to);
            range_check_all(b, &s.value);
            let from_bits = position_bits(b, s.from, depth);
            let to_bits = position_bits(b, s.to, depth);

            // Sender: present in the current tree with the transaction's nonce.
            let sender_leaf = leaf(b, s.from, s.sender_balance, s.nonce);
            let computed = merkle_root(b, sender_leaf, &from_bits, &s.sender_path);
            assert_hash_eq_if(b, s.active, computed, root);

            // Debit: no borrow out of the balance, no carry out of the nonce.
            let (debited, borrow) = sub_u32_limbs(b, s.sender_balance, s.value);
            assert_zero_if(b, s.active, borrow);
            let one = b.one();
            let zero = b.zero();
            let (next_nonce, nonce_carry) = add_u32_limbs(b, s.nonce, [one, zero]);
            assert_zero_if(b, s.active, nonce_carry);
            let debited_leaf = leaf(b, s.from, debited, next_nonce);
            let mid_root = merkle_root(b, debited_leaf, &from_bits, &s.sender_path);

            // Receiver: present in the intermediate tree, credited without overflow.
            let receiver_leaf = leaf(b, s.to, s.receiver_balance, s.receiver_nonce);
            let computed = merkle_root(b, receiver_leaf, &to_bits, &s.receiver_path);
            assert_hash_eq_if(b, s.active, computed, mid_root);
            let (credited, carry) = add_u32_limbs(b, s.receiver_balance, s.value);
            assert_zero_if(b, s.active, carry);
            let credited_leaf = leaf(b, s.to, credited, s.receiver_nonce);
            let new_root = merkle_root(b, credited_leaf, &to_bits, &s.receiver_path);

            let mut tx = commit.elements.to_vec();
            tx.extend(s.from);
            tx.extend(s.to);
            tx.extend(s.value);
            tx.extend(s.nonce);
            let new_commit = b.hash_n_to_hash_no_pad::<PoseidonHash>(tx);

            root = select_hash(b, s.active, new_root, root);
            commit = select_hash(b, s.active, new_commit, commit);
            count = b.add(count, s.active.target);
            slots.push(s);
        }

        register_chunk_public(
            b,
            &ChunkPublicTargets { root_before, root_after: root, commit_before, commit_after: commit, count },
        );
        Inputs { root_before, commit_before, slots }
    }

    pub fn prove(&self, chunk: &ChunkWitness) -> anyhow::Result<ProofWithPublicInputs<F, C, D>> {
        let mut pw = PartialWitness::new();
        pw.set_hash_target(self.root_before, from_hash4(chunk.root_before))?;
        pw.set_hash_target(self.commit_before, from_hash4(chunk.commit_before))?;
        anyhow::ensure!(chunk.txs.len() <= self.slots.len(), "chunk has more transactions than slots");
        for (i, s) in self.slots.iter().enumerate() {
            let Some(tx) = chunk.txs.get(i) else {
                // Inactive slot: every value zero, every constraint switched off.
                pw.set_bool_target(s.active, false)?;
                let zero_targets = s.from.iter().chain(&s.to).chain(&s.value).chain(&s.nonce)
                    .chain(&s.sender_balance).chain(&s.receiver_balance).chain(&s.receiver_nonce);
                for &t in zero_targets {
                    pw.set_target(t, F::ZERO)?;
                }
                for h in s.sender_path.iter().chain(&s.receiver_path) {
                    pw.set_hash_target(*h, from_hash4([0; 4]))?;
                }
                continue;
            };
            pw.set_bool_target(s.active, true)?;
            pw.set_target_arr(&s.from, &Address(tx.from).field_limbs())?;
            pw.set_target_arr(&s.to, &Address(tx.to).field_limbs())?;
            pw.set_target_arr(&s.value, &u128_limbs(tx.value))?;
            pw.set_target_arr(&s.nonce, &u64_limbs(tx.nonce))?;
            pw.set_target_arr(&s.sender_balance, &u128_limbs(tx.sender_balance))?;
            pw.set_target_arr(&s.receiver_balance, &u128_limbs(tx.receiver_balance))?;
            pw.set_target_arr(&s.receiver_nonce, &u64_limbs(tx.receiver_nonce))?;
            anyhow::ensure!(
                tx.sender_path.len() == s.sender_path.len() && tx.receiver_path.len() == s.receiver_path.len(),
                "transaction {} has paths of the wrong depth",
                chunk.first_tx + i
            );
            for (t, h) in s.sender_path.iter().zip(&tx.sender_path) {
                pw.set_hash_target(*t, from_hash4(*h))?;
            }
            for (t, h) in s.receiver_path.iter().zip(&tx.receiver_path) {
                pw.set_hash_target(*t, from_hash4(*h))?;
            }
        }
        self.data.prove(pw)
    }
}

impl Cached for BasicCircuit {
    fn data(&self) -> &CircuitData<F, C, D> {
        &self.data
    }

    fn write_targets(&self, out: &mut Vec<u8>) -> IoResult<()> {
        out.write_target_hash(&self.root_before)?;
        out.write_target_hash(&self.commit_before)?;
        out.write_usize(self.slots.len())?;
        for s in &self.slots {
            out.write_target_bool(s.active)?;
            out.write_target_array(&s.from)?;
            out.write_target_array(&s.to)?;
            out.write_target_array(&s.value)?;
            out.write_target_array(&s.nonce)?;
            out.write_target_array(&s.sender_balance)?;
            write_hashes(out, &s.sender_path)?;
            out.write_target_array(&s.receiver_balance)?;
            out.write_target_array(&s.receiver_nonce)?;
            write_hashes(out, &s.receiver_path)?;
        }
        Ok(())
    }

    fn read_targets(data: CircuitData<F, C, D>, buf: &mut Buffer) -> IoResult<Self> {
        let root_before = buf.read_target_hash()?;
        let commit_before = buf.read_target_hash()?;
        let n = buf.read_usize()?;
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            slots.push(SlotTargets {
                active: buf.read_target_bool()?,
                from: buf.read_target_array()?,
                to: buf.read_target_array()?,
                value: buf.read_target_array()?,
                nonce: buf.read_target_array()?,
                sender_balance: buf.read_target_array()?,
                sender_path: read_hashes(buf)?,
                receiver_balance: buf.read_target_array()?,
                receiver_nonce: buf.read_target_array()?,
                receiver_path: read_hashes(buf)?,
            });
        }
        Ok(Self { data, root_before, commit_before, slots })
    }
}

fn write_hashes(out: &mut Vec<u8>, hashes: &[HashOutTarget]) -> IoResult<()> {
    out.write_usize(hashes.len())?;
    hashes.iter().try_for_each(|h| out.write_target_hash(h))
}

fn read_hashes(buf: &mut Buffer) -> IoResult<Vec<HashOutTarget>> {
    let n = buf.read_usize()?;
    (0..n).map(|_| buf.read_target_hash()).collect()
}
