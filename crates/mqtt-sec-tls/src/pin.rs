//! SPKI pins (RFC 7469 `pin-sha256`) and pin sets with backup pins and an
//! expiry.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::digest::{SHA256, digest};
use rustls_pki_types::CertificateDer;

/// Why a pin or pin set could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// The text is neither base64 nor hex of 32 bytes.
    #[error(
        "{0:?} is not a SHA-256 SPKI pin: give the base64 of 32 bytes (`pin-sha256=\"...\"` or bare, 44 characters) or 64 hex digits"
    )]
    InvalidFormat(String),
    /// The certificate could not be parsed to find its public key.
    #[error("cannot read the public key of this certificate: {0}")]
    Certificate(String),
    /// A pin set without any pin.
    #[error("a pin set needs at least one pin")]
    Empty,
    /// A pin set without a backup pin: losing or rotating the key would
    /// lock every pinned client out.
    #[error(
        "a pin set needs a backup pin (the SPKI of a key kept offline for the next rotation), or an explicit `allow_without_backup()`"
    )]
    NoBackup,
    /// The same pin twice (a backup equal to a primary, say): the set would
    /// count a pin it does not have, and a "backup" that is the key in use
    /// is no safety net for rotating it.
    #[error(
        "pin {0} appears twice in the set: a backup pin must be a different key, kept offline for the next rotation"
    )]
    Duplicate(Pin),
}

/// The SHA-256 of a DER SubjectPublicKeyInfo: what RFC 7469 calls
/// `pin-sha256`. Its text form is base64, as
/// `openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`
/// prints it.
///
/// ```
/// use mqtt_sec_tls::Pin;
/// let pin: Pin = "pin-sha256=\"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\"".parse()?;
/// assert_eq!(pin.to_string(), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
/// assert_eq!(pin, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse()?);
/// # Ok::<(), mqtt_sec_tls::PinError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pin([u8; 32]);

impl Pin {
    /// The pin of a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest(&SHA256, spki).as_ref());
        Self(bytes)
    }

    /// The pin of a certificate's public key.
    ///
    /// # Errors
    /// [`PinError::Certificate`] when the DER is not an X.509 certificate.
    pub fn from_certificate(cert: &CertificateDer<'_>) -> Result<Self, PinError> {
        let parsed = webpki::EndEntityCert::try_from(cert)
            .map_err(|e| PinError::Certificate(e.to_string()))?;
        Ok(Self::from_spki_der(
            parsed.subject_public_key_info().as_ref(),
        ))
    }

    /// The pins of every certificate in a PEM file's text, in order.
    ///
    /// # Errors
    /// [`PinError::Certificate`] for a PEM block that does not parse, or
    /// text with no certificate.
    pub fn from_pem_certificates(pem: &[u8]) -> Result<Vec<Self>, PinError> {
        use rustls_pki_types::pem::PemObject;
        let pins = CertificateDer::pem_slice_iter(pem)
            .map(|cert| {
                let cert = cert.map_err(|e| PinError::Certificate(e.to_string()))?;
                Self::from_certificate(&cert)
            })
            .collect::<Result<Vec<_>, _>>()?;
        if pins.is_empty() {
            return Err(PinError::Certificate(
                "no CERTIFICATE block in the PEM text".into(),
            ));
        }
        Ok(pins)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl FromStr for Pin {
    type Err = PinError;

    /// Accepts `pin-sha256="<base64>"`, `sha256/<base64>`, bare base64, or
    /// 64 hex digits (colons allowed, as openssl prints fingerprints).
    fn from_str(text: &str) -> Result<Self, PinError> {
        let invalid = || PinError::InvalidFormat(text.chars().take(100).collect());
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix("pin-sha256=")
            .map(|b| b.trim_matches('"'))
            .or_else(|| trimmed.strip_prefix("sha256/"))
            .unwrap_or(trimmed);
        let hex: String = body.chars().filter(|c| *c != ':').collect();
        let bytes = if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| invalid())?
        } else {
            STANDARD.decode(body).map_err(|_| invalid())?
        };
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| invalid())?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pin({self})")
    }
}

/// Which certificates a pin may match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PinScope {
    /// The server's own certificate only (the default).
    #[default]
    Leaf,
    /// Any certificate of a validated path: the leaf, the intermediates the
    /// path uses, and the trust anchor. Certificates the server sends but
    /// the path does not use never count: anyone can append a public CA
    /// certificate to their chain.
    VerifiedPath,
}

/// Primary and backup pins, with an optional expiry.
///
/// ```
/// use mqtt_sec_tls::{Pin, PinSet};
/// # let current: Pin = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=".parse()?;
/// # let next: Pin = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b856".parse()?;
/// let pins = PinSet::builder([current]).backup([next]).build()?;
/// assert!(pins.contains(&next));
/// assert!(PinSet::builder([current]).build().is_err(), "a backup pin is required");
/// # Ok::<(), mqtt_sec_tls::PinError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinSet {
    primary: Vec<Pin>,
    backup: Vec<Pin>,
    expires: Option<SystemTime>,
    scope: PinScope,
}

/// Builder for a [`PinSet`].
#[derive(Debug, Clone)]
pub struct PinSetBuilder {
    set: PinSet,
    allow_without_backup: bool,
}

