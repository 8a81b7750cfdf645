//! The `worker` binary's command line.

use std::process::Command;

#[test]
fn version_usage_and_missing_transport() {
    let bin = env!("CARGO_BIN_EXE_worker");
    let out = Command::new(bin).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(bin).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    // Without a transport the worker says so on one line and exits as misconfigured.
    let out = Command::new(bin).env_remove("ZKFLEET_AMQP_URI").output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
}
