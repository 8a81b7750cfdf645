//! The broker fleet over TLS: a worker and the leader reach RabbitMQ by `amqps://`, trusting a CA
//! the test makes, through a TLS listener the test opens on the local broker. A CA that did not
//! sign the broker's certificate, or a host name the certificate does not name, is one line and
//! exit 1 before anything is staged.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::testing::TestCa;
use support::{management_get, Fleet, Proc};

const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// A TLS listener on a free loopback port of the local RabbitMQ, closed when dropped.
struct TlsListener {
    port: u16,
}

fn rabbitmq_eval(expression: &str) {
    let out = Command::new("rabbitmqctl").args(["eval", expression]).output().expect("rabbitmqctl runs");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim() == "ok", "rabbitmqctl eval {expression}: {said}");
}

impl TlsListener {
    fn open(cert: &Path, key: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        rabbitmq_eval(&format!(
            r#"rabbit_networking:start_ssl_listener({{"127.0.0.1", {port}}}, [{{certfile, "{}"}}, {{keyfile, "{}"}}], 1)."#,
            cert.display(),
            key.display()
        ));
        TlsListener { port }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        rabbitmq_eval(&format!(r#"rabbit_networking:stop_tcp_listener({{"127.0.0.1", {}}})."#, self.port));
    }
}

fn amqps(fleet: &Fleet, host: &str, port: u16, ca: &Path) -> String {
    format!("amqps://guest:guest@{host}:{port}/{}?cacertfile={}", fleet.vhost.name, ca.display())
}

#[test]
fn a_fleet_proves_over_amqps_and_a_wrong_ca_or_host_is_refused_before_staging() {
    let fleet = Fleet::new();
    let ca = TestCa::new("zkfleet test CA");
    let (cert, key) = ca.server_cert("rabbitmq", &["localhost"]);
    let listener = TlsListener::open(&cert, &key);
    let input = fleet.synth("a.json", 4, 11);

    // Refused: a CA that did not sign the broker's certificate, and a host name it does not name.
    let other = TestCa::new("another CA");
    for (uri, needle) in [
        (amqps(&fleet, "localhost", listener.port, &other.ca_file), "UnknownIssuer"),
        (amqps(&fleet, "127.0.0.1", listener.port, &ca.ca_file), "certificate not valid for name"),
    ] {
        let (code, stdout, err) =
            Proc::spawn(fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--amqp-uri", &uri]))
                .finish(Duration::from_secs(30));
        assert_eq!(code, Some(1), "{uri}: {}", err.join("\n"));
        assert!(stdout.is_empty());
        assert_eq!(err.len(), 1, "{uri}: {}", err.join("\n"));
        assert!(err[0].contains("cannot connect to the broker") && err[0].contains(needle), "{}", err[0]);
        assert!(!err[0].contains("guest:guest"), "{}", err[0]);

        let (code, _, err) = fleet.worker("refused", &["--amqp-uri", &uri]).finish(Duration::from_secs(30));
        assert_eq!(code, Some(1), "{uri}: {}", err.join("\n"));
        assert_eq!(err.len(), 1, "{uri}: {}", err.join("\n"));
        assert!(err[0].contains(needle), "{}", err[0]);
    }
    let jobs = fleet.store().join("jobs");
    assert!(!jobs.exists() || std::fs::read_dir(&jobs).unwrap().count() == 0, "nothing staged");
    assert_eq!(management_get(&format!("/api/queues/{}", fleet.vhost.name)), serde_json::json!([]), "nothing queued");

    // Trusting the right CA, a worker and the leader prove a batch over TLS.
    let uri = amqps(&fleet, "localhost", listener.port, &ca.ca_file);
    let worker = fleet.worker("w1", &["--amqp-uri", &uri]);
    let proof = fleet.path("a.proof.json");
    let leader = fleet.prove(&input, &proof, &["--amqp-uri", &uri]);
    leader.wait_for(&["jobs staged"], Duration::from_secs(60));
    // The broker's own list (the management API's lags by its statistics interval).
    let out = Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "--no-table-headers", "vhost", "port", "ssl"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    let ours: Vec<&str> = listed.lines().filter(|l| l.starts_with(&format!("{}\t", fleet.vhost.name))).collect();
    assert!(ours.len() >= 2, "the worker's and the leader's connections: {listed}");
    for line in &ours {
        assert_eq!(
            line.split('\t').skip(1).collect::<Vec<_>>(),
            [listener.port.to_string().as_str(), "true"],
            "{line}"
        );
    }
    let (code, _, err) = leader.finish(JOB_TIMEOUT);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 4);
    drop(worker);
}
