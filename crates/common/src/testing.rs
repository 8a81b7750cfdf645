//! Test support (feature `testing`): tasks that need nothing, and a real S3-compatible server on
//! loopback for integration tests. It runs `s3s-fs` (installed by `scripts/start-services`), which
//! checks request signatures as S3 does and keeps each object as a plain file, so a test can
//! change an object's bytes behind the store's back.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::store::{digest, S3Options, S3Store, StoreArgs, StoreError};
use crate::{Round, Store, Task};

/// A task of `round` with no inputs and no outputs: any backend runs it without the store, as
/// benchmarks and tests of the dispatch path need. Aggregates are at level 1, other rounds at 0.
pub fn empty_task(job: &str, round: Round, index: u32) -> Task {
    Task {
        job: job.into(),
        batch: 0,
        round,
        level: u32::from(round == Round::Aggregate),
        index,
        tx_range: (0, 0),
        inputs: vec![],
        input_digests: vec![],
        outputs: vec![],
        params: vec![],
        meta: Default::default(),
        attempt: 1,
        trace: Default::default(),
    }
}

pub const ACCESS_KEY: &str = "zkfleet-test";
pub const SECRET_KEY: &str = "zkfleet-test-secret";

/// A running `s3s-fs` over a temporary directory; stopped when dropped.
pub struct S3Server {
    child: Child,
    root: tempfile::TempDir,
    pub endpoint: String,
}

fn binary() -> PathBuf {
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    let installed = cargo_home.map(|h| h.join("bin/s3s-fs")).filter(|p| p.exists());
    installed.unwrap_or_else(|| PathBuf::from("s3s-fs"))
}

impl S3Server {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    pub fn start() -> Self {
        let root = tempfile::tempdir().expect("temporary directory");
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let child = Self::spawn(root.path(), port);
        Self { child, root, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Runs s3s-fs over `root` on `port` and waits until it accepts connections.
    fn spawn(root: &Path, port: u16) -> Child {
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("s3s-fs runs (scripts/start-services installs it)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not listen on {addr} within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Stops the server (an outage); its objects stay, for [`Self::restart`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port over the same objects.
    pub fn restart(&mut self) {
        let port = self.endpoint.rsplit(':').next().and_then(|p| p.parse().ok()).expect("the endpoint's port");
        self.child = Self::spawn(self.root.path(), port);
    }

    /// Creates an empty bucket (a directory, for s3s-fs).
    pub fn bucket(&self, name: &str) -> String {
        std::fs::create_dir_all(self.root.path().join(name)).expect("bucket directory");
        name.to_string()
    }

    /// The file holding an object's bytes.
    pub fn object_path(&self, bucket: &str, object: &str) -> PathBuf {
        self.root.path().join(bucket).join(object)
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Store flags for `s3://bucket/prefix` on this server (credentials come from [`Self::env`]).
    pub fn store_args(&self, bucket: &str, prefix: &str) -> StoreArgs {
        StoreArgs {
            store: Some(format!("s3://{bucket}/{prefix}")),
            s3_endpoint: Some(self.endpoint.clone()),
            s3_region: Some("us-east-1".into()),
            s3_path_style: None,
            s3_ca_file: None,
        }
    }

    /// Opens a store on this server with its credentials, in this process.
    pub async fn store(&self, bucket: &str, prefix: &str) -> Store {
        Store::S3(S3Store::connect(self.options(bucket, prefix)).await.expect("test store connects"))
    }

    pub fn options(&self, bucket: &str, prefix: &str) -> S3Options {
        let mut options = S3Options::new(bucket, prefix);
        options.endpoint = Some(self.endpoint.clone());
        options.region = Some("us-east-1".into());
        options.path_style = true;
        options.static_credentials = Some((ACCESS_KEY.into(), SECRET_KEY.into()));
        options
    }

    /// Environment for a zkfleet process that uses this server through the standard AWS chain.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("ZKFLEET_S3_ENDPOINT", self.endpoint.clone()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority made for one test, with the PEM files of its certificate and of the
/// server certificates it signs in a temporary directory: no key material lives in the repository.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
    dir: tempfile::TempDir,
    /// The CA's certificate (PEM), for clients to trust.
    pub ca_file: PathBuf,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, cert.pem()).expect("CA file");
        Self { cert, key, dir, ca_file }
    }

    /// A server certificate for `names` (host names or IP addresses), signed by this CA: its
    /// certificate and key files (PEM).
    pub fn server_cert(&self, file_stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("server key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let cert = rcgen::CertificateParams::new(names)
            .expect("server names")
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let (cert_file, key_file) =
            (self.dir.path().join(format!("{file_stem}.pem")), self.dir.path().join(format!("{file_stem}.key")));
        std::fs::write(&cert_file, cert.pem()).expect("certificate file");
        std::fs::write(&key_file, key.serialize_pem()).expect("key file");
        (cert_file, key_file)
    }
}

/// A TLS listener on a free loopback port that forwards each connection, decrypted, to `target`:
/// an https front for a server that speaks plain HTTP. Stops with the test process.
pub fn tls_front(cert_file: &Path, key_file: &Path, target: SocketAddr) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(cert_file).expect("certificate file").map(|c| c.expect("certificate")).collect();
    let key = PrivateKeyDer::from_pem_file(key_file).expect("key file");
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server TLS configuration");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let port = listener.local_addr().expect("its address").port();
    listener.set_nonblocking(true).expect("non-blocking listener");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let (Ok(mut tls), Ok(mut server)) =
                        (acceptor.accept(client).await, tokio::net::TcpStream::connect(target).await)
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut server).await;
                });
            }
        });
    });
    port
}

