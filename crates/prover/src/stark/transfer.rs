//! The transfer AIR: one chunk of transfers applied to the state tree, as a starky STARK.
//!
//! It proves the statement of a `basic` task: starting from `root_before` and `commit_before`,
//! `count` valid transfers lead to `root_after` and `commit_after` (the public values, in the
//! layout of [`crate::circuits::ChunkPublicTargets`]).
//!
//! ## Rows
//! Every row computes two Poseidon permutations side by side (lanes A and B, see
//! [`super::poseidon`]) plus a few bookkeeping columns. Two lanes because every Merkle path is
//! walked twice with the same siblings and direction bits (the leaf before and after the update):
//! in one row, the constraint that both use the same sibling is local. A transfer takes
//! `2·depth + 8` consecutive rows, in this order (the kind of a row is a one-hot flag):
//!
//! | rows | kind | lane A | lane B |
//! |---|---|---|---|
//! | 1 | `ADDR` | `Poseidon(from)`: the sender's position | `Poseidon(to)` |
//! | 3 | `COM1..3` | the transaction commitment sponge | unused |
//! | 2 | `LEAF1, LEAF2` | the sender's leaf before | the sender's leaf after the debit |
//! | depth | `PATH` | the sender's path before: ends at `root` | after: gives `mid` |
//! | 2 | `LEAF1, LEAF2` | the receiver's leaf in `mid` | the credited leaf |
//! | depth | `PATH` | the receiver's path before: ends at `mid` | after: the new `root` |
//!
//! Rows after the last transfer are padding (no kind flag) and copy the running values. The
//! first row is a transfer's first row or padding, the last row is padding, and each kind's
//! successor and predecessor are fixed by constraints, so a transfer is never cut short or
//! started in the middle. A path has exactly `depth` rows: `POW` doubles on each, must reach
//! `2^(depth-1)` on the last and differ from it on the others.
//!
//! ## Values
//! A transfer's fields, account states and results are registers: columns that keep their value
//! from a transfer's `ADDR` row to the next one. The arithmetic (debit with borrows, credit with
//! carries, nonce increment) is checked once, on the `ADDR` row. Every limb register, the halves
//! of both address hashes and the part of each position above `depth` bits are range checked to
//! 32 bits: the `ADDR` row loads them into a queue that shifts by three each row, and the three
//! front entries of every row are split into bytes that a lookup finds in a table of `0..=255`.
//! Unlike the plonky2 circuit, the balances and nonces read from the tree are range checked too:
//! its test "the six limbs sum to zero" only means "all zero" when each limb is below 2^32.

use plonky2::field::extension::FieldExtension;
use plonky2::field::packed::PackedField;
use plonky2::field::polynomial::PolynomialValues;
use plonky2::field::types::{Field, PrimeField64};
use plonky2::iop::ext_target::ExtensionTarget;
use plonky2::plonk::circuit_builder::CircuitBuilder;
use starky::constraint_consumer::{ConstraintConsumer, RecursiveConstraintConsumer};
use starky::evaluation_frame::{StarkEvaluationFrame, StarkFrame};
use starky::lookup::{Column, Filter, Lookup};
use starky::stark::Stark;

use super::algebra::{Algebra, Circuit, Native};
use super::poseidon::{self, LANE_COLS, WIDTH};
use crate::execute::{from_hash4, ChunkWitness, TxWitness};
pub use crate::params::rows_per_transfer;
use crate::state::{u128_limbs, u64_limbs, Address};
use crate::{D, F};

/// Column indices. Groups of limbs are given by their first column.
pub mod col {
    use super::LANE_COLS;

    pub const LANE_A: usize = 0;
    pub const LANE_B: usize = LANE_COLS;
    const K: usize = 2 * LANE_COLS;

    // Row kinds (one-hot; padding rows have none).
    pub const ADDR: usize = K;
    pub const COM1: usize = K + 1;
    pub const COM2: usize = K + 2;
    pub const COM3: usize = K + 3;
    pub const LEAF1: usize = K + 4;
    pub const LEAF2: usize = K + 5;
    pub const PATH: usize = K + 6;
    pub const KINDS: [usize; 7] = [ADDR, COM1, COM2, COM3, LEAF1, LEAF2, PATH];
    /// 0 in the sender's rows, 1 in the receiver's.
    pub const RCV: usize = K + 7;
    /// The last row of a path.
    pub const LAST: usize = K + 8;
    /// The direction bit of a path row: the node is the right child.
    pub const BIT: usize = K + 9;
    /// The position bits read so far on a path.
    pub const ACC: usize = K + 10;
    /// `2^level` on a path row.
    pub const POW: usize = K + 11;
    /// `1 / (POW - 2^(depth-1))` on path rows that are not the last.
    pub const POW_INV: usize = K + 12;
    /// Whether the leaf hashed in lane A (B) is the empty account, whose leaf is zero.
    pub const EMPTY_A: usize = K + 13;
    pub const EMPTY_B: usize = K + 14;

    // Running values, changed only where the AIR says.
    pub const ROOT: usize = K + 15;
    pub const COMMIT: usize = K + 19;
    /// The root after the debit, before the credit.
    pub const MID: usize = K + 23;
    pub const COUNT: usize = K + 27;

    // Carries of the `ADDR` row's arithmetic.
    pub const NO_BORROW: usize = K + 28;
    pub const CARRY: usize = K + 32;
    pub const NONCE_CARRY: usize = K + 36;

    // Registers: constant from one `ADDR` row to the next. The first 40 are range checked as
    // they are, in this order.
    pub const REG: usize = K + 37;
    pub const FROM: usize = REG;
    pub const TO: usize = REG + 5;
    pub const VALUE: usize = REG + 10;
    pub const NONCE: usize = REG + 14;
    pub const SENDER_BALANCE: usize = REG + 16;
    pub const RECEIVER_BALANCE: usize = REG + 20;
    pub const RECEIVER_NONCE: usize = REG + 24;
    pub const DEBITED: usize = REG + 26;
    pub const NEXT_NONCE: usize = REG + 30;
    pub const CREDITED: usize = REG + 32;
    /// Low and high 32 bits of the first element of `Poseidon(from)` and of `Poseidon(to)`.
    pub const FROM_HASH: usize = REG + 36;
    pub const TO_HASH: usize = REG + 38;
    /// The low 32 bits of each address hash above the position's `depth` bits.
    pub const FROM_REST: usize = REG + 40;
    pub const TO_REST: usize = REG + 41;
    /// `1 / (high - (2^32 - 1))` when the high half is not all ones.
    pub const FROM_HASH_INV: usize = REG + 42;
    pub const TO_HASH_INV: usize = REG + 43;
    /// Emptiness of the sender before, the receiver before and the receiver after, with the
    /// inverse of the limb sum that shows a non-empty one is not empty.
    pub const EMPTY_SENDER: usize = REG + 44;
    pub const EMPTY_RECEIVER: usize = REG + 46;
    pub const EMPTY_CREDITED: usize = REG + 48;
    pub const REG_END: usize = REG + 50;

