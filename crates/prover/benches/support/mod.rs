//! What the prover's benches share: a synthetic batch and the process's CPU time.
#![allow(dead_code)]

use prover::batch::{AccountEntry, Amount, Batch, Transaction};
use prover::state::Address;

/// Process CPU time (user + system) in seconds, from /proc/self/stat.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat is readable");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0 // USER_HZ is 100 on Linux
}

/// A batch of `txs` transfers between 1,000 funded accounts, each sender at its next nonce.
pub fn batch(txs: usize) -> Batch {
    let n = 1000usize;
    let address = |i: usize| {
        let mut a = [0u8; 20];
        for (j, byte) in a.iter_mut().enumerate() {
            *byte = (i.wrapping_mul(2654435761).wrapping_add(j * 40503) >> (j % 8)) as u8;
        }
        a[0] = (i >> 8) as u8;
        a[1] = i as u8;
        Address(a)
    };
    let mut nonces = vec![0u64; n];
    let transactions = (0..txs)
        .map(|k| {
            let from = (k * 7919) % n;
            let to = (k * 104_729 + 1) % n;
            let nonce = nonces[from];
            nonces[from] += 1;
            Transaction { from: address(from), to: address(to), value: Amount(1_000 + k as u128), nonce }
        })
        .collect();
    Batch {
        version: 1,
        chain_id: 1,
        batch_number: 1,
        accounts: (0..n)
            .map(|i| AccountEntry { address: address(i), balance: Amount(10u128.pow(18)), nonce: 0 })
            .collect(),
        transactions,
    }
}
