//! The broker disturbed in the middle of a job: a restart, a memory alarm that blocks every
//! publisher, and connections cut in the middle of a publish. Workers and leader ride each out and
//! the job completes. Alone in a test binary of their own because the first two disturb the whole
//! local broker, and one at a time.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Fleet, Proc};

/// Held by each test: they disturb the same broker.
static BROKER: Mutex<()> = Mutex::new(());

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl runs");
    assert!(out.status.success(), "rabbitmqctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `done` holds, asking again every 100 ms, for at most `bound`.
fn until(bound: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !done() {
        assert!(Instant::now() < deadline, "not within {bound:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One worker serves the `basic` queue alone (its consumer stays in place while it is busy), the
/// other every other round (it cancels and consumes again): both ways of consuming must come back.
#[test]
fn a_broker_restart_mid_job_is_ridden_out() {
    let _broker = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let fleet = Fleet::new();
    let mut w1 = fleet.worker("w1", &["--rounds", "basic"]);
    let mut w2 = fleet.worker("w2", &["--rounds", "witness,aggregate,final,compress"]);
    let input = fleet.synth("a.json", 16, 11);
    let proof = fleet.path("a.proof");
    let leader =
        Proc::spawn(fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--output", proof.to_str().unwrap()]));
    leader.wait_for(&["txs_proved=4 "], Duration::from_secs(300));

    let before = [w1.stderr().len(), w2.stderr().len()];
    rabbitmqctl(&["stop_app"]);
    rabbitmqctl(&["start_app"]);
    rabbitmqctl(&["await_startup"]);

    let (code, _, err) = leader.finish_beside(Duration::from_secs(300), &[&w1, &w2]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 16);
    // The leader follows results on a connection of its own, which it opened again itself.
    assert!(err.iter().any(|l| l.contains("broker connection for results reopened")), "{}", err.join("\n"));
    // The workers rode it out too: still running, and proving after the restart.
    let mut after = Vec::new();
    for (w, n) in [(&mut w1, before[0]), (&mut w2, before[1])] {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker exited:\n{}", w.stderr().join("\n"));
        let lines = w.stderr().split_off(n);
        // Each consumes on a new connection of its own, not on consumers a recovery registered.
        assert!(lines.iter().any(|l| l.contains("broker connection for consuming reopened")), "{}", lines.join("\n"));
        after.extend(lines);
    }
    assert!(after.iter().any(|l| l.contains("task done")), "{}", after.join("\n"));
    // The queue w1 serves alone is consumed again, by one consumer it registered after the
    // restart: consumer tags end with the worker's count of consumes, 1 before the restart (its
    // consumer stays in place while it is busy).
    let queue = common::topology::task_queue(common::Round::Basic);
    let basic = support::management_get(&format!("/api/queues/{}/{queue}", fleet.vhost.name));
    let tags: Vec<&str> =
        basic["consumer_details"].as_array().unwrap().iter().filter_map(|c| c["consumer_tag"].as_str()).collect();
    assert_eq!(tags.len(), 1, "one consumer on {queue}: {tags:?}");
    let generation: u64 = tags[0].strip_prefix("w1/basic/").and_then(|g| g.parse().ok()).unwrap_or(0);
    assert!(generation >= 2, "w1 consumes {queue} again after the restart: {tags:?}");
}

/// A memory alarm blocks every connection that publishes: tasks and results wait in their
/// publishers until it clears. Nothing is lost and nothing dies: the job completes, and nothing
/// reaches the dead-letter queue.
#[test]
fn a_memory_alarm_mid_job_holds_publishers_and_the_job_completes_after_it() {
    let _broker = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    let fleet = Fleet::new();
    let mut worker = fleet.worker("w1", &[]);
    let input = fleet.synth("a.json", 16, 12);
    let proof = fleet.path("a.proof");
    let leader =
        Proc::spawn(fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--output", proof.to_str().unwrap()]));
    leader.wait_for(&["txs_proved=4 "], Duration::from_secs(300));

    let watermark = rabbitmqctl(&["eval", "vm_memory_monitor:get_vm_memory_high_watermark()."]);
    rabbitmqctl(&["set_vm_memory_high_watermark", "0.0000001"]);
    let blocked = || {
        let listed = rabbitmqctl(&["list_connections", "-q", "--no-table-headers", "vhost", "state"]);
        listed.lines().any(|l| l.starts_with(&format!("{}\t", fleet.vhost.name)) && l.ends_with("\tblocked"))
    };
    let alarm = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        until(Duration::from_secs(120), "a publisher of the job is blocked", blocked)
    }));
    // Cleared whatever happened above, so the broker is left as it was found.
    rabbitmqctl(&["eval", &format!("vm_memory_monitor:set_vm_memory_high_watermark({}).", watermark.trim())]);
    alarm.unwrap();

    let (code, _, err) = leader.finish_beside(Duration::from_secs(300), &[&worker]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(fleet.values(&proof)["tx_count"], 16);
    assert!(worker.child.try_wait().unwrap().is_none(), "the worker rode it out:\n{}", worker.stderr().join("\n"));
    assert_eq!(fleet.vhost.depth(common::topology::DEAD_LETTER_QUEUE), (0, 0), "nothing was dead-lettered");
}

/// A TCP proxy in front of the broker that cuts connections in the middle of a publish: at a
/// client's `nth` `basic.publish` on a connection it forwards the method frame, the content header
/// and half of the body, then shuts both sockets as a failing network would, until it has cut
/// `limit` connections. Every other byte passes as it came. It keeps the names of the connections
/// it cut (the `connection_name` a client gives the broker).
struct CuttingProxy {
    addr: String,
    cut: Arc<Mutex<Vec<String>>>,
}

impl CuttingProxy {
    fn start(nth: usize, limit: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(Mutex::new(Vec::new()));
        let cuts = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let (Ok(client), Ok(broker)) = (client, TcpStream::connect("127.0.0.1:5672")) else { continue };
                let (client_out, broker_in) = (client.try_clone().unwrap(), broker.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut &broker_in, &mut &client_out);
                    let _ = client_out.shutdown(Shutdown::Both);
                });
                let cuts = cuts.clone();
                std::thread::spawn(move || forward_until_cut(client, broker, nth, limit, &cuts));
            }
        });
        CuttingProxy { addr, cut }
    }

    fn cut(&self) -> Vec<String> {
        self.cut.lock().unwrap().clone()
    }
}