    pub const QUEUE: usize = REG_END;
    pub const QUEUE_LEN: usize = 44;
    /// Entries of the queue checked on each row.
    pub const CHECKED: usize = 3;
    pub const BYTES: usize = QUEUE + QUEUE_LEN;
    pub const TABLE: usize = BYTES + 4 * CHECKED;
    pub const FREQ: usize = TABLE + 1;
    pub const COLS: usize = FREQ + 1;
}

pub const COLUMNS: usize = col::COLS;
/// Roots before and after (4 each), transaction commitments before and after (4 each), count.
pub const PUBLIC_INPUTS: usize = 17;

/// The trace height for chunks of `chunk_size` transfers: a power of two with room for a
/// padding row and for the byte table.
pub fn trace_rows(chunk_size: usize, depth: usize) -> usize {
    (chunk_size * rows_per_transfer(depth) + 1).next_power_of_two().max(256)
}

/// The transfer AIR for a state tree of `depth` levels.
#[derive(Clone, Copy, Debug)]
pub struct TransferStark {
    pub depth: usize,
}

fn two_pow(n: usize) -> F {
    F::from_canonical_u64(1u64 << n)
}

const TWO_32: u64 = 1 << 32;

impl TransferStark {
    fn constraints<A: Algebra>(&self, a: &mut A, lv: &[A::E], nv: &[A::E], pis: &[A::E]) {
        use col::*;
        let d = self.depth;
        let two32 = F::from_canonical_u64(TWO_32);

        // The permutations, unconditionally: every row's lanes are valid permutations.
        let out_a = a.poseidon(&lv[LANE_A..LANE_B]);
        let out_b = a.poseidon(&lv[LANE_B..LANE_B + LANE_COLS]);
        let in_a = &lv[LANE_A..LANE_A + WIDTH];
        let in_b = &lv[LANE_B..LANE_B + WIDTH];
        let n_in_a = &nv[LANE_A..LANE_A + WIDTH];
        let n_in_b = &nv[LANE_B..LANE_B + WIDTH];

        // --- Row kinds and their order.
        for c in KINDS
            .into_iter()
            .chain([RCV, LAST, BIT, NONCE_CARRY])
            .chain(NO_BORROW..NO_BORROW + 4)
            .chain(CARRY..CARRY + 4)
        {
            let not = a.not(lv[c]);
            let b = a.mul(lv[c], not);
            a.on_all(b);
        }
        let kinds: Vec<A::E> = KINDS.iter().map(|&c| lv[c]).collect();
        let any = a.sum(&kinds);
        let not_any = a.not(any);
        let b = a.mul(any, not_any);
        a.on_all(b);
        let first_ok = a.sub(any, lv[ADDR]);
        a.on_first(first_ok);
        a.on_last(any);

        let path = lv[PATH];
        let last = lv[LAST];
        let rcv = lv[RCV];
        let n = |c: usize| nv[c];
        // LAST marks exactly the path rows followed by a row that is not a path row.
        let not_path = a.not(path);
        let c = a.mul(last, not_path);
        a.on_all(c);
        let np = n(PATH);
        let path_then_path = a.mul(path, np);
        let c = a.sub(last, path);
        let c = a.add(c, path_then_path);
        a.on_transition(c);
        // `inner` is a path row that is not a path's last.
        let inner = a.sub(path, last);
        let not_rcv = a.not(rcv);
        let sender_exit = a.mul(last, not_rcv);
        let receiver_exit = a.mul(last, rcv);

        // Successors.
        let succ: [(A::E, usize); 6] = [
            (lv[ADDR], COM1),
            (lv[COM1], COM2),
            (lv[COM2], COM3),
            (lv[COM3], LEAF1),
            (lv[LEAF1], LEAF2),
            (lv[LEAF2], PATH),
        ];
        for (kind, next_kind) in succ {
            let missing = a.not(n(next_kind));
            let c = a.mul(kind, missing);
            a.on_transition(c);
        }
        let missing = a.not(np);
        let c = a.mul(inner, missing);
        a.on_transition(c);
        let missing = a.not(n(LEAF1));
        let c = a.mul(sender_exit, missing);
        a.on_transition(c);
        // After the receiver's path: a new transfer or padding.
        let busy: Vec<A::E> = [COM1, COM2, COM3, LEAF1, LEAF2, PATH].iter().map(|&c| nv[c]).collect();
        let busy = a.sum(&busy);
        let c = a.mul(receiver_exit, busy);
        a.on_transition(c);
        // The side (sender or receiver) starts at 0 after the commitment, turns to 1 after the
        // sender's path and stays within leaves and paths.
        let c = a.mul(lv[COM3], n(RCV));
        a.on_transition(c);
        let n_not_rcv = a.not(n(RCV));
        let c = a.mul(sender_exit, n_not_rcv);
        a.on_transition(c);
        let rcv_step = a.sub(n(RCV), rcv);
        for keeps in [lv[LEAF1], lv[LEAF2], inner] {
            let c = a.mul(keeps, rcv_step);
            a.on_transition(c);
        }
        // Predecessors.
        let pred: [(usize, A::E); 4] = [(COM1, lv[ADDR]), (COM2, lv[COM1]), (COM3, lv[COM2]), (LEAF2, lv[LEAF1])];
        for (next_kind, kind) in pred {
            let wrong = a.not(kind);
            let c = a.mul(n(next_kind), wrong);
            a.on_transition(c);
        }
        let from_com = a.add(lv[COM3], sender_exit);
        let wrong = a.not(from_com);
        let c = a.mul(n(LEAF1), wrong);
        a.on_transition(c);
        let from_leaf = a.add(lv[LEAF2], inner);
        let wrong = a.not(from_leaf);
        let c = a.mul(np, wrong);
        a.on_transition(c);

        // --- Registers keep their value until the next transfer starts.
        let n_not_addr = a.not(n(ADDR));
        for c in REG..REG_END {
            let step = a.sub(nv[c], lv[c]);
            let c = a.mul(n_not_addr, step);
            a.on_transition(c);
        }

        // --- Arithmetic, on the ADDR row.
        let addr = lv[ADDR];
        let mut borrow = None::<A::E>;
        for i in 0..4 {
            // balance + 2^32 - value - borrow = debited + 2^32·no_borrow
            let t = a.add_const(lv[SENDER_BALANCE + i], two32);
            let t = a.sub(t, lv[VALUE + i]);
            let t = match borrow {
                Some(b) => a.sub(t, b),
                None => t,
            };
            let hi = a.scale(two32, lv[NO_BORROW + i]);
            let r = a.add(lv[DEBITED + i], hi);
            let diff = a.sub(t, r);
            let c = a.mul(addr, diff);
            a.on_all(c);
            borrow = Some(a.not(lv[NO_BORROW + i]));
        }
        let c = a.mul(addr, borrow.expect("four limbs"));
        a.on_all(c);
        let mut carry = None::<A::E>;
        for i in 0..4 {
            let t = a.add(lv[RECEIVER_BALANCE + i], lv[VALUE + i]);
            let t = match carry {
                Some(k) => a.add(t, k),
                None => t,
            };
            let hi = a.scale(two32, lv[CARRY + i]);
            let r = a.add(lv[CREDITED + i], hi);
            let diff = a.sub(t, r);
            let c = a.mul(addr, diff);
            a.on_all(c);
            carry = Some(lv[CARRY + i]);
        }
        let c = a.mul(addr, carry.expect("four limbs"));
        a.on_all(c);
        let t = a.add_const(lv[NONCE], F::ONE);
        let hi = a.scale(two32, lv[NONCE_CARRY]);
        let r = a.add(lv[NEXT_NONCE], hi);
        let diff = a.sub(t, r);
        let c = a.mul(addr, diff);
        a.on_all(c);
        let t = a.add(lv[NONCE + 1], lv[NONCE_CARRY]);
        let diff = a.sub(t, lv[NEXT_NONCE + 1]);
        let c = a.mul(addr, diff);
        a.on_all(c);

        // --- Emptiness: e·S = 0 and (1 - e)·(S·inv - 1) = 0 make e = [S == 0]; S sums limbs
        // below 2^32, so it is zero only when all of them are.
        let accounts: [(usize, usize, usize); 3] = [
            (EMPTY_SENDER, SENDER_BALANCE, NONCE),
            (EMPTY_RECEIVER, RECEIVER_BALANCE, RECEIVER_NONCE),
            (EMPTY_CREDITED, CREDITED, RECEIVER_NONCE),
        ];
        for (e, balance, nonce) in accounts {
            let limbs = [lv[balance], lv[balance + 1], lv[balance + 2], lv[balance + 3], lv[nonce], lv[nonce + 1]];
            let s = a.sum(&limbs);
            let c = a.mul(lv[e], s);
            a.on_all(c);
            let si = a.mul(s, lv[e + 1]);
            let si = a.add_const(si, -F::ONE);
            let ne = a.not(lv[e]);
            let c = a.mul(ne, si);
            a.on_all(c);
        }
        let e = a.select(rcv, lv[EMPTY_SENDER], lv[EMPTY_RECEIVER]);
        let c = a.sub(lv[EMPTY_A], e);
        a.on_all(c);
        let e = a.mul(rcv, lv[EMPTY_CREDITED]);
        let c = a.sub(lv[EMPTY_B], e);
        a.on_all(c);

        // --- Address hashes: canonical halves (high all ones forces low zero, as 2^64 - 2^32
        // plus anything is not below the field's order).
        let max = F::from_canonical_u64(TWO_32 - 1);
        for (h, inv) in [(FROM_HASH, FROM_HASH_INV), (TO_HASH, TO_HASH_INV)] {
            let off = a.add_const(lv[h + 1], -max);
            let t = a.mul(off, lv[inv]);
            let t = a.not(t);
            let c = a.mul(lv[h], t);
            a.on_all(c);
        }

        // --- ADDR: both address hashes.
        for (in_x, out_x, addr_col, h) in [(in_a, &out_a, FROM, FROM_HASH), (in_b, &out_b, TO, TO_HASH)] {
            for k in 0..WIDTH {
                let c = if k < 5 { a.sub(in_x[k], lv[addr_col + k]) } else { in_x[k] };
                let c = a.mul(addr, c);
                a.on_all(c);
            }
            let hi = a.scale(two32, lv[h + 1]);
            let joined = a.add(lv[h], hi);
            let diff = a.sub(out_x[0], joined);
            let c = a.mul(addr, diff);
            a.on_all(c);
        }

        // --- COM1..3: the commitment sponge over (commit, from, to, value, nonce).
        for k in 0..WIDTH {
            let want = match k {
                0..=3 => Some(lv[COMMIT + k]),
                4..=7 => Some(lv[FROM + k - 4]),
                _ => None,
            };
            let c = match want {
                Some(w) => a.sub(in_a[k], w),
                None => in_a[k],
            };
            let c = a.mul(lv[COM1], c);
            a.on_all(c);
        }
        for k in 0..WIDTH {
            let want = match k {
                0 => nv[FROM + 4],
                1..=5 => nv[TO + k - 1],
                6 | 7 => nv[VALUE + k - 6],
                _ => out_a[k],
            };
            let diff = a.sub(n_in_a[k], want);
            let c = a.mul(lv[COM1], diff);
            a.on_transition(c);
        }
        for k in 0..WIDTH {
            let want = match k {
                0 | 1 => nv[VALUE + 2 + k],
                2 | 3 => nv[NONCE + k - 2],
                _ => out_a[k],
            };
            let diff = a.sub(n_in_a[k], want);
            let c = a.mul(lv[COM2], diff);
            a.on_transition(c);
        }
        for k in 0..4 {
            let step = a.sub(out_a[k], lv[COMMIT + k]);
            let upd = a.mul(lv[COM3], step);
            let moved = a.sub(nv[COMMIT + k], lv[COMMIT + k]);
            let c = a.sub(moved, upd);
            a.on_transition(c);
        }

        // --- LEAF1, LEAF2: the leaves before (lane A) and after (lane B), 11 elements each.
        let leaf1 = lv[LEAF1];
        for k in 0..WIDTH {
            for (lane_in, after) in [(in_a, false), (in_b, true)] {
                let want = match k {
                    0..=4 => Some(a.select(rcv, lv[FROM + k], lv[TO + k])),
                    5..=7 => Some(leaf_balance(a, lv, rcv, after, k - 5)),
                    _ => None,
                };
                let c = match want {
                    Some(w) => a.sub(lane_in[k], w),
                    None => lane_in[k],
                };
                let c = a.mul(leaf1, c);
                a.on_all(c);
            }
        }
        for k in 0..WIDTH {
            for (n_in, out, after) in [(n_in_a, &out_a, false), (n_in_b, &out_b, true)] {
                let want = match k {
                    0 => leaf_balance(a, nv, n(RCV), after, 3),
                    1 | 2 => leaf_nonce(a, nv, n(RCV), after, k - 1),
                    _ => out[k],
                };
                let diff = a.sub(n_in[k], want);
                let c = a.mul(leaf1, diff);
                a.on_transition(c);
            }
        }

        // --- PATH rows: (node, sibling) or (sibling, node) by the bit, a zero capacity, the
        // same sibling in both lanes.
        let bit = lv[BIT];
        let n_bit = n(BIT);
        for k in 0..4 {
            let sib_a = a.select(bit, in_a[4 + k], in_a[k]);
            let sib_b = a.select(bit, in_b[4 + k], in_b[k]);
            let diff = a.sub(sib_a, sib_b);
            let c = a.mul(path, diff);
            a.on_all(c);
        }
        for k in 8..WIDTH {
            for lane_in in [in_a, in_b] {
                let c = a.mul(path, lane_in[k]);
                a.on_all(c);
            }
        }
        // The node of the next path row: the leaf (zero when empty) after LEAF2, the previous
        // row's output on the path.
        let leaf2 = lv[LEAF2];
        for (n_in, out, empty) in [(n_in_a, &out_a, lv[EMPTY_A]), (n_in_b, &out_b, lv[EMPTY_B])] {
            for k in 0..4 {
                let node = a.select(n_bit, n_in[k], n_in[4 + k]);
                let full = a.not(empty);
                let leaf = a.mul(full, out[k]);
                let diff = a.sub(node, leaf);
                let c = a.mul(leaf2, diff);
                a.on_transition(c);
                let diff = a.sub(node, out[k]);
                let c = a.mul(inner, diff);
                a.on_transition(c);
            }
        }
        // Levels: POW = 2^level, ACC = the bits read so far.
        let top = two_pow(d - 1);
        let c = a.add_const(n(POW), -F::ONE);
        let c = a.mul(leaf2, c);
        a.on_transition(c);
        let c = a.sub(n(ACC), n_bit);
        let c = a.mul(leaf2, c);
        a.on_transition(c);
        let doubled = a.scale(F::TWO, lv[POW]);
        let c = a.sub(n(POW), doubled);
        let c = a.mul(inner, c);
        a.on_transition(c);
        let bit_value = a.mul(n_bit, n(POW));
        let c = a.sub(n(ACC), lv[ACC]);
        let c = a.sub(c, bit_value);
        let c = a.mul(inner, c);
        a.on_transition(c);
        let off = a.add_const(lv[POW], -top);
        let c = a.mul(last, off);
        a.on_all(c);
        let t = a.mul(off, lv[POW_INV]);
        let t = a.add_const(t, -F::ONE);
        let c = a.mul(inner, t);
        a.on_all(c);
        // On the last row, the bits read are the low `depth` bits of the address hash.
        let low = a.select(rcv, lv[FROM_HASH], lv[TO_HASH]);
        let rest = a.select(rcv, lv[FROM_REST], lv[TO_REST]);
        let rest = a.scale(two_pow(d), rest);
        let c = a.sub(low, lv[ACC]);
        let c = a.sub(c, rest);
        let c = a.mul(last, c);
        a.on_all(c);

        // --- Path ends: the sender's old path reaches ROOT, its new one gives MID; the
        // receiver's old path reaches MID, its new one gives the next ROOT.
        for k in 0..4 {
            let diff = a.sub(out_a[k], lv[ROOT + k]);
            let c = a.mul(sender_exit, diff);
            a.on_all(c);
            let diff = a.sub(out_a[k], lv[MID + k]);
            let c = a.mul(receiver_exit, diff);
            a.on_all(c);
            for (running, exit) in [(MID, sender_exit), (ROOT, receiver_exit)] {
                let step = a.sub(out_b[k], lv[running + k]);
                let upd = a.mul(exit, step);
                let moved = a.sub(nv[running + k], lv[running + k]);
                let c = a.sub(moved, upd);
                a.on_transition(c);
            }
        }
        let moved = a.sub(n(COUNT), lv[COUNT]);
        let c = a.sub(moved, addr);
        a.on_transition(c);

        // --- Public values.
        for k in 0..4 {
            let c = a.sub(lv[ROOT + k], pis[k]);
            a.on_first(c);
            let c = a.sub(lv[ROOT + k], pis[4 + k]);
            a.on_last(c);
            let c = a.sub(lv[COMMIT + k], pis[8 + k]);
            a.on_first(c);
            let c = a.sub(lv[COMMIT + k], pis[12 + k]);
            a.on_last(c);
        }
        a.on_first(lv[COUNT]);
        let c = a.sub(lv[COUNT], pis[16]);
        a.on_last(c);

        // --- Range checks: load the queue on ADDR, shift it by CHECKED elsewhere, and split
        // its front into looked-up bytes.
        for i in 0..QUEUE_LEN {
            let want = match i {
                0..=39 => lv[REG + i],
                40 => lv[FROM_REST],
                41 => a.scale(two_pow(d), lv[FROM_REST]),
                42 => lv[TO_REST],
                _ => a.scale(two_pow(d), lv[TO_REST]),
            };
            let diff = a.sub(lv[QUEUE + i], want);
            let c = a.mul(addr, diff);
            a.on_all(c);
            if i + CHECKED < QUEUE_LEN {
                let diff = a.sub(nv[QUEUE + i], lv[QUEUE + i + CHECKED]);
                let c = a.mul(n_not_addr, diff);
                a.on_transition(c);
            }
        }
        for j in 0..CHECKED {
            let mut joined = lv[BYTES + 4 * j];
            for k in 1..4 {
                let byte = a.scale(F::from_canonical_u64(1 << (8 * k)), lv[BYTES + 4 * j + k]);
                joined = a.add(joined, byte);
            }
            let c = a.sub(lv[QUEUE + j], joined);
            a.on_all(c);
        }
        a.on_first(lv[TABLE]);
        let c = a.add_const(lv[TABLE], -F::from_canonical_u64(255));
        a.on_last(c);
        let step = a.sub(nv[TABLE], lv[TABLE]);
        let step_less = a.add_const(step, -F::ONE);
        let c = a.mul(step, step_less);
        a.on_transition(c);
    }
}

