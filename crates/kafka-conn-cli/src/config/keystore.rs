//! Certificates and keys from the stores Kafka clients use: PEM files and
//! text, PKCS#12 files (through the `p12-keystore` crate), and a clear
//! refusal for Java's JKS and JCEKS stores, with the `keytool` command that
//! converts them.
//!
//! The file's content decides its format (PEM text, a JKS or JCEKS magic
//! number, else PKCS#12 DER): a declared `ssl.*.type` that disagrees is
//! reported as a note, not trusted over the bytes.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::cli::Secret;

/// What a store file holds, judged by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreFormat {
    /// PEM text.
    Pem,
    /// PKCS#12 (DER).
    Pkcs12,
    /// Java's JKS (magic `FEEDFEED`).
    Jks,
    /// Java's JCEKS (magic `CECECECE`).
    Jceks,
}

impl StoreFormat {
    /// Guesses the format from the content.
    pub(crate) fn sniff(bytes: &[u8]) -> Self {
        if bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed]) {
            Self::Jks
        } else if bytes.starts_with(&[0xce, 0xce, 0xce, 0xce]) {
            Self::Jceks
        } else if bytes.first() == Some(&0x30) {
            // A DER SEQUENCE: PKCS#12's PFX.
            Self::Pkcs12
        } else {
            Self::Pem
        }
    }

    /// The name used in `ssl.*.type`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Pem => "PEM",
            Self::Pkcs12 => "PKCS12",
            Self::Jks => "JKS",
            Self::Jceks => "JCEKS",
        }
    }
}

/// A client certificate chain and its key.
#[derive(Debug)]
pub(crate) struct Identity {
    /// End entity first.
    pub(crate) chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub(crate) key: PrivateKeyDer<'static>,
}

/// Which store, for messages: the configuration key (or option) that
/// names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Role {
    /// The key naming the file, e.g. `ssl.truststore.location`.
    pub(crate) location_key: &'static str,
    /// The key of the store's password, e.g. `ssl.truststore.password`.
    pub(crate) password_key: &'static str,
    /// The key of its type, e.g. `ssl.truststore.type`.
    pub(crate) type_key: &'static str,
}

/// The truststore role.
pub(crate) const TRUSTSTORE: Role = Role {
    location_key: "ssl.truststore.location",
    password_key: "ssl.truststore.password",
    type_key: "ssl.truststore.type",
};

/// The keystore role.
pub(crate) const KEYSTORE: Role = Role {
    location_key: "ssl.keystore.location",
    password_key: "ssl.keystore.password",
    type_key: "ssl.keystore.type",
};

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// The message for a Java-only store, with the command that converts it.
fn java_store(path: &Path, format: StoreFormat, role: Role) -> String {
    let p = path.display();
    format!(
        "{} {p} is a {} keystore, which only Java reads: convert it to PKCS#12 with \
         `keytool -importkeystore -srckeystore {p} -srcstoretype {} -destkeystore {p}.p12 -deststoretype PKCS12` \
         and set {}={p}.p12 and {}=PKCS12",
        role.location_key,
        format.name(),
        format.name(),
        role.location_key,
        role.type_key,
    )
}

/// The CA certificates of a truststore file (PEM or PKCS#12).
pub(crate) fn load_trust(
    path: &Path,
    password: Option<&Secret>,
    role: Role,
) -> Result<(Vec<CertificateDer<'static>>, StoreFormat), String> {
    let bytes = read(path, role.location_key)?;
    let format = StoreFormat::sniff(&bytes);
    let certs = match format {
        StoreFormat::Pem => {
            pem_certs(&bytes, &format!("{} {}", role.location_key, path.display()))?
        }
        StoreFormat::Pkcs12 => {
            let archive = open_pkcs12(&bytes, path, password, role)?;
            archive
                .certs
                .iter()
                .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
                .collect()
        }
        StoreFormat::Jks | StoreFormat::Jceks => return Err(java_store(path, format, role)),
    };
    if certs.is_empty() {
        return Err(format!(
            "{} {}: no certificates in it",
            role.location_key,
            path.display()
        ));
    }
    Ok((certs, format))
}

/// The CA certificates of every PEM file in a directory (librdkafka's
/// `ssl.ca.location` may name an OpenSSL-style directory).
pub(crate) fn load_trust_dir(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let entries =
        std::fs::read_dir(path).map_err(|e| format!("ssl.ca.location {}: {e}", path.display()))?;
    let mut certs = Vec::new();
    let mut names: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    names.sort();
    for file in names.iter().filter(|f| f.is_file()) {
        if let Ok(bytes) = std::fs::read(file) {
            // Not every file in a CA directory is a certificate (hash links
            // duplicate them; READMEs are not): take what parses.
            if let Ok(found) = pem_certs(&bytes, "") {
                certs.extend(found);
            }
        }
    }
    if certs.is_empty() {
        return Err(format!(
            "ssl.ca.location {}: no PEM certificates in this directory",
            path.display()
        ));
    }
    Ok(certs)
}

/// A client identity from a keystore file: PKCS#12, or PEM holding both
/// the key and the certificate chain (Kafka's `ssl.keystore.type=PEM`).
pub(crate) fn load_identity(
    path: &Path,
    password: Option<&Secret>,
    key_password: Option<&Secret>,
    role: Role,
) -> Result<(Identity, StoreFormat), String> {
    let bytes = read(path, role.location_key)?;
    let format = StoreFormat::sniff(&bytes);
    let what = format!("{} {}", role.location_key, path.display());
    let identity = match format {
        StoreFormat::Pem => Identity {
            chain: pem_certs(&bytes, &what)?,
            key: pem_key(&bytes, &what)?,
        },
        StoreFormat::Pkcs12 => {
            // A store whose key has its own password (keytool -keypass):
            // Java opens the store with one and the key with the other;
            // PKCS#12 files as openssl writes them use one for both.
            let archive = match open_pkcs12(&bytes, path, password, role) {
                Err(e) if key_password.is_some() => {
                    open_pkcs12(&bytes, path, key_password, role).map_err(|_| e)?
                }
                other => other?,
            };
            identity_of(archive, &what)?
        }
        StoreFormat::Jks | StoreFormat::Jceks => return Err(java_store(path, format, role)),
    };
    Ok((identity, format))
}