/// The length of the AMQP frame at the start of `bytes` (type, channel, size, payload, end
/// octet), if all of it is there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let size = u32::from_be_bytes(bytes.get(3..7)?.try_into().unwrap()) as usize;
    let len = 7 + size + 1;
    (bytes.len() >= len).then_some(len)
}

/// A method frame of class 60 (basic), method 40 (publish).
fn is_publish(frame: &[u8]) -> bool {
    frame[0] == 1 && frame[7..11] == [0, 60, 0, 40]
}

/// The `connection_name` client property in a frame that carries it (`connection.start-ok`): the
/// key, the type `S`, a 32-bit length, the name.
fn connection_name(frame: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\x0fconnection_nameS";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = u32::from_be_bytes(frame.get(at..at + 4)?.try_into().unwrap()) as usize;
    Some(String::from_utf8_lossy(frame.get(at + 4..at + 4 + len)?).into_owned())
}

/// Copies the client's bytes to the broker frame by frame, and cuts both sockets in the middle of
/// the `nth` publish if fewer than `limit` connections have been cut.
fn forward_until_cut(
    mut client: TcpStream,
    mut broker: TcpStream,
    nth: usize,
    limit: usize,
    cuts: &Mutex<Vec<String>>,
) {
    // The protocol header ("AMQP" and a version) comes before the first frame.
    let (mut pending, mut at, mut publishes, mut name) = (Vec::new(), 8, 0, String::new());
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match client.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while pending.len() > at {
            let Some(len) = frame_len(&pending[at..]) else { break };
            if is_publish(&pending[at..]) && publishes + 1 == nth {
                // Wait for the content header and the first body frame, then cut in that body.
                let Some(header) = frame_len(&pending[at + len..]) else { break };
                let Some(body) = frame_len(&pending[at + len + header..]) else { break };
                let mut cut = cuts.lock().unwrap();
                if cut.len() < limit {
                    cut.push(std::mem::take(&mut name));
                    let _ = broker.write_all(&pending[..at + len + header + body / 2]);
                    let _ = broker.shutdown(Shutdown::Both);
                    let _ = client.shutdown(Shutdown::Both);
                    return;
                }
            }
            if name.is_empty() {
                name = connection_name(&pending[at..at + len]).unwrap_or_default();
            }
            publishes += usize::from(is_publish(&pending[at..]));
            at += len;
        }
        let whole = at.min(pending.len());
        if broker.write_all(&pending[..whole]).is_err() {
            break;
        }
        pending.drain(..whole);
        at -= whole;
    }
    let _ = broker.shutdown(Shutdown::Write);
}

