//! Client certificate identities: the names a broker can map to an MQTT user.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::digest::{SHA256, digest};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::error::{Cause, IdentityError};

/// Largest certificate accepted, in bytes (DER or PEM).
pub(crate) const MAX_CERTIFICATE_LEN: usize = 64 * 1024;

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectAltName {
    /// `DNS:` name.
    Dns(String),
    /// `IP:` address.
    Ip(IpAddr),
    /// `email:` (RFC 822 name).
    Email(String),
    /// `URI:`, SPIFFE IDs included.
    Uri(String),
}

/// Which certificate name becomes the MQTT user name, as mosquitto's listener options do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsernameFrom {
    /// `use_identity_as_username true`: the subject's (first) common name.
    CommonName,
    /// `use_subject_as_username true`: the whole subject DN in RFC 2253 form.
    SubjectDn,
    /// The first `DNS:` subject alternative name.
    DnsSan,
    /// The first `URI:` subject alternative name.
    UriSan,
    /// The first `email:` subject alternative name.
    EmailSan,
    /// The SPIFFE ID (the first `spiffe://` URI SAN).
    SpiffeId,
    /// The SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256`
    /// prints it (`AB:CD:...`): names one certificate, not a subject.
    FingerprintSha256,
}

/// The identity in a client certificate. All public data.
///
/// ```
/// use mqtt_sec_auth::identity::{CertificateIdentity, UsernameFrom};
/// use mqtt_sec_testkit::{CertSpec, TestPki};
/// let mut pki = TestPki::new()?;
/// let cert = pki.issue(&CertSpec::client("sensor-17"))?;
/// let id = CertificateIdentity::from_der(cert.cert_der())?;
/// assert_eq!(id.common_name(), Some("sensor-17"));
/// assert_eq!(id.mqtt_username(UsernameFrom::CommonName).as_deref(), Some("sensor-17"));
/// assert!(id.subject_dn().starts_with("CN=sensor-17"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateIdentity {
    subject_dn: String,
    common_name: Option<String>,
    sans: Vec<SubjectAltName>,
    fingerprint: [u8; 32],
    serial: Vec<u8>,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl CertificateIdentity {
    /// Reads a DER certificate.
    ///
    /// # Errors
    /// [`IdentityError::TooLarge`] over 64 KiB; [`IdentityError::Certificate`]
    /// when it does not parse, has trailing bytes or an invalid SAN extension.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        if der.len() > MAX_CERTIFICATE_LEN {
            return Err(IdentityError::TooLarge {
                max: MAX_CERTIFICATE_LEN,
            });
        }
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::Certificate(Cause::new(e)))?;
        if !rest.is_empty() {
            return Err(IdentityError::TrailingBytes);
        }
        let sans = match cert.subject_alternative_name() {
            Ok(Some(ext)) => ext.value.general_names.iter().filter_map(san).collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(IdentityError::Certificate(Cause::new(e))),
        };
        // Times before 1970 exist (a notBefore of 1950 is valid X.509); a
        // platform whose clock cannot go that far gets the epoch instead
        // of a panic.
        let time = |t: &x509_parser::time::ASN1Time| {
            let secs = t.timestamp();
            match u64::try_from(secs) {
                Ok(s) => UNIX_EPOCH
                    .checked_add(Duration::from_secs(s))
                    .unwrap_or(UNIX_EPOCH),
                Err(_) => UNIX_EPOCH
                    .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                    .unwrap_or(UNIX_EPOCH),
            }
        };
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(digest(&SHA256, der).as_ref());
        Ok(Self {
            subject_dn: rfc2253(cert.subject()),
            common_name: first_common_name(cert.subject()),
            sans,
            fingerprint,
            serial: cert.raw_serial().to_vec(),
            not_before: time(&cert.validity().not_before),
            not_after: time(&cert.validity().not_after),
        })
    }

    /// The serial number: the big-endian bytes of its DER INTEGER, with the
    /// leading zero DER adds to keep it positive (`openssl x509 -serial`
    /// prints it without; `mqtt-sec revoke serial` and the revocation list
    /// drop it too).
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Reads the first `CERTIFICATE` block of a PEM text.
    ///
    /// # Errors
    /// [`IdentityError::Pem`] without such a block; otherwise as [`CertificateIdentity::from_der`].
    pub fn from_pem(pem_text: &str) -> Result<Self, IdentityError> {
        if pem_text.len() > MAX_CERTIFICATE_LEN * 2 {
            return Err(IdentityError::TooLarge {
                max: MAX_CERTIFICATE_LEN * 2,
            });
        }
        let block = pem::parse_many(pem_text)
            .map_err(|_| IdentityError::Pem)?
            .into_iter()
            .find(|p| p.tag() == "CERTIFICATE")
            .ok_or(IdentityError::Pem)?;
        Self::from_der(block.contents())
    }

    /// The subject DN as RFC 2253 text, exactly as `openssl x509 -noout
    /// -subject -nameopt RFC2253` and mosquitto's `use_subject_as_username`
    /// write it: most specific RDN first, no spaces, specials and non-ASCII bytes escaped.
    pub fn subject_dn(&self) -> &str {
        &self.subject_dn
    }

    /// The first common name of the subject, as mosquitto's
    /// `use_identity_as_username` takes it: the raw bytes of the value
    /// whatever its string type, refused (`None`) when they hold a NUL (a
    /// BMPString always does) or, since an MQTT user name is UTF-8, when they
    /// are not UTF-8 (mosquitto would pass those bytes on).
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The subject alternative names.
    pub fn sans(&self) -> &[SubjectAltName] {
        &self.sans
    }

    /// The SPIFFE ID (the first `spiffe://` URI SAN).
    pub fn spiffe_id(&self) -> Option<&str> {
        self.sans.iter().find_map(|s| match s {
            SubjectAltName::Uri(uri) if uri.starts_with("spiffe://") => Some(uri.as_str()),
            _ => None,
        })
    }

    /// SHA-256 over the DER certificate.
    pub fn fingerprint_sha256(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// The fingerprint as `AB:CD:...`, as `openssl x509 -fingerprint -sha256` prints it.
    pub fn fingerprint_hex(&self) -> String {
        let mut out = String::with_capacity(95);
        for (i, b) in self.fingerprint.iter().enumerate() {
            if i > 0 {
                out.push(':');
            }
            let _ = write!(out, "{b:02X}");
        }
        out
    }

    /// Start of validity.
    pub fn not_before(&self) -> SystemTime {
        self.not_before
    }

    /// End of validity.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Whether `now` is inside the validity window.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Whether the certificate expires (or has expired) within `window` of `now`:
    /// time to rotate it.
    pub fn expires_within(&self, window: Duration, now: SystemTime) -> bool {
        now.checked_add(window)
            .is_none_or(|deadline| self.not_after <= deadline)
    }

    /// The MQTT user name the certificate gives under `from`: for
    /// [`UsernameFrom::CommonName`] and [`UsernameFrom::SubjectDn`] the one
    /// mosquitto's `use_identity_as_username` and `use_subject_as_username`
    /// assign. `None` when the certificate has no such name (no usable
    /// common name, no SAN of that type).
    pub fn mqtt_username(&self, from: UsernameFrom) -> Option<String> {
        let first_san =
            |pick: fn(&SubjectAltName) -> Option<&String>| self.sans.iter().find_map(pick).cloned();
        match from {
            UsernameFrom::CommonName => self.common_name.clone(),
            UsernameFrom::SubjectDn => Some(self.subject_dn.clone()),
            UsernameFrom::DnsSan => first_san(|san| match san {
                SubjectAltName::Dns(name) => Some(name),
                _ => None,
            }),
            UsernameFrom::UriSan => first_san(|san| match san {
                SubjectAltName::Uri(uri) => Some(uri),
                _ => None,
            }),
            UsernameFrom::EmailSan => first_san(|san| match san {
                SubjectAltName::Email(email) => Some(email),
                _ => None,
            }),
            UsernameFrom::SpiffeId => self.spiffe_id().map(str::to_owned),
            UsernameFrom::FingerprintSha256 => Some(self.fingerprint_hex()),
        }
    }
}

