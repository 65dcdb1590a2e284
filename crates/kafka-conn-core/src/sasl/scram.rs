//! SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677; KIP-84, KIP-48): see [`Scram`].

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use super::{Credential, CredentialRequest, Mechanism, MechanismFactory, SaslError, Secret, Step};

/// Random bytes in a client nonce: 192 bits, well above the 128 bits asked
/// for; 24 is a multiple of 3, so the base64 form has no `=` padding.
const NONCE_RANDOM_BYTES: usize = 24;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ScramHash {
    /// SCRAM-SHA-256 (RFC 7677).
    Sha256,
    /// SCRAM-SHA-512 (the same construction with SHA-512, as Kafka offers it).
    Sha512,
}

/// Runs `$body` with `$d` bound to the hash type of `$hash`.
macro_rules! with_digest {
    ($hash:expr, $d:ident => $body:expr) => {
        match $hash {
            ScramHash::Sha256 => {
                type $d = Sha256;
                $body
            }
            ScramHash::Sha512 => {
                type $d = Sha512;
                $body
            }
        }
    };
}
#[cfg(feature = "fuzzing")]
pub(crate) use with_digest;

impl ScramHash {
    /// The SASL mechanism name: `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub fn mechanism_name(self) -> &'static str {
        match self {
            ScramHash::Sha256 => "SCRAM-SHA-256",
            ScramHash::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// RFC 5802 section 3: SaltedPassword := Hi(password, salt, i), which is
    /// PBKDF2 with HMAC as the PRF and the hash's output length.
    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Key {
        with_digest!(self, D => {
            let mut out = vec![0u8; <D as Digest>::output_size()];
            pbkdf2::pbkdf2_hmac::<D>(password, salt, iterations, &mut out);
            Key(out)
        })
    }

    /// HMAC(key, concatenation of `parts`).
    fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Key {
        with_digest!(self, D => {
            let mut mac = <Hmac<D> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            for part in parts {
                mac.update(part);
            }
            Key(mac.finalize().into_bytes().to_vec())
        })
    }

    /// Checks HMAC(key, data) against `tag` in constant time (`verify_slice`
    /// compares with `subtle`), as RFC 5802 section 9's attacks on the
    /// signature comparison call for.
    fn hmac_verify(self, key: &[u8], data: &[u8], tag: &[u8]) -> bool {
        with_digest!(self, D => {
            let mut mac = <Hmac<D> as Mac>::new_from_slice(key)
                .expect("HMAC accepts keys of any length");
            mac.update(data);
            mac.verify_slice(tag).is_ok()
        })
    }

    /// H(data).
    fn hash(self, data: &[u8]) -> Key {
        with_digest!(self, D => Key(D::digest(data).to_vec()))
    }
}

/// Key material (salted password, client and server keys): never printed,
/// zeroed on drop.
#[derive(Clone)]
struct Key(Vec<u8>);

impl Drop for Key {
    fn drop(&mut self) {
        self.0.fill(0);
        std::hint::black_box(&mut self.0);
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl PartialEq for Key {
    /// Without an early exit on the first differing byte (key material).
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl Eq for Key {}

/// The salted-password cache shared by a factory and its clones (and by
/// the [`ScramPbkdf2`] jobs it hands out).
#[derive(Default)]
struct SaltedCache {
    /// One entry: every broker of a cluster holds the same credential (same
    /// salt and iterations), so one slot serves all connections.
    slot: Mutex<Option<CacheEntry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct CacheEntry {
    salt: Vec<u8>,
    iterations: u32,
    salted: Key,
}

/// SCRAM credentials and settings; makes a fresh exchange per
/// authentication and caches the salted password across them.
///
/// Clones share the cache (the password cannot change after construction,
/// so the cache key is just the salt and the iteration count).
///
/// The exchange, client side:
///
/// 1. client-first: `n,,n=<user>,r=<client nonce>[,tokenauth=true]`
/// 2. server-first: `r=<client nonce + server nonce>,s=<salt>,i=<iterations>`
/// 3. client-final: `c=biws,r=<full nonce>,p=<proof>`
/// 4. server-final: `v=<server signature>` (checked in constant time) or `e=<error>`
///
/// As in Kafka's own client, the username and password are used exactly as
/// given: Kafka applies no SASLprep (RFC 4013) on either side, so neither do
/// we. The salted password (the PBKDF2 output, the expensive part) is cached
/// on the factory, keyed by salt and iteration count, so reconnects and
/// KIP-368 re-authentications skip PBKDF2.
///
/// # PBKDF2 off the caller's thread
///
/// PBKDF2 at the server's iteration count (up to the cap) takes from a
/// few to a hundred milliseconds of CPU, too long for the thread of an
/// async executor. So when the cache has no salted password for the
/// server's salt and iteration count, the mechanism does not compute it
/// in [`Mechanism::step`]: it asks for it, with
/// [`CredentialRequest::ScramSaltedPassword`] carrying a [`ScramPbkdf2`]
/// job, and goes on when the answer comes
/// ([`Credential::ScramSaltedPassword`]). The job holds everything it
/// needs (the password stays inside it, out of `Debug`): whoever drives
/// the connection runs [`ScramPbkdf2::run`] where blocking is fine and
/// hands the result to `provide_credential`. The async drivers
/// (`kafka-conn-driver`) do that by themselves on the runtime's blocking
/// pool; no credential provider is needed. A blocking driver of the core
/// runs the job in place, or sets [`Scram::with_inline_pbkdf2`] to have
/// `step` compute it as before.
///
/// ```
/// use kafka_conn_core::sasl::{MechanismFactory, Scram, ScramHash};
/// let scram = Scram::new(ScramHash::Sha512, "alice", "alice-secret");
/// assert_eq!(scram.name(), "SCRAM-SHA-512");
/// assert!(!format!("{scram:?}").contains("alice-secret"));
/// ```
#[derive(Clone)]
pub struct Scram {
    hash: ScramHash,
    username: String,
    password: Secret,
    token_auth: bool,
    min_iterations: u32,
    max_iterations: u32,
    fixed_nonce: Option<String>,
    inline_pbkdf2: bool,
    cache: Arc<SaltedCache>,
}

impl Scram {
    /// The default iteration floor: RFC 7677 section 4 says the iteration count SHOULD
    /// be at least 4096, and Kafka refuses to store SCRAM credentials below it.
    pub const DEFAULT_MIN_ITERATIONS: u32 = 4096;

    /// The iteration cap.
    ///
    /// The server chooses the PBKDF2 iteration count and the client pays for it,
    /// inline in whatever loop drives the connection. Kafka itself refuses to
    /// store SCRAM credentials above 16384 iterations (its `ScramMechanism` /
    /// controller maximum), so a real broker never asks for more. The cap leaves
    /// six times that as headroom for other Kafka-compatible servers while
    /// bounding what a hostile or broken server can demand to roughly a
    /// tenth of a second of CPU per uncached authentication (PBKDF2-SHA-512,
    /// optimised build).
    pub const DEFAULT_MAX_ITERATIONS: u32 = 100_000;

    /// Authenticates as `username` with `password` using `hash`.
    pub fn new(hash: ScramHash, username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            hash,
            username: username.into(),
            password: Secret::new(password),
            token_auth: false,
            min_iterations: Self::DEFAULT_MIN_ITERATIONS,
            max_iterations: Self::DEFAULT_MAX_ITERATIONS,
            fixed_nonce: None,
            inline_pbkdf2: false,
            cache: Arc::default(),
        }
    }

    /// Authenticates with a Kafka delegation token (KIP-48): the username is
    /// the token id, the password the token's HMAC, and the client-first
    /// message carries the `tokenauth=true` extension (RFC 5802 section 5.1
    /// allows extensions after the nonce).
    pub fn with_token_auth(mut self, token_auth: bool) -> Self {
        self.token_auth = token_auth;
        self
    }

    /// The smallest iteration count accepted from the server (default
    /// [`Self::DEFAULT_MIN_ITERATIONS`], 4096 as RFC 7677 section 4 asks).
    /// Lowering it weakens the protection of the password against offline
    /// guessing; Kafka never needs it lowered.
    pub fn with_min_iterations(mut self, min: u32) -> Self {
        self.min_iterations = min;
        self
    }

    /// The largest iteration count accepted from the server (default
    /// [`Self::DEFAULT_MAX_ITERATIONS`]; see there for why a cap exists).
    pub fn with_max_iterations(mut self, max: u32) -> Self {
        self.max_iterations = max;
        self
    }

    /// Computes PBKDF2 inside [`Mechanism::step`], on the thread that drives
    /// the connection, instead of asking for it with
    /// [`CredentialRequest::ScramSaltedPassword`] (the default, `false`).
    /// For a blocking driver of the core that would rather not answer the
    /// request; never for a connection driven on an async executor, whose
    /// thread PBKDF2 would block (see "PBKDF2 off the caller's thread").
    pub fn with_inline_pbkdf2(mut self, inline: bool) -> Self {
        self.inline_pbkdf2 = inline;
        self
    }

    /// Uses `nonce` instead of a random client nonce. For reproducing test
    /// vectors only: a fixed nonce removes SCRAM's replay protection.
    #[doc(hidden)]
    pub fn with_fixed_nonce_for_testing(mut self, nonce: impl Into<String>) -> Self {
        self.fixed_nonce = Some(nonce.into());
        self
    }

    /// The hash function.
    pub fn hash(&self) -> ScramHash {
        self.hash
    }

    /// The username (or delegation token id).
    pub fn username(&self) -> &str {
        &self.username
    }

    /// How many authentications reused a cached salted password instead of
    /// running PBKDF2 (shared by this factory and its clones).
    pub fn cache_hits(&self) -> u64 {
        self.cache.hits.load(Ordering::Relaxed)
    }

    /// How many times PBKDF2 actually ran (cache misses).
    pub fn cache_misses(&self) -> u64 {
        self.cache.misses.load(Ordering::Relaxed)
    }

    /// The salted password for `(salt, iterations)` if it can be had
    /// without blocking: from the cache, or (with
    /// [`Scram::with_inline_pbkdf2`]) from PBKDF2 right here. `None`: it must
    /// be asked for ([`ScramPbkdf2`]). The cache lock is only tried: while
    /// another connection's job holds it computing PBKDF2, the answer is
    /// `None`, and this connection's job waits for that computation on its
    /// own thread and finds the result cached.
    fn salted_without_blocking(&self, salt: &[u8], iterations: u32) -> Option<Key> {
        if self.inline_pbkdf2 {
            return Some(self.salted_password(salt, iterations));
        }
        let slot = match self.cache.slot.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return None,
        };
        self.cache.lookup(&slot, salt, iterations)
    }

    /// The salted password for `(salt, iterations)`, from the cache or from
    /// PBKDF2, blocking the calling thread. The lock is held during PBKDF2
    /// so that connections starting together wait for one computation
    /// instead of each running their own.
    fn salted_password(&self, salt: &[u8], iterations: u32) -> Key {
        salt_through_cache(&self.cache, self.hash, &self.password, salt, iterations)
    }
}

impl SaltedCache {
    fn lock(&self) -> MutexGuard<'_, Option<CacheEntry>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached salted password for `(salt, iterations)`, counted as a hit.
    fn lookup(&self, slot: &Option<CacheEntry>, salt: &[u8], iterations: u32) -> Option<Key> {
        let entry = slot.as_ref()?;
        (entry.iterations == iterations && entry.salt == salt).then(|| {
            self.hits.fetch_add(1, Ordering::Relaxed);
            entry.salted.clone()
        })
    }
}

/// The salted password for `(salt, iterations)` through `cache`: a hit, or
/// PBKDF2 under the cache's lock (one computation for connections that
/// start together), remembered for the next authentication.
fn salt_through_cache(
    cache: &SaltedCache,
    hash: ScramHash,
    password: &Secret,
    salt: &[u8],
    iterations: u32,
) -> Key {
    let mut slot = cache.lock();
    if let Some(hit) = cache.lookup(&slot, salt, iterations) {
        return hit;
    }
    cache.misses.fetch_add(1, Ordering::Relaxed);
    let salted = hash.salted_password(password.expose().as_bytes(), salt, iterations);
    *slot = Some(CacheEntry {
        salt: salt.to_vec(),
        iterations,
        salted: salted.clone(),
    });
    salted
}

/// SCRAM's expensive step as a job to run where blocking is fine: PBKDF2 of
/// the password with the server's salt and iteration count (RFC 5802
/// section 3, `SaltedPassword := Hi(password, salt, i)`), asked for with
/// [`CredentialRequest::ScramSaltedPassword`] (see [`Scram`], "PBKDF2 off
/// the caller's thread").
///
/// It holds the password (out of `Debug`) and the factory's cache: [`run`]
/// takes the result another connection cached meanwhile, or computes and
/// caches it, holding the cache's lock while it computes.
///
/// [`run`]: ScramPbkdf2::run
#[derive(Clone)]
pub struct ScramPbkdf2 {
    hash: ScramHash,
    password: Secret,
    salt: Vec<u8>,
    iterations: u32,
    cache: Arc<SaltedCache>,
}

impl ScramPbkdf2 {
    /// The hash function (PBKDF2's HMAC).
    pub fn hash(&self) -> ScramHash {
        self.hash
    }

    /// The server's salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// The server's iteration count (already checked against the floor
    /// and the cap).
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Computes the salted password (or takes it from the cache), blocking
    /// the calling thread for as long as PBKDF2 takes; the answer for
    /// [`crate::Connection::provide_credential`].
    pub fn run(self) -> Credential {
        let key = salt_through_cache(
            &self.cache,
            self.hash,
            &self.password,
            &self.salt,
            self.iterations,
        );
        Credential::ScramSaltedPassword(ScramSaltedPassword {
            hash: self.hash,
            salt: self.salt,
            iterations: self.iterations,
            key,
        })
    }
}

impl fmt::Debug for ScramPbkdf2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramPbkdf2")
            .field("hash", &self.hash)
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .field("password", &self.password)
            .finish()
    }
}

impl PartialEq for ScramPbkdf2 {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
            && self.salt == other.salt
            && self.iterations == other.iterations
            && self.password == other.password
    }
}

