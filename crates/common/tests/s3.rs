//! The S3 store against a real S3-compatible server on loopback (`s3s-fs`, which checks request
//! signatures as S3 does): the store contract, multipart uploads, corrupted objects, and the
//! three ways a store can be out of reach.

use std::time::{Duration, Instant};

use common::store::{digest, S3Options, S3Store, StoreError};
use common::testing::{exercise, S3Server};
use common::Store;

/// What the start-up check may take before it reports, whatever the failure.
const CONNECT_BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn an_s3_store_behaves_like_a_store() {
    let server = S3Server::start();
    let bucket = server.bucket("contract");
    exercise(server.store(&bucket, "some/prefix").await).await;
    // Keys live under the prefix.
    assert!(server.object_path(&bucket, "some/prefix/jobs/b/y").exists());
}

#[tokio::test]
async fn large_objects_go_up_in_parts_and_come_back_whole() {
    let server = S3Server::start();
    let bucket = server.bucket("large");
    let mut options = server.options(&bucket, "");
    options.multipart_threshold = 5 << 20;
    options.part_size = 5 << 20;
    let store = Store::S3(S3Store::connect(options).await.unwrap());
    let bytes: Vec<u8> = (0..(12u32 << 20) + 12345).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    assert!(store.put("circuits/big", &bytes).await.unwrap());
    assert!(!store.put("circuits/big", b"other").await.unwrap(), "first writer wins for multipart too");
    let back = store.get("circuits/big").await.unwrap();
    assert_eq!(back.len(), bytes.len());
    assert!(back == bytes);
    assert_eq!(std::fs::metadata(server.object_path(&bucket, "circuits/big")).unwrap().len(), bytes.len() as u64);
}

#[tokio::test]
async fn a_corrupted_or_truncated_object_is_an_integrity_error() {
    let server = S3Server::start();
    let bucket = server.bucket("rot");
    let store = server.store(&bucket, "").await;
    let proof = b"a proof, as far as this test is concerned".to_vec();
    store.put("jobs/j/basic/0-0", &proof).await.unwrap();
    let file = server.object_path(&bucket, "jobs/j/basic/0-0");

    let mut flipped = proof.clone();
    flipped[3] ^= 0x20;
    std::fs::write(&file, &flipped).unwrap();
    let err = store.get("jobs/j/basic/0-0").await.unwrap_err();
    assert!(matches!(&err, StoreError::Integrity { key, .. } if key == "jobs/j/basic/0-0"), "{err}");
    assert!(err.to_string().contains(&digest(&proof)), "the message names the expected digest: {err}");
    assert!(!err.is_transient());

    std::fs::write(&file, &proof[..10]).unwrap();
    let err = store.get("jobs/j/basic/0-0").await.unwrap_err();
    assert!(matches!(err, StoreError::Integrity { .. }), "{err}");
}

#[tokio::test]
async fn wrong_credentials_a_missing_bucket_and_a_closed_port_fail_at_start() {
    let server = S3Server::start();
    let bucket = server.bucket("present");

    let mut wrong = server.options(&bucket, "");
    wrong.static_credentials = Some((common::testing::ACCESS_KEY.into(), "not-the-secret".into()));
    let started = Instant::now();
    let err = S3Store::connect(wrong).await.unwrap_err();
    assert!(matches!(err, StoreError::Denied { .. }), "{err}");
    assert!(started.elapsed() < CONNECT_BOUND);
    assert!(!err.to_string().contains("not-the-secret"), "{err}");

    let err = S3Store::connect(server.options("absent", "")).await.unwrap_err();
    assert!(err.to_string().contains("bucket absent") && err.to_string().contains("does not exist"), "{err}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut unreachable = server.options(&bucket, "");
    unreachable.endpoint = Some(format!("http://{closed}"));
    let started = Instant::now();
    let err = S3Store::connect(unreachable).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err}");
    assert!(err.is_transient());
    assert!(started.elapsed() < CONNECT_BOUND, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn an_https_endpoint_is_trusted_through_a_ca_file() {
    let server = S3Server::start();
    let bucket = server.bucket("tls");
    let ca = common::testing::TestCa::new("zkfleet test CA");
    let (cert, key) = ca.server_cert("s3", &["localhost"]);
    let plain: std::net::SocketAddr = server.endpoint.trim_start_matches("http://").parse().unwrap();
    let port = common::testing::tls_front(&cert, &key, plain);

    let mut options = server.options(&bucket, "over-tls");
    options.endpoint = Some(format!("https://localhost:{port}"));
    options.ca_file = Some(ca.ca_file.display().to_string());
    exercise(Store::S3(S3Store::connect(options.clone()).await.unwrap())).await;
    assert!(server.object_path(&bucket, "over-tls/jobs/b/y").exists(), "the objects went through the TLS front");

    // Trusting only the system's roots, or another CA, the endpoint's certificate is refused.
    let other = common::testing::TestCa::new("another CA");
    for ca_file in [None, Some(other.ca_file.display().to_string())] {
        let started = Instant::now();
        let err = S3Store::connect(S3Options { ca_file: ca_file.clone(), ..options.clone() }).await.unwrap_err();
        assert!(err.to_string().contains("certificate"), "{ca_file:?}: {err}");
        assert!(started.elapsed() < CONNECT_BOUND);
    }
    let not_pem = S3Options { ca_file: Some(key.display().to_string()), ..options.clone() };
    let err = S3Store::connect(not_pem).await.unwrap_err().to_string();
    assert!(err.contains(&key.display().to_string()) && err.contains("no PEM certificate"), "{err}");
}