fn identity_of(archive: p12_keystore::Pkcs12Archive, what: &str) -> Result<Identity, String> {
    let Some(key) = archive.keys.first() else {
        return Err(format!("{what}: no private key in it"));
    };
    // The key's own certificate first (same localKeyId), then the rest of
    // the chain the store carries.
    let leaf = archive
        .certs
        .iter()
        .position(|c| {
            matches!((&c.local_key_id, &key.local_key_id), (Some(a), Some(b)) if a.as_slice() == b.0.as_slice())
        })
        .unwrap_or(0);
    if archive.certs.is_empty() {
        return Err(format!("{what}: no certificate for its private key"));
    }
    let mut chain = vec![CertificateDer::from(
        archive.certs[leaf].cert.as_der().to_vec(),
    )];
    chain.extend(
        archive
            .certs
            .iter()
            .enumerate()
            .filter(|(i, c)| *i != leaf && !c.trusted)
            .map(|(_, c)| CertificateDer::from(c.cert.as_der().to_vec())),
    );
    Ok(Identity {
        chain,
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key.as_der().to_vec())),
    })
}

fn open_pkcs12(
    bytes: &[u8],
    path: &Path,
    password: Option<&Secret>,
    role: Role,
) -> Result<p12_keystore::Pkcs12Archive, String> {
    let p = path.display();
    p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password.map_or("", Secret::expose)).map_err(
        |e| match e {
            p12_keystore::error::Error::MacError(_) if password.is_none() => format!(
                "{} {p} is a PKCS#12 store protected by a password: set {}",
                role.location_key, role.password_key
            ),
            p12_keystore::error::Error::MacError(_) => format!(
                "{} {p}: the password does not open it (integrity check failed): check {}",
                role.location_key, role.password_key
            ),
            // The crate's messages name the structure, never the content.
            other => format!(
                "{} {p}: not a PKCS#12 store kconn can read ({other})",
                role.location_key
            ),
        },
    )
}

/// Every certificate in PEM text (`what` names it in errors).
pub(crate) fn pem_certs(bytes: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no PEM certificates"));
    }
    Ok(certs)
}

/// The private key in PEM text: PKCS#8, PKCS#1 or SEC1, unencrypted.
pub(crate) fn pem_key(bytes: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, String> {
    let text = String::from_utf8_lossy(bytes);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || text.contains("Proc-Type: 4,ENCRYPTED")
    {
        return Err(format!(
            "{what}: the private key is encrypted, which kconn cannot read yet: \
             decrypt it with `openssl pkcs8 -in KEY -out KEY.plain.pem` (keep that file private), \
             or use a PKCS#12 keystore (ssl.keystore.type=PKCS12)"
        ));
    }
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("{what}: no PEM private key"),
        other => format!("{what}: {other}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_the_content() {
        assert_eq!(
            StoreFormat::sniff(&[0xfe, 0xed, 0xfe, 0xed, 0, 0]),
            StoreFormat::Jks
        );
        assert_eq!(
            StoreFormat::sniff(&[0xce, 0xce, 0xce, 0xce]),
            StoreFormat::Jceks
        );
        assert_eq!(StoreFormat::sniff(&[0x30, 0x82, 0x01]), StoreFormat::Pkcs12);
        assert_eq!(
            StoreFormat::sniff(b"-----BEGIN CERTIFICATE-----"),
            StoreFormat::Pem
        );
    }

    #[test]
    fn a_jks_store_gets_the_keytool_command() {
        let dir = std::env::temp_dir().join(format!("kconn-jks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("truststore.jks");
        // A JKS header: magic, version 2, no entries.
        std::fs::write(&path, [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 0]).unwrap();
        let e = load_trust(&path, None, TRUSTSTORE).unwrap_err();
        assert!(e.contains("is a JKS keystore"), "{e}");
        assert!(
            e.contains(&format!(
                "keytool -importkeystore -srckeystore {} -srcstoretype JKS",
                path.display()
            )),
            "{e}"
        );
        assert!(e.contains("ssl.truststore.type=PKCS12"), "{e}");
        let e = load_identity(&path, None, None, KEYSTORE).unwrap_err();
        assert!(e.contains("ssl.keystore.type=PKCS12"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_test_certificate_reads_as_pem() {
        let cert = include_bytes!("../../tests/data/test-cert.pem");
        assert_eq!(pem_certs(cert, "x").unwrap().len(), 1);
        let e = pem_key(cert, "ssl.key.location k.pem").unwrap_err();
        assert_eq!(e, "ssl.key.location k.pem: no PEM private key");
        let e = pem_key(
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
            "k",
        )
        .unwrap_err();
        assert!(e.contains("encrypted"), "{e}");
    }

    #[test]
    fn garbage_is_not_a_pkcs12_store() {
        let dir = std::env::temp_dir().join(format!("kconn-p12-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.p12");
        std::fs::write(&path, [0x30, 0x03, 0x02, 0x01, 0x03]).unwrap();
        let e = load_trust(&path, None, TRUSTSTORE).unwrap_err();
        assert!(e.contains("not a PKCS#12 store kconn can read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
