//! The expiry of every certificate in the chain a broker presents: a
//! warning when one expires within `--cert-warn-days`, an error when one
//! has expired, each naming the certificate (subject, position in the
//! chain, not-after, days left).

use crate::diagnose::{Diagnosis, Step};
use crate::x509::{CertSummary, UtcTime};

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Where a certificate sits in the presented chain.
fn position(index: usize, len: usize) -> String {
    match index {
        0 => "the broker's certificate".to_owned(),
        i => format!("certificate {} of {len} in the chain", i + 1),
    }
}

/// What the chain's dates say at `now` (Unix seconds).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Findings {
    /// One line per certificate that expires within the warning window.
    pub(crate) warnings: Vec<String>,
    /// The first certificate that has expired (or is not valid yet).
    pub(crate) error: Option<Diagnosis>,
}

/// Checks every certificate of `chain` (end entity first).
pub(crate) fn check(chain: &[CertSummary], warn_days: u32, now: i64) -> Findings {
    let mut out = Findings::default();
    for (i, c) in chain.iter().enumerate() {
        let left = c.not_after - now;
        let where_ = position(i, chain.len());
        if left < 0 {
            if out.error.is_none() {
                let days = (-left).div_euclid(DAY);
                let mut d = Diagnosis::custom(
                    Step::Tls,
                    "certificate_expired",
                    format!(
                        "{where_} \"{}\" expired on {} ({days} day{} ago)",
                        c.subject,
                        UtcTime(c.not_after),
                        if days == 1 { "" } else { "s" }
                    ),
                );
                d.advice = Some(
                    "it needs a new certificate (check this machine's clock if that date looks wrong)"
                        .into(),
                );
                out.error = Some(d);
            }
        } else if c.not_before > now {
            if out.error.is_none() {
                let mut d = Diagnosis::custom(
                    Step::Tls,
                    "certificate_not_yet_valid",
                    format!(
                        "{where_} \"{}\" is valid only from {}",
                        c.subject,
                        UtcTime(c.not_before)
                    ),
                );
                d.advice = Some("check this machine's clock".into());
                out.error = Some(d);
            }
        } else if left < i64::from(warn_days) * DAY {
            let days = left.div_euclid(DAY);
            out.warnings.push(format!(
                "{where_} \"{}\" expires on {} (in {days} day{}; warning at {warn_days})",
                c.subject,
                UtcTime(c.not_after),
                if days == 1 { "" } else { "s" }
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(subject: &str, not_before: i64, not_after: i64) -> CertSummary {
        CertSummary {
            subject: subject.into(),
            issuer: "CN=ca".into(),
            serial: "01".into(),
            not_before,
            not_after,
            dns_names: Vec::new(),
            ip_addresses: Vec::new(),
        }
    }

    #[test]
    fn each_certificate_is_named_with_its_position() {
        let now = 1_000 * DAY;
        let chain = [
            cert("CN=leaf", 0, now + 100 * DAY),
            cert("CN=intermediate", 0, now + 10 * DAY + 5),
        ];
        let f = check(&chain, 30, now);
        assert!(f.error.is_none());
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert!(
            f.warnings[0]
                .starts_with("certificate 2 of 2 in the chain \"CN=intermediate\" expires on"),
            "{:?}",
            f.warnings
        );
        assert!(
            f.warnings[0].contains("(in 10 days; warning at 30)"),
            "{:?}",
            f.warnings
        );
        assert!(check(&chain, 5, now).warnings.is_empty());
    }

    #[test]
    fn an_expired_certificate_is_an_error() {
        let now = 1_000 * DAY;
        let f = check(&[cert("CN=leaf", 0, now - DAY - 1)], 30, now);
        let d = f.error.unwrap();
        assert_eq!(d.kind, "certificate_expired");
        assert_eq!(d.step, Step::Tls);
        assert!(
            d.problem
                .starts_with("the broker's certificate \"CN=leaf\" expired on"),
            "{}",
            d.problem
        );
        assert!(d.problem.ends_with("(1 day ago)"), "{}", d.problem);
        let f = check(&[cert("CN=future", now + 10, now + 100 * DAY)], 30, now);
        assert_eq!(f.error.unwrap().kind, "certificate_not_yet_valid");
    }
}
