//! PKCS#11 URIs (RFC 7512): which module, token and object hold a key, and
//! where its PIN comes from.
//!
//! ```
//! use mqtt_sec_core::pkcs11::{Pkcs11Uri, PinSource};
//! let uri: Pkcs11Uri = "pkcs11:token=device;object=mqtt%20client;type=private\
//!     ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/pin"
//!     .parse()?;
//! assert_eq!(uri.token(), Some("device"));
//! assert_eq!(uri.object(), Some("mqtt client"));
//! assert_eq!(uri.pin_source(), Some(&PinSource::File("/run/secrets/pin".into())));
//! # Ok::<(), mqtt_sec_core::pkcs11::UriError>(())
//! ```
//!
//! Decisions, stricter than the RFC allows:
//! - an attribute given twice is refused (which one a module matches on is
//!   otherwise up to the reader, and two readers may disagree);
//! - an attribute this parser does not know, vendor ones included, is
//!   refused rather than ignored: ignoring a constraint matches more
//!   objects than the writer meant;
//! - `pin-value` is refused: a PIN inside a URI ends up in configuration
//!   files, logs and process listings. Use `pin-source=file:PATH`.
//! - `pin-source` is a `file:` URI or an absolute path; the RFC leaves the
//!   form open, and some tools run a command (`|prog`), which is refused.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Longest URI accepted, in bytes.
pub const MAX_URI_LEN: usize = 4096;

/// The kind of object a URI names (`type=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectType {
    /// `private`: a private key.
    Private,
    /// `public`: a public key.
    Public,
    /// `cert`: a certificate.
    Cert,
    /// `secret-key`: a symmetric key.
    SecretKey,
    /// `data`: a data object.
    Data,
}

impl ObjectType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Private => "private",
            Self::Public => "public",
            Self::Cert => "cert",
            Self::SecretKey => "secret-key",
            Self::Data => "data",
        }
    }
}

/// Where the PIN of the token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PinSource {
    /// A file holding the PIN (one line), as `Passphrase::from_file` reads it.
    File(PathBuf),
}

/// Why a PKCS#11 URI was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The text does not start with `pkcs11:`.
    #[error("not a PKCS#11 URI (it must start with `pkcs11:`)")]
    Scheme,
    /// Longer than [`MAX_URI_LEN`] bytes.
    #[error("the PKCS#11 URI is longer than {MAX_URI_LEN} bytes")]
    TooLong,
    /// An attribute without `=`, a bad percent escape or a character the
    /// RFC does not allow there.
    #[error("malformed PKCS#11 URI: {0}")]
    Malformed(String),
    /// An attribute given twice.
    #[error("the PKCS#11 URI gives `{0}` more than once")]
    Duplicate(String),
    /// An attribute outside those this crate matches on.
    #[error("the PKCS#11 URI attribute `{0}` is not supported")]
    Unsupported(String),
    /// `pin-value`: the PIN written into the URI.
    #[error(
        "the PKCS#11 URI holds its PIN (`pin-value`): put the PIN in a file and name it with `pin-source=file:PATH`"
    )]
    PinValue,
}

/// A parsed RFC 7512 URI. Every field is optional; an absent one matches
/// anything. [`fmt::Display`] writes it back in a form that parses to the
/// same value (with the PIN's source but never a PIN).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Pkcs11Uri {
    token: Option<String>,
    manufacturer: Option<String>,
    serial: Option<String>,
    model: Option<String>,
    slot_id: Option<u64>,
    object: Option<String>,
    id: Option<Vec<u8>>,
    object_type: Option<ObjectType>,
    module_path: Option<PathBuf>,
    pin_source: Option<PinSource>,
}

