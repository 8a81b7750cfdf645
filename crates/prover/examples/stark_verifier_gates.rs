//! Gates of one `basic` STARK verification in a standard recursion circuit, the cost level 1 of
//! the aggregate round pays per child, for the transfer AIR and for bare Poseidon lanes at three
//! FRI rates of the same conjectured security (rate bits × queries + 16 bits of proof of work).
//!
//! `cargo run --release -p prover --example stark_verifier_gates [-- DEGREE_BITS]` (default 14)

use plonky2::plonk::circuit_builder::CircuitBuilder;
use plonky2::plonk::circuit_data::CircuitConfig;
use prover::stark::{self, poseidon, transfer::TransferStark};
use prover::{C, D, F};
use starky::config::StarkConfig;
use starky::recursive_verifier::{add_virtual_stark_proof_with_pis, verify_stark_proof_circuit};
use starky::stark::Stark;

fn gates<S: Stark<F, D> + Copy>(stark: S, config: &StarkConfig, degree_bits: usize) -> usize {
    let mut b = CircuitBuilder::<F, D>::new(CircuitConfig::standard_recursion_config());
    let proof = add_virtual_stark_proof_with_pis(&mut b, &stark, config, degree_bits, 0, 0);
    verify_stark_proof_circuit::<F, C, _, D>(&mut b, stark, proof, config, None);
    b.num_gates()
}

fn main() {
    let degree_bits = std::env::args().nth(1).map(|a| a.parse().expect("degree bits")).unwrap_or(14);
    println!("one verification of a 2^{degree_bits}-row STARK, gates");
    println!(
        "{:>5} {:>7} {:>22} {:>14} {:>14}",
        "rate", "queries", "transfer (641 cols)", "2 lanes (496)", "1 lane (248)"
    );
    for (rate_bits, queries) in [(1, 84), (2, 42), (3, 28)] {
        let mut config = stark::config();
        config.fri_config.rate_bits = rate_bits;
        config.fri_config.num_query_rounds = queries;
        println!(
            "{:>5} {:>7} {:>22} {:>14} {:>14}",
            format!("1/{}", 1 << rate_bits),
            queries,
            gates(TransferStark { depth: 32 }, &config, degree_bits),
            gates(poseidon::Lanes::<{ 2 * poseidon::LANE_COLS }>, &config, degree_bits),
            gates(poseidon::Lanes::<{ poseidon::LANE_COLS }>, &config, degree_bits)
        );
    }
}
