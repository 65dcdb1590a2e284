//! A private librdkafka mock cluster per test, steered from the test: take
//! brokers down and up, delay responses, move partition leaders, inject
//! error codes.
//!
//! Each [`MockCluster`] is its own process (`scripts/mock_cluster.py
//! --control`, librdkafka 2.16's `rdkafka_mock.h` through ctypes), so a
//! test that takes a broker down never disturbs another test or the shared
//! mock of `scripts/broker-up`. It is found through two variables that
//! `broker-up` writes into its env file: `KAFKA_CONN_MOCK_PYTHON` (the
//! venv's Python with confluent-kafka) and `KAFKA_CONN_MOCK_SCRIPT`. When
//! they are missing the test is skipped with a message, or fails when
//! `KAFKA_CONN_REQUIRE_BROKERS=1` (see [`crate::env`]).
//!
//! ```ignore
//! let Some(mock) = MockCluster::start(3) else { return };
//! mock.broker_down(2);
//! ```
//!
//! Commands are synchronous (they return once librdkafka applied them) and
//! panic with the mock's error when it refuses one; [`MockCluster::command`]
//! returns the error instead. The process is killed on drop, and also ends
//! by itself when the test process dies (its stdin closes).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::env;

/// How long a command (or the start) may take before the helper gives up.
/// librdkafka applies commands in well under a millisecond; this only bounds
/// a hung or crashed script.
const REPLY_LIMIT: Duration = Duration::from_secs(20);

/// A librdkafka mock cluster owned by one test. Brokers have the ids
/// `1..=brokers`; [`MockCluster::address`] maps an id to its listener.
pub struct MockCluster {
    child: Child,
    channel: Mutex<Channel>,
    bootstrap: String,
    stderr: Arc<Mutex<String>>,
}

struct Channel {
    stdin: ChildStdin,
    replies: Receiver<String>,
}

impl MockCluster {
    /// Starts a cluster of `brokers` brokers and waits for its listeners.
    /// `None` when the mock is not available here (reported as a skip, or a
    /// panic under `KAFKA_CONN_REQUIRE_BROKERS=1`). Panics if it is
    /// available but does not start.
    pub fn start(brokers: u32) -> Option<Self> {
        let [python, script] = env::vars(["KAFKA_CONN_MOCK_PYTHON", "KAFKA_CONN_MOCK_SCRIPT"])?;
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("--control")
            .arg(brokers.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} {script}: {e}"));
        // Both pipes are drained on their own threads: replies go through a
        // channel so that a hung script is a timeout, not a hung test; the
        // log (librdkafka's) is kept for error messages.
        let stdout = child.stdout.take().expect("piped");
        let (tx, replies) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("piped");
        let log = stderr.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err_pipe.read(&mut buf) {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take().expect("piped");
        let mut mock = Self {
            child,
            channel: Mutex::new(Channel { stdin, replies }),
            bootstrap: String::new(),
            stderr,
        };
        let first = mock.reply();
        match first.strip_prefix("ready ") {
            Some(list) if !list.is_empty() => mock.bootstrap = list.to_owned(),
            _ => panic!(
                "mock cluster did not start: {first:?}; its log: {}",
                mock.log()
            ),
        }
        Some(mock)
    }

    /// The bootstrap list, `127.0.0.1:PORT,...`, broker 1 first.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// `127.0.0.1:PORT` of broker `id` (1-based, as in Metadata).
    pub fn address(&self, id: i32) -> String {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.bootstrap.split(',').nth(i))
            .unwrap_or_else(|| panic!("no broker {id} in {}", self.bootstrap))
            .to_owned()
    }

    /// Closes broker `id`'s connections and refuses new ones until
    /// [`broker_up`](Self::broker_up) (`rd_kafka_mock_broker_set_down`;
    /// leaders stay where they are). `-1`: every broker.
    pub fn broker_down(&self, id: i32) {
        self.must(&format!("down {id}"));
    }

    /// Lets broker `id` accept connections again (`-1`: every broker).
    pub fn broker_up(&self, id: i32) {
        self.must(&format!("up {id}"));
    }

    /// Delays every response of broker `id` by `rtt` (`-1`: every broker;
    /// millisecond resolution).
    pub fn set_rtt(&self, id: i32, rtt: Duration) {
        self.must(&format!("rtt {id} {}", rtt.as_millis()));
    }

    /// Makes broker `id` the leader of `topic`'s `partition` (created if
    /// missing); `-1` leaves it without a leader.
    pub fn set_leader(&self, topic: &str, partition: i32, id: i32) {
        self.must(&format!("leader {} {partition} {id}", word(topic)));
    }

    /// The next `codes.len()` requests with `api_key`, to any broker, fail
    /// with these error codes, one each, in order. librdkafka's `-195`
    /// (`_TRANSPORT`) makes the broker drop the connection instead.
    pub fn push_request_errors(&self, api_key: i16, codes: &[i16]) {
        assert!(!codes.is_empty(), "push_request_errors: no codes");
        let codes: Vec<String> = codes.iter().map(i16::to_string).collect();
        self.must(&format!("errors {api_key} {}", codes.join(" ")));
    }

    /// The same on broker `id` only, each answer delayed by its duration
    /// (`rd_kafka_mock_broker_push_request_error_rtts`; code 0 = a normal
    /// answer, only delayed).
    ///
    /// librdkafka 2.16 quirk: once a broker has had errors pushed for
    /// `api_key` this way, that broker ignores the cluster-wide errors of
    /// [`push_request_errors`](Self::push_request_errors) for the same
    /// `api_key` (its own, by then empty, list wins).
    pub fn push_broker_request_errors(&self, id: i32, api_key: i16, errors: &[(i16, Duration)]) {
        assert!(!errors.is_empty(), "push_broker_request_errors: no errors");
        let pairs: Vec<String> = errors
            .iter()
            .map(|(code, rtt)| format!("{code}:{}", rtt.as_millis()))
            .collect();
        self.must(&format!("broker-errors {id} {api_key} {}", pairs.join(" ")));
    }

