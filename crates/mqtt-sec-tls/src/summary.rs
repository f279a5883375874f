//! One-line descriptions of certificates, for logs and error messages.

use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::pin::{Pin, PinError};

/// What a person needs to recognise a certificate: subject, names, issuer,
/// validity and pin. All public data.
///
/// ```
/// use mqtt_sec_testkit::{CertSpec, TestPki};
/// use mqtt_sec_tls::CertificateSummary;
/// let mut pki = TestPki::new()?;
/// let cert = pki.issue(&CertSpec::localhost_server("broker"))?;
/// let summary = CertificateSummary::from_der(cert.cert_der())?;
/// assert_eq!(summary.names, ["DNS:localhost", "IP:127.0.0.1"]);
/// assert!(summary.to_string().contains("CN=broker"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateSummary {
    /// The subject distinguished name.
    pub subject: String,
    /// Subject alternative names: `DNS:`, `IP:`, `URI:`, `email:`.
    pub names: Vec<String>,
    /// The issuer distinguished name.
    pub issuer: String,
    /// The start of validity, RFC 3339 UTC.
    pub not_before: String,
    /// The end of validity, RFC 3339 UTC.
    pub not_after: String,
    /// The RFC 7469 pin of the public key.
    pub pin: Pin,
}

impl CertificateSummary {
    /// Summarises a DER certificate.
    ///
    /// # Errors
    /// [`PinError::Certificate`] when it does not parse.
    pub fn from_der(cert: &CertificateDer<'_>) -> Result<Self, PinError> {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref())
            .map_err(|e| PinError::Certificate(e.to_string()))?;
        let names = match parsed.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(describe_name)
                .collect(),
            _ => Vec::new(),
        };
        let rfc3339 = |t: &x509_parser::time::ASN1Time| {
            let t = t.to_datetime();
            format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        };
        Ok(Self {
            subject: parsed.subject().to_string(),
            names,
            issuer: parsed.issuer().to_string(),
            not_before: rfc3339(&parsed.validity().not_before),
            not_after: rfc3339(&parsed.validity().not_after),
            pin: Pin::from_certificate(cert)?,
        })
    }
}

fn describe_name(name: &GeneralName<'_>) -> Option<String> {
    Some(match name {
        GeneralName::DNSName(dns) => format!("DNS:{dns}"),
        GeneralName::URI(uri) => format!("URI:{uri}"),
        GeneralName::RFC822Name(email) => format!("email:{email}"),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => format!(
                "IP:{}",
                std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*bytes).ok()?)
            ),
            16 => format!(
                "IP:{}",
                std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*bytes).ok()?)
            ),
            _ => return None,
        },
        _ => return None,
    })
}

impl fmt::Display for CertificateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] issued by {}, valid {} to {}, pin-sha256={}",
            self.subject,
            self.names.join(", "),
            self.issuer,
            self.not_before,
            self.not_after,
            self.pin
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &b""[..],
            &[0x30, 0x82, 0xff, 0xff][..],
            &[0x30, 0x03, 0x02, 0x01, 0x00][..],
        ] {
            assert!(CertificateSummary::from_der(&CertificateDer::from(bytes.to_vec())).is_err());
        }
    }
}