/// Limb `k` of the balance hashed into the leaf before (`after` false) or after a transfer's
/// update, on the sender's side or the receiver's (`rcv`).
fn leaf_balance<A: Algebra>(a: &mut A, row: &[A::E], rcv: A::E, after: bool, k: usize) -> A::E {
    use col::*;
    let (sender, receiver) = if after { (DEBITED, CREDITED) } else { (SENDER_BALANCE, RECEIVER_BALANCE) };
    a.select(rcv, row[sender + k], row[receiver + k])
}

fn leaf_nonce<A: Algebra>(a: &mut A, row: &[A::E], rcv: A::E, after: bool, k: usize) -> A::E {
    use col::*;
    let sender = if after { NEXT_NONCE } else { NONCE };
    a.select(rcv, row[sender + k], row[RECEIVER_NONCE + k])
}

impl Stark<F, D> for TransferStark {
    type EvaluationFrame<FE, P, const D2: usize>
        = StarkFrame<P, P::Scalar, COLUMNS, PUBLIC_INPUTS>
    where
        FE: FieldExtension<D2, BaseField = F>,
        P: PackedField<Scalar = FE>;

    type EvaluationFrameTarget = StarkFrame<ExtensionTarget<D>, ExtensionTarget<D>, COLUMNS, PUBLIC_INPUTS>;

