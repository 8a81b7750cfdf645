//! Executing a batch against its pre-state: the transaction rules, and the per-chunk witnesses
//! (Merkle paths and account states) that the `basic` circuits consume.

use std::collections::HashMap;

use plonky2::field::types::{Field, PrimeField64};
use plonky2::hash::hashing::hash_n_to_hash_no_pad;
use plonky2::hash::poseidon::PoseidonPermutation;
use serde::{Deserialize, Serialize};

use crate::batch::Batch;
use crate::params::Params;
use crate::state::{leaf_hash, u128_limbs, u64_limbs, zero_digest, Account, Address, Digest, SparseMerkleTree};
use crate::F;

/// A digest as plain integers, for messages and files.
pub type Hash4 = [u64; 4];

pub fn to_hash4(d: Digest) -> Hash4 {
    d.elements.map(|e| e.to_canonical_u64())
}

pub fn from_hash4(h: Hash4) -> Digest {
    Digest { elements: h.map(F::from_canonical_u64) }
}

/// Why a batch is invalid. `Display` gives the user's one line, e.g.
/// `batch 7: transaction 57: insufficient balance: has 10, sends 250`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("batch {batch}: {}{reason}", tx.map(|i| format!("transaction {i}: ")).unwrap_or_default())]
pub struct InvalidBatch {
    pub batch: u64,
    pub tx: Option<usize>,
    pub reason: String,
}

/// One transaction with everything its slot of a `basic` circuit needs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TxWitness {
    pub from: [u8; 20],
    pub to: [u8; 20],
    pub value: u128,
    pub nonce: u64,
    /// The sender before the transaction.
    pub sender_balance: u128,
    pub sender_path: Vec<Hash4>,
    /// The receiver after the sender was debited (for a self-transfer: the debited sender).
    pub receiver_balance: u128,
    pub receiver_nonce: u64,
    pub receiver_path: Vec<Hash4>,
}

/// The input of one `basic` task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChunkWitness {
    pub first_tx: usize,
    pub root_before: Hash4,
    pub commit_before: Hash4,
    pub txs: Vec<TxWitness>,
}

/// What a batch proves: its public values, and the chunks to prove them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExecutedBatch {
    pub chain_id: u64,
    pub batch_number: u64,
    pub pre_root: Hash4,
    pub post_root: Hash4,
    pub tx_commitment: Hash4,
    pub tx_count: u64,
    pub chunks: Vec<ChunkWitness>,
}

/// The transaction commitment after `tx`, given the one before it.
pub fn next_commitment(before: Digest, from: &Address, to: &Address, value: u128, nonce: u64) -> Digest {
    let mut input = Vec::with_capacity(20);
    input.extend(before.elements);
    input.extend(from.field_limbs());
    input.extend(to.field_limbs());
    input.extend(u128_limbs(value));
    input.extend(u64_limbs(nonce));
    hash_n_to_hash_no_pad::<F, PoseidonPermutation<F>>(&input)
}

/// The state as a tree plus the accounts behind its leaves.
pub struct State {
    tree: SparseMerkleTree,
    accounts: HashMap<Address, Account>,
    /// Which address occupies each non-empty position.
    owners: HashMap<u64, Address>,
}

impl State {
    /// Builds the pre-state of `batch`, rejecting duplicate accounts and colliding positions.
    pub fn from_batch(batch: &Batch, params: &Params) -> Result<Self, InvalidBatch> {
        let invalid = |reason: String| InvalidBatch { batch: batch.batch_number, tx: None, reason };
        let mut state =
            State { tree: SparseMerkleTree::new(params.tree_depth), accounts: HashMap::new(), owners: HashMap::new() };
        for (i, entry) in batch.accounts.iter().enumerate() {
            if state.accounts.contains_key(&entry.address) {
                return Err(invalid(format!("account {i}: duplicate address {}", entry.address)));
            }
            let account = Account { balance: entry.balance.0, nonce: entry.nonce };
            state.claim(&entry.address, account).map_err(|other| {
                invalid(format!(
                    "account {i}: address {} collides with {other} at the same leaf position",
                    entry.address
                ))
            })?;
        }
        Ok(state)
    }

    pub fn root(&self) -> Digest {
        self.tree.root()
    }

    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Writes `account` at `address`; fails with the address that already owns the position.
    fn claim(&mut self, address: &Address, account: Account) -> Result<(), Address> {
        let position = address.position(self.tree.depth());
        match self.owners.get(&position) {
            Some(owner) if owner != address => return Err(*owner),
            _ => {}
        }
        if account.is_empty() {
            self.owners.remove(&position);
        } else {
            self.owners.insert(position, *address);
        }
        self.accounts.insert(*address, account);
        self.tree.set(position, leaf_hash(address, &account));
        Ok(())
    }