impl Pkcs11Uri {
    /// `token=`: the token's label.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
    /// `manufacturer=`: the token's manufacturer.
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }
    /// `serial=`: the token's serial number.
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_deref()
    }
    /// `model=`: the token's model.
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }
    /// `slot-id=`: the slot's number.
    pub fn slot_id(&self) -> Option<u64> {
        self.slot_id
    }
    /// `object=`: the object's label (`CKA_LABEL`).
    pub fn object(&self) -> Option<&str> {
        self.object.as_deref()
    }
    /// `id=`: the object's `CKA_ID` bytes.
    pub fn id(&self) -> Option<&[u8]> {
        self.id.as_deref()
    }
    /// `type=`: the object's kind.
    pub fn object_type(&self) -> Option<ObjectType> {
        self.object_type
    }
    /// `module-path=`: the PKCS#11 module (a shared library) to load.
    pub fn module_path(&self) -> Option<&std::path::Path> {
        self.module_path.as_deref()
    }
    /// `pin-source=`: where the PIN comes from.
    pub fn pin_source(&self) -> Option<&PinSource> {
        self.pin_source.as_ref()
    }

    /// The same URI naming a token only (no object, id or type): what
    /// `mqtt-sec pkcs11 list` prints for a token.
    #[must_use]
    pub fn token_only(&self) -> Self {
        Self {
            object: None,
            id: None,
            object_type: None,
            ..self.clone()
        }
    }

    /// A URI for the object `label` (and `id`) of type `object_type` in the
    /// token described by `self`.
    #[must_use]
    pub fn with_object(
        &self,
        label: Option<String>,
        id: Option<Vec<u8>>,
        object_type: ObjectType,
    ) -> Self {
        Self {
            object: label,
            id,
            object_type: Some(object_type),
            ..self.clone()
        }
    }

    /// A URI for the token with these attributes.
    #[must_use]
    pub fn for_token(
        token: impl Into<String>,
        manufacturer: Option<String>,
        serial: Option<String>,
        model: Option<String>,
    ) -> Self {
        Self {
            token: Some(token.into()),
            manufacturer,
            serial,
            model,
            ..Self::default()
        }
    }

    /// The URI with `module-path` set.
    #[must_use]
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module_path = Some(path.into());
        self
    }
}

impl FromStr for Pkcs11Uri {
    type Err = UriError;

    fn from_str(text: &str) -> Result<Self, UriError> {
        if text.len() > MAX_URI_LEN {
            return Err(UriError::TooLong);
        }
        let rest = text
            .get(..7)
            .filter(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
            .map(|_| &text[7..])
            .ok_or(UriError::Scheme)?;
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (rest, None),
        };
        let mut uri = Self::default();
        let mut seen = Vec::new();
        for (name, value) in attributes(path, ';', is_path_char)? {
            once(&mut seen, name)?;
            uri.set_path_attribute(name, value)?;
        }
        if let Some(query) = query {
            for (name, value) in attributes(query, '&', is_query_char)? {
                once(&mut seen, name)?;
                uri.set_query_attribute(name, value)?;
            }
        }
        Ok(uri)
    }
}

impl Pkcs11Uri {
    fn set_path_attribute(&mut self, name: &str, value: Vec<u8>) -> Result<(), UriError> {
        match name {
            "token" => self.token = Some(utf8(name, value)?),
            "manufacturer" => self.manufacturer = Some(utf8(name, value)?),
            "serial" => self.serial = Some(utf8(name, value)?),
            "model" => self.model = Some(utf8(name, value)?),
            "object" => self.object = Some(utf8(name, value)?),
            "id" => self.id = Some(value),
            "slot-id" => {
                let digits = utf8(name, value)?;
                let valid = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
                self.slot_id = Some(
                    digits
                        .parse()
                        .ok()
                        .filter(|_| valid)
                        .ok_or_else(|| UriError::Malformed(format!("slot-id `{digits}`")))?,
                );
            }
            "type" => {
                let kind = utf8(name, value)?;
                self.object_type = Some(match kind.as_str() {
                    "private" => ObjectType::Private,
                    "public" => ObjectType::Public,
                    "cert" => ObjectType::Cert,
                    "secret-key" => ObjectType::SecretKey,
                    "data" => ObjectType::Data,
                    _ => return Err(UriError::Malformed(format!("type `{kind}`"))),
                });
            }
            other => return Err(UriError::Unsupported(other.to_owned())),
        }
        Ok(())
    }