    fn eval_packed_generic<FE, P, const D2: usize>(
        &self,
        vars: &Self::EvaluationFrame<FE, P, D2>,
        yield_constr: &mut ConstraintConsumer<P>,
    ) where
        FE: FieldExtension<D2, BaseField = F>,
        P: PackedField<Scalar = FE>,
    {
        let pis: [P; PUBLIC_INPUTS] = std::array::from_fn(|i| P::from(vars.get_public_inputs()[i]));
        let mut a = Native::<P, D2> { consumer: yield_constr };
        self.constraints(&mut a, vars.get_local_values(), vars.get_next_values(), &pis);
    }

    fn eval_ext_circuit(
        &self,
        builder: &mut CircuitBuilder<F, D>,
        vars: &Self::EvaluationFrameTarget,
        yield_constr: &mut RecursiveConstraintConsumer<F, D>,
    ) {
        let mut a = Circuit { builder, consumer: yield_constr };
        self.constraints(&mut a, vars.get_local_values(), vars.get_next_values(), vars.get_public_inputs());
    }

    fn constraint_degree(&self) -> usize {
        3
    }

    fn lookups(&self) -> Vec<Lookup<F>> {
        let bytes = col::BYTES..col::BYTES + 4 * col::CHECKED;
        vec![Lookup {
            columns: Column::singles(bytes.clone()).collect(),
            table_column: Column::single(col::TABLE),
            frequencies_column: Column::single(col::FREQ),
            filter_columns: vec![Filter::default(); bytes.len()],
        }]
    }
}