    /// Drops the errors still pushed for `api_key` (cluster-wide ones).
    pub fn clear_request_errors(&self, api_key: i16) {
        self.must(&format!("clear-errors {api_key}"));
    }

    /// Creates `name` (the mock has no CreateTopics API).
    pub fn create_topic(&self, name: &str, partitions: i32, replication: i32) {
        self.must(&format!(
            "topic-create {} {partitions} {replication}",
            word(name)
        ));
    }

    /// Metadata answers `topic` with `code` (0 clears it).
    pub fn set_topic_error(&self, topic: &str, code: i16) {
        self.must(&format!("topic-error {} {code}", word(topic)));
    }

    /// Sets the rack broker `id` reports in Metadata.
    pub fn set_rack(&self, id: i32, rack: &str) {
        self.must(&format!("rack {id} {}", word(rack)));
    }

    /// Removes broker `id` from the cluster (and from Metadata); its
    /// partitions move to the others.
    pub fn decommission_broker(&self, id: i32) {
        self.must(&format!("decommission {id}"));
    }

    /// Adds a broker with a new `id` on a new ephemeral port; partitions are
    /// reassigned over it. (Its address is in Metadata, not in
    /// [`bootstrap`](Self::bootstrap).)
    pub fn add_broker(&self, id: i32) {
        self.must(&format!("add {id}"));
    }

    /// Restricts the versions of `api_key` the brokers advertise and accept
    /// (`-1, -1` disables the API).
    pub fn set_api_version(&self, api_key: i16, min: i16, max: i16) {
        self.must(&format!("apiversion {api_key} {min} {max}"));
    }

    /// Stops the whole mock process (SIGSTOP): its brokers neither read
    /// nor answer, while their sockets stay open and the kernel buffers
    /// what clients write until the buffers are full, as with a broker
    /// stuck in a long pause. Commands wait until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal(Signal::SIGSTOP);
        // The signal is delivered asynchronously: a broker thread running on
        // another core answers for a moment longer. Wait until every thread
        // of the process is stopped (state `T` in /proc).
        let tasks = format!("/proc/{}/task", self.child.id());
        let start = std::time::Instant::now();
        while !all_stopped(&tasks) {
            assert!(
                start.elapsed() < REPLY_LIMIT,
                "mock cluster (pid {}) did not stop",
                self.child.id()
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Lets a [`pause`](Self::pause)d mock run again (SIGCONT).
    pub fn resume(&self) {
        self.signal(Signal::SIGCONT);
    }

    /// Kills the mock process (SIGKILL), paused or not: the kernel closes
    /// its sockets, as when a broker's machine dies with its process.
    /// Commands fail afterwards.
    pub fn kill(&self) {
        self.signal(Signal::SIGKILL);
    }

    fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("a pid fits i32"));
        if let Err(e) = kill(pid, signal) {
            panic!("mock cluster (pid {pid}): {signal}: {e}");
        }
    }

    /// Sends one raw command line (see `scripts/mock_cluster.py`) and returns
    /// the data after `ok`, or the mock's error (`NAME: message`).
    pub fn command(&self, line: &str) -> Result<String, String> {
        assert!(
            !line.contains('\n'),
            "one command per call, no newline: {line:?}"
        );
        let reply = {
            let mut ch = self.channel.lock().unwrap();
            if let Err(e) = writeln!(ch.stdin, "{line}").and_then(|()| ch.stdin.flush()) {
                return Err(format!("mock cluster gone ({e}); its log: {}", self.log()));
            }
            recv(&ch.replies)
        };
        match reply {
            Some(r) if r == "ok" => Ok(String::new()),
            Some(r) => match r.strip_prefix("ok ") {
                Some(data) => Ok(data.to_owned()),
                None => Err(r.strip_prefix("err ").unwrap_or(&r).to_owned()),
            },
            None => Err(format!(
                "no reply to {line:?} within {REPLY_LIMIT:?}; its log: {}",
                self.log()
            )),
        }
    }

    fn must(&self, line: &str) {
        if let Err(e) = self.command(line) {
            panic!("mock cluster refused {line:?}: {e}");
        }
    }

    fn reply(&self) -> String {
        let ch = self.channel.lock().unwrap();
        recv(&ch.replies).unwrap_or_else(|| {
            panic!(
                "mock cluster: no output within {REPLY_LIMIT:?}; its log: {}",
                self.log()
            )
        })
    }

    fn log(&self) -> String {
        // Give the stderr thread a moment to collect a dying script's last words.
        thread::sleep(Duration::from_millis(50));
        self.stderr.lock().unwrap().trim().to_owned()
    }
}

/// Whether every thread under `/proc/PID/task` is stopped by a signal.
fn all_stopped(tasks: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(tasks) else {
        return false;
    };
    dir.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name in parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
        })
    })
}

/// The next reply line, `None` on timeout or when the script exited.
fn recv(replies: &Receiver<String>) -> Option<String> {
    replies.recv_timeout(REPLY_LIMIT).ok()
}

/// A command argument must be one word: the channel is space-separated lines.
fn word(s: &str) -> &str {
    assert!(
        !s.is_empty() && !s.chars().any(char::is_whitespace),
        "mock cluster names must be non-empty and without whitespace: {s:?}"
    );
    s
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
