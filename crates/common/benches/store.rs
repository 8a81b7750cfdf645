//! Artifact put/get throughput of the local-directory store and of the S3 store against a real
//! S3-compatible server on loopback (`s3s-fs`, started here), for the sizes a fleet moves:
//! chunk witnesses and proofs (tens to hundreds of KiB) and large objects that go up in parts.
//!
//! `cargo bench -p common --bench store [-- --rounds N]`; prints one line per backend and size.

use std::time::Instant;

use common::testing::S3Server;
use common::Store;

const SIZES: [(usize, &str); 4] =
    [(64 << 10, "64 KiB"), (512 << 10, "512 KiB"), (4 << 20, "4 MiB"), (48 << 20, "48 MiB")];

fn payload(len: usize, seed: u64) -> Vec<u8> {
    (0..len as u64).map(|i| ((i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8).collect()
}

async fn measure(name: &str, store: &Store, rounds: usize) {
    for (len, label) in SIZES {
        // Fewer rounds for the large objects: the figure is bandwidth, not latency.
        let n = if len >= 4 << 20 { rounds.div_ceil(8).max(2) } else { rounds };
        let objects: Vec<Vec<u8>> = (0..n).map(|i| payload(len, i as u64)).collect();
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            assert!(store.put(&format!("bench/{len}/{i}"), bytes).await.unwrap());
        }
        let put = started.elapsed().as_secs_f64();
        let started = Instant::now();
        for (i, bytes) in objects.iter().enumerate() {
            assert_eq!(store.get(&format!("bench/{len}/{i}")).await.unwrap().len(), bytes.len());
        }
        let get = started.elapsed().as_secs_f64();
        let mib = (len * n) as f64 / f64::from(1 << 20);
        println!(
            "{name:5} {label:>8} x{n:<4} put {:8.1} MiB/s {:7.2} ms/object   get {:8.1} MiB/s {:7.2} ms/object",
            mib / put,
            put * 1e3 / n as f64,
            mib / get,
            get * 1e3 / n as f64
        );
        store.delete_prefix(&format!("bench/{len}")).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("--rounds takes a number"))
        .unwrap_or(64);
    let dir = tempfile::tempdir().unwrap();
    let local = Store::open(dir.path().to_str().unwrap()).unwrap();
    measure("local", &local, rounds).await;
    let server = S3Server::start();
    let bucket = server.bucket("bench");
    measure("s3", &server.store(&bucket, "zkfleet").await, rounds).await;
}
