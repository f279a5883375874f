//! rustls failures turned into sentences a user can act on.

use rustls::{AlertDescription, CertificateError, Error};
use rustls_pki_types::UnixTime;

use crate::verifier::PinMismatch;

/// What went wrong in a TLS handshake with `server`, and what to do.
///
/// ```
/// use mqtt_sec_tls::explain;
/// use mqtt_sec_tls::rustls::{CertificateError, Error};
/// let text = explain(&Error::InvalidCertificate(CertificateError::UnknownIssuer), "broker.example");
/// assert!(text.contains("not trusted") && text.contains("TrustRoots"));
/// ```
pub fn explain(error: &Error, server: &str) -> String {
    if let Some(mismatch) = PinMismatch::from_rustls(error) {
        return format!(
            "{mismatch}; if the server's key was rotated on purpose, ship its pin (or the backup pin) to the clients"
        );
    }
    match error {
        Error::InvalidCertificate(cert) => explain_certificate(cert, server),
        Error::AlertReceived(alert) => explain_alert(*alert, server),
        Error::InvalidCertRevocationList(e) => {
            format!(
                "a CRL given for {server} is invalid ({e:?}): check that it comes from the issuing CA and is current"
            )
        }
        Error::NoApplicationProtocol => {
            format!(
                "{server} offers none of the ALPN protocols configured (for AWS IoT on port 443, use Alpn::AwsIotCertificates)"
            )
        }
        other => format!("TLS with {server} failed: {other}"),
    }
}

fn explain_certificate(error: &CertificateError, server: &str) -> String {
    match error {
        CertificateError::ExpiredContext { not_after, .. } => {
            format!(
                "the server certificate for {server} expired at {}; the broker must renew it",
                utc(*not_after)
            )
        }
        CertificateError::Expired => {
            format!("the server certificate for {server} has expired; the broker must renew it")
        }
        CertificateError::NotValidYetContext { not_before, .. } => format!(
            "the server certificate for {server} is not valid before {}; check this device's clock",
            utc(*not_before)
        ),
        CertificateError::NotValidYet => {
            format!(
                "the server certificate for {server} is not valid yet; check this device's clock"
            )
        }
        CertificateError::NotValidForNameContext { presented, .. } => format!(
            "the certificate is valid for [{}], not {server}; connect by one of those names or use verify_server_name",
            presented
                .iter()
                .map(|name| plain_name(name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        CertificateError::NotValidForName => {
            format!(
                "the certificate is not valid for {server}; connect by a name it lists or use verify_server_name"
            )
        }
        CertificateError::UnknownIssuer => format!(
            "the issuer of {server}'s certificate is not trusted: add its CA with TrustRoots::pem_file (ask the broker's operator for the CA certificate)"
        ),
        CertificateError::Revoked => format!(
            "the certificate of {server} is revoked by its CA (CRL); the broker needs a new one"
        ),
        CertificateError::ExpiredRevocationList
        | CertificateError::ExpiredRevocationListContext { .. } => format!(
            "a CRL given for {server}'s certificate chain has expired (its nextUpdate has passed), so it vouches for nothing: fetch a current CRL from the CA (ReloadableCrls picks up a rewritten file)"
        ),
        CertificateError::UnknownRevocationStatus => format!(
            "no CRL given covers {server}'s certificate chain: add the CRL of every CA in the chain, or use Revocation::only_end_entity"
        ),
        other => format!("the certificate of {server} was refused: {other:?}"),
    }
}

fn explain_alert(alert: AlertDescription, server: &str) -> String {
    match alert {
        AlertDescription::CertificateRequired => {
            format!("{server} requires a client certificate: configure an Identity")
        }
        AlertDescription::UnknownCA | AlertDescription::BadCertificate => format!(
            "{server} refused this client's certificate ({alert:?}): it must be issued by a CA the broker trusts"
        ),
        AlertDescription::CertificateExpired => {
            format!("{server} says this client's certificate has expired: renew it")
        }
        AlertDescription::CertificateRevoked => {
            format!("{server} says this client's certificate is revoked: enrol a new one")
        }
        AlertDescription::ProtocolVersion => format!(
            "{server} and this client share no TLS version (is the client TLS 1.3 only while the broker stops at 1.2?)"
        ),
        AlertDescription::HandshakeFailure => {
            format!("{server} found no common cipher suite or signature scheme")
        }
        other => format!("{server} ended the handshake with the alert {other:?}"),
    }
}

/// `broker.example` from rustls' `DnsName("broker.example")` (and the like
/// for other name kinds).
fn plain_name(presented: &str) -> &str {
    let Some((_, inner)) = presented.split_once('(') else {
        return presented;
    };
    let inner = inner.strip_suffix(')').unwrap_or(inner);
    inner
        .strip_prefix('"')
        .and_then(|i| i.strip_suffix('"'))
        .unwrap_or(inner)
}

/// `2026-11-23T10:00:00Z`: days to civil date as in Howard Hinnant's
/// `civil_from_days`.
fn utc(time: UnixTime) -> String {
    let secs = time.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(secs))
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(utc(at(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(utc(at(1_795_427_897)), "2026-11-23T09:58:17Z");
        assert_eq!(utc(at(4_102_444_799)), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn messages_name_the_problem_and_the_fix() {
        let expired = CertificateError::ExpiredContext {
            time: at(1_795_427_897),
            not_after: at(1_795_341_497),
        };
        let text = explain(&Error::InvalidCertificate(expired), "broker.example");
        assert!(
            text.contains("broker.example expired at 2026-11-22T09:58:17Z"),
            "{text}"
        );
        let name = CertificateError::NotValidForNameContext {
            expected: rustls_pki_types::ServerName::try_from("c.example").unwrap(),
            presented: vec![
                "DnsName(\"a.example\")".into(),
                "DnsName(\"b.example\")".into(),
            ],
        };
        let text = explain(&Error::InvalidCertificate(name), "c.example");
        assert!(
            text.contains("a.example")
                && text.contains("b.example")
                && text.contains("not c.example"),
            "{text}"
        );
        let text = explain(
            &Error::AlertReceived(AlertDescription::CertificateRequired),
            "b",
        );
        assert!(text.contains("Identity"), "{text}");
        let text = explain(
            &Error::AlertReceived(AlertDescription::ProtocolVersion),
            "b",
        );
        assert!(text.contains("TLS version"), "{text}");
    }
}
