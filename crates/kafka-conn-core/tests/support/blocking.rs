//! Driving a [`Connection`] from a plain blocking `std::net::TcpStream`
//! loop, with no async runtime: the proof that the core is sans-IO. Used
//! by the real-broker tests (`examples/blocking.rs` has its own, smaller loop).

#![allow(dead_code, unreachable_pub)]

use std::io::{self, IoSlice, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_conn_core::sasl::{Credential, CredentialRequest};
use kafka_conn_core::{
    ApiVersions, CloseReason, Config, Connection, CorrelationId, Event, Request, RequestError,
    Response,
};

/// Answers a credential request (e.g. returns an OAUTHBEARER token).
pub type CredentialAnswer = Box<dyn FnMut(&kafka_conn_core::sasl::CredentialRequest) -> Credential>;

/// A connection driven by blocking reads and writes.
pub struct Blocking {
    stream: TcpStream,
    /// The sans-IO core.
    pub conn: Connection,
    /// Events not yet taken by the caller.
    pub pending: Vec<Event>,
    /// Answers credential requests (OAUTHBEARER tokens), if set.
    pub credentials: Option<CredentialAnswer>,
}

impl Blocking {
    /// Connects over TCP and creates the core.
    pub fn connect(addr: &str, config: Config) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let conn = Connection::new(config, Instant::now())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Self {
            stream,
            conn,
            pending: Vec::new(),
            credentials: None,
        })
    }

    /// One round of the drive loop: write what is pending, read (blocking
    /// until data or the next core deadline, at most `max_wait`), fire
    /// timeouts, drain events.
    pub fn turn(&mut self, max_wait: Duration) {
        // Write everything pending (vectored; partial writes allowed).
        while self.conn.transmit_len() > 0 {
            let mut slices = [IoSlice::new(&[]); 64];
            let n = self.conn.poll_transmit(&mut slices);
            match self.stream.write_vectored(&slices[..n]) {
                Ok(written) => self.conn.transmit_complete(written, Instant::now()),
                Err(e) => {
                    self.conn
                        .handle_io_error(e.kind(), e.to_string(), Instant::now());
                    break;
                }
            }
        }
        self.drain();
        if self.conn.is_closed() {
            return;
        }
        let now = Instant::now();
        let wait = self
            .conn
            .poll_timeout()
            .map_or(max_wait, |t| t.saturating_duration_since(now).min(max_wait))
            .max(Duration::from_millis(1));
        self.stream
            .set_read_timeout(Some(wait))
            .expect("non-zero timeout");
        let result = self.stream.read(self.conn.recv_buf());
        let now = Instant::now();
        match result {
            Ok(0) => self.conn.handle_eof(now),
            Ok(n) => self.conn.recv_commit(n, now),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.conn.recv_commit(0, now)
            }
            Err(e) => self.conn.handle_io_error(e.kind(), e.to_string(), now),
        }
        self.conn.handle_timeout(Instant::now());
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(e) = self.conn.poll_event() {
            if let Event::CredentialRequired(CredentialRequest::ScramSaltedPassword(job)) = &e {
                // A blocking loop may run SCRAM's PBKDF2 in place: nothing
                // else shares this thread.
                let salted = job.clone().run();
                let _ = self.conn.provide_credential(salted, Instant::now());
            } else if let Event::CredentialRequired(req) = &e {
                if let Some(answer) = self.credentials.as_mut() {
                    let c = answer(req);
                    let _ = self.conn.provide_credential(c, Instant::now());
                }
            }
            self.pending.push(e);
        }
    }

    /// Drives until `stop` accepts an event (returned) or `limit` passes.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut stop: impl FnMut(&Event) -> bool,
    ) -> Option<Event> {
        let end = Instant::now() + limit;
        loop {
            if let Some(pos) = self.pending.iter().position(&mut stop) {
                return Some(self.pending.remove(pos));
            }
            if Instant::now() >= end || (self.conn.is_closed() && self.pending.is_empty()) {
                return None;
            }
            self.turn(end.saturating_duration_since(Instant::now()));
        }
    }

    /// Waits for Ready (or the close reason).
    pub fn wait_ready(&mut self, limit: Duration) -> Result<Arc<ApiVersions>, CloseReason> {
        match self.run_until(limit, |e| {
            matches!(e, Event::Ready { .. } | Event::Closed(_))
        }) {
            Some(Event::Ready { api_versions, .. }) => Ok(api_versions),
            Some(Event::Closed(r)) => Err(r),
            _ => Err(self
                .conn
                .close_reason()
                .cloned()
                .unwrap_or(CloseReason::Shutdown)),
        }
    }

    /// Sends a request and waits for its outcome.
    pub fn request(&mut self, req: Request, limit: Duration) -> Result<Response, String> {
        let id = self
            .conn
            .send_request(req, Instant::now())
            .map_err(|e| e.to_string())?;
        self.wait_for(id, limit)
    }

    /// Waits for the outcome of request `id`.
    pub fn wait_for(&mut self, id: CorrelationId, limit: Duration) -> Result<Response, String> {
        let outcome = self.run_until(limit, |e| match e {
            Event::Response(r) => r.correlation_id == id,
            Event::RequestFailed { correlation_id, .. } => *correlation_id == id,
            _ => false,
        });
        match outcome {
            Some(Event::Response(r)) => Ok(r),
            Some(Event::RequestFailed { error, .. }) => Err(describe(&error)),
            _ => Err(format!(
                "no outcome for request {id} within {limit:?} (closed: {:?})",
                self.conn.close_reason()
            )),
        }
    }
}

fn describe(e: &RequestError) -> String {
    e.to_string()
}