fn san(name: &GeneralName<'_>) -> Option<SubjectAltName> {
    Some(match name {
        GeneralName::DNSName(dns) => SubjectAltName::Dns((*dns).to_owned()),
        GeneralName::RFC822Name(email) => SubjectAltName::Email((*email).to_owned()),
        GeneralName::URI(uri) => SubjectAltName::Uri((*uri).to_owned()),
        GeneralName::IPAddress(bytes) => SubjectAltName::Ip(match bytes.len() {
            4 => IpAddr::from(<[u8; 4]>::try_from(*bytes).ok()?),
            16 => IpAddr::from(<[u8; 16]>::try_from(*bytes).ok()?),
            _ => return None,
        }),
        _ => return None,
    })
}

/// The first CN in encoding order (as OpenSSL's `X509_NAME_get_index_by_NID`
/// finds it), taken as mosquitto takes it: the value's raw bytes
/// (`ASN1_STRING_get0_data`, no conversion from BMP or T61), refused when
/// they hold a NUL (mosquitto compares `strlen` with the length), and here
/// also when they are not UTF-8.
fn first_common_name(name: &X509Name<'_>) -> Option<String> {
    let cn = name.iter_common_name().next()?;
    let raw = cn.attr_value().data;
    if raw.contains(&0) {
        return None;
    }
    std::str::from_utf8(raw).ok().map(str::to_owned)
}