    fn set_query_attribute(&mut self, name: &str, value: Vec<u8>) -> Result<(), UriError> {
        match name {
            "module-path" => {
                let path = PathBuf::from(utf8(name, value)?);
                if !path.is_absolute() {
                    return Err(UriError::Malformed(
                        "module-path must be an absolute path".into(),
                    ));
                }
                self.module_path = Some(path);
            }
            "pin-source" => {
                let source = utf8(name, value)?;
                let path = source.strip_prefix("file:").unwrap_or(&source);
                let path = PathBuf::from(path);
                if !path.is_absolute() {
                    return Err(UriError::Malformed(
                        "pin-source must be `file:` and an absolute path".into(),
                    ));
                }
                self.pin_source = Some(PinSource::File(path));
            }
            "pin-value" => return Err(UriError::PinValue),
            other => return Err(UriError::Unsupported(other.to_owned())),
        }
        Ok(())
    }
}

/// Refuses a second occurrence of `name`.
fn once<'a>(seen: &mut Vec<&'a str>, name: &'a str) -> Result<(), UriError> {
    if seen.contains(&name) {
        return Err(UriError::Duplicate(name.to_owned()));
    }
    seen.push(name);
    Ok(())
}

fn utf8(name: &str, value: Vec<u8>) -> Result<String, UriError> {
    String::from_utf8(value).map_err(|_| UriError::Malformed(format!("`{name}` is not UTF-8")))
}

/// `name=value` pairs separated by `separator`, values percent-decoded.
fn attributes(
    text: &str,
    separator: char,
    allowed: fn(u8) -> bool,
) -> Result<Vec<(&str, Vec<u8>)>, UriError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(separator)
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| UriError::Malformed(format!("`{pair}` has no `=`")))?;
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                return Err(UriError::Malformed(format!("attribute name `{name}`")));
            }
            Ok((name, percent_decode(value, allowed)?))
        })
        .collect()
}

fn percent_decode(value: &str, allowed: fn(u8) -> bool) -> Result<Vec<u8>, UriError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| UriError::Malformed("a bad percent escape".into()))?;
            out.push(hex);
            i += 3;
        } else if allowed(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(UriError::Malformed(format!(
                "the character {:?} must be percent-encoded",
                char::from(b)
            )));
        }
    }
    Ok(out)
}

/// RFC 3986 unreserved characters.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `pk11-pchar`: unreserved, `pk11-path-res` (`:[]@!$'()*+,=`) and `&`.
fn is_path_char(b: u8) -> bool {
    is_unreserved(b) || b":[]@!$'()*+,=&".contains(&b)
}

/// `pk11-qchar`: unreserved, `pk11-query-res` (`:[]@!$'()*+,=/?|;`).
fn is_query_char(b: u8) -> bool {
    is_unreserved(b) || b":[]@!$'()*+,=/?|;".contains(&b)
}

