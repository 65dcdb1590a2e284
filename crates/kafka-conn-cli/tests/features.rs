//! The optional mechanisms, each with its feature (`cargo test -p
//! kafka-conn-cli --features gssapi,oidc,aws-msk-iam`):
//!
//! - GSSAPI against the real MIT KDC and GSSAPI broker of `../shared/broker`
//!   (flags, and a Java `client.properties` with `Krb5LoginModule`);
//! - OIDC: tokens from the real OpenID provider (npm `oidc-provider`),
//!   presented to the simulated broker of the testsuite (`SaslSim`), which
//!   checks their issuer and subject: the shared SASL broker accepts only
//!   unsecured JWTs and refuses the provider's signed ones (also checked);
//! - AWS_MSK_IAM: there is no Amazon MSK here, so the signed payload goes
//!   to the simulated broker, which checks its fields (the signature itself
//!   is checked against botocore's in the testsuite).
//!
//! The simulated broker echoes requests it does not know, so those checks
//! skip Metadata (`--no-metadata`).
#![cfg(any(feature = "gssapi", feature = "oidc", feature = "aws-msk-iam"))]

mod common;

use common::*;

#[cfg(any(feature = "oidc", feature = "aws-msk-iam"))]
use kafka_conn_testsuite::auth::SaslSim;

#[cfg(feature = "gssapi")]
mod gssapi {
    use super::*;

    struct Krb {
        bootstrap: String,
        config: String,
        principal: String,
        keytab: String,
    }

    fn krb() -> Option<Krb> {
        Some(Krb {
            bootstrap: sasl_var("KAFKA_SASL_GSSAPI_BOOTSTRAP")?,
            config: sasl_var("KAFKA_KRB5_CONFIG")?,
            principal: sasl_var("KAFKA_KRB5_CLIENT_PRINCIPAL")?,
            keytab: sasl_var("KAFKA_KRB5_CLIENT_KEYTAB")?,
        })
    }

    #[test]
    fn gssapi_with_a_keytab_against_the_kdc_and_the_gssapi_broker() {
        let Some(k) = krb() else { return };
        let env = [("KRB5_CONFIG", k.config.as_str())];
        let args = [
            "check",
            "-b",
            &k.bootstrap,
            "--sasl-mechanism",
            "GSSAPI",
            "--kerberos-principal",
            &k.principal,
            "--kerberos-keytab",
            &k.keytab,
        ];
        let (report, code) = json_env(&args, &env);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["security_protocol"], "SASL_PLAINTEXT");
        assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "GSSAPI");
        let out = kconn_env(&args, &env);
        assert!(
            stdout(&out).contains("✓ SASL") && stdout(&out).contains("authenticated with GSSAPI"),
            "{}",
            stdout(&out)
        );

        // A service name the KDC does not know: the ticket request fails,
        // before the broker sees anything.
        let mut wrong = args.to_vec();
        wrong.extend(["--kerberos-service-name", "nope", "--bootstrap-only"]);
        let (report, code) = json_env(&wrong, &env);
        assert_eq!(code, Some(1), "{report:#}");
        let e = &report["brokers"][0]["error"];
        assert_eq!(
            (e["step"].as_str(), e["kind"].as_str()),
            (Some("sasl"), Some("credential_unavailable")),
            "{e}"
        );
        let message = e["message"].as_str().unwrap();
        assert!(message.contains("nope/localhost"), "{message}");
        assert!(message.contains("--kerberos-service-name"), "{message}");
    }

    #[test]
    fn gssapi_from_a_java_client_properties_with_krb5_login_module() {
        let Some(k) = krb() else { return };
        let dir = TempDir::new("kconn-krb");
        let file = dir.file(
            "client.properties",
            format!(
                "bootstrap.servers={}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=GSSAPI\nsasl.kerberos.service.name=kafka\n\
                 sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required \\\n  useKeyTab=true storeKey=true keyTab=\"{}\" principal=\"{}\";\n",
                k.bootstrap, k.keytab, k.principal
            ),
        );
        let (report, code) = json_env(&["check", "-F", &file], &[("KRB5_CONFIG", &k.config)]);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "GSSAPI");
        // No sasl.mechanism: GSSAPI is the clients' default, with a note.
        let file = dir.file(
            "default.properties",
            format!(
                "bootstrap.servers={}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.kerberos.service.name=kafka\n\
                 sasl.jaas.config=com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true keyTab=\"{}\" principal=\"{}\";\n",
                k.bootstrap, k.keytab, k.principal
            ),
        );
        let (report, code) = json_env(&["check", "-F", &file], &[("KRB5_CONFIG", &k.config)]);
        assert_eq!(code, Some(0), "{report:#}");
        assert!(
            report["config"]["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("GSSAPI, the clients' default")),
            "{report:#}"
        );
    }
}