impl Eq for ScramPbkdf2 {}

/// The result of a [`ScramPbkdf2`] job, for the exchange that asked for
/// it. Only [`ScramPbkdf2::run`] makes one; it prints nothing of the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramSaltedPassword {
    hash: ScramHash,
    salt: Vec<u8>,
    iterations: u32,
    key: Key,
}

impl fmt::Debug for ScramSaltedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramSaltedPassword")
            .field("hash", &self.hash)
            .field("iterations", &self.iterations)
            .field("key", &self.key)
            .finish()
    }
}

impl fmt::Debug for Scram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scram")
            .field("mechanism", &self.hash.mechanism_name())
            .field("username", &self.username)
            .field("password", &self.password)
            .field("token_auth", &self.token_auth)
            .field("min_iterations", &self.min_iterations)
            .field("max_iterations", &self.max_iterations)
            .field("fixed_nonce", &self.fixed_nonce.is_some())
            .field("inline_pbkdf2", &self.inline_pbkdf2)
            .field("cache_hits", &self.cache_hits())
            .field("cache_misses", &self.cache_misses())
            .finish()
    }
}

impl MechanismFactory for Scram {
    fn name(&self) -> &str {
        self.hash.mechanism_name()
    }

    fn start(&self) -> Result<Box<dyn Mechanism>, SaslError> {
        Ok(Box::new(ScramMechanism {
            config: self.clone(),
            state: State::Initial,
        }))
    }
}

