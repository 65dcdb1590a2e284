//! A real network path that can be cut: a network namespace this process
//! creates (`ip netns`), joined to the host by a veth pair, with a TCP
//! forwarder whose listening socket lives inside the namespace and which
//! forwards to a real broker on the host. [`Blackhole::cut`] then drops
//! every packet in the namespace (nftables, or iptables where nft is
//! missing), so the client sees exactly what a vanished host or a load
//! balancer that forgot the connection looks like: silence, no RST, no FIN.
//!
//! Needs root (`CAP_NET_ADMIN`, `CAP_SYS_ADMIN` for `setns`) and the `ip`
//! tool; [`Blackhole::start`] returns `None` with a printed reason where
//! that is not there, and panics instead under
//! `KAFKA_CONN_REQUIRE_BROKERS=1`. Every namespace and host veth end gets
//! a unique name (process id and a counter) and is deleted when the
//! [`Blackhole`] drops, also when the test fails.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::fake::Proxy;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A namespace with a forwarder to a broker, and the means to cut it off.
pub struct Blackhole {
    namespace: String,
    host_veth: String,
    forwarder: Option<Proxy>,
    address: SocketAddr,
}

/// Runs `ip`-like `program args`, returning its stderr on failure.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        use std::io::Write;
        input
            .write_all(text.as_bytes())
            .map_err(|e| format!("{program} stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Skips (prints why and returns `None`) or, under
/// `KAFKA_CONN_REQUIRE_BROKERS=1`, fails.
fn unavailable<T>(why: &str) -> Option<T> {
    if std::env::var("KAFKA_CONN_REQUIRE_BROKERS").as_deref() == Ok("1") {
        panic!("network namespaces should work here (KAFKA_CONN_REQUIRE_BROKERS=1): {why}");
    }
    eprintln!("SKIPPED: network namespaces are not available: {why}");
    None
}

impl Blackhole {
    /// A namespace with a forwarder to `broker` (`host:port` on this
    /// host); `None` (skipped) where namespaces cannot be made.
    pub fn start(broker: &str) -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            return unavailable("not root");
        }
        if let Err(e) = run("ip", &["-V"], None) {
            return unavailable(&format!("no `ip` tool ({e})"));
        }
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Interface names: at most 15 bytes.
        let namespace = format!("kconn-{pid}-{n}");
        let host_veth = format!("kch{pid}x{n}");
        let ns_veth = format!("kcn{pid}x{n}");
        // A /30 of 10.77.0.0/16 picked from the process id and the counter
        // (a private range, only on this veth pair inside this machine).
        let slot = (pid.wrapping_mul(7919).wrapping_add(n.wrapping_mul(131))) % (256 * 64);
        let (third, fourth) = ((slot / 64) as u8, ((slot % 64) * 4) as u8);
        let host_ip = Ipv4Addr::new(10, 77, third, fourth + 1);
        let ns_ip = Ipv4Addr::new(10, 77, third, fourth + 2);
        if let Err(e) = run("ip", &["netns", "add", &namespace], None) {
            return unavailable(&e);
        }
        // From here on, Drop cleans up whatever was made.
        let mut hole = Blackhole {
            namespace,
            host_veth,
            forwarder: None,
            address: SocketAddr::V4(SocketAddrV4::new(ns_ip, 0)),
        };
        let ns = hole.namespace.clone();
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &hole.host_veth,
                "type",
                "veth",
                "peer",
                "name",
                &ns_veth,
            ],
            &["link", "set", &ns_veth, "netns", &ns],
            &[
                "addr",
                "add",
                &format!("{host_ip}/30"),
                "dev",
                &hole.host_veth,
            ],
            &["link", "set", &hole.host_veth, "up"],
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{ns_ip}/30"),
                "dev",
                &ns_veth,
            ],
            &["-n", &ns, "link", "set", &ns_veth, "up"],
            &["-n", &ns, "link", "set", "lo", "up"],
        ];
        for step in steps {
            if let Err(e) = run("ip", step, None) {
                return unavailable(&e);
            }
        }
        let listener = match listen_in(&ns, SocketAddr::V4(SocketAddrV4::new(ns_ip, 0))) {
            Ok(l) => l,
            Err(e) => return unavailable(&e),
        };
        hole.address = listener.local_addr().unwrap();
        hole.forwarder = Some(Proxy::on(listener, broker));
        Some(hole)
    }

    /// `host:port` of the forwarder inside the namespace: connect here.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Drops every packet in and out of the namespace from now on.
    pub fn cut(&self) {
        let rules = "table inet kconn_blackhole {\n\
                     chain input { type filter hook input priority 0; policy drop; }\n\
                     chain output { type filter hook output priority 0; policy drop; }\n\
                     }\n";
        let nft = run(
            "ip",
            &["netns", "exec", &self.namespace, "nft", "-f", "-"],
            Some(rules),
        );
        if let Err(nft) = nft {
            for chain in ["INPUT", "OUTPUT"] {
                let args = [
                    "netns",
                    "exec",
                    &self.namespace,
                    "iptables",
                    "-A",
                    chain,
                    "-j",
                    "DROP",
                ];
                if let Err(ipt) = run("ip", &args, None) {
                    panic!("cannot drop packets in {}: {nft}; {ipt}", self.namespace);
                }
            }
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        // The forwarder's threads go first, then the namespace (which takes
        // its veth end along) and the host end, should it still exist.
        if let Some(f) = self.forwarder.take() {
            f.kill();
        }
        let _ = run("ip", &["netns", "del", &self.namespace], None);
        let _ = run("ip", &["link", "del", &self.host_veth], None);
    }
}

/// A listening socket inside `namespace`, made by a short-lived thread
/// that enters it (`setns` changes only the calling thread); the socket
/// stays in the namespace, and the rest of the process never leaves the
/// host's.
fn listen_in(namespace: &str, at: SocketAddr) -> Result<TcpListener, String> {
    let path = format!("/run/netns/{namespace}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("setns {path}: {e}"))?;
        TcpListener::bind(at).map_err(|e| format!("bind {at} in {path}: {e}"))
    })
    .join()
    .map_err(|_| "the namespace thread panicked".to_owned())?
}