/// The public values of a chunk, in the order of [`crate::circuits::ChunkPublicTargets`].
pub fn public_inputs(chunk: &ChunkWitness, root_after: [F; 4], commit_after: [F; 4]) -> Vec<F> {
    let mut pis = Vec::with_capacity(PUBLIC_INPUTS);
    pis.extend(from_hash4(chunk.root_before).elements);
    pis.extend(root_after);
    pis.extend(from_hash4(chunk.commit_before).elements);
    pis.extend(commit_after);
    pis.push(F::from_canonical_usize(chunk.txs.len()));
    pis
}

/// A trace and the public values it proves.
pub struct Trace {
    /// Column-major, `COLUMNS` columns of `rows` values.
    pub columns: Vec<PolynomialValues<F>>,
    pub public_inputs: Vec<F>,
}

/// Fills the rows of one chunk, row by row, carrying what the AIR carries.
struct Filler {
    depth: usize,
    rows: Vec<[F; COLUMNS]>,
    /// The row being written; pushed by `next_row`.
    row: [F; COLUMNS],
    out_a: [F; WIDTH],
    out_b: [F; WIDTH],
}

impl Filler {
    fn set(&mut self, c: usize, v: F) {
        self.row[c] = v;
    }

    fn set_all(&mut self, c: usize, vs: &[F]) {
        self.row[c..c + vs.len()].copy_from_slice(vs);
    }

    fn get(&self, c: usize) -> F {
        self.row[c]
    }

    /// Fills both lanes of the current row and pushes it; the next row starts as a copy of
    /// the carried columns (kinds, bits and lanes cleared).
    fn finish_row(&mut self, in_a: [F; WIDTH], in_b: [F; WIDTH]) {
        self.out_a = poseidon::fill(&mut self.row[col::LANE_A..col::LANE_B], in_a);
        self.out_b = poseidon::fill(&mut self.row[col::LANE_B..col::LANE_B + LANE_COLS], in_b);
        let e_s = self.get(col::EMPTY_SENDER);
        let e_r = self.get(col::EMPTY_RECEIVER);
        let e_c = self.get(col::EMPTY_CREDITED);
        let rcv = self.get(col::RCV);
        self.set(col::EMPTY_A, if rcv == F::ONE { e_r } else { e_s });
        self.set(col::EMPTY_B, if rcv == F::ONE { e_c } else { F::ZERO });
        self.rows.push(self.row);
        let mut next = [F::ZERO; COLUMNS];
        for c in [col::ROOT, col::COMMIT, col::MID] {
            next[c..c + 4].copy_from_slice(&self.row[c..c + 4]);
        }
        next[col::COUNT] = self.row[col::COUNT] + self.row[col::ADDR];
        next[col::REG..col::REG_END].copy_from_slice(&self.row[col::REG..col::REG_END]);
        self.row = next;
    }

    fn kind_row(&mut self, kind: usize, rcv: bool) {
        self.set(kind, F::ONE);
        self.set(col::RCV, F::from_bool(rcv));
    }

