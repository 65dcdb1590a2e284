//! `-F client.properties`: the Java client's and librdkafka's
//! configuration files, against the real brokers. PKCS#12 stores are made
//! at run time by `openssl pkcs12 -export` from the test CA files the
//! broker environment provides.

mod common;

use common::*;

/// Runs `openssl` with `args`; panics with its stderr on failure.
fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every output of kconn `args` (text and JSON, `-vvv`) lacks `secrets`.
fn never_printed(args: &[&str], env: &[(&str, &str)], secrets: &[&str]) {
    for extra in [&["-vvv"][..], &["--json", "-vvv"][..]] {
        let mut all = args.to_vec();
        all.extend_from_slice(extra);
        let out = kconn_env(&all, env);
        let text = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
        for s in secrets {
            assert!(!text.contains(s), "{s:?} printed by kconn {all:?}");
        }
    }
}

#[test]
fn a_java_ssl_client_properties_with_a_pem_truststore() {
    let Some([bs, ca]) = broker_vars(["KAFKA_TLS_BOOTSTRAP", "KAFKA_TLS_CA_FILE"]) else {
        return;
    };
    let dir = TempDir::new("kconn-props-pem");
    let file = dir.file(
        "client.properties",
        format!(
            "# a producer's file\nbootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\nacks=all\nlinger.ms=5\nbootstrap.server=typo:1\nssl.protocol=TLSv1.3\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["security_protocol"], "SSL");
    assert_eq!(report["security_protocol_inferred"], false);
    let config = &report["config"];
    let used: Vec<&str> = config["used"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["key"].as_str().unwrap())
        .collect();
    for key in [
        "bootstrap.servers",
        "security.protocol",
        "ssl.truststore.location",
    ] {
        assert!(used.contains(&key), "{key} not used: {used:?}");
    }
    // Unknown keys are listed, with a suggestion for the typo.
    let unused = config["unused"].as_array().unwrap();
    let find = |k: &str| {
        unused
            .iter()
            .find(|u| u["key"] == k)
            .unwrap_or_else(|| panic!("{k} not listed: {config}"))
    };
    assert_eq!(find("acks")["reason"], "not_for_connecting");
    assert_eq!(find("ssl.protocol")["reason"], "not_supported");
    assert_eq!(
        find("bootstrap.server")["did_you_mean"],
        "bootstrap.servers"
    );
    assert!(
        report["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("linger.ms (")),
        "{report:#}"
    );
    // The text report starts with what the file said.
    let out = kconn(&["check", "-F", &file]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("config {file}: ")), "{text}");
    assert!(
        text.contains("not used by kconn (not about connecting, or unknown): acks"),
        "{text}"
    );
    assert!(text.contains("did you mean bootstrap.servers?"), "{text}");
}

#[test]
fn mtls_with_pkcs12_stores_made_by_openssl() {
    let Some([bs, ca, cert, key]) = broker_vars([
        "KAFKA_MTLS_BOOTSTRAP",
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_CLIENT_CERT_FILE",
        "KAFKA_TLS_CLIENT_KEY_FILE",
    ]) else {
        return;
    };
    let dir = TempDir::new("kconn-props-p12");
    let keystore = dir.path("client.p12");
    let truststore = dir.path("truststore.p12");
    let (store_pw, trust_pw) = ("kconn-p12-store-secret", "kconn-p12-trust-secret");
    openssl(&[
        "pkcs12",
        "-export",
        "-in",
        &cert,
        "-inkey",
        &key,
        "-certfile",
        &ca,
        "-name",
        "client",
        "-out",
        &keystore,
        "-passout",
        &format!("pass:{store_pw}"),
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-nokeys",
        "-in",
        &ca,
        "-out",
        &truststore,
        "-passout",
        &format!("pass:{trust_pw}"),
    ]);
    let file = dir.file(
        "client.properties",
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SSL\n\
             ssl.keystore.type=PKCS12\nssl.keystore.location={keystore}\nssl.keystore.password={store_pw}\n\
             ssl.truststore.type=PKCS12\nssl.truststore.location={truststore}\nssl.truststore.password={trust_pw}\n\
             ssl.endpoint.identification.algorithm=https\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(
        report["brokers"][0]["tls"]["chain"][0]["subject"]
            .as_str()
            .map(|s| s.contains("CN=localhost")),
        Some(true)
    );
    let loaded = report["config"]["loaded"].to_string();
    assert!(
        loaded.contains("ssl.truststore.location: PKCS12, 1 CA certificate(s)"),
        "{loaded}"
    );
    assert!(
        loaded.contains("ssl.keystore.location: PKCS12, a key and 2 certificate(s)"),
        "{loaded}"
    );
    never_printed(&["check", "-F", &file], &[], &[store_pw, trust_pw]);

    // A wrong password names the setting, not the password.
    let wrong = dir.file(
        "wrong.properties",
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.keystore.location={keystore}\nssl.keystore.password=not-the-password\nssl.truststore.location={ca}\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &wrong]);
    assert_eq!(code, Some(1));
    let e = &report["brokers"][0]["error"];
    assert_eq!(e["kind"], "tls_configuration", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("the password does not open it"),
        "{message}"
    );
    assert!(message.contains("check ssl.keystore.password"), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");

    // Without the keystore the broker refuses: the diagnosis is the same as with flags.
    let none = dir.file(
        "none.properties",
        format!("bootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.truststore.location={truststore}\nssl.truststore.password={trust_pw}\n"),
    );
    let (report, code) = json(&["check", "-F", &none]);
    assert_eq!(code, Some(1));
    assert_eq!(
        report["brokers"][0]["error"]["kind"],
        "client_certificate_required"
    );
}

#[test]
fn a_jks_store_is_refused_with_the_keytool_command() {
    let Some(bs) = broker_var("KAFKA_TLS_BOOTSTRAP") else {
        return;
    };
    let dir = TempDir::new("kconn-props-jks");
    // What keytool writes first: the JKS magic number and version 2.
    let jks = dir.file(
        "truststore.jks",
        [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2, 0, 0, 0, 0],
    );
    let file = dir.file(
        "client.properties",
        format!("bootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.truststore.location={jks}\nssl.truststore.password=changeit\n"),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(1));
    let message = report["brokers"][0]["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("is a JKS keystore, which only Java reads"),
        "{message}"
    );
    assert!(
        message.contains(&format!("keytool -importkeystore -srckeystore {jks} -srcstoretype JKS -destkeystore {jks}.p12 -deststoretype PKCS12")),
        "{message}"
    );
    // Nothing was tried.
    assert_eq!(report["brokers"][0]["steps"][1]["status"], "not_run");
}

#[test]
fn a_librdkafka_config_for_mtls_as_kcat_reads_it() {
    let Some([bs, ca, cert, key]) = broker_vars([
        "KAFKA_MTLS_BOOTSTRAP",
        "KAFKA_TLS_CA_FILE",
        "KAFKA_TLS_CLIENT_CERT_FILE",
        "KAFKA_TLS_CLIENT_KEY_FILE",
    ]) else {
        return;
    };
    let dir = TempDir::new("kconn-rdkafka");
    let file = dir.file(
        "kcat.conf",
        format!(
            "metadata.broker.list={bs}\nsecurity.protocol=ssl\nssl.ca.location={ca}\nssl.certificate.location={cert}\nssl.key.location={key}\nclient.id=kcat-like\nsocket.timeout.ms=5000\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        report["config"]["unused"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
}

#[test]
fn switching_the_name_check_off_is_what_the_client_does() {
    let Some([bs, ca]) = broker_vars(["KAFKA_TLS_BOOTSTRAP", "KAFKA_TLS_CA_FILE"]) else {
        return;
    };
    let dir = TempDir::new("kconn-props-noname");
    let on = dir.file(
        "on.properties",
        format!("bootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.truststore.location={ca}\n"),
    );
    let off = dir.file(
        "off.properties",
        format!("bootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.truststore.location={ca}\nssl.endpoint.identification.algorithm=\n"),
    );
    // A name the certificate does not hold.
    let (report, code) = json(&["check", "-F", &on, "--tls-server-name", "kafka.example.com"]);
    assert_eq!(code, Some(1));
    assert_eq!(
        report["brokers"][0]["error"]["kind"],
        "certificate_name_mismatch"
    );
    let (report, code) = json(&[
        "check",
        "-F",
        &off,
        "--tls-server-name",
        "kafka.example.com",
    ]);
    assert_eq!(code, Some(0), "{report:#}");
    assert!(
        report["warnings"]
            .to_string()
            .contains("switches the host name check off"),
        "{report:#}"
    );
    // The chain must still lead to the CA.
    let Some(wrong) = broker_var("KAFKA_TLS_WRONG_CA_FILE") else {
        return;
    };
    let off_wrong = dir.file(
        "off-wrong.properties",
        format!("bootstrap.servers={bs}\nsecurity.protocol=SSL\nssl.truststore.location={wrong}\nssl.endpoint.identification.algorithm=\n"),
    );
    let (report, code) = json(&["check", "-F", &off_wrong]);
    assert_eq!(code, Some(1));
    let e = &report["brokers"][0]["error"];
    assert_eq!(e["kind"], "certificate_not_trusted", "{e}");
    // The refused certificate is shown, from kconn's own verifier.
    assert!(
        report["brokers"][0]["tls"]["chain"][0]["subject"]
            .as_str()
            .unwrap()
            .contains("CN=localhost"),
        "{report:#}"
    );
}

#[test]
fn sasl_scram_from_the_jaas_line() {
    let Some([bs, user, password]) = (|| {
        Some([
            sasl_var("KAFKA_SASL_SCRAM_BOOTSTRAP")?,
            sasl_var("KAFKA_SASL_USERNAME")?,
            sasl_var("KAFKA_SASL_PASSWORD")?,
        ])
    })() else {
        return;
    };
    let dir = TempDir::new("kconn-props-scram");
    let file = dir.file(
        "client.properties",
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n    username=\"{user}\" \\\n    password=\"{password}\";\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "SCRAM-SHA-512");
    let jaas = &report["config"]["jaas"];
    assert_eq!(
        jaas["module"],
        "org.apache.kafka.common.security.scram.ScramLoginModule"
    );
    assert_eq!(jaas["options"]["username"], user.as_str());
    assert!(jaas["options"]["password"].is_null(), "{jaas}");
    never_printed(&["check", "-F", &file], &[], &[&password]);

    // A flag overrides the file: the wrong password from the environment fails.
    let (report, code) = json_env(
        &["check", "-F", &file],
        &[("KCONN_SASL_PASSWORD", "definitely-not-the-password")],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        report["brokers"][0]["error"]["kind"],
        "authentication_failed"
    );

    // A missing ';' is the Java client's own error, with the file and line.
    let broken = dir.file(
        "broken.properties",
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{user}\" password=\"{password}\"\n"
        ),
    );
    let out = kconn(&["check", "-F", &broken]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("sasl.jaas.config ({broken}:4)")),
        "{err}"
    );
    assert!(err.contains("not terminated by semi-colon"), "{err}");
    assert!(!err.contains(&password), "{err}");
    let (report, code) = json(&["check", "-F", &broken]);
    assert_eq!(code, Some(2));
    assert_eq!(report["error"]["kind"], "invalid_configuration");
    assert_eq!(report["error"]["step"], "config");
}

#[test]
fn oauthbearer_with_an_unsecured_token_from_the_jaas_line() {
    let Some(bs) = sasl_var("KAFKA_SASL_OAUTHBEARER_BOOTSTRAP") else {
        return;
    };
    if var("KAFKA_SASL_OAUTHBEARER_TOKEN_KIND").as_deref() != Some("unsecured-jwt") {
        eprintln!("SKIPPED: the OAUTHBEARER broker does not take unsecured JWTs");
        return;
    }
    let dir = TempDir::new("kconn-props-oauth");
    let file = dir.file(
        "client.properties",
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n\
             sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"kafka-test\" unsecuredLoginLifetimeSeconds=\"600\";\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "OAUTHBEARER");
}

/// Built with the `gssapi` feature kconn authenticates instead (tests/features.rs).
#[test]
#[cfg(not(feature = "gssapi"))]
fn kerberos_is_read_and_reported_as_not_supported_without_the_feature() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let dir = TempDir::new("kconn-props-krb");
    let file = dir.file(
        "client.properties",
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.kerberos.service.name=kafka\n\
             sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required \\\n  useKeyTab=true storeKey=true keyTab=\"/etc/security/keytabs/client.keytab\" principal=\"client@EXAMPLE.COM\";\n"
        ),
    );
    let (report, code) = json(&["check", "-F", &file]);
    assert_eq!(code, Some(2));
    let e = &report["error"];
    assert_eq!(e["kind"], "not_supported", "{e}");
    let message = e["message"].as_str().unwrap();
    for part in [
        "this kconn was built without GSSAPI (cargo install kafka-conn-cli --features gssapi)",
        "principal client@EXAMPLE.COM",
        "keytab /etc/security/keytabs/client.keytab",
        "service name kafka",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
}

#[test]
fn flags_override_the_file_and_later_files_override_earlier_ones() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let dir = TempDir::new("kconn-props-override");
    let closed = closed_port();
    let base = dir.file(
        "base.properties",
        format!("bootstrap.servers={closed}\nclient.id=base\n"),
    );
    let site = dir.file("site.properties", format!("bootstrap.servers={bs}\n"));
    // The later file wins.
    let (report, code) = json(&["check", "-F", &base, "--config", &site]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["brokers"][0]["broker"], bs.as_str());
    // A flag wins over both, and the report says which key it overrode.
    let (report, code) = json(&["check", "-F", &site, "-b", &closed]);
    assert_eq!(code, Some(1));
    assert_eq!(report["brokers"][0]["broker"], closed.as_str());
    let used = report["config"]["used"].as_array().unwrap();
    let b = used
        .iter()
        .find(|u| u["key"] == "bootstrap.servers")
        .unwrap();
    assert_eq!(b["overridden_by"], "--bootstrap");
    // A file that cannot be read is a usage error.
    let out = kconn(&["check", "-F", "/nonexistent/client.properties"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/client.properties"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_connecting_command_reads_the_file() {
    let Some(bs) = broker_var("KAFKA_PLAINTEXT_BOOTSTRAP") else {
        return;
    };
    let dir = TempDir::new("kconn-props-all");
    let file = dir.file(
        "client.properties",
        format!("bootstrap.servers={bs}\nacks=all\n"),
    );
    for args in [
        vec!["api-versions", "-F", &file],
        vec!["ping", "-F", &file, "-n", "2"],
        vec!["bench", "-F", &file, "-n", "50"],
    ] {
        let (report, code) = json(&args);
        assert_eq!(code, Some(0), "{args:?}: {report:#}");
        assert_eq!(report["config"]["files"][0], file.as_str());
        // The table commands keep stdout for the table: the notes go to stderr.
        let out = kconn(&args);
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("not used by kconn"),
            "{args:?}"
        );
        assert!(!stdout(&out).contains("not used by kconn"), "{args:?}");
    }
}
