//! Gates of the `basic` circuit per chunk size, at the default tree depth: how many transfers fit
//! a power-of-two number of rows. `--build` also builds each circuit (seconds each) and prints the
//! rows it really has, public input hashing and constants included.
//!
//!     cargo run --release -p prover --example basic_rows -- [--build] 80 86 90 91 92

use prover::circuits::basic::BasicCircuit;
use prover::params::Params;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let build = args.iter().any(|a| a == "--build");
    let sizes = args.iter().filter(|a| *a != "--build").map(|a| a.parse::<usize>().expect("chunk sizes are numbers"));
    for chunk_size in sizes {
        let params = Params { chunk_size, ..Params::default() };
        let gates = BasicCircuit::gate_count(&params);
        let rows = gates.next_power_of_two();
        print!("chunk {chunk_size:>3}: {gates:>6} gates, 2^{} rows ({:.1}% used)", rows.trailing_zeros(), 100.0 * gates as f64 / rows as f64);
        if build {
            print!("; built: 2^{} rows", BasicCircuit::build(&params).data.common.degree_bits());
        }
        println!();
    }
}