    fn transfer(&mut self, tx: &TxWitness) {
        use col::*;
        let d = self.depth;
        let from = Address(tx.from);
        let to = Address(tx.to);
        let value = u128_limbs(tx.value);
        let nonce = u64_limbs(tx.nonce);
        let debited_balance = tx.sender_balance.wrapping_sub(tx.value);
        let next_nonce = tx.nonce.wrapping_add(1);
        let credited_balance = tx.receiver_balance.wrapping_add(tx.value);

        // ADDR: registers, arithmetic, both address hashes.
        self.kind_row(ADDR, false);
        self.set_all(FROM, &from.field_limbs());
        self.set_all(TO, &to.field_limbs());
        self.set_all(VALUE, &value);
        self.set_all(NONCE, &nonce);
        self.set_all(SENDER_BALANCE, &u128_limbs(tx.sender_balance));
        self.set_all(RECEIVER_BALANCE, &u128_limbs(tx.receiver_balance));
        self.set_all(RECEIVER_NONCE, &u64_limbs(tx.receiver_nonce));
        self.set_all(DEBITED, &u128_limbs(debited_balance));
        self.set_all(NEXT_NONCE, &u64_limbs(next_nonce));
        self.set_all(CREDITED, &u128_limbs(credited_balance));
        let mut borrow = 0u64;
        let mut carry = 0u64;
        for i in 0..4 {
            let (s, v, r) = (
                (tx.sender_balance >> (32 * i)) as u32 as u64,
                (tx.value >> (32 * i)) as u32 as u64,
                (tx.receiver_balance >> (32 * i)) as u32 as u64,
            );
            let t = s + TWO_32 - v - borrow;
            self.set(NO_BORROW + i, F::from_bool(t >= TWO_32));
            borrow = u64::from(t < TWO_32);
            let t = r + v + carry;
            carry = t >> 32;
            self.set(CARRY + i, F::from_canonical_u64(carry));
        }
        self.set(NONCE_CARRY, F::from_bool(tx.nonce as u32 == u32::MAX));
        for (h, inv, rest, address) in
            [(FROM_HASH, FROM_HASH_INV, FROM_REST, from), (TO_HASH, TO_HASH_INV, TO_REST, to)]
        {
            let limbs = address.field_limbs();
            let mut input = [F::ZERO; WIDTH];
            input[..5].copy_from_slice(&limbs);
            let h0 = <F as plonky2::hash::poseidon::Poseidon>::poseidon(input)[0].to_canonical_u64();
            let (low, high) = (h0 & (TWO_32 - 1), h0 >> 32);
            self.set(h, F::from_canonical_u64(low));
            self.set(h + 1, F::from_canonical_u64(high));
            let off = F::from_canonical_u64(high) - F::from_canonical_u64(TWO_32 - 1);
            self.set(inv, if off == F::ZERO { F::ZERO } else { off.inverse() });
            self.set(rest, F::from_canonical_u64(if d == 32 { 0 } else { low >> d }));
        }
        for (e, balance, nonce) in [
            (EMPTY_SENDER, SENDER_BALANCE, NONCE),
            (EMPTY_RECEIVER, RECEIVER_BALANCE, RECEIVER_NONCE),
            (EMPTY_CREDITED, CREDITED, RECEIVER_NONCE),
        ] {
            let s = (0..4)
                .map(|k| self.get(balance + k))
                .chain((0..2).map(|k| self.get(nonce + k)))
                .fold(F::ZERO, |x, y| x + y);
            self.set(e, F::from_bool(s == F::ZERO));
            self.set(e + 1, if s == F::ZERO { F::ZERO } else { s.inverse() });
        }
        let mut in_a = [F::ZERO; WIDTH];
        in_a[..5].copy_from_slice(&from.field_limbs());
        let mut in_b = [F::ZERO; WIDTH];
        in_b[..5].copy_from_slice(&to.field_limbs());
        self.finish_row(in_a, in_b);

        // COM1..3.
        let commit: [F; 4] = self.row[COMMIT..COMMIT + 4].try_into().expect("four limbs");
        let f = from.field_limbs();
        let t = to.field_limbs();
        self.kind_row(COM1, false);
        let mut in_a = [F::ZERO; WIDTH];
        in_a[..4].copy_from_slice(&commit);
        in_a[4..8].copy_from_slice(&f[..4]);
        self.finish_row(in_a, [F::ZERO; WIDTH]);
        self.kind_row(COM2, false);
        let mut in_a = self.out_a;
        in_a[0] = f[4];
        in_a[1..6].copy_from_slice(&t);
        in_a[6..8].copy_from_slice(&value[..2]);
        self.finish_row(in_a, [F::ZERO; WIDTH]);
        self.kind_row(COM3, false);
        let mut in_a = self.out_a;
        in_a[..2].copy_from_slice(&value[2..]);
        in_a[2..4].copy_from_slice(&nonce);
        self.finish_row(in_a, [F::ZERO; WIDTH]);
        let commit_after = self.out_a;
        self.set_all(COMMIT, &commit_after[..4]);

        // The sender's side, then the receiver's.
        let sides = [
            (false, from, tx.sender_balance, tx.nonce, debited_balance, next_nonce, &tx.sender_path),
            (true, to, tx.receiver_balance, tx.receiver_nonce, credited_balance, tx.receiver_nonce, &tx.receiver_path),
        ];
        for (rcv, address, balance, nonce, new_balance, new_nonce, siblings) in sides {
            let leaf_input = |balance: u128| {
                let mut input = [F::ZERO; WIDTH];
                input[..5].copy_from_slice(&address.field_limbs());
                input[5..8].copy_from_slice(&u128_limbs(balance)[..3]);
                input
            };
            self.kind_row(LEAF1, rcv);
            self.finish_row(leaf_input(balance), leaf_input(new_balance));
            self.kind_row(LEAF2, rcv);
            let second = |out: [F; WIDTH], balance: u128, nonce: u64| {
                let mut input = out;
                input[0] = u128_limbs(balance)[3];
                input[1..3].copy_from_slice(&u64_limbs(nonce));
                input
            };
            let (a2, b2) = (second(self.out_a, balance, nonce), second(self.out_b, new_balance, new_nonce));
            self.finish_row(a2, b2);
            let empty_a = self.rows.last().expect("LEAF2 was pushed")[EMPTY_A] == F::ONE;
            let empty_b = self.rows.last().expect("LEAF2 was pushed")[EMPTY_B] == F::ONE;
            let mut node_a: [F; 4] = if empty_a { [F::ZERO; 4] } else { self.out_a[..4].try_into().expect("4") };
            let mut node_b: [F; 4] = if empty_b { [F::ZERO; 4] } else { self.out_b[..4].try_into().expect("4") };
            let position = address.position(d);
            let mut acc = 0u64;
            for (level, sibling) in siblings.iter().enumerate() {
                let bit = (position >> level) & 1;
                acc |= bit << level;
                self.kind_row(PATH, rcv);
                let last = level + 1 == d;
                self.set(LAST, F::from_bool(last));
                self.set(BIT, F::from_canonical_u64(bit));
                self.set(ACC, F::from_canonical_u64(acc));
                self.set(POW, two_pow(level));
                if !last {
                    self.set(POW_INV, (two_pow(level) - two_pow(d - 1)).inverse());
                }
                let sibling = from_hash4(*sibling).elements;
                let pair = |node: [F; 4]| {
                    let mut input = [F::ZERO; WIDTH];
                    let (left, right) = if bit == 1 { (sibling, node) } else { (node, sibling) };
                    input[..4].copy_from_slice(&left);
                    input[4..8].copy_from_slice(&right);
                    input
                };
                self.finish_row(pair(node_a), pair(node_b));
                node_a = self.out_a[..4].try_into().expect("4");
                node_b = self.out_b[..4].try_into().expect("4");
            }
            self.set_all(if rcv { ROOT } else { MID }, &node_b);
        }
    }