enum State {
    Initial,
    SentClientFirst {
        client_nonce: String,
        client_first_bare: String,
    },
    /// The salted password was asked for ([`ScramPbkdf2`]).
    AwaitingSalted(ServerFirstAccepted),
    SentClientFinal {
        server_key: Key,
        auth_message: String,
    },
    Done,
    Failed,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::SentClientFirst { .. } => "sent client-first",
            State::AwaitingSalted(_) => "waiting for the salted password",
            State::SentClientFinal { .. } => "sent client-final",
            State::Done => "done",
            State::Failed => "failed",
        }
    }
}

/// One SCRAM exchange.
struct ScramMechanism {
    config: Scram,
    state: State,
}

impl fmt::Debug for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramMechanism")
            .field("config", &self.config)
            .field("state", &self.state.name())
            .finish()
    }
}

/// RFC 5802 section 5.1: in a saslname, `=` becomes `=3D` and `,` becomes
/// `=2C`. No SASLprep: Kafka applies none (its ScramFormatter only escapes).
fn escape_username(username: &str) -> String {
    let mut out = String::with_capacity(username.len());
    for c in username.chars() {
        match c {
            '=' => out.push_str("=3D"),
            ',' => out.push_str("=2C"),
            c => out.push(c),
        }
    }
    out
}

/// RFC 5802 section 7: `printable = %x21-2B / %x2D-7E` (visible ASCII but ',').
fn is_printable_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A fresh client nonce from the operating system's CSPRNG (RFC 5802
/// section 5.1: the nonce must be unpredictable), base64 so it is printable
/// and has no commas.
fn random_nonce() -> Result<String, SaslError> {
    let mut raw = [0u8; NONCE_RANDOM_BYTES];
    getrandom::getrandom(&mut raw).map_err(|e| SaslError::Random(e.to_string()))?;
    Ok(BASE64.encode(raw))
}

/// A server-first message that passed the checks, kept while the salted
/// password is computed.
struct ServerFirstAccepted {
    client_first_bare: String,
    server_first: String,
    nonce: String,
    salt: Vec<u8>,
    iterations: u32,
}

/// The parts of a server-first-message that matter.
struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn malformed(what: &str) -> SaslError {
    SaslError::Malformed(format!("SCRAM {what}"))
}

/// Takes the next attribute, which must be `name=value`, and returns the value.
fn attribute<'a>(part: Option<&'a str>, name: char, message: &str) -> Result<&'a str, SaslError> {
    part.and_then(|p| p.strip_prefix(name))
        .and_then(|p| p.strip_prefix('='))
        .ok_or_else(|| malformed(&format!("{message}: expected the `{name}=` attribute")))
}

/// RFC 5802 section 7:
/// `server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]`.
fn parse_server_first(text: &str) -> Result<ServerFirst<'_>, SaslError> {
    const MSG: &str = "server-first-message";
    let mut parts = text.split(',');
    let first = parts.next();
    if let Some(error) = first.and_then(|p| p.strip_prefix("e=")) {
        // Not in RFC 5802's grammar for this message, but servers do send an
        // error attribute here (e.g. for an unknown user); surface it.
        return Err(SaslError::ServerError(error.to_owned()));
    }
    if first.is_some_and(|p| p.starts_with("m=")) {
        // RFC 5802 section 5.1: "m" is reserved for mandatory extensions; a
        // client that does not understand one MUST fail the authentication.
        return Err(malformed(&format!(
            "{MSG}: mandatory extension (m=) not supported (RFC 5802 section 5.1)"
        )));
    }
    let nonce = attribute(first, 'r', MSG)?;
    if !is_printable_nonce(nonce) {
        return Err(malformed(&format!(
            "{MSG}: the nonce is empty or not printable"
        )));
    }
    let salt = attribute(parts.next(), 's', MSG)?;
    let salt = BASE64
        .decode(salt)
        .map_err(|_| malformed(&format!("{MSG}: the salt is not valid base64")))?;
    if salt.is_empty() {
        return Err(malformed(&format!("{MSG}: the salt is empty")));
    }
    let iterations = attribute(parts.next(), 'i', MSG)?;
    // RFC 5802 section 7: iteration-count = posit-number (digits only; no
    // sign, which `str::parse` would otherwise accept).
    if iterations.is_empty() || !iterations.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(&format!(
            "{MSG}: the iteration count is not a number"
        )));
    }
    let iterations: u32 = iterations
        .parse()
        .map_err(|_| malformed(&format!("{MSG}: the iteration count is out of range")))?;
    // Anything after `i=` is an optional extension (RFC 5802 section 7), ignored.
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

impl ScramMechanism {
    fn client_first(&self) -> Result<(Step, State), SaslError> {
        let username = &self.config.username;
        // RFC 5802 section 7: saslname = 1*(value-safe-char / "=2C" / "=3D"),
        // and value-safe-char excludes NUL.
        if username.is_empty() {
            return Err(SaslError::InvalidCredential(
                "SCRAM username is empty".into(),
            ));
        }
        if username.contains('\0') {
            return Err(SaslError::InvalidCredential(
                "SCRAM username contains a NUL character (RFC 5802 section 7)".into(),
            ));
        }
        let client_nonce = match &self.config.fixed_nonce {
            Some(nonce) if is_printable_nonce(nonce) => nonce.clone(),
            Some(_) => {
                return Err(SaslError::InvalidCredential(
                    "fixed SCRAM nonce must be printable ASCII without commas".into(),
                ))
            }
            None => random_nonce()?,
        };
        // RFC 5802 section 7: client-first-message-bare =
        //   [reserved-mext ","] username "," nonce ["," extensions]
        // Kafka (KIP-48) puts `tokenauth=true` in the extensions for
        // delegation tokens.
        let mut client_first_bare = format!("n={},r={}", escape_username(username), client_nonce);
        if self.config.token_auth {
            client_first_bare.push_str(",tokenauth=true");
        }
        // RFC 5802 section 7: gs2-header = gs2-cbind-flag "," [authzid] ",";
        // "n": the client does not support channel binding (Kafka has none).
        let message = format!("n,,{client_first_bare}").into_bytes();
        Ok((
            Step::Send(message),
            State::SentClientFirst {
                client_nonce,
                client_first_bare,
            },
        ))
    }