    fn path(&self, address: &Address) -> Vec<Hash4> {
        self.tree.path(address.position(self.tree.depth())).into_iter().map(to_hash4).collect()
    }
}

/// Executes every transaction of `batch` and cuts the result into chunks of `params.chunk_size`.
pub fn execute(batch: &Batch, params: &Params) -> Result<ExecutedBatch, InvalidBatch> {
    let max = params.max_transactions();
    if batch.transactions.len() > max {
        return Err(InvalidBatch {
            batch: batch.batch_number,
            tx: None,
            reason: format!(
                "{} transactions exceed the {max} that these parameters can prove (raise --levels or --chunk-size)",
                batch.transactions.len()
            ),
        });
    }

    let mut state = State::from_batch(batch, params)?;
    let pre_root = state.root();
    let mut commitment = zero_digest();
    let mut chunks: Vec<ChunkWitness> = Vec::new();

    for (i, tx) in batch.transactions.iter().enumerate() {
        let invalid = |reason: String| InvalidBatch { batch: batch.batch_number, tx: Some(i), reason };
        if i % params.chunk_size == 0 {
            chunks.push(ChunkWitness {
                first_tx: i,
                root_before: to_hash4(state.root()),
                commit_before: to_hash4(commitment),
                txs: Vec::with_capacity(params.chunk_size),
            });
        }
        let value = tx.value.0;
        let sender = state.account(&tx.from);
        if tx.nonce != sender.nonce {
            return Err(invalid(format!("wrong nonce: expected {}, got {}", sender.nonce, tx.nonce)));
        }
        if sender.balance < value {
            return Err(invalid(format!("insufficient balance: {} has {}, sends {value}", tx.from, sender.balance)));
        }
        let Some(next_nonce) = sender.nonce.checked_add(1) else {
            return Err(invalid(format!("sender {} nonce overflows", tx.from)));
        };
        let sender_path = state.path(&tx.from);
        let debited = Account { balance: sender.balance - value, nonce: next_nonce };
        state
            .claim(&tx.from, debited)
            .map_err(|other| invalid(format!("sender {} collides with {other} at the same leaf position", tx.from)))?;

        let receiver = state.account(&tx.to);
        let Some(credited_balance) = receiver.balance.checked_add(value) else {
            return Err(invalid(format!("receiver {} balance overflows 128 bits", tx.to)));
        };
        let receiver_path = state.path(&tx.to);
        state
            .claim(&tx.to, Account { balance: credited_balance, nonce: receiver.nonce })
            .map_err(|other| invalid(format!("receiver {} collides with {other} at the same leaf position", tx.to)))?;

        commitment = next_commitment(commitment, &tx.from, &tx.to, value, tx.nonce);
        chunks.last_mut().expect("a chunk was opened above").txs.push(TxWitness {
            from: tx.from.0,
            to: tx.to.0,
            value,
            nonce: tx.nonce,
            sender_balance: sender.balance,
            sender_path,
            receiver_balance: receiver.balance,
            receiver_nonce: receiver.nonce,
            receiver_path,
        });
    }

    // An empty batch still proves one (empty) chunk: the state is unchanged.
    if chunks.is_empty() {
        chunks.push(ChunkWitness {
            first_tx: 0,
            root_before: to_hash4(pre_root),
            commit_before: to_hash4(commitment),
            txs: Vec::new(),
        });
    }
    Ok(ExecutedBatch {
        chain_id: batch.chain_id,
        batch_number: batch.batch_number,
        pre_root: to_hash4(pre_root),
        post_root: to_hash4(state.root()),
        tx_commitment: to_hash4(commitment),
        tx_count: batch.transactions.len() as u64,
        chunks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AccountEntry, Amount, Transaction};
    use crate::state::root_from_path;

    fn addr(i: u8) -> Address {
        let mut a = [0x11u8; 20];
        a[19] = i;
        Address(a)
    }

    fn params() -> Params {
        Params { tree_depth: 16, chunk_size: 2, arity: 2, levels: 2 }
    }

    fn batch(accounts: &[(u8, u128, u64)], txs: &[(u8, u8, u128, u64)]) -> Batch {
        Batch {
            version: 1,
            chain_id: 1,
            batch_number: 7,
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
        }
    }

    fn reason(b: &Batch) -> String {
        execute(b, &params()).unwrap_err().to_string()
    }

    #[test]
    fn transfers_move_value_and_bump_the_nonce() {
        let b = batch(&[(1, 100, 0)], &[(1, 2, 30, 0), (2, 1, 5, 0), (1, 1, 10, 1)]);
        let out = execute(&b, &params()).unwrap();
        assert_eq!(out.tx_count, 3);
        assert_eq!(out.chunks.len(), 2);
        let mut expected = State::from_batch(&batch(&[(1, 75, 2), (2, 25, 1)], &[]), &params()).unwrap();
        assert_eq!(out.post_root, to_hash4(expected.root()));
        // The self-transfer left the balance alone and only counted the nonce.
        expected.claim(&addr(1), Account { balance: 75, nonce: 2 }).unwrap();
        assert_eq!(out.post_root, to_hash4(expected.root()));
    }

    #[test]
    fn witness_paths_lead_to_the_chunk_roots() {
        let b = batch(&[(1, 100, 0), (3, 7, 4)], &[(1, 2, 30, 0), (3, 3, 7, 4)]);
        let out = execute(&b, &params()).unwrap();
        let tx = &out.chunks[0].txs[0];
        let from = Address(tx.from);
        let leaf = leaf_hash(&from, &Account { balance: tx.sender_balance, nonce: tx.nonce });
        let path: Vec<_> = tx.sender_path.iter().copied().map(from_hash4).collect();
        let root = root_from_path(leaf, from.position(16), &path);
        assert_eq!(to_hash4(root), out.chunks[0].root_before);
        assert_eq!(out.chunks[0].root_before, out.pre_root);
    }

    #[test]
    fn wrong_nonce_names_the_transaction() {
        let b = batch(&[(1, 100, 0)], &[(1, 2, 1, 0), (1, 2, 1, 0)]);
        assert_eq!(reason(&b), "batch 7: transaction 1: wrong nonce: expected 1, got 0");
    }

    #[test]
    fn insufficient_balance_is_invalid_even_for_self_transfers() {
        let b = batch(&[(1, 10, 0)], &[(1, 1, 11, 0)]);
        assert!(reason(&b).starts_with("batch 7: transaction 0: insufficient balance"));
    }

    #[test]
    fn receiver_overflow_is_invalid() {
        let b = batch(&[(1, 10, 0), (2, u128::MAX, 0)], &[(1, 2, 1, 0)]);
        assert!(reason(&b).contains("transaction 0: receiver") && reason(&b).contains("overflows"));
    }

    #[test]
    fn empty_accounts_may_send_zero() {
        let b = batch(&[], &[(9, 8, 0, 0), (9, 8, 0, 1)]);
        let out = execute(&b, &params()).unwrap();
        assert_ne!(out.pre_root, out.post_root, "the sender's nonce changed");
    }

    #[test]
    fn duplicate_accounts_are_invalid() {
        let b = batch(&[(1, 1, 0), (1, 2, 0)], &[]);
        assert!(reason(&b).contains("account 1: duplicate address"));
    }

    #[test]
    fn colliding_positions_are_invalid() {
        // Search two addresses with the same position in a tiny tree.
        let p = Params { tree_depth: 4, ..params() };
        let mut seen: HashMap<u64, u8> = HashMap::new();
        let (a, b) = (0..=255u8).find_map(|i| seen.insert(addr(i).position(4), i).map(|j| (j, i))).unwrap();
        let err = execute(&batch(&[(a, 1, 0), (b, 1, 0)], &[]), &p).unwrap_err();
        assert!(err.reason.contains("collides with"), "{err}");
        // A transfer into the occupied position is just as invalid.
        let err = execute(&batch(&[(a, 5, 0)], &[(a, b, 1, 0)]), &p).unwrap_err();
        assert_eq!(err.tx, Some(0));
        assert!(err.reason.contains("receiver"), "{err}");
    }

    #[test]
    fn empty_batch_keeps_the_root_and_has_one_chunk() {
        let out = execute(&batch(&[(1, 5, 0)], &[]), &params()).unwrap();
        assert_eq!(out.pre_root, out.post_root);
        assert_eq!(out.chunks.len(), 1);
        assert_eq!(out.tx_commitment, [0; 4]);
    }

    #[test]
    fn too_many_transactions_for_the_parameters() {
        let txs: Vec<_> = (0..9).map(|n| (1, 2, 1, n)).collect();
        let b = batch(&[(1, 100, 0)], &txs);
        assert!(reason(&b).contains("exceed the 8"));
    }
}
