//! The `worker` binary's command line.

use std::process::Command;

#[test]
fn version_usage_and_missing_broker() {
    let bin = env!("CARGO_BIN_EXE_worker");
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(bin).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    // Without a broker the worker says so on one line and exits as misconfigured.
    let out = Command::new(bin).env_remove("ZKFLEET_AMQP_URI").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--amqp-uri"), "{err}");
    for (flag, value) in [("--rounds", "witness,proving"), ("--concurrency", "0"), ("--pool", "tpu")] {
        let out = Command::new(bin).args(["--amqp-uri", "amqp://127.0.0.1:1", flag, value]).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{flag} {value}");
    }
}

#[test]
fn the_topology_is_printed_from_the_code() {
    let out = Command::new(env!("CARGO_BIN_EXE_worker")).arg("--print-topology").output().unwrap();
    assert!(out.status.success());
    let topology: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(topology["task_queues"]["basic"], "zkfleet.tasks.basic");
    assert_eq!(topology["pools"]["gpu"], serde_json::json!(["basic"]));
    assert_eq!(topology["task_queues"].as_object().unwrap().len(), 5);
}
