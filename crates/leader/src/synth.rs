//! `leader synth`: deterministic generation of valid, realistic batches.
//!
//! Realistic here means what rollup traffic looks like: many accounts with a long tail, a few hot
//! accounts that send and receive most transfers (sender rank drawn as `n·u³`), about 8% of
//! transfers to fresh addresses, about 3% self-transfers and 5% zero-value transfers. The same
//! seed and arguments always give the same bytes. Addresses whose leaf positions would collide at
//! the given tree depth are never generated, so every batch proves.

use std::collections::{HashMap, HashSet};

use prover::batch::{AccountEntry, Amount, Batch, Transaction, WITNESS_VERSION};
use prover::state::{Account, Address};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Debug)]
pub struct SynthOptions {
    pub txs: usize,
    pub accounts: usize,
    pub batches: usize,
    pub seed: u64,
    pub chain_id: u64,
    pub first_batch: u64,
    pub tree_depth: usize,
}

struct World {
    rng: ChaCha8Rng,
    depth: usize,
    /// Accounts in order of creation: early ones are the hot ones.
    order: Vec<Address>,
    accounts: HashMap<Address, Account>,
    positions: HashSet<u64>,
}

impl World {
    fn fresh_address(&mut self) -> Address {
        loop {
            let address = Address(self.rng.gen());
            if self.positions.insert(address.position(self.depth)) {
                self.order.push(address);
                return address;
            }
        }
    }

    /// Whether a fresh address still finds a free leaf quickly: the tree is at most half full.
    fn has_room(&self) -> bool {
        (self.positions.len() as u128) * 2 < 1u128 << self.depth
    }

    /// An existing account, skewed towards the hot head of the list.
    fn skewed(&mut self, power: i32) -> Address {
        let u: f64 = self.rng.gen();
        let i = ((self.order.len() as f64) * u.powi(power)) as usize;
        self.order[i.min(self.order.len() - 1)]
    }
}

pub fn synth(opts: &SynthOptions) -> Vec<Batch> {
    let mut w = World {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        depth: opts.tree_depth,
        order: Vec::new(),
        accounts: HashMap::new(),
        positions: HashSet::new(),
    };
    for _ in 0..opts.accounts.max(1) {
        let address = w.fresh_address();
        // Between 0.001 and 1000 units of 10^18.
        let balance = w.rng.gen_range(1_000_000_000_000_000u128..1_000_000_000_000_000_000_000u128);
        w.accounts.insert(address, Account { balance, nonce: 0 });
    }

    let mut batches = Vec::with_capacity(opts.batches);
    for b in 0..opts.batches as u64 {
        let mut accounts: Vec<AccountEntry> = w
            .accounts
            .iter()
            .filter(|(_, a)| !a.is_empty())
            .map(|(address, a)| AccountEntry { address: *address, balance: Amount(a.balance), nonce: a.nonce })
            .collect();
        accounts.sort_by_key(|a| a.address);

        let mut transactions = Vec::with_capacity(opts.txs);
        for _ in 0..opts.txs {
            let from = w.skewed(3);
            let roll: f64 = w.rng.gen();
            let to = if roll < 0.03 {
                from
            } else if roll < 0.11 && w.has_room() {
                w.fresh_address()
            } else {
                w.skewed(2)
            };
            let sender = w.accounts.get(&from).copied().unwrap_or_default();
            let value = if w.rng.gen_bool(0.05) || sender.balance == 0 {
                0
            } else {
                w.rng.gen_range(1..=sender.balance.div_ceil(8))
            };
            transactions.push(Transaction { from, to, value: Amount(value), nonce: sender.nonce });
            w.accounts.insert(from, Account { balance: sender.balance - value, nonce: sender.nonce + 1 });
            let receiver = w.accounts.entry(to).or_default();
            receiver.balance += value;
        }
        batches.push(Batch {
            version: WITNESS_VERSION,
            chain_id: opts.chain_id,
            batch_number: opts.first_batch + b,
            accounts,
            transactions,
        });
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;
    use prover::execute::execute;
    use prover::Params;

    fn opts(txs: usize, batches: usize, seed: u64) -> SynthOptions {
        SynthOptions { txs, accounts: 50, batches, seed, chain_id: 1, first_batch: 1, tree_depth: 32 }
    }

    #[test]
    fn same_seed_same_batches_other_seed_other_batches() {
        assert_eq!(synth(&opts(40, 2, 9)), synth(&opts(40, 2, 9)));
        assert_ne!(synth(&opts(40, 2, 9)), synth(&opts(40, 2, 10)));
    }

    #[test]
    fn batches_are_valid_and_consecutive() {
        let params = Params { tree_depth: 32, chunk_size: 32, arity: 4, levels: 3 };
        let batches = synth(&opts(300, 3, 1));
        let mut previous_post = None;
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(b.batch_number, 1 + i as u64);
            let out = execute(b, &params).unwrap();
            if let Some(post) = previous_post {
                assert_eq!(out.pre_root, post, "batch {i} starts where the previous ended");
            }
            previous_post = Some(out.post_root);
        }
    }

    #[test]
    fn activity_is_skewed_and_varied() {
        let batch = &synth(&SynthOptions { accounts: 1000, ..opts(2000, 1, 3) })[0];
        let mut by_sender: HashMap<Address, usize> = HashMap::new();
        for tx in &batch.transactions {
            *by_sender.entry(tx.from).or_default() += 1;
        }
        let mut counts: Vec<usize> = by_sender.values().copied().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top10: usize = counts.iter().take(10).sum();
        // Uniform choice would give the top 1% of accounts about 1% of transfers.
        assert!(top10 * 8 > batch.transactions.len(), "ten hottest senders send over 12%: {top10}");
        assert!(by_sender.len() > 100, "a long tail of senders: {}", by_sender.len());
        let selfs = batch.transactions.iter().filter(|t| t.from == t.to).count();
        let zeros = batch.transactions.iter().filter(|t| t.value.0 == 0).count();
        assert!(selfs > 10 && zeros > 10, "self-transfers {selfs}, zero values {zeros}");
    }

    #[test]
    fn small_trees_never_collide() {
        let params = Params { tree_depth: 8, chunk_size: 4, arity: 2, levels: 2 };
        for seed in 0..5 {
            let b = &synth(&SynthOptions { tree_depth: 8, accounts: 20, ..opts(16, 1, seed) })[0];
            execute(b, &params).unwrap();
        }
    }
}