    /// Checks the server-first message; the client-final message follows
    /// at once when the salted password can be had without blocking, else
    /// it is asked for.
    fn client_final(
        &self,
        client_nonce: &str,
        client_first_bare: &str,
        server_first: &[u8],
    ) -> Result<(Step, State), SaslError> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| malformed("server-first-message is not UTF-8"))?;
        let ServerFirst {
            nonce,
            salt,
            iterations,
        } = parse_server_first(server_first)?;
        // RFC 5802 section 5.1: the server's nonce is the client's with the
        // server's part appended; the client MUST check that it starts with
        // its own, and an empty server part would let a replayed exchange pass.
        if !(nonce.len() > client_nonce.len() && nonce.starts_with(client_nonce)) {
            return Err(SaslError::NonceMismatch);
        }
        // RFC 7677 section 4: at least 4096 iterations; the cap guards
        // against a server making us burn CPU (see Scram::DEFAULT_MAX_ITERATIONS).
        if iterations < self.config.min_iterations {
            return Err(SaslError::IterationsTooLow {
                got: iterations,
                min: self.config.min_iterations,
            });
        }
        if iterations > self.config.max_iterations {
            return Err(SaslError::IterationsTooHigh {
                got: iterations,
                max: self.config.max_iterations,
            });
        }
        let accepted = ServerFirstAccepted {
            client_first_bare: client_first_bare.to_owned(),
            server_first: server_first.to_owned(),
            nonce: nonce.to_owned(),
            salt,
            iterations,
        };
        if let Some(salted) = self
            .config
            .salted_without_blocking(&accepted.salt, iterations)
        {
            return Ok(self.prove(&accepted, &salted));
        }
        // PBKDF2 would block the caller: ask for it (see Scram's docs).
        let job = ScramPbkdf2 {
            hash: self.config.hash,
            password: self.config.password.clone(),
            salt: accepted.salt.clone(),
            iterations,
            cache: self.config.cache.clone(),
        };
        Ok((
            Step::NeedCredential(CredentialRequest::ScramSaltedPassword(job)),
            State::AwaitingSalted(accepted),
        ))
    }

    /// The client-final message, with the proof made from `salted`.
    fn prove(&self, accepted: &ServerFirstAccepted, salted: &Key) -> (Step, State) {
        let hash = self.config.hash;
        // RFC 5802 section 3:
        //   SaltedPassword  := Hi(Normalize(password), salt, i)   (no SASLprep in Kafka)
        //   ClientKey       := HMAC(SaltedPassword, "Client Key")
        //   StoredKey       := H(ClientKey)
        //   AuthMessage     := client-first-message-bare + "," +
        //                      server-first-message + "," +
        //                      client-final-message-without-proof
        //   ClientSignature := HMAC(StoredKey, AuthMessage)
        //   ClientProof     := ClientKey XOR ClientSignature
        //   ServerKey       := HMAC(SaltedPassword, "Server Key")
        let client_key = hash.hmac(&salted.0, &[b"Client Key"]);
        let stored_key = hash.hash(&client_key.0);
        // RFC 5802 section 7: channel-binding = "c=" base64(gs2-header);
        // base64("n,,") is "biws".
        let without_proof = format!("c=biws,r={}", accepted.nonce);
        let auth_message = format!(
            "{},{},{without_proof}",
            accepted.client_first_bare, accepted.server_first
        );
        let client_signature = hash.hmac(&stored_key.0, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .0
            .iter()
            .zip(&client_signature.0)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hash.hmac(&salted.0, &[b"Server Key"]);
        let message = format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes();
        (
            Step::Send(message),
            State::SentClientFinal {
                server_key,
                auth_message,
            },
        )
    }

    fn verify_server_final(
        &self,
        server_key: &Key,
        auth_message: &str,
        server_final: &[u8],
    ) -> Result<(Step, State), SaslError> {
        let server_final = std::str::from_utf8(server_final)
            .map_err(|_| malformed("server-final-message is not UTF-8"))?;
        // RFC 5802 section 7:
        //   server-final-message = (server-error / verifier) ["," extensions]
        let first = server_final.split(',').next().unwrap_or("");
        if let Some(error) = first.strip_prefix("e=") {
            // RFC 5802 section 7 server-error-value, e.g. "invalid-proof".
            return Err(SaslError::ServerError(error.to_owned()));
        }
        let Some(verifier) = first.strip_prefix("v=") else {
            return Err(malformed(
                "server-final-message: expected the `v=` or `e=` attribute",
            ));
        };
        let signature = BASE64
            .decode(verifier)
            .map_err(|_| malformed("server-final-message: the verifier is not valid base64"))?;
        // RFC 5802 section 3: ServerSignature := HMAC(ServerKey, AuthMessage);
        // the client MUST verify it (section 5.1), here in constant time.
        if !self
            .config
            .hash
            .hmac_verify(&server_key.0, auth_message.as_bytes(), &signature)
        {
            return Err(SaslError::BadServerSignature);
        }
        Ok((Step::Done, State::Done))
    }
}

impl Mechanism for ScramMechanism {
    fn name(&self) -> &str {
        self.config.hash.mechanism_name()
    }

    fn step(&mut self, server_message: Option<&[u8]>) -> Result<Step, SaslError> {
        // Any error below leaves the exchange Failed.
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (step, next) = match (&state, server_message) {
            (State::Initial, None) => self.client_first()?,
            (
                State::SentClientFirst {
                    client_nonce,
                    client_first_bare,
                },
                Some(msg),
            ) => self.client_final(client_nonce, client_first_bare, msg)?,
            (
                State::SentClientFinal {
                    server_key,
                    auth_message,
                },
                Some(msg),
            ) => self.verify_server_final(server_key, auth_message, msg)?,
            (_, _) => {
                let what = match (&state, server_message) {
                    (State::Initial, Some(_)) => "SCRAM: server message before client-first",
                    (State::SentClientFirst { .. }, None) => {
                        "SCRAM: client-first sent, waiting for server-first"
                    }
                    (State::SentClientFinal { .. }, None) => {
                        "SCRAM: client-final sent, waiting for server-final"
                    }
                    (State::AwaitingSalted(_), _) => "SCRAM: waiting for the salted password",
                    (State::Done, _) => "SCRAM: exchange complete",
                    _ => "SCRAM: exchange failed",
                };
                self.state = state;
                return Err(SaslError::UnexpectedMessage(what));
            }
        };
        self.state = next;
        Ok(step)
    }

    fn provide_credential(&mut self, credential: Credential) -> Result<Step, SaslError> {
        let State::AwaitingSalted(accepted) = &self.state else {
            return Err(SaslError::UnexpectedCredential);
        };
        let Credential::ScramSaltedPassword(salted) = credential else {
            return Err(SaslError::UnexpectedCredential);
        };
        if (salted.hash, &salted.salt, salted.iterations)
            != (self.config.hash, &accepted.salt, accepted.iterations)
        {
            self.state = State::Failed;
            return Err(SaslError::InvalidCredential(
                "SCRAM: the salted password was computed for another salt, iteration count or hash"
                    .into(),
            ));
        }
        let (step, next) = self.prove(accepted, &salted.key);
        self.state = next;
        Ok(step)
    }
}

