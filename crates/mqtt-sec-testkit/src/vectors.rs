//! Public Ed25519 test vectors, parsed once for every crate's tests, and the
//! acceptance rule the crates promise, written as a table of the vectors'
//! own edge-case flags so that each crate's verifier is checked against the
//! same statement.
//!
//! The files are copied unchanged (licenses beside them in `vectors/`):
//! RFC 8032 section 7.1, Wycheproof `ed25519_test.json` and C2SP CCTV
//! `ed25519vectors.json`.

use serde_json::Value;

const RFC8032: &str = include_str!("../vectors/rfc8032.json");
const WYCHEPROOF: &str = include_str!("../vectors/wycheproof-ed25519_test.json");
const CCTV: &str = include_str!("../vectors/cctv-ed25519vectors.json");

/// One Ed25519 verification case: a public key, a message, a signature and
/// whether mqtt-sec accepts it.
#[derive(Debug, Clone)]
pub struct Ed25519Case {
    /// Where it comes from, for failure messages (`"cctv #12"`, `"wycheproof tcId 3"`).
    pub name: String,
    /// The encoded public key A (not always a valid point).
    pub public_key: [u8; 32],
    /// The signed message.
    pub message: Vec<u8>,
    /// The signature (R || S); Wycheproof has some of other lengths.
    pub signature: Vec<u8>,
    /// The CCTV edge-case flags (`low_order_R`, ...); empty for other sources.
    pub flags: Vec<String>,
    /// Whether the mqtt-sec acceptance rule accepts it.
    pub accepted: bool,
}

/// The CCTV flags whose cases mqtt-sec refuses: a key that is, or has a
/// component, of small order, or is not canonically encoded (refused when
/// the key is loaded); an R of small order or not canonically encoded. What
/// remains is accepted, including `low_order_component_R` with
/// `low_order_residue`: the cofactored equation of RFC 8032 section 5.1.7,
/// the one batch verification can reproduce exactly.
pub const REFUSED_CCTV_FLAGS: [&str; 5] = [
    "low_order_A",
    "low_order_component_A",
    "non_canonical_A",
    "low_order_R",
    "non_canonical_R",
];

/// A known answer of RFC 8032: a private key, its public key, and the
/// (deterministic) signature of a message.
#[derive(Debug, Clone)]
pub struct Rfc8032Case {
    /// The 32-byte private key (seed).
    pub secret: [u8; 32],
    /// Its public key.
    pub public: [u8; 32],
    /// The message.
    pub message: Vec<u8>,
    /// The signature of the message.
    pub signature: [u8; 64],
}

/// RFC 8032 section 7.1 tests 1 to 3.
pub fn rfc8032_ed25519() -> Vec<Rfc8032Case> {
    let doc = parse(RFC8032);
    array(&doc["tests"])
        .iter()
        .map(|case| Rfc8032Case {
            secret: fixed(&case["secret"]),
            public: fixed(&case["public"]),
            message: hex(&case["message"]),
            signature: fixed(&case["signature"]),
        })
        .collect()
}

/// Every Wycheproof Ed25519 case (151: 88 valid, 63 invalid; the file has
/// no `acceptable` ones). mqtt-sec accepts exactly the valid ones.
pub fn wycheproof_ed25519() -> Vec<Ed25519Case> {
    let doc = parse(WYCHEPROOF);
    let mut cases = Vec::new();
    for group in array(&doc["testGroups"]) {
        let public_key = fixed(&group["publicKey"]["pk"]);
        for case in array(&group["tests"]) {
            cases.push(Ed25519Case {
                name: format!("wycheproof tcId {}: {}", case["tcId"], case["comment"]),
                public_key,
                message: hex(&case["msg"]),
                signature: hex(&case["sig"]),
                flags: Vec::new(),
                accepted: case["result"] == "valid",
            });
        }
    }
    cases
}

/// Every CCTV Ed25519 validation case (914), with the verdict of
/// [`REFUSED_CCTV_FLAGS`].
pub fn cctv_ed25519() -> Vec<Ed25519Case> {
    array(&parse(CCTV))
        .iter()
        .map(|case| {
            let flags: Vec<String> = case["flags"]
                .as_array()
                .map(|flags| flags.iter().map(|f| text(f).to_owned()).collect())
                .unwrap_or_default();
            let accepted = !flags
                .iter()
                .any(|flag| REFUSED_CCTV_FLAGS.contains(&flag.as_str()));
            Ed25519Case {
                name: format!("cctv #{} {flags:?}", case["number"]),
                public_key: fixed(&case["key"]),
                message: text(&case["msg"]).as_bytes().to_vec(),
                signature: hex(&case["sig"]),
                flags,
                accepted,
            }
        })
        .collect()
}

// The vectors are constants of this crate: a parse failure is a broken
// copy, reported by the panic of the test that loads them.
#[allow(clippy::expect_used, clippy::panic)]
fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("the vector file is JSON")
}

#[allow(clippy::panic)]
fn array(value: &Value) -> &[Value] {
    value
        .as_array()
        .map_or_else(|| panic!("not an array: {value}"), Vec::as_slice)
}

#[allow(clippy::panic)]
fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value}"))
}

#[allow(clippy::panic)]
fn hex(value: &Value) -> Vec<u8> {
    let s = text(value);
    (0..s.len() / 2)
        .map(|i| {
            u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap_or_else(|_| panic!("not hex: {s}"))
        })
        .collect()
}

#[allow(clippy::panic)]
fn fixed<const N: usize>(value: &Value) -> [u8; N] {
    hex(value)
        .try_into()
        .unwrap_or_else(|_| panic!("not {N} bytes: {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_hold_what_the_docs_say() {
        assert_eq!(rfc8032_ed25519().len(), 3);
        let wycheproof = wycheproof_ed25519();
        assert_eq!(wycheproof.len(), 151);
        assert_eq!(wycheproof.iter().filter(|c| c.accepted).count(), 88);
        let cctv = cctv_ed25519();
        assert_eq!(cctv.len(), 914);
        // The one case without flags and the seven with a residue from R's
        // torsion component, under a torsion-free key.
        assert_eq!(cctv.iter().filter(|c| c.accepted).count(), 8);
    }
}