/// What every store backend must do, run by each backend's tests.
pub async fn exercise(store: Store) {
    assert!(matches!(store.get("jobs/a/x").await, Err(StoreError::NotFound(_))));
    assert!(store.put("jobs/a/x", b"one").await.unwrap());
    assert!(!store.put("jobs/a/x", b"two").await.unwrap(), "first writer wins");
    assert_eq!(store.get("jobs/a/x").await.unwrap(), b"one");
    assert!(store.exists("jobs/a/x").await.unwrap());
    store.replace("jobs/a/note", b"first").await.unwrap();
    store.replace("jobs/a/note", b"second").await.unwrap();
    assert_eq!(store.get("jobs/a/note").await.unwrap(), b"second");
    store.delete("jobs/a/note").await.unwrap();
    store.delete("jobs/a/note").await.unwrap();
    assert!(!store.exists("jobs/a/note").await.unwrap());
    store.put("jobs/b/y", b"keep").await.unwrap();
    store.delete_prefix("jobs/a").await.unwrap();
    assert!(!store.exists("jobs/a/x").await.unwrap());
    assert!(store.exists("jobs/b/y").await.unwrap());
    for bad in ["", "/abs", "jobs/../etc", "jobs//x", "jobs/./x"] {
        assert!(matches!(store.put(bad, b"").await, Err(StoreError::BadKey(_))), "{bad}");
    }
    let recorded = digest(b"keep");
    assert_eq!(store.get_verified("jobs/b/y", Some(&recorded)).await.unwrap(), b"keep");
    let err = store.get_verified("jobs/b/y", Some(&digest(b"other"))).await.unwrap_err();
    assert!(matches!(err, StoreError::Integrity { .. }), "{err}");
    assert!(!err.is_transient());
}

/// Log lines captured in memory, as a `tracing_subscriber` writer: for tests that read what a
/// log layer wrote.
#[derive(Clone, Default)]
pub struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogCapture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A stand-in for an OTLP collector: records every HTTP request it takes (request line, headers,
/// body) and answers 200. Requests go to the receiver; a dropped receiver only stops the recording.
pub fn otlp_collector() -> (std::net::SocketAddr, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    otlp_collector_answering(Vec::new())
}

/// A collector stand-in that answers its first requests with `statuses`, in order (a 503 for one
/// that is overloaded), and 200 from then on. Only the requests answered 200 are recorded: what
/// the collector took.
pub fn otlp_collector_answering(
    statuses: Vec<u16>,
) -> (std::net::SocketAddr, std::sync::mpsc::Receiver<(String, Vec<u8>)>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let statuses = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(statuses)));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (tx, statuses) = (tx.clone(), statuses.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let (mut head, mut line, mut length) = (String::new(), String::new(), 0usize);
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                        head.push_str(&line);
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    let status = statuses.lock().unwrap().pop_front().unwrap_or(200);
                    if status == 200 {
                        let _ = tx.send((head, body));
                    }
                    let answer = format!("HTTP/1.1 {status} Status\r\ncontent-length: 0\r\n\r\n");
                    let _ = stream.write_all(answer.as_bytes());
                }
            });
        }
    });
    (addr, rx)
}

/// The name and the CPU time so far (user and system) of the process or thread whose `stat` file
/// is at `path` (`/proc/self/stat`, `/proc/thread-self/stat`, `/proc/self/task/<tid>/stat`), for
/// benchmarks that report CPU per task. Linux only; `None` where the file cannot be read.
pub fn proc_cpu(path: &Path) -> Option<(String, Duration)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The name is in parentheses and may hold any character, so it ends at the last ')'. utime
    // and stime are the 12th and 13th fields after it, in clock ticks of 1/100 s.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Some((name, Duration::from_millis(ticks * 10)))
}