#[cfg(feature = "oidc")]
mod oidc {
    use super::*;
    use base64::Engine as _;

    struct Idp {
        endpoint: String,
        issuer: String,
        client_id: String,
        secret: String,
        ca: String,
    }

    fn idp() -> Option<Idp> {
        if let Some(reason) = var("KAFKA_CONN_OIDC_SKIP_REASON") {
            eprintln!("SKIPPED: OpenID provider unavailable: {reason}");
            return None;
        }
        Some(Idp {
            endpoint: broker_var("KAFKA_CONN_OIDC_TOKEN_ENDPOINT")?,
            issuer: broker_var("KAFKA_CONN_OIDC_ISSUER")?,
            client_id: broker_var("KAFKA_CONN_OIDC_CLIENT_ID")?,
            secret: broker_var("KAFKA_CONN_OIDC_CLIENT_SECRET")?,
            ca: broker_var("KAFKA_CONN_OIDC_CA_FILE")?,
        })
    }

    /// The JWT's claims, from an OAUTHBEARER client message
    /// (`n,,\x01auth=Bearer <jwt>\x01...`, RFC 7628).
    fn claims(message: &[u8]) -> Option<Value> {
        let text = std::str::from_utf8(message).ok()?;
        let jwt = text
            .split('\x01')
            .find_map(|p| p.strip_prefix("auth=Bearer "))?;
        let payload = jwt.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// A simulated broker that takes only the provider's tokens for our client.
    fn broker(idp: &Idp) -> SaslSim {
        let (iss, sub) = (idp.issuer.clone(), idp.client_id.clone());
        SaslSim::start("OAUTHBEARER", 60_000, move |m| match claims(m) {
            Some(c) if c["iss"] == iss.as_str() && c["sub"] == sub.as_str() => Ok(Vec::new()),
            other => Err(format!("not a token of {iss} for {sub}: {other:?}")),
        })
    }

    #[test]
    fn tokens_from_the_openid_provider_by_flags_and_by_client_properties() {
        let Some(idp) = idp() else { return };
        let sim = broker(&idp);
        let bs = sim.address();
        let args = [
            "check",
            "-b",
            &bs,
            "--sasl-mechanism",
            "OAUTHBEARER",
            "--oauth-token-endpoint",
            &idp.endpoint,
            "--oauth-client-id",
            &idp.client_id,
            "--oauth-scope",
            "kafka",
            "--oauth-ca",
            &idp.ca,
            "--no-metadata",
        ];
        let env = [("KCONN_OAUTH_CLIENT_SECRET", idp.secret.as_str())];
        let (report, code) = json_env(&args, &env);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "OAUTHBEARER");
        assert_eq!(sim.received().len(), 1);
        let out = kconn_env(&args, &env);
        assert!(!stdout(&out).contains(&idp.secret));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(&idp.secret));

        // The Java client's keys for the same.
        let dir = TempDir::new("kconn-oidc");
        let file = dir.file(
            "client.properties",
            format!(
                "bootstrap.servers={bs}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=OAUTHBEARER\n\
                 sasl.login.callback.handler.class=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler\n\
                 sasl.oauthbearer.token.endpoint.url={}\n\
                 sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required clientId=\"{}\" clientSecret=\"{}\" scope=\"kafka\";\n",
                idp.endpoint, idp.client_id, idp.secret
            ),
        );
        let (report, code) = json(&["check", "-F", &file, "--oauth-ca", &idp.ca, "--no-metadata"]);
        assert_eq!(code, Some(0), "{report:#}");
        assert!(!report.to_string().contains(&idp.secret), "{report}");
        assert_eq!(sim.received().len(), 3);
    }

    #[test]
    fn a_wrong_client_secret_is_the_providers_refusal() {
        let Some(idp) = idp() else { return };
        let sim = broker(&idp);
        let (report, code) = json_env(
            &[
                "check",
                "-b",
                &sim.address(),
                "--sasl-mechanism",
                "OAUTHBEARER",
                "--oauth-token-endpoint",
                &idp.endpoint,
                "--oauth-client-id",
                &idp.client_id,
                "--oauth-ca",
                &idp.ca,
                "--no-metadata",
            ],
            &[("KCONN_OAUTH_CLIENT_SECRET", "wrong-secret")],
        );
        assert_eq!(code, Some(1), "{report:#}");
        let e = &report["brokers"][0]["error"];
        assert_eq!(e["kind"], "credential_unavailable", "{e}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("HTTP 401, error invalid_client"),
            "{message}"
        );
        assert!(message.contains("KCONN_OAUTH_CLIENT_SECRET"), "{message}");
        assert!(sim.received().is_empty(), "nothing reached the broker");
    }

    /// The shared SASL broker (tansu) takes unsecured JWTs only: the
    /// provider's signed token reaches it and is refused, which is why the
    /// tests above use the simulated broker.
    #[test]
    fn the_shared_sasl_broker_refuses_the_providers_signed_tokens() {
        let (Some(idp), Some(bs)) = (idp(), sasl_var("KAFKA_SASL_OAUTHBEARER_BOOTSTRAP")) else {
            return;
        };
        let (report, code) = json_env(
            &[
                "check",
                "-b",
                &bs,
                "--sasl-mechanism",
                "OAUTHBEARER",
                "--oauth-token-endpoint",
                &idp.endpoint,
                "--oauth-client-id",
                &idp.client_id,
                "--oauth-ca",
                &idp.ca,
                "--bootstrap-only",
            ],
            &[("KCONN_OAUTH_CLIENT_SECRET", &idp.secret)],
        );
        assert_eq!(code, Some(1), "{report:#}");
        let e = &report["brokers"][0]["error"];
        assert_eq!(e["kind"], "authentication_failed", "{e}");
        assert!(
            e["message"].as_str().unwrap().contains("invalid_token"),
            "{e}"
        );
    }
}