/// The independent SCRAM server of the tests (rsasl), shared with the testsuite.
#[cfg(test)]
#[path = "../../tests/support/rsasl_server.rs"]
mod rsasl_server_support;

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps `m` with `input`, running a PBKDF2 job it asks for where a
    /// driver would (the default, not inline), and returns what follows.
    fn step(m: &mut dyn Mechanism, input: Option<&[u8]>) -> Result<Step, SaslError> {
        match m.step(input)? {
            Step::NeedCredential(CredentialRequest::ScramSaltedPassword(job)) => {
                m.provide_credential(job.run())
            }
            other => Ok(other),
        }
    }

    /// Steps expecting `Send` and returns the message as a string.
    fn send(m: &mut dyn Mechanism, input: Option<&[u8]>) -> String {
        match step(m, input) {
            Ok(Step::Send(b)) => String::from_utf8(b).unwrap(),
            other => panic!("expected Send, got {other:?}"),
        }
    }

    /// The client nonce in a client-first message.
    fn nonce_of(client_first: &str) -> String {
        client_first
            .split(',')
            .find_map(|p| p.strip_prefix("r="))
            .unwrap()
            .to_owned()
    }

    /// A minimal SCRAM server built from RFC 5802 section 3's formulas, for
    /// the failure paths the independent server (below) cannot be made to
    /// produce. Correctness against an implementation that is not ours is
    /// shown by the RFC 7677 vector and the rsasl tests.
    struct MiniServer {
        hash: ScramHash,
        password: &'static str,
        salt: Vec<u8>,
        iterations: u32,
        client_first_bare: String,
        server_first: String,
    }

    impl MiniServer {
        fn new(hash: ScramHash, password: &'static str, salt: &[u8], iterations: u32) -> Self {
            Self {
                hash,
                password,
                salt: salt.to_vec(),
                iterations,
                client_first_bare: String::new(),
                server_first: String::new(),
            }
        }

        fn first(&mut self, client_first: &str) -> String {
            self.client_first_bare = client_first.strip_prefix("n,,").unwrap().to_owned();
            self.server_first = format!(
                "r={}SERVERPART,s={},i={}",
                nonce_of(client_first),
                BASE64.encode(&self.salt),
                self.iterations
            );
            self.server_first.clone()
        }

        /// Verifies the proof; returns the server-final message.
        fn last(&self, client_final: &str) -> String {
            let (without_proof, proof) = client_final.rsplit_once(",p=").unwrap();
            let auth = format!(
                "{},{},{without_proof}",
                self.client_first_bare, self.server_first
            );
            let h = self.hash;
            let salted = h.salted_password(self.password.as_bytes(), &self.salt, self.iterations);
            let stored = h.hash(&h.hmac(&salted.0, &[b"Client Key"]).0);
            let sig = h.hmac(&stored.0, &[auth.as_bytes()]);
            let proof = BASE64.decode(proof).unwrap();
            let client_key: Vec<u8> = proof.iter().zip(&sig.0).map(|(a, b)| a ^ b).collect();
            if h.hash(&client_key).0 != stored.0 {
                return "e=invalid-proof".into();
            }
            let server_key = h.hmac(&salted.0, &[b"Server Key"]);
            format!(
                "v={}",
                BASE64.encode(&h.hmac(&server_key.0, &[auth.as_bytes()]).0)
            )
        }
    }

    /// Runs a whole exchange of `factory` against `server`.
    fn exchange(factory: &Scram, server: &mut MiniServer) -> Result<Step, SaslError> {
        let mut m = factory.start()?;
        let cf = send(m.as_mut(), None);
        let sf = server.first(&cf);
        let cl = match step(m.as_mut(), Some(sf.as_bytes()))? {
            Step::Send(b) => String::from_utf8(b).unwrap(),
            other => panic!("{other:?}"),
        };
        step(m.as_mut(), Some(server.last(&cl).as_bytes()))
    }

    /// Starts an exchange with a fixed nonce and feeds `server_first`.
    fn after_server_first(factory: Scram, server_first: &str) -> Result<Step, SaslError> {
        let mut m = factory.with_fixed_nonce_for_testing("abc").start().unwrap();
        send(m.as_mut(), None);
        step(m.as_mut(), Some(server_first.as_bytes()))
    }

    fn sha256() -> Scram {
        Scram::new(ScramHash::Sha256, "user", "pencil")
    }

    /// The default: PBKDF2 is asked for, not computed in `step`; the
    /// job's result gives the same client-final as computing it inline; a
    /// second authentication finds it cached and asks for nothing.
    #[test]
    fn pbkdf2_is_asked_for_then_cached() {
        let server_first = "r=abcSERVER,s=c2FsdHk=,i=4096";
        let asking = sha256().with_fixed_nonce_for_testing("abc");
        let mut m = asking.start().unwrap();
        send(m.as_mut(), None);
        let Ok(Step::NeedCredential(CredentialRequest::ScramSaltedPassword(job))) =
            m.step(Some(server_first.as_bytes()))
        else {
            panic!("expected a PBKDF2 request")
        };
        assert_eq!(
            (job.hash(), job.salt(), job.iterations()),
            (ScramHash::Sha256, &b"salty"[..], 4096)
        );
        let shown = format!("{job:?}");
        assert!(!shown.contains("pencil"), "{shown}");
        // Nothing moves until the answer.
        assert!(matches!(
            m.step(Some(b"v=x")),
            Err(SaslError::UnexpectedMessage(_))
        ));
        assert_eq!((asking.cache_hits(), asking.cache_misses()), (0, 0));
        let Ok(Step::Send(asked)) = m.provide_credential(job.run()) else {
            panic!()
        };
        assert_eq!((asking.cache_hits(), asking.cache_misses()), (0, 1));

        let inline = sha256()
            .with_fixed_nonce_for_testing("abc")
            .with_inline_pbkdf2(true);
        let mut m = inline.start().unwrap();
        send(m.as_mut(), None);
        assert_eq!(
            m.step(Some(server_first.as_bytes())),
            Ok(Step::Send(asked.clone()))
        );
        assert_eq!(inline.cache_misses(), 1);

        // Cached now: the next exchange of the same factory asks nothing.
        let mut m = asking.start().unwrap();
        send(m.as_mut(), None);
        assert_eq!(m.step(Some(server_first.as_bytes())), Ok(Step::Send(asked)));
        assert_eq!((asking.cache_hits(), asking.cache_misses()), (1, 1));
    }

    /// A salted password made for other parameters is refused; the wrong
    /// kind of credential too.
    #[test]
    fn a_salted_password_must_match_the_request() {
        let factory = sha256().with_fixed_nonce_for_testing("abc");
        let job_for = |salt: &str| {
            let mut m = factory.start().unwrap();
            send(m.as_mut(), None);
            let first = format!("r=abcSERVER,s={salt},i=4096");
            match m.step(Some(first.as_bytes())) {
                Ok(Step::NeedCredential(CredentialRequest::ScramSaltedPassword(job))) => (m, job),
                other => panic!("{other:?}"),
            }
        };
        let (_, other_salt) = job_for("b3RoZXI=");
        let (mut m, _) = job_for("c2FsdHk=");
        assert_eq!(
            m.provide_credential(Credential::Custom(bytes::Bytes::new())),
            Err(SaslError::UnexpectedCredential)
        );
        assert!(matches!(
            m.provide_credential(other_salt.run()),
            Err(SaslError::InvalidCredential(_))
        ));
        assert!(m.step(Some(b"v=x")).is_err(), "failed for good");
    }

    /// While another connection's job holds the cache computing PBKDF2,
    /// `step` does not wait for it (it would block the executor): it asks
    /// for a job of its own, which waits on its own thread and then finds
    /// the result cached (one PBKDF2 for both).
    #[test]
    fn a_busy_cache_is_not_waited_for_in_step() {
        let factory = sha256().with_fixed_nonce_for_testing("abc");
        let server_first = b"r=abcSERVER,s=c2FsdHk=,i=4096";
        let mut m = factory.start().unwrap();
        send(m.as_mut(), None);
        let Ok(Step::NeedCredential(CredentialRequest::ScramSaltedPassword(first))) =
            m.step(Some(server_first))
        else {
            panic!()
        };
        let busy = factory.cache.lock();
        let mut other = factory.start().unwrap();
        send(other.as_mut(), None);
        // With the lock held here, a blocking `lock()` in `step` would
        // never return.
        let Ok(Step::NeedCredential(CredentialRequest::ScramSaltedPassword(second))) =
            other.step(Some(server_first))
        else {
            panic!("a request, not a wait")
        };
        drop(busy);
        let a = std::thread::spawn(move || first.run());
        let b = std::thread::spawn(move || second.run());
        let (a, b) = (a.join().unwrap(), b.join().unwrap());
        assert_eq!(a, b);
        assert_eq!((factory.cache_hits(), factory.cache_misses()), (1, 1));
        assert!(matches!(m.provide_credential(a), Ok(Step::Send(_))));
        assert!(matches!(other.provide_credential(b), Ok(Step::Send(_))));
    }

    /// RFC 7677 section 3, reproduced byte for byte.
    #[test]
    fn rfc7677_sha256_example() {
        let factory = sha256().with_fixed_nonce_for_testing("rOprNGfwEbeRWgbNEkqO");
        assert_eq!(factory.name(), "SCRAM-SHA-256");
        let mut m = factory.start().unwrap();
        assert_eq!(m.name(), "SCRAM-SHA-256");
        assert_eq!(send(m.as_mut(), None), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        assert_eq!(
            send(m.as_mut(), Some(server_first.as_bytes())),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            step(
                m.as_mut(),
                Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            ),
            Ok(Step::Done)
        );
        // Nothing may follow.
        assert_eq!(
            step(m.as_mut(), Some(b"")),
            Err(SaslError::UnexpectedMessage("SCRAM: exchange complete"))
        );
    }

    #[test]
    fn mechanism_names() {
        assert_eq!(ScramHash::Sha256.mechanism_name(), "SCRAM-SHA-256");
        assert_eq!(ScramHash::Sha512.mechanism_name(), "SCRAM-SHA-512");
        assert_eq!(
            Scram::new(ScramHash::Sha512, "u", "p").name(),
            "SCRAM-SHA-512"
        );
        assert_eq!(
            Scram::new(ScramHash::Sha512, "u", "p")
                .start()
                .unwrap()
                .name(),
            "SCRAM-SHA-512"
        );
    }

    #[test]
    fn nonce_is_random_printable_and_long() {
        let factory = sha256();
        let a = nonce_of(&send(factory.start().unwrap().as_mut(), None));
        let b = nonce_of(&send(factory.start().unwrap().as_mut(), None));
        assert_ne!(a, b, "two exchanges must not share a nonce");
        for n in [&a, &b] {
            assert!(is_printable_nonce(n), "{n}");
            assert!(!n.contains(','));
            assert!(n.bytes().all(|c| (0x21..=0x7e).contains(&c)));
            // 24 random bytes: 192 >= 128 bits of entropy.
            let raw = BASE64.decode(n).unwrap();
            assert!(raw.len() * 8 >= 128, "{n}");
        }
    }

    #[test]
    fn username_is_escaped_without_saslprep() {
        let m = &mut Scram::new(ScramHash::Sha256, "a=b,c", "pw")
            .with_fixed_nonce_for_testing("N")
            .start()
            .unwrap();
        assert_eq!(send(m.as_mut(), None), "n,,n=a=3Db=2Cc,r=N");
        // Non-ASCII and a would-be SASLprep mapping (U+00A0 no-break space)
        // go through untouched.
        let m = &mut Scram::new(ScramHash::Sha256, "J\u{00fc}r\u{00a0}gen", "pw")
            .with_fixed_nonce_for_testing("N")
            .start()
            .unwrap();
        assert_eq!(send(m.as_mut(), None), "n,,n=J\u{00fc}r\u{00a0}gen,r=N");
        assert_eq!(escape_username("=,=="), "=3D=2C=3D=3D");
    }

    #[test]
    fn bad_usernames_and_fixed_nonces_are_rejected() {
        for (user, nonce) in [
            ("", "N"),
            ("a\0b", "N"),
            ("u", "a,b"),
            ("u", ""),
            ("u", "sp ace"),
        ] {
            let mut m = Scram::new(ScramHash::Sha256, user, "pw")
                .with_fixed_nonce_for_testing(nonce)
                .start()
                .unwrap();
            assert!(
                matches!(m.step(None), Err(SaslError::InvalidCredential(_))),
                "{user:?} {nonce:?}"
            );
        }
    }

    #[test]
    fn tokenauth_extension_is_sent_and_signed() {
        let factory = Scram::new(ScramHash::Sha512, "tokenid", "tokenhmac").with_token_auth(true);
        let mut m = factory
            .clone()
            .with_fixed_nonce_for_testing("N")
            .start()
            .unwrap();
        assert_eq!(send(m.as_mut(), None), "n,,n=tokenid,r=N,tokenauth=true");
        // The extension is part of client-first-message-bare, hence of the
        // AuthMessage both sides sign.
        let mut server = MiniServer::new(ScramHash::Sha512, "tokenhmac", b"salty", 4096);
        assert_eq!(exchange(&factory, &mut server), Ok(Step::Done));
        assert!(server.client_first_bare.ends_with(",tokenauth=true"));
        // Off by default and when switched off.
        let mut m = factory
            .with_token_auth(false)
            .with_fixed_nonce_for_testing("N")
            .start()
            .unwrap();
        assert_eq!(send(m.as_mut(), None), "n,,n=tokenid,r=N");
    }

    #[test]
    fn full_exchange_both_hashes() {
        for hash in [ScramHash::Sha256, ScramHash::Sha512] {
            let factory = Scram::new(hash, "alice", "alice-secret");
            let mut server = MiniServer::new(hash, "alice-secret", b"0123456789", 4096);
            assert_eq!(exchange(&factory, &mut server), Ok(Step::Done));
            let mut wrong = MiniServer::new(hash, "not-it", b"0123456789", 4096);
            assert_eq!(
                exchange(&factory, &mut wrong),
                Err(SaslError::ServerError("invalid-proof".into()))
            );
        }
    }

    #[test]
    fn salted_password_cache_hits_on_second_authentication() {
        let factory = Scram::new(ScramHash::Sha256, "alice", "alice-secret");
        let mut server = MiniServer::new(ScramHash::Sha256, "alice-secret", b"salt-1", 4096);
        assert_eq!((factory.cache_hits(), factory.cache_misses()), (0, 0));
        assert_eq!(exchange(&factory, &mut server), Ok(Step::Done));
        assert_eq!((factory.cache_hits(), factory.cache_misses()), (0, 1));
        // A re-authentication, and a new connection through a clone of the
        // factory (connections share it via Arc), both skip PBKDF2.
        assert_eq!(exchange(&factory, &mut server), Ok(Step::Done));
        let clone = factory.clone();
        assert_eq!(exchange(&clone, &mut server), Ok(Step::Done));
        assert_eq!((factory.cache_hits(), factory.cache_misses()), (2, 1));
        // Another salt, or another iteration count, is a miss...
        let mut other_salt = MiniServer::new(ScramHash::Sha256, "alice-secret", b"salt-2", 4096);
        assert_eq!(exchange(&factory, &mut other_salt), Ok(Step::Done));
        let mut other_iter = MiniServer::new(ScramHash::Sha256, "alice-secret", b"salt-2", 4097);
        assert_eq!(exchange(&factory, &mut other_iter), Ok(Step::Done));
        assert_eq!((factory.cache_hits(), factory.cache_misses()), (2, 3));
        // ...and a separately built factory has its own cache.
        let fresh = Scram::new(ScramHash::Sha256, "alice", "alice-secret");
        assert_eq!(exchange(&fresh, &mut server), Ok(Step::Done));
        assert_eq!((fresh.cache_hits(), fresh.cache_misses()), (0, 1));
    }

    #[test]
    fn cached_value_equals_a_fresh_pbkdf2() {
        // The RFC 7677 exchange, run twice: the second time from the cache,
        // must produce the same proof.
        let factory = sha256().with_fixed_nonce_for_testing("rOprNGfwEbeRWgbNEkqO");
        let server_first =
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let mut finals = Vec::new();
        for _ in 0..2 {
            let mut m = factory.start().unwrap();
            send(m.as_mut(), None);
            finals.push(send(m.as_mut(), Some(server_first.as_bytes())));
            assert_eq!(
                step(
                    m.as_mut(),
                    Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                ),
                Ok(Step::Done)
            );
        }
        assert_eq!(finals[0], finals[1]);
        assert_eq!(factory.cache_hits(), 1);
    }

    #[test]
    fn server_nonce_must_extend_ours() {
        // Wrong prefix.
        assert_eq!(
            after_server_first(sha256(), "r=xyzSERVER,s=c2FsdA==,i=4096"),
            Err(SaslError::NonceMismatch)
        );
        // Our nonce inside but not as the prefix.
        assert_eq!(
            after_server_first(sha256(), "r=Xabc,s=c2FsdA==,i=4096"),
            Err(SaslError::NonceMismatch)
        );
        // Not extended at all.
        assert_eq!(
            after_server_first(sha256(), "r=abc,s=c2FsdA==,i=4096"),
            Err(SaslError::NonceMismatch)
        );
        // A prefix of ours.
        assert_eq!(
            after_server_first(sha256(), "r=ab,s=c2FsdA==,i=4096"),
            Err(SaslError::NonceMismatch)
        );
    }

    #[test]
    fn server_final_nonce_tampering_is_a_bad_signature() {
        // A server-first that does extend our nonce, then a verifier computed
        // for something else: caught by the signature check.
        let mut m = sha256()
            .with_fixed_nonce_for_testing("abc")
            .start()
            .unwrap();
        send(m.as_mut(), None);
        send(m.as_mut(), Some(b"r=abcdef,s=c2FsdA==,i=4096"));
        assert_eq!(
            step(
                m.as_mut(),
                Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            ),
            Err(SaslError::BadServerSignature)
        );
    }

    #[test]
    fn iteration_floor_and_cap() {
        assert_eq!(
            after_server_first(sha256(), "r=abcdef,s=c2FsdA==,i=4095"),
            Err(SaslError::IterationsTooLow {
                got: 4095,
                min: 4096
            })
        );
        assert_eq!(
            after_server_first(sha256(), "r=abcdef,s=c2FsdA==,i=100001"),
            Err(SaslError::IterationsTooHigh {
                got: 100_001,
                max: Scram::DEFAULT_MAX_ITERATIONS
            })
        );
        assert_eq!(
            after_server_first(sha256(), "r=abcdef,s=c2FsdA==,i=4294967295"),
            Err(SaslError::IterationsTooHigh {
                got: u32::MAX,
                max: Scram::DEFAULT_MAX_ITERATIONS
            })
        );
        // Both bounds are configurable.
        assert_eq!(
            after_server_first(
                sha256().with_min_iterations(8192),
                "r=abcdef,s=c2FsdA==,i=4096"
            ),
            Err(SaslError::IterationsTooLow {
                got: 4096,
                min: 8192
            })
        );
        assert_eq!(
            after_server_first(
                sha256().with_max_iterations(16384),
                "r=abcdef,s=c2FsdA==,i=16385"
            ),
            Err(SaslError::IterationsTooHigh {
                got: 16385,
                max: 16384
            })
        );
        assert!(matches!(
            after_server_first(sha256().with_min_iterations(1), "r=abcdef,s=c2FsdA==,i=1"),
            Ok(Step::Send(_))
        ));
        assert!(matches!(
            after_server_first(sha256(), "r=abcdef,s=c2FsdA==,i=4096"),
            Ok(Step::Send(_))
        ));
    }

    #[test]
    fn bad_server_signature() {
        // The server knows a different password for the signature than the
        // one our proof was made with.
        let factory = sha256().with_fixed_nonce_for_testing("rOprNGfwEbeRWgbNEkqO");
        let mut m = factory.start().unwrap();
        send(m.as_mut(), None);
        send(
            m.as_mut(),
            Some(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
        );
        // One bit off the RFC's signature.
        assert_eq!(
            step(
                m.as_mut(),
                Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G8=")
            ),
            Err(SaslError::BadServerSignature)
        );
        // The exchange is over after a failure.
        assert_eq!(
            step(
                m.as_mut(),
                Some(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            ),
            Err(SaslError::UnexpectedMessage("SCRAM: exchange failed"))
        );
        // A truncated or empty signature is a bad signature too.
        for v in ["v=6rriTRBi23WpRR/wtup+mMhU", "v="] {
            let mut m = factory.start().unwrap();
            send(m.as_mut(), None);
            send(
                m.as_mut(),
                Some(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
            );
            assert_eq!(
                step(m.as_mut(), Some(v.as_bytes())),
                Err(SaslError::BadServerSignature),
                "{v}"
            );
        }
    }

    #[test]
    fn server_errors_are_surfaced() {
        // e= in server-final (RFC 5802 section 7 server-error).
        let mut m = sha256()
            .with_fixed_nonce_for_testing("abc")
            .start()
            .unwrap();
        send(m.as_mut(), None);
        send(m.as_mut(), Some(b"r=abcdef,s=c2FsdA==,i=4096"));
        assert_eq!(
            step(m.as_mut(), Some(b"e=invalid-proof")),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
        // e= in place of server-first.
        assert_eq!(
            after_server_first(sha256(), "e=unknown-user"),
            Err(SaslError::ServerError("unknown-user".into()))
        );
        assert_eq!(
            after_server_first(sha256(), "e=other-error,x=y"),
            Err(SaslError::ServerError("other-error".into()))
        );
    }

    #[test]
    fn malformed_server_first() {
        let cases = [
            "",
            "garbage",
            "s=c2FsdA==,r=abcdef,i=4096",        // wrong order
            "r=abcdef,i=4096",                   // no salt
            "r=abcdef,s=c2FsdA==",               // no iterations
            "r=abcdef,s=c2FsdA==,i=",            // empty iterations
            "r=abcdef,s=c2FsdA==,i=+4096",       // sign
            "r=abcdef,s=c2FsdA==,i=4096x",       // junk
            "r=abcdef,s=c2FsdA==,i=99999999999", // overflows u32
            "r=abcdef,s=not base64!,i=4096",     // bad base64
            "r=abcdef,s=,i=4096",                // empty salt
            "r=,s=c2FsdA==,i=4096",              // empty nonce
            "r=abc def,s=c2FsdA==,i=4096",       // unprintable nonce
            "m=ext,r=abcdef,s=c2FsdA==,i=4096",  // mandatory extension
            "R=abcdef,s=c2FsdA==,i=4096",        // attribute names are case-sensitive
        ];
        for case in cases {
            let r = after_server_first(sha256(), case);
            assert!(matches!(r, Err(SaslError::Malformed(_))), "{case:?}: {r:?}");
        }
        // Not UTF-8.
        let mut m = sha256()
            .with_fixed_nonce_for_testing("abc")
            .start()
            .unwrap();
        send(m.as_mut(), None);
        assert!(matches!(
            step(m.as_mut(), Some(b"r=abc\xff,s=c2FsdA==,i=4096")),
            Err(SaslError::Malformed(_))
        ));
        // Optional extensions after i= are ignored.
        assert!(matches!(
            after_server_first(sha256(), "r=abcdef,s=c2FsdA==,i=4096,x=future"),
            Ok(Step::Send(_))
        ));
    }

    #[test]
    fn malformed_server_final() {
        for case in [&b""[..], b"x=1", b"V=abc", b"v=not base64!", b"\xff\xfe"] {
            let mut m = sha256()
                .with_fixed_nonce_for_testing("abc")
                .start()
                .unwrap();
            send(m.as_mut(), None);
            send(m.as_mut(), Some(b"r=abcdef,s=c2FsdA==,i=4096"));
            let r = step(m.as_mut(), Some(case));
            assert!(matches!(r, Err(SaslError::Malformed(_))), "{case:?}: {r:?}");
        }
    }

    #[test]
    fn steps_out_of_order() {
        let mut m = sha256().start().unwrap();
        assert_eq!(
            step(m.as_mut(), Some(b"r=x,s=c2FsdA==,i=4096")),
            Err(SaslError::UnexpectedMessage(
                "SCRAM: server message before client-first"
            ))
        );
        send(m.as_mut(), None);
        assert!(matches!(m.step(None), Err(SaslError::UnexpectedMessage(_))));
        assert_eq!(
            m.provide_credential(super::super::Credential::Custom(bytes::Bytes::new())),
            Err(SaslError::UnexpectedCredential)
        );
    }

    #[test]
    fn debug_never_shows_password_or_keys() {
        let password = "pencil-pencil-pencil";
        let factory = Scram::new(ScramHash::Sha256, "user", password);
        let mut server = MiniServer::new(ScramHash::Sha256, password, b"salt", 4096);
        let mut m = factory.start().unwrap();
        let cf = send(m.as_mut(), None);
        let sf = server.first(&cf);
        let cl = send(m.as_mut(), Some(sf.as_bytes()));
        let mut dumps = vec![
            format!("{factory:?}"),
            format!("{factory:#?}"),
            format!("{m:?}"),
        ];
        // The salted password and the keys, in every form they could leak.
        let salted = ScramHash::Sha256.salted_password(password.as_bytes(), b"salt", 4096);
        let server_key = ScramHash::Sha256.hmac(&salted.0, &[b"Server Key"]);
        let client_key = ScramHash::Sha256.hmac(&salted.0, &[b"Client Key"]);
        let secrets = [
            password.to_owned(),
            BASE64.encode(&salted.0),
            format!("{:?}", salted.0),
            format!("{:?}", server_key.0),
            format!("{:?}", client_key.0),
        ];
        assert_eq!(
            step(m.as_mut(), Some(server.last(&cl).as_bytes())),
            Ok(Step::Done)
        );
        dumps.push(format!("{m:?}"));
        dumps.push(format!("{factory:?}"));
        assert_eq!(format!("{salted:?}"), "<redacted>");
        for dump in &dumps {
            for secret in &secrets {
                assert!(!dump.contains(secret.as_str()), "{dump} leaks {secret}");
            }
        }
    }

    /// Full exchanges against an independent SCRAM server: the server side
    /// of the `rsasl` crate (2.x, features `scram-sha-2`, `config_builder`,
    /// `provider`; a dev-dependency only). Its stored credentials are made
    /// with rsasl's own `hash_password` / `derive_keys`, so no code of ours
    /// is on the server side. rsasl builds the AuthMessage without client
    /// extensions and does not unescape usernames, so these tests use a
    /// plain username and no `tokenauth` (covered by the RFC formulas above).
    mod rsasl_server {
        use super::*;
        use crate::sasl::scram::rsasl_server_support::{self as support, Authenticated, Store};
        use rsasl::mechname::Mechname;
        use rsasl::prelude::{SASLConfig, SASLServer};

        /// rsasl's (StoredKey, ServerKey) for a password.
        fn keys(
            hash: ScramHash,
            password: &str,
            salt: &[u8],
            iterations: u32,
        ) -> (Vec<u8>, Vec<u8>) {
            with_digest!(hash, D => support::keys::<D>(password, salt, iterations))
        }

        /// The server holds `stored_from` for checking our proof and
        /// `server_from` for signing its answer (normally the same password).
        fn store(hash: ScramHash, stored_from: &str, server_from: &str) -> Store {
            let salt = b"rsasl-test-salt".to_vec();
            let iterations = 4096;
            Store {
                user: "alice",
                stored_key: keys(hash, stored_from, &salt, iterations).0,
                server_key: keys(hash, server_from, &salt, iterations).1,
                salt,
                iterations,
            }
        }

        /// Runs one exchange; returns our verdict and whom the server
        /// authenticated (None if it refused).
        fn run(factory: &Scram, store: Store) -> (Result<Step, SaslError>, Option<String>) {
            let config = SASLConfig::builder()
                .with_defaults()
                .with_callback(store)
                .unwrap();
            let server = SASLServer::<Authenticated>::new(config);
            let mechname = Mechname::parse(factory.name().as_bytes()).unwrap();
            let mut server = server.start_suggested(mechname).unwrap();

            let mut client = factory.start().unwrap();
            let Step::Send(client_first) = client.step(None).unwrap() else {
                panic!()
            };
            let mut server_first = Vec::new();
            server.step(Some(&client_first), &mut server_first).unwrap();
            let client_final = match step(client.as_mut(), Some(&server_first)) {
                Ok(Step::Send(m)) => m,
                other => return (other, server.validation()),
            };
            let mut server_final = Vec::new();
            server.step(Some(&client_final), &mut server_final).unwrap();
            (
                step(client.as_mut(), Some(&server_final)),
                server.validation(),
            )
        }

        #[test]
        fn rsasl_server_accepts_us_and_we_verify_it() {
            for hash in [ScramHash::Sha256, ScramHash::Sha512] {
                let factory = Scram::new(hash, "alice", "alice-secret");
                let (ours, theirs) = run(&factory, store(hash, "alice-secret", "alice-secret"));
                assert_eq!(ours, Ok(Step::Done), "{hash:?}");
                assert_eq!(theirs.as_deref(), Some("alice"), "{hash:?}");
                // Again from the salted-password cache, same verdict.
                let (ours, theirs) = run(&factory, store(hash, "alice-secret", "alice-secret"));
                assert_eq!(ours, Ok(Step::Done), "{hash:?}");
                assert_eq!(theirs.as_deref(), Some("alice"), "{hash:?}");
                assert_eq!((factory.cache_hits(), factory.cache_misses()), (1, 1));
            }
        }

        #[test]
        fn rsasl_server_rejects_wrong_password() {
            for hash in [ScramHash::Sha256, ScramHash::Sha512] {
                let factory = Scram::new(hash, "alice", "wrong-password");
                let (ours, theirs) = run(&factory, store(hash, "alice-secret", "alice-secret"));
                assert_eq!(
                    ours,
                    Err(SaslError::ServerError("invalid-proof".into())),
                    "{hash:?}"
                );
                assert_eq!(theirs, None);
            }
        }

        #[test]
        fn rsasl_server_unknown_user() {
            for hash in [ScramHash::Sha256, ScramHash::Sha512] {
                let factory = Scram::new(hash, "mallory", "alice-secret");
                let (ours, theirs) = run(&factory, store(hash, "alice-secret", "alice-secret"));
                assert_eq!(
                    ours,
                    Err(SaslError::ServerError("unknown-user".into())),
                    "{hash:?}"
                );
                assert_eq!(theirs, None);
            }
        }

        #[test]
        fn rsasl_server_with_another_server_key_fails_our_signature_check() {
            // The server can check our proof (right StoredKey) but signs with
            // a ServerKey from another password: it does not really hold our
            // credential, and we must notice.
            for hash in [ScramHash::Sha256, ScramHash::Sha512] {
                let factory = Scram::new(hash, "alice", "alice-secret");
                let (ours, theirs) = run(&factory, store(hash, "alice-secret", "impostor"));
                assert_eq!(theirs.as_deref(), Some("alice"), "{hash:?}");
                assert_eq!(ours, Err(SaslError::BadServerSignature), "{hash:?}");
            }
        }
    }
}
