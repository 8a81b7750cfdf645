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

/// A GPU-pool worker without a usable device says so on one line and exits 69 before it takes a
/// task: built without the `cuda` feature, or with it on a machine without a device (the stub
/// driver of scripts/cuda-stub answers "no device" to every call).
#[test]
fn a_gpu_worker_without_a_device_does_not_start() {
    #[cfg(feature = "cuda")]
    if prover::stark::gpu::cuda::CudaEngine::new(0, None).is_ok() {
        println!("skipped: a CUDA device is present");
        return;
    }
    let store = std::env::temp_dir().join(format!("zkfleet-gpu-cli-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(["--amqp-uri", "amqp://guest:guest@127.0.0.1:1/%2f", "--pool", "gpu", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&store);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let why = if cfg!(feature = "cuda") { "no CUDA device" } else { "built without the `cuda` feature" };
    assert!(err.starts_with("error: --pool gpu: ") && err.contains(why), "{err}");
}