impl PinSet {
    /// Starts a set with the pins in use now.
    pub fn builder(primary: impl IntoIterator<Item = Pin>) -> PinSetBuilder {
        PinSetBuilder {
            set: PinSet {
                primary: primary.into_iter().collect(),
                backup: Vec::new(),
                expires: None,
                scope: PinScope::Leaf,
            },
            allow_without_backup: false,
        }
    }

    /// Whether `pin` is a primary or backup pin.
    pub fn contains(&self, pin: &Pin) -> bool {
        self.primary.contains(pin) || self.backup.contains(pin)
    }

    /// Every pin, primary first.
    pub fn pins(&self) -> impl Iterator<Item = &Pin> {
        self.primary.iter().chain(&self.backup)
    }

    /// Which certificates pins may match.
    pub fn scope(&self) -> PinScope {
        self.scope
    }

    /// When the set stops being enforced, if ever.
    pub fn expires(&self) -> Option<SystemTime> {
        self.expires
    }

    /// Whether the set has expired at `now`: from then on only normal CA
    /// validation applies (with a warning), so that devices nobody updates
    /// are not locked out forever by a rotated key.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

impl PinSetBuilder {
    /// Adds backup pins: keys not in use yet, for the next rotation.
    pub fn backup(mut self, pins: impl IntoIterator<Item = Pin>) -> Self {
        self.set.backup.extend(pins);
        self
    }

    /// Stops enforcing the pins at `at` (see [`PinSet::is_expired`]).
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.set.expires = Some(at);
        self
    }

    /// Sets which certificates pins may match (default [`PinScope::Leaf`]).
    pub fn scope(mut self, scope: PinScope) -> Self {
        self.set.scope = scope;
        self
    }

    /// Accepts a set without backup pins. Rotating the pinned key then
    /// requires updating every client first.
    pub fn allow_without_backup(mut self) -> Self {
        self.allow_without_backup = true;
        self
    }

    /// The set.
    ///
    /// # Errors
    /// [`PinError::Empty`] without primary pins, [`PinError::NoBackup`]
    /// without backup pins (unless allowed), [`PinError::Duplicate`] for a
    /// pin given twice.
    pub fn build(self) -> Result<PinSet, PinError> {
        if self.set.primary.is_empty() {
            return Err(PinError::Empty);
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(pin) = self.set.pins().find(|pin| !seen.insert(**pin)) {
            return Err(PinError::Duplicate(*pin));
        }
        if self.set.backup.is_empty() && !self.allow_without_backup {
            return Err(PinError::NoBackup);
        }
        Ok(self.set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_form_and_rejects_the_rest() {
        let base64 = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let expected = Pin::from_spki_der(b"");
        for text in [
            base64.to_owned(),
            format!("pin-sha256=\"{base64}\""),
            format!("sha256/{base64}"),
            hex.to_owned(),
            hex.to_uppercase(),
            hex.as_bytes()
                .chunks(2)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(":"),
        ] {
            assert_eq!(text.parse::<Pin>(), Ok(expected), "{text}");
        }
        assert_eq!(expected.to_hex(), hex);
        for bad in [
            "",
            "abc",
            &base64[..40],
            &hex[..62],
            "pin-sha1=\"AAAA\"",
            &format!("{hex}00"),
            "AAAA",
        ] {
            assert!(
                matches!(bad.parse::<Pin>(), Err(PinError::InvalidFormat(_))),
                "{bad:?}"
            );
        }
        assert!(
            Pin::from_certificate(&CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00]))
                .is_err()
        );
        assert!(matches!(
            Pin::from_pem_certificates(b"no pem here"),
            Err(PinError::Certificate(_))
        ));
    }

    #[test]
    fn pin_sets_require_pins_and_a_backup_and_expire() {
        let a = Pin::from_spki_der(b"a");
        let b = Pin::from_spki_der(b"b");
        assert_eq!(
            PinSet::builder([]).backup([b]).build(),
            Err(PinError::Empty)
        );
        assert_eq!(PinSet::builder([a]).build(), Err(PinError::NoBackup));
        assert!(PinSet::builder([a]).allow_without_backup().build().is_ok());
        let now = SystemTime::now();
        let set = PinSet::builder([a])
            .backup([b])
            .expires_at(now)
            .build()
            .unwrap();
        assert!(set.is_expired(now) && !set.is_expired(now - std::time::Duration::from_secs(1)));
        assert_eq!(set.pins().count(), 2);
    }

    /// The review: a backup equal to the primary was accepted and counted
    /// as a second pin, silently defeating the backup requirement.
    #[test]
    fn a_backup_pin_equal_to_a_primary_is_refused() {
        let a = Pin::from_spki_der(b"a");
        let b = Pin::from_spki_der(b"b");
        assert_eq!(
            PinSet::builder([a]).backup([a]).build(),
            Err(PinError::Duplicate(a))
        );
        assert_eq!(
            PinSet::builder([a, a]).backup([b]).build(),
            Err(PinError::Duplicate(a))
        );
        assert_eq!(
            PinSet::builder([a]).backup([b, b]).build(),
            Err(PinError::Duplicate(b))
        );
        assert_eq!(
            PinSet::builder([a, a]).allow_without_backup().build(),
            Err(PinError::Duplicate(a))
        );
        assert!(PinSet::builder([a]).backup([b]).build().is_ok());
    }
}