#[cfg(feature = "aws-msk-iam")]
mod msk {
    use super::*;

    const KEY_ID: &str = "AKIDKCONNTEST";

    /// A simulated AWS_MSK_IAM broker (no Amazon MSK here): it checks the
    /// payload's fields, not the signature.
    fn broker() -> SaslSim {
        SaslSim::start("AWS_MSK_IAM", 60_000, |m| {
            let v: Value = serde_json::from_slice(m).map_err(|e| e.to_string())?;
            let credential = v["x-amz-credential"].as_str().unwrap_or_default();
            let ok = v["version"] == "2020_10_22"
                && v["action"] == "kafka-cluster:Connect"
                && v["host"] == "127.0.0.1"
                && credential.starts_with(&format!("{KEY_ID}/"))
                && credential.ends_with("/eu-west-3/kafka-cluster/aws4_request")
                && v["x-amz-signature"].as_str().is_some_and(|s| s.len() == 64);
            if ok {
                Ok(br#"{"version":"2020_10_22","request-id":"kconn-test"}"#.to_vec())
            } else {
                Err(format!("bad payload: {v}"))
            }
        })
    }

    #[test]
    fn msk_iam_signs_with_environment_credentials() {
        let sim = broker();
        let dir = TempDir::new("kconn-msk");
        let env = [
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", "kconn-test-secret-access-key"),
            ("AWS_SHARED_CREDENTIALS_FILE", &dir.path("none")),
        ];
        let args = [
            "check",
            "-b",
            &sim.address(),
            "--sasl-mechanism",
            "AWS_MSK_IAM",
            "--aws-region",
            "eu-west-3",
            "--no-metadata",
        ];
        let (report, code) = json_env(&args, &env);
        assert_eq!(code, Some(0), "{report:#}");
        assert_eq!(report["brokers"][0]["sasl"]["mechanism"], "AWS_MSK_IAM");
        assert_eq!(sim.received().len(), 1);
        let out = kconn_env(&args, &env);
        assert!(!stdout(&out).contains("kconn-test-secret-access-key"));

        // The Java client's keys (Amazon's aws-msk-iam-auth library), with
        // a profile from the shared credentials file.
        let credentials = dir.file(
            "credentials",
            format!("[kconn-test]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = kconn-profile-secret\n"),
        );
        let file = dir.file(
            "client.properties",
            format!(
                "bootstrap.servers={}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=AWS_MSK_IAM\n\
                 sasl.jaas.config=software.amazon.msk.auth.iam.IAMLoginModule required awsProfileName=\"kconn-test\";\n\
                 sasl.client.callback.handler.class=software.amazon.msk.auth.iam.IAMClientCallbackHandler\n",
                sim.address()
            ),
        );
        let (report, code) = json_env(
            &[
                "check",
                "-F",
                &file,
                "--aws-region",
                "eu-west-3",
                "--no-metadata",
            ],
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_SHARED_CREDENTIALS_FILE", &credentials),
            ],
        );
        assert_eq!(code, Some(0), "{report:#}");
        assert!(
            report["config"]["unused"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
        assert!(!report.to_string().contains("kconn-profile-secret"));
        assert_eq!(sim.received().len(), 3);

        // No credentials anywhere: said before anything reaches the broker.
        let (report, code) = json_env(
            &args,
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_SHARED_CREDENTIALS_FILE", &dir.path("none")),
                ("AWS_PROFILE", "kconn-none"),
            ],
        );
        assert_eq!(code, Some(1), "{report:#}");
        let e = &report["brokers"][0]["error"];
        assert_eq!(e["kind"], "credential_unavailable", "{e}");
        assert!(
            e["message"].as_str().unwrap().contains("--aws-profile"),
            "{e}"
        );
        assert_eq!(
            sim.received().len(),
            3,
            "the three runs that passed; nothing from the failed one"
        );
    }
}