/// OpenSSL's short names for the attribute types it knows (`-nameopt sname`).
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.4" => "SN",
        "2.5.4.5" => "serialNumber",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "street",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.12" => "title",
        "2.5.4.17" => "postalCode",
        "2.5.4.42" => "GN",
        "2.5.4.43" => "initials",
        "2.5.4.44" => "generationQualifier",
        "2.5.4.46" => "dnQualifier",
        "2.5.4.65" => "pseudonym",
        "2.5.4.97" => "organizationIdentifier",
        "0.9.2342.19200300.100.1.1" => "UID",
        "0.9.2342.19200300.100.1.25" => "DC",
        "1.2.840.113549.1.9.1" => "emailAddress",
        _ => return None,
    })
}

/// A directory string decoded to text, for the string types OpenSSL converts.
fn decode_string(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    let data = attr.attr_value().data;
    match attr.attr_value().tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T61 read as Latin-1, as OpenSSL does.
        Tag::T61String => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString if data.len() % 2 == 0 => {
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString if data.len() % 4 == 0 => data
            .chunks_exact(4)
            .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => None,
    }
}

/// The RFC 2253 form OpenSSL prints with `XN_FLAG_RFC2253`: OpenSSL walks
/// the name's entries from last to first (`XN_FLAG_DN_REV`), so both the
/// RDNs and the values inside a multi-valued RDN come out in reverse
/// encoding order (`/O=Acme/CN=dev+UID=u17` prints `UID=u17+CN=dev,O=Acme`).
fn rfc2253(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            let mut values: Vec<String> = rdn.iter().map(attribute).collect();
            values.reverse();
            values.join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

fn attribute(attr: &AttributeTypeAndValue<'_>) -> String {
    let oid = attr.attr_type().to_id_string();
    // Attribute types OpenSSL has no name for, and values that are not
    // strings it converts, are dumped as `#` and the hex of their DER.
    match (short_name(&oid), decode_string(attr)) {
        (Some(key), Some(text)) => format!("{key}={}", escape(&text)),
        (Some(key), None) => format!("{key}=#{}", hex_der(attr)),
        (None, _) => format!("{oid}=#{}", hex_der(attr)),
    }
}

/// RFC 2253 escaping as OpenSSL's ESC_2253 | ESC_CTRL | ESC_MSB: specials
/// with a backslash, control and non-ASCII bytes (of the UTF-8) as `\XX`.
fn escape(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for (i, &b) in bytes.iter().enumerate() {
        let first = i == 0;
        let last = i + 1 == bytes.len();
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if first => out.push_str("\\#"),
            b' ' if first || last => out.push_str("\\ "),
            0x00..=0x1f | 0x7f..=0xff => {
                let _ = write!(out, "\\{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
    out
}

fn hex_der(attr: &AttributeTypeAndValue<'_>) -> String {
    let value = attr.attr_value();
    let data = value.data;
    // One tag byte: universal class, low tag numbers (the directory string types).
    let tag = (value.tag().0 & 0x1f) as u8
        | if value.header.is_constructed() {
            0x20
        } else {
            0
        };
    let mut der = vec![tag];
    match data.len() {
        n @ 0..=127 => der.push(n as u8),
        n => {
            let len = (n as u64).to_be_bytes();
            let skip = len.iter().take_while(|&&b| b == 0).count();
            der.push(0x80 | (8 - skip) as u8);
            der.extend_from_slice(&len[skip..]);
        }
    }
    der.extend_from_slice(data);
    der.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02X}");
        s
    })
}
