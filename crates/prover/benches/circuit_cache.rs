//! Worker start-up with a cold and a warm circuit cache: every circuit of one parameter set built
//! and saved (cold), then loaded from a local directory and from S3 (`s3s-fs` on loopback,
//! started here). Prints one line per circuit and the totals, which are what a worker pays before
//! its first proof of each round.
//!
//! `cargo bench -p prover --bench circuit_cache [-- --small]`; default: the default parameters.

use std::sync::Arc;
use std::time::Instant;

use common::testing::S3Server;
use common::Store;
use prover::circuits::cache::set_key;
use prover::{CircuitCache, CircuitSet, Params, StoreCache};

/// log2 of each circuit's rows, in `touch_all`'s order.
fn degree_bits(set: &CircuitSet) -> Vec<usize> {
    let mut bits: Vec<usize> = (1..=set.params().levels).map(|l| set.aggregate(l).data.common.degree_bits()).collect();
    bits.push(set.final_circuit().data.common.degree_bits());
    bits.push(set.compress().data.common.degree_bits());
    bits
}

/// Gets every circuit of `set` in dependency order, timing each.
fn touch_all(set: &CircuitSet) -> Vec<(String, f64)> {
    let mut times = Vec::new();
    let mut time = |name: String, f: &dyn Fn()| {
        let started = Instant::now();
        f();
        times.push((name, started.elapsed().as_secs_f64()));
    };
    // The basic round is a STARK and has no circuit; level 1 verifies it.
    for level in 1..=set.params().levels {
        time(format!("aggregate-{level}"), &|| {
            set.aggregate(level);
        });
    }
    time("final".into(), &|| {
        set.final_circuit();
    });
    time("compress".into(), &|| {
        set.compress();
    });
    times
}

fn cache(store: &Store, rt: &tokio::runtime::Runtime) -> Option<Arc<dyn CircuitCache>> {
    Some(Arc::new(StoreCache::new(store.clone(), rt.handle().clone())))
}

fn main() {
    let small = std::env::args().any(|a| a == "--small");
    let params = if small { Params { tree_depth: 8, chunk_size: 4, arity: 2, levels: 2 } } else { Params::default() };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(dir.path().to_str().unwrap()).unwrap();
    println!("params {params:?}, {} threads", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));

    let cold_set = CircuitSet::with_cache(params, cache(&local, &rt));
    let cold = touch_all(&cold_set);
    let bits = degree_bits(&cold_set);
    drop(cold_set);
    let warm_local = touch_all(&CircuitSet::with_cache(params, cache(&local, &rt)));

    // The same entries in a bucket: uploaded once (what the first worker of a fleet adds to its
    // build), then loaded by a fresh process.
    let server = S3Server::start();
    let bucket = server.bucket("bench");
    let s3 = rt.block_on(server.store(&bucket, "zkfleet"));
    let prefix = format!("circuits/{}", set_key(&params));
    let mut sizes = Vec::new();
    let mut uploads = Vec::new();
    for (name, _) in &cold {
        let key = format!("{prefix}/{name}");
        let entry = rt.block_on(local.get(&key)).unwrap();
        let started = Instant::now();
        rt.block_on(s3.put(&key, &entry)).unwrap();
        uploads.push(started.elapsed().as_secs_f64());
        sizes.push(entry.len() as f64 / f64::from(1 << 20));
    }
    let warm_s3 = touch_all(&CircuitSet::with_cache(params, cache(&s3, &rt)));

    println!(
        "{:12} {:>6} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "circuit", "rows", "entry MiB", "cold s", "local s", "upload s", "s3 s"
    );
    for i in 0..cold.len() {
        println!(
            "{:12} {:>6} {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            cold[i].0,
            format!("2^{}", bits[i]),
            sizes[i],
            cold[i].1,
            warm_local[i].1,
            uploads[i],
            warm_s3[i].1
        );
    }
    let total = |t: &[(String, f64)]| t.iter().map(|(_, s)| s).sum::<f64>();
    println!(
        "{:12} {:>6} {:>10.1} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
        "total",
        "",
        sizes.iter().sum::<f64>(),
        total(&cold),
        total(&warm_local),
        uploads.iter().sum::<f64>(),
        total(&warm_s3)
    );
    println!("cold start / warm start from S3: {:.1}x", total(&cold) / total(&warm_s3));
}