/// Percent-encodes every byte outside `allowed`, and `%`.
fn encode(bytes: &[u8], allowed: fn(u8) -> bool, out: &mut String) {
    for &b in bytes {
        if allowed(b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `=` is allowed in values by the RFC but written encoded here, so
        // the text reads unambiguously.
        let path_value = |b: u8| is_path_char(b) && b != b'=';
        let query_value = |b: u8| is_query_char(b) && !matches!(b, b'=' | b'?' | b';');
        let mut path = Vec::new();
        let mut push = |name: &str, value: &[u8]| {
            let mut text = format!("{name}=");
            encode(value, path_value, &mut text);
            path.push(text);
        };
        let slot = self.slot_id.map(|id| id.to_string());
        for (name, value) in [
            ("token", self.token.as_deref().map(str::as_bytes)),
            (
                "manufacturer",
                self.manufacturer.as_deref().map(str::as_bytes),
            ),
            ("serial", self.serial.as_deref().map(str::as_bytes)),
            ("model", self.model.as_deref().map(str::as_bytes)),
            ("slot-id", slot.as_deref().map(str::as_bytes)),
            ("object", self.object.as_deref().map(str::as_bytes)),
            ("id", self.id.as_deref()),
            ("type", self.object_type.map(|t| t.as_str().as_bytes())),
        ] {
            if let Some(value) = value {
                push(name, value);
            }
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        let mut query = Vec::new();
        let module = self.module_path.as_ref().map(|p| p.to_string_lossy());
        let pin = self
            .pin_source
            .as_ref()
            .map(|PinSource::File(path)| format!("file:{}", path.to_string_lossy()));
        for (name, value) in [
            ("module-path", module.as_deref()),
            ("pin-source", pin.as_deref()),
        ] {
            if let Some(value) = value {
                let mut text = format!("{name}=");
                encode(value.as_bytes(), query_value, &mut text);
                query.push(text);
            }
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pkcs11Uri, UriError> {
        text.parse()
    }

    #[test]
    fn rfc_7512_examples_parse() {
        // Section 3 of the RFC.
        let uri = parse("pkcs11:object=my-pubkey;type=public").unwrap();
        assert_eq!(uri.object(), Some("my-pubkey"));
        assert_eq!(uri.object_type(), Some(ObjectType::Public));
        let uri = parse(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;manufacturer=Snake%20Oil,%20Inc.;model=1.0;object=my-certificate;type=cert;id=%69%95%3E%5C%F4%BD%EC%91",
        )
        .unwrap();
        assert_eq!(uri.token(), Some("The Software PKCS#11 Softtoken"));
        assert_eq!(uri.manufacturer(), Some("Snake Oil, Inc."));
        assert_eq!(uri.model(), Some("1.0"));
        assert_eq!(
            uri.id(),
            Some(&[0x69, 0x95, 0x3e, 0x5c, 0xf4, 0xbd, 0xec, 0x91][..])
        );
        assert_eq!(parse("pkcs11:").unwrap(), Pkcs11Uri::default());
        let uri = parse("pkcs11:slot-id=0?module-path=/mnt/libmypkcs11.so.1").unwrap();
        assert_eq!(uri.slot_id(), Some(0));
        assert_eq!(
            uri.module_path(),
            Some(std::path::Path::new("/mnt/libmypkcs11.so.1"))
        );
        let uri = parse("pkcs11:token=A;object=B?pin-source=file:/etc/token_pin").unwrap();
        assert_eq!(
            uri.pin_source(),
            Some(&PinSource::File("/etc/token_pin".into()))
        );
        // The scheme is case-insensitive.
        assert!(parse("PKCS11:token=A").is_ok());
        // Every object type of section 2.3, and back.
        for (text, kind) in [
            ("private", ObjectType::Private),
            ("public", ObjectType::Public),
            ("cert", ObjectType::Cert),
            ("secret-key", ObjectType::SecretKey),
            ("data", ObjectType::Data),
        ] {
            let uri = parse(&format!("pkcs11:object=o;type={text}")).unwrap();
            assert_eq!(uri.object_type(), Some(kind), "{text}");
            assert_eq!(uri.to_string(), format!("pkcs11:object=o;type={text}"));
        }
    }

    #[test]
    fn a_token_uri_keeps_what_names_the_token() {
        let uri = Pkcs11Uri::for_token(
            "dev",
            Some("Maker".into()),
            Some("0042".into()),
            Some("M1".into()),
        );
        assert_eq!(uri.token(), Some("dev"));
        assert_eq!(uri.manufacturer(), Some("Maker"));
        assert_eq!(uri.serial(), Some("0042"));
        assert_eq!(uri.model(), Some("M1"));
        assert_eq!(uri.object(), None);
    }

    #[test]
    fn what_is_refused() {
        assert_eq!(parse("pkcs12:token=a"), Err(UriError::Scheme));
        assert_eq!(parse("pkcs1"), Err(UriError::Scheme));
        assert_eq!(parse(""), Err(UriError::Scheme));
        assert_eq!(
            parse("pkcs11:token=a;token=b"),
            Err(UriError::Duplicate("token".into()))
        );
        assert_eq!(
            parse("pkcs11:token=a?module-path=/a.so&module-path=/b.so"),
            Err(UriError::Duplicate("module-path".into()))
        );
        assert_eq!(
            parse("pkcs11:token=a?pin-value=1234"),
            Err(UriError::PinValue)
        );
        assert_eq!(
            parse("pkcs11:x-vendor=1"),
            Err(UriError::Unsupported("x-vendor".into()))
        );
        assert_eq!(
            parse("pkcs11:token=a?module-name=softhsm2"),
            Err(UriError::Unsupported("module-name".into()))
        );
        for bad in [
            "pkcs11:token",
            "pkcs11:=a",
            "pkcs11:Token=a",
            "pkcs11:token=a%2",
            "pkcs11:token=a%zz",
            "pkcs11:token=a b",
            "pkcs11:token=a/b",
            "pkcs11:token=a?b",
            "pkcs11:slot-id=x",
            "pkcs11:slot-id=",
            "pkcs11:slot-id=+1",
            "pkcs11:slot-id=99999999999999999999999",
            "pkcs11:type=key",
            "pkcs11:object=%FF",
            "pkcs11:token=a;",
            "pkcs11:token=a?module-path=lib.so",
            "pkcs11:token=a?pin-source=pin.txt",
            "pkcs11:token=a?pin-source=|/bin/cat%20/pin",
        ] {
            assert!(
                matches!(parse(bad), Err(UriError::Malformed(_))),
                "{bad}: {:?}",
                parse(bad)
            );
        }
        let long = format!("pkcs11:object={}", "a".repeat(MAX_URI_LEN - 14));
        assert_eq!(long.len(), MAX_URI_LEN);
        assert!(parse(&long).is_ok());
        assert_eq!(parse(&format!("{long}a")), Err(UriError::TooLong));
    }

    #[test]
    fn display_writes_what_parses_back() {
        let uri = Pkcs11Uri::for_token(
            "my token; =?&%",
            Some("SoftHSM project".into()),
            Some("0123".into()),
            None,
        )
        .with_object(
            Some("key/1".into()),
            Some(vec![0, 0xff, b'a']),
            ObjectType::Private,
        )
        .module("/usr/lib/softhsm/libsofthsm2.so");
        let text = uri.to_string();
        assert_eq!(
            text,
            "pkcs11:token=my%20token%3B%20%3D%3F&%25;manufacturer=SoftHSM%20project;serial=0123;object=key%2F1;id=%00%FFa;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so"
        );
        assert_eq!(parse(&text).unwrap(), uri);
        assert_eq!(
            uri.token_only().to_string(),
            "pkcs11:token=my%20token%3B%20%3D%3F&%25;manufacturer=SoftHSM%20project;serial=0123?module-path=/usr/lib/softhsm/libsofthsm2.so"
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn text() -> impl Strategy<Value = Option<String>> {
            proptest::option::of(".{0,12}")
        }

        proptest! {
            #[test]
            fn display_round_trips(
                token in text(), manufacturer in text(), serial in text(), model in text(),
                object in text(), id in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..8)),
                slot in proptest::option::of(any::<u64>()),
                module in proptest::option::of("/[a-z0-9 ./%&?=;]{1,20}"),
                pin in proptest::option::of("/[a-z0-9 ./%&?=;]{1,20}"),
            ) {
                let uri = Pkcs11Uri {
                    token, manufacturer, serial, model, slot_id: slot, object, id,
                    object_type: Some(ObjectType::Private),
                    module_path: module.map(PathBuf::from),
                    pin_source: pin.map(|p| PinSource::File(p.into())),
                };
                prop_assert_eq!(parse(&uri.to_string()), Ok(uri));
            }

            #[test]
            fn parsing_never_panics(text in "pkcs11:[ -~]{0,64}") {
                let _ = parse(&text);
            }
        }
    }
}