    fn padding_row(&mut self) {
        let zero = [F::ZERO; WIDTH];
        self.finish_row(zero, zero);
    }
}

impl TransferStark {
    /// The trace of `chunk` in `rows` rows (see [`trace_rows`]). The witness is taken as it is:
    /// a chunk that breaks a rule gives a trace that fails the constraints.
    pub fn generate_trace(&self, chunk: &ChunkWitness, rows: usize) -> anyhow::Result<Trace> {
        use col::*;
        let d = self.depth;
        anyhow::ensure!(
            rows.is_power_of_two() && rows >= 256,
            "trace height {rows} is not a power of two of at least 256"
        );
        anyhow::ensure!(
            chunk.txs.len() * rows_per_transfer(d) < rows,
            "{} transfers do not fit {rows} rows",
            chunk.txs.len()
        );
        for (i, tx) in chunk.txs.iter().enumerate() {
            anyhow::ensure!(
                tx.sender_path.len() == d && tx.receiver_path.len() == d,
                "transaction {} has paths of the wrong depth",
                chunk.first_tx + i
            );
        }
        let mut filler = Filler {
            depth: d,
            rows: Vec::with_capacity(rows),
            row: [F::ZERO; COLUMNS],
            out_a: [F::ZERO; WIDTH],
            out_b: [F::ZERO; WIDTH],
        };
        filler.set_all(ROOT, &from_hash4(chunk.root_before).elements);
        filler.set_all(COMMIT, &from_hash4(chunk.commit_before).elements);
        // Registers of padding before any transfer describe an empty account sending nothing.
        for c in [EMPTY_SENDER, EMPTY_RECEIVER, EMPTY_CREDITED] {
            filler.set(c, F::ONE);
        }
        for tx in &chunk.txs {
            filler.transfer(tx);
        }
        let root_after: [F; 4] = filler.row[ROOT..ROOT + 4].try_into().expect("4");
        let commit_after: [F; 4] = filler.row[COMMIT..COMMIT + 4].try_into().expect("4");
        while filler.rows.len() < rows {
            filler.padding_row();
        }
        let mut trace = filler.rows;
        fill_range_checks(&mut trace, d);
        let columns = (0..COLUMNS).map(|c| PolynomialValues::new(trace.iter().map(|row| row[c]).collect())).collect();
        Ok(Trace { columns, public_inputs: public_inputs(chunk, root_after, commit_after) })
    }
}

/// The queue, its bytes, the byte table and the bytes' frequencies.
fn fill_range_checks(trace: &mut [[F; COLUMNS]], depth: usize) {
    use col::*;
    let mut counts = [0u64; 256];
    let mut queue = [F::ZERO; QUEUE_LEN];
    for (r, row) in trace.iter_mut().enumerate() {
        if row[ADDR] == F::ONE {
            queue[..40].copy_from_slice(&row[REG..REG + 40]);
            queue[40] = row[FROM_REST];
            queue[41] = row[FROM_REST] * two_pow(depth);
            queue[42] = row[TO_REST];
            queue[43] = row[TO_REST] * two_pow(depth);
        } else if r > 0 {
            queue.copy_within(CHECKED.., 0);
            queue[QUEUE_LEN - CHECKED..].fill(F::ZERO);
        }
        row[QUEUE..QUEUE + QUEUE_LEN].copy_from_slice(&queue);
        for j in 0..CHECKED {
            let v = queue[j].to_canonical_u64();
            for k in 0..4 {
                // A value past 32 bits leaves its excess out of the bytes: the trace then fails
                // the constraints, as it should.
                let byte = (v >> (8 * k)) & 0xff;
                row[BYTES + 4 * j + k] = F::from_canonical_u64(byte);
                counts[byte as usize] += 1;
            }
        }
        row[TABLE] = F::from_canonical_usize(r.min(255));
    }
    for (r, row) in trace.iter_mut().enumerate().take(256) {
        row[FREQ] = F::from_canonical_u64(counts[r]);
    }
}