/// Connections of the leader and of the workers cut in the middle of publishing tasks and
/// results: nothing is lost (the job completes, its proof verifies, nothing is dead-lettered) and
/// no task's outputs are written twice (one worker wrote each task's outputs; a
/// task that came back found them written).
#[test]
fn connections_cut_mid_publish_lose_no_task_and_write_no_output_twice() {
    let _broker = BROKER.lock().unwrap_or_else(|e| e.into_inner());
    // The leader and the workers each through a proxy of their own, so that each is cut a known
    // number of times: the leader at every third task it publishes (a message sent again after a
    // cut counts again) three times, the workers at every second result twice. Ten tasks are
    // enough for both, however the workers share them.
    let (to_leader, to_workers) = (CuttingProxy::start(3, 3), CuttingProxy::start(2, 2));
    let fleet = support::Fleet { broker: Some(to_workers.addr.clone()), ..support::Fleet::new() };
    let json = ["--log-format", "json"];
    let mut workers = [fleet.worker("w1", &json), fleet.worker("w2", &json)];
    let input = fleet.synth("a.json", 16, 13);
    let proof = fleet.path("a.proof");
    let mut prove = fleet.leader(&["prove", "--input", input.to_str().unwrap(), "--output", proof.to_str().unwrap()]);
    prove.env("ZKFLEET_AMQP_URI", fleet.vhost.uri_at(&to_leader.addr));
    let leader = Proc::spawn(prove);
    let (code, _, err) = leader.finish_beside(Duration::from_secs(300), &[&workers[0], &workers[1]]);
    assert_eq!(code, Some(0), "{}", err.join("\n"));
    assert_eq!(to_leader.cut(), ["zkfleet-leader"; 3], "the leader's task publishing was cut three times");
    let cut = to_workers.cut();
    assert!(
        cut.len() == 2 && cut.iter().all(|c| c.starts_with("zkfleet-worker")),
        "the workers' result publishing was cut twice: {cut:?}"
    );
    assert_eq!(fleet.verify(&proof)["tx_count"], 16);

    // Every task a worker started was done, and its outputs written by one worker only.
    let mut written: HashMap<String, usize> = HashMap::new();
    let mut started = std::collections::HashSet::new();
    for w in &mut workers {
        assert!(w.child.try_wait().unwrap().is_none(), "a worker exited:\n{}", w.stderr().join("\n"));
        for line in w.stderr() {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
            let f = &event["fields"];
            let task = format!("{} {} {}", f["round"].as_str().unwrap_or_default(), f["level"], f["index"]);
            match f["message"].as_str() {
                Some("task started") => drop(started.insert(task)),
                Some("task done") if f["reused"] == false => *written.entry(task).or_default() += 1,
                _ => {}
            }
        }
    }
    // One witness task, four chunks, two aggregates and their aggregate, final and compress.
    assert_eq!(started.len(), 10, "the job's tasks: {started:?}");
    let twice: Vec<_> = written.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "outputs written more than once: {twice:?}");
    let never: Vec<_> = started.iter().filter(|t| !written.contains_key(*t)).collect();
    assert!(never.is_empty(), "tasks whose outputs nobody wrote: {never:?}");
    assert_eq!(fleet.vhost.depth(common::topology::DEAD_LETTER_QUEUE), (0, 0), "nothing was dead-lettered");
}
