//! The leaf hashing of a trace commitment: plonky2's scalar Poseidon against [`prover::hash`]
//! (eight states per AVX-512 register), on bare permutations and on a Merkle tree of the basic
//! round's shape (641-element leaves), side by side in one run.
//!
//! `cargo bench -p prover --bench leaf_hashing [-- --runs N] [-- --log-leaves N]`

use std::time::Instant;

use plonky2::field::types::Sample;
use plonky2::hash::merkle_tree::MerkleTree;
use plonky2::hash::poseidon::{Poseidon, PoseidonHash};
use prover::stark::transfer;
use prover::F;

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).map(|i| args[i + 1].parse().expect("a number"))
}

fn main() {
    let runs = arg("--runs").unwrap_or(3);
    let log_leaves = arg("--log-leaves").unwrap_or(15);
    println!("leaf hashing here: {}", prover::hash::implementation());
    if prover::hash::poseidon_x8(&[[F::default(); 12]; 8]).is_none() {
        println!("skipped: no AVX-512F on this CPU (the engine hashes with plonky2's scalar code)");
        return;
    }

    let n = 1usize << 20;
    println!("\n2^20 permutations on one thread, ns per permutation");
    println!("{:>4} {:>16} {:>16} {:>8}", "run", "plonky2 scalar", "8 per register", "ratio");
    for run in 1..=runs {
        let mut state = F::rand_array::<12>();
        let t = Instant::now();
        for _ in 0..n {
            state = F::poseidon(state);
        }
        let scalar = t.elapsed().as_nanos() as f64 / n as f64;
        std::hint::black_box(state);
        let mut states = [F::rand_array::<12>(); 8];
        let t = Instant::now();
        for _ in 0..n / 8 {
            states = prover::hash::poseidon_x8(&states).expect("checked above");
        }
        let vector = t.elapsed().as_nanos() as f64 / n as f64;
        std::hint::black_box(states);
        println!("{run:>4} {scalar:>16.0} {vector:>16.0} {:>7.2}x", scalar / vector);
    }

    let leaves: Vec<Vec<F>> = (0..1 << log_leaves).map(|_| F::rand_vec(transfer::COLUMNS)).collect();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "\nMerkle tree of 2^{log_leaves} leaves of {} elements, cap height 4, {threads} threads, s",
        transfer::COLUMNS
    );
    println!("{:>4} {:>16} {:>16} {:>8}", "run", "MerkleTree::new", "hash::merkle_tree", "ratio");
    for run in 1..=runs {
        let t = Instant::now();
        let theirs = MerkleTree::<F, PoseidonHash>::new(leaves.clone(), 4);
        let plonky2 = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ours = prover::hash::merkle_tree(leaves.clone(), 4);
        let vector = t.elapsed().as_secs_f64();
        assert_eq!(ours.cap, theirs.cap, "the trees differ");
        println!("{run:>4} {plonky2:>16.3} {vector:>16.3} {:>7.2}x", plonky2 / vector);
    }
}