/// Evaluates every constraint on every row of `trace` (not the lookup): the first row where one
/// fails, if any. For tests and for a clear error before a proof is attempted.
pub fn first_failing_row(stark: &TransferStark, trace: &Trace) -> Option<usize> {
    let rows = trace.columns[0].len();
    // One random combination of the constraints is zero only when all of them are, but for a
    // negligible chance.
    let alpha = F::from_canonical_u64(0x0e37_79b9_7f4a_7c15);
    (0..rows).find(|&r| {
        let lv: Vec<F> = trace.columns.iter().map(|c| c.values[r]).collect();
        let nv: Vec<F> = trace.columns.iter().map(|c| c.values[(r + 1) % rows]).collect();
        let frame = StarkFrame::<F, F, COLUMNS, PUBLIC_INPUTS>::from_values(&lv, &nv, &trace.public_inputs);
        let mut consumer = ConstraintConsumer::new(
            vec![alpha],
            F::from_bool(r + 1 != rows),
            F::from_bool(r == 0),
            F::from_bool(r + 1 == rows),
        );
        stark.eval_packed_generic::<F, F, 1>(&frame, &mut consumer);
        consumer.accumulators()[0] != F::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AccountEntry, Amount, Batch, Transaction};
    use crate::execute::{execute, ExecutedBatch};
    use crate::params::Params;
    use crate::{C, D};

    const DEPTH: usize = 8;

    fn addr(i: u8) -> Address {
        let mut a = [0x5au8; 20];
        a[0] = i;
        a[19] = i.wrapping_mul(31);
        Address(a)
    }

    fn params() -> Params {
        Params { tree_depth: DEPTH, chunk_size: 5, arity: 2, levels: 1 }
    }

    /// A chunk with an ordinary transfer, a transfer to a new account, a self-transfer, an
    /// empty account sending nothing and a nonce that carries into its high limb.
    fn executed() -> ExecutedBatch {
        let accounts = [(1, 1000, 0), (2, 5, 3), (4, u128::MAX / 2, u32::MAX as u64)];
        let txs = [(1, 2, 300, 0), (2, 3, 305, 3), (1, 1, 7, 1), (9, 8, 0, 0), (4, 1, u128::MAX / 4, u32::MAX as u64)];
        let batch = Batch {
            version: 1,
            chain_id: 1,
            batch_number: 1,
            accounts: accounts
                .iter()
                .map(|&(a, balance, nonce)| AccountEntry { address: addr(a), balance: Amount(balance), nonce })
                .collect(),
            transactions: txs
                .iter()
                .map(|&(from, to, value, nonce)| Transaction {
                    from: addr(from),
                    to: addr(to),
                    value: Amount(value),
                    nonce,
                })
                .collect(),
        };
        execute(&batch, &params()).expect("the batch is valid")
    }

    fn stark() -> TransferStark {
        TransferStark { depth: DEPTH }
    }

    fn trace_of(chunk: &ChunkWitness) -> Trace {
        stark().generate_trace(chunk, trace_rows(params().chunk_size, DEPTH)).expect("the chunk fits")
    }

    /// Whether a proof of `trace` is made and verifies. starky built with debug assertions checks
    /// the constraints before proving and panics when one fails; without them (release builds,
    /// and the workspace's test builds: Cargo.toml) it makes a proof that does not verify.
    fn proves(trace: &Trace) -> bool {
        let made =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| super::super::prove(&stark(), trace, &CpuEngine)));
        matches!(made, Ok(Ok(proof)) if super::super::verify(&stark(), &proof).is_ok())
    }

    use super::super::{CpuEngine, StarkProof};

    #[test]
    fn an_honest_chunk_satisfies_every_constraint_with_the_executed_public_values() {
        let batch = executed();
        let chunk = &batch.chunks[0];
        let trace = trace_of(chunk);
        assert_eq!(first_failing_row(&stark(), &trace), None);
        let pis: Vec<u64> = trace.public_inputs.iter().map(|x| x.to_canonical_u64()).collect();
        assert_eq!(pis[0..4], batch.pre_root);
        assert_eq!(pis[4..8], batch.post_root);
        assert_eq!(pis[8..12], [0; 4]);
        assert_eq!(pis[12..16], batch.tx_commitment);
        assert_eq!(pis[16], 5);
    }

    #[test]
    fn an_empty_chunk_keeps_its_roots() {
        let batch = executed();
        let chunk = ChunkWitness { first_tx: 0, root_before: batch.pre_root, commit_before: [0; 4], txs: vec![] };
        let trace = trace_of(&chunk);
        assert_eq!(first_failing_row(&stark(), &trace), None);
        assert_eq!(trace.public_inputs[0..4], trace.public_inputs[4..8]);
        assert!(proves(&trace));
    }

    #[test]
    fn constraints_are_low_degree() {
        starky::stark_testing::test_stark_low_degree(stark()).expect("degree 3");
    }

    #[test]
    fn circuit_constraints_match_the_native_ones() {
        starky::stark_testing::test_stark_circuit_constraints::<F, C, _, D>(stark()).expect("same constraints");
    }

    #[test]
    fn the_seam_gives_starkys_own_proof_and_it_verifies() {
        let trace = trace_of(&executed().chunks[0]);
        let ours = super::super::prove(&stark(), &trace, &CpuEngine).expect("proves");
        super::super::verify(&stark(), &ours).expect("verifies");
        let theirs = starky::prover::prove::<F, C, _, D>(
            stark(),
            &super::super::config(),
            trace.columns.clone(),
            &trace.public_inputs,
            None,
            &mut plonky2::util::timing::TimingTree::default(),
        )
        .expect("proves");
        // Everything before FRI's proof of work is deterministic and must be identical; the
        // proof-of-work search runs on several threads and may find another witness, and the
        // query positions follow from it.
        let before_grinding = |p: &StarkProof| {
            let (p, fri) = (&p.proof, &p.proof.opening_proof);
            rmp_serde::to_vec(&(
                &p.trace_cap,
                &p.auxiliary_polys_cap,
                &p.quotient_polys_cap,
                &p.openings,
                &fri.commit_phase_merkle_caps,
                &fri.final_poly,
            ))
            .unwrap()
        };
        assert_eq!(before_grinding(&ours), before_grinding(&theirs));
        assert_eq!(ours.public_inputs, theirs.public_inputs);
        super::super::verify(&stark(), &theirs).expect("verifies");
    }

    /// Each way of breaking the statement fails the constraints and fails to prove or verify.
    fn rejected(why: &str, trace: &Trace) {
        assert!(first_failing_row(&stark(), trace).is_some(), "{why}: the constraints hold");
        assert!(!proves(trace), "{why}: a proof verified");
    }

    fn with_tx(change: impl FnOnce(&mut TxWitness)) -> Trace {
        let mut chunk = executed().chunks[0].clone();
        change(&mut chunk.txs[0]);
        trace_of(&chunk)
    }

    #[test]
    fn overdraft_is_rejected() {
        rejected("overdraft", &with_tx(|tx| tx.value = tx.sender_balance + 1));
    }

    #[test]
    fn wrong_nonce_is_rejected() {
        rejected("wrong nonce", &with_tx(|tx| tx.nonce += 1));
    }

    #[test]
    fn wrong_sibling_is_rejected() {
        rejected("wrong sibling", &with_tx(|tx| tx.sender_path[3][0] ^= 1));
    }

    #[test]
    fn balance_overflow_is_rejected() {
        let batch = executed();
        let mut chunk = batch.chunks[0].clone();
        // The receiver's balance as it would have to be for the credit to overflow.
        chunk.txs[0].receiver_balance = u128::MAX;
        rejected("overflow", &trace_of(&chunk));
    }

    #[test]
    fn wrong_direction_bit_is_rejected() {
        let mut trace = trace_of(&executed().chunks[0]);
        let row =
            (0..trace.columns[0].len()).find(|&r| trace.columns[col::PATH].values[r] == F::ONE).expect("a path row");
        let bit = &mut trace.columns[col::BIT].values[row];
        *bit = F::ONE - *bit;
        rejected("direction bit", &trace);
    }

    #[test]
    fn padding_that_changes_the_root_is_rejected() {
        let mut trace = trace_of(&executed().chunks[0]);
        let rows = trace.columns[0].len();
        let pad = (0..rows)
            .rev()
            .find(|&r| col::KINDS.iter().all(|&k| trace.columns[k].values[r] == F::ZERO))
            .expect("padding");
        // Every padding row from one before the end on claims another root, and so does the
        // public value: only the step into that row breaks a rule.
        for r in pad - 1..rows {
            trace.columns[col::ROOT].values[r] += F::ONE;
        }
        trace.public_inputs[4] += F::ONE;
        rejected("padding changes the root", &trace);
    }

    #[test]
    fn forged_public_values_are_rejected() {
        for i in [0, 5, 10, 15, 16] {
            let mut trace = trace_of(&executed().chunks[0]);
            trace.public_inputs[i] += F::ONE;
            rejected(&format!("public value {i}"), &trace);
        }
    }
}
