//! A fleet whose processes share nothing but a RabbitMQ virtual host and a bucket on a real
//! S3-compatible server (`s3s-fs` on loopback): jobs prove through the broker fleet and the
//! embedded fleet, `purge` empties the bucket, and a store out of reach is one line and exit 1.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{job_ids, Fleet, Proc};

const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// Objects under a directory of the S3 server, recursively.
fn objects(dir: &std::path::Path) -> usize {
    object_names(dir).len()
}

/// The objects under `dir`, as paths below it.
fn object_names(dir: &std::path::Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Err(_) => vec![],
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .flat_map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                if p.is_dir() {
                    object_names(&p).into_iter().map(|n| format!("{name}/{n}")).collect()
                } else {
                    vec![name]
                }
            })
            .collect(),
    }
}

#[test]
fn jobs_prove_with_the_store_on_s3() {
    let fleet = Fleet::on_s3();
    // One worker, with the bucket's circuit cache still empty: it builds every circuit and
    // uploads it; everything after it loads them from the bucket.
    let _worker = fleet.worker("w1", &[]);
    let input = fleet.synth("a.json", 12, 21);
    let proof = fleet.path("a.proof");
    let leader = fleet.prove(&input, &proof, &["--keep-artifacts"]);
    let job = job_ids(&leader.wait_for(&["jobs staged"], Duration::from_secs(60))).remove(0);
    let (code, _, err) = leader.finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    let values = fleet.verify(&proof);
    assert_eq!(values["tx_count"], 12);
    let circuits = fleet.s3_objects().join("circuits");
    assert_eq!(
        objects(&circuits),
        4,
        "aggregate-1, aggregate-2, final and compress are cached: {:?}",
        object_names(&circuits)
    );

    // Every artifact is in the bucket, under the prefix, until `purge`.
    let job_dir = fleet.s3_objects().join("jobs").join(&job);
    assert_eq!(objects(&job_dir.join("basic")), 3, "one basic proof per chunk of 4");
    assert!(job_dir.join("journal.json").exists());
    let out = fleet.run_leader(&["purge", &job]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(objects(&job_dir), 0);
    assert_eq!(objects(&circuits), 4, "purge keeps the circuit cache");

    // The embedded fleet on the same bucket loads every circuit from it, proves the same values
    // and cleans up after itself.
    let embedded = fleet.path("a-embedded.proof");
    let mut cmd = fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--output", embedded.to_str().unwrap()]);
    cmd.env_remove("ZKFLEET_AMQP_URI");
    let (code, _, err) = Proc::spawn(cmd).finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    let loaded = err.iter().filter(|l| l.contains("circuit loaded from the cache")).count();
    assert_eq!(loaded, 4, "{}", err.join("\n"));
    assert!(!err.iter().any(|l| l.contains("circuit built")), "{}", err.join("\n"));
    assert_eq!(fleet.values(&embedded), values);
    assert_eq!(objects(&fleet.s3_objects().join("jobs")), 0);
}

#[test]
fn a_store_out_of_reach_is_one_line_and_exit_1() {
    let fleet = Fleet::on_s3();
    let input = fleet.synth("a.json", 4, 22);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret", "denied"),
        ("ZKFLEET_STORE", "s3://absent/zkfleet", "does not exist"),
        ("ZKFLEET_S3_ENDPOINT", &format!("http://{closed}"), "unavailable"),
    ];
    for (var, value, says) in cases {
        let started = Instant::now();
        let mut cmd = fleet.leader(&["prove", "--input", input.to_str().unwrap()]);
        cmd.env(var, value);
        let (code, stdout, err) = Proc::spawn(cmd).finish(Duration::from_secs(60));
        assert_eq!(code, Some(1), "{var}: {}", err.join("\n"));
        assert!(stdout.is_empty());
        assert_eq!(err.len(), 1, "{var}: {}", err.join("\n"));
        assert!(err[0].contains("store") && err[0].contains(says), "{var}: {}", err[0]);
        assert!(!err[0].contains("not-the-secret"), "{}", err[0]);
        assert!(started.elapsed() < Duration::from_secs(30), "{var}: took {:?}", started.elapsed());

        let mut cmd = Command::new(support::worker_bin());
        cmd.envs(fleet.s3.as_ref().unwrap().env())
            .env("ZKFLEET_AMQP_URI", fleet.vhost.uri())
            .env("ZKFLEET_STORE", format!("s3://{}/{}", support::BUCKET, support::PREFIX))
            .env(var, value);
        let (code, _, err) = Proc::spawn(cmd).finish(Duration::from_secs(60));
        assert_eq!(code, Some(1), "{var}: {}", err.join("\n"));
        assert_eq!(err.len(), 1, "{var}: {}", err.join("\n"));
        assert!(err[0].contains("store") && err[0].contains(says), "{var}: {}", err[0]);
    }
    // Nothing was staged, and no task was queued.
    assert_eq!(objects(&fleet.s3_objects()), 0);
    let queues = support::management_get(&format!("/api/queues/{}", fleet.vhost.name));
    let queued: u64 = queues.as_array().unwrap().iter().map(|q| q["messages"].as_u64().unwrap_or(0)).sum();
    assert_eq!(queued, 0);
}
