//! Private keys encrypted and decrypted by openssl, the independent peer
//! the encrypted-key readers and writers of the crates are tested against.

use std::path::Path;

use crate::{Error, Result, tool};

/// How openssl encrypts a PKCS#8 key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpensslEncryption {
    /// What `openssl genpkey -aes256` writes: AES-256-CBC with
    /// PBKDF2-HMAC-SHA256 at openssl's default iteration count (2048 in
    /// openssl 3.0), too weak for the crates without `danger`.
    Default,
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc -v2prf hmacWithSHA256 -iter N`.
    Pbkdf2Sha256 {
        /// The iteration count.
        iterations: u32,
    },
    /// `-v2prf hmacWithSHA1` (refused by the crates).
    Pbkdf2Sha1,
    /// `openssl pkcs8 -topk8 -scrypt` (N = 2^14, r = 8, p = 1).
    Scrypt,
    /// `-scrypt -scrypt_N 1024`: below the interactive cost.
    WeakScrypt,
    /// `-v1 PBE-SHA1-3DES`: a PKCS#12 PBES1 scheme (refused by the crates).
    Pbes1,
    /// `openssl pkey -traditional -aes256`: legacy PEM encryption with
    /// `Proc-Type`/`DEK-Info` (refused by the crates).
    Legacy,
}

/// Encrypts the private key in `plain_pem` (any form openssl reads) under
/// `passphrase`, returning the PEM openssl writes.
///
/// # Errors
/// [`Error::ToolMissing`] without openssl, [`Error::ToolFailed`], I/O errors.
pub fn openssl_encrypt(
    plain_pem: &[u8],
    passphrase: &str,
    how: OpensslEncryption,
) -> Result<Vec<u8>> {
    let dir = tempdir()?;
    let (input, output, pass) = (
        dir.path().join("in.pem"),
        dir.path().join("out.pem"),
        dir.path().join("pass"),
    );
    write(&input, plain_pem)?;
    write(&pass, format!("{passphrase}\n").as_bytes())?;
    let passout = format!("file:{}", pass.display());
    let mut args: Vec<String> = Vec::new();
    let common = |cmd: &[&str]| cmd.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    match how {
        OpensslEncryption::Legacy => {
            args.extend(common(&["pkey", "-traditional", "-aes256"]));
        }
        _ => args.extend(common(&["pkcs8", "-topk8"])),
    }
    match how {
        OpensslEncryption::Default => args.extend(common(&["-v2", "aes-256-cbc"])),
        OpensslEncryption::Pbkdf2Sha256 { iterations } => {
            args.extend(common(&[
                "-v2",
                "aes-256-cbc",
                "-v2prf",
                "hmacWithSHA256",
                "-iter",
            ]));
            args.push(iterations.to_string());
        }
        OpensslEncryption::Pbkdf2Sha1 => {
            args.extend(common(&[
                "-v2",
                "aes-256-cbc",
                "-v2prf",
                "hmacWithSHA1",
                "-iter",
                "200000",
            ]));
        }
        OpensslEncryption::Scrypt => args.extend(common(&["-scrypt"])),
        OpensslEncryption::WeakScrypt => args.extend(common(&["-scrypt", "-scrypt_N", "1024"])),
        OpensslEncryption::Pbes1 => args.extend(common(&["-v1", "PBE-SHA1-3DES"])),
        OpensslEncryption::Legacy => {}
    }
    args.extend(common(&["-in"]));
    args.push(input.display().to_string());
    args.extend(common(&["-passout", &passout, "-out"]));
    args.push(output.display().to_string());
    tool::OPENSSL.run(&args)?;
    read(&output)
}

/// Decrypts the encrypted key in `encrypted_pem` with `openssl pkey
/// -passin`, returning the plain PKCS#8 DER (`pkey` writes PKCS#8 PEM;
/// its DER output would be the traditional form for EC and RSA keys).
///
/// # Errors
/// [`Error::ToolMissing`] without openssl, [`Error::ToolFailed`] when
/// openssl cannot decrypt it, I/O errors.
pub fn openssl_decrypt(encrypted_pem: &[u8], passphrase: &str) -> Result<Vec<u8>> {
    let dir = tempdir()?;
    let (input, output, pass) = (
        dir.path().join("in.pem"),
        dir.path().join("out.pem"),
        dir.path().join("pass"),
    );
    write(&input, encrypted_pem)?;
    write(&pass, format!("{passphrase}\n").as_bytes())?;
    let passin = format!("file:{}", pass.display());
    tool::OPENSSL.run([
        "pkey",
        "-in",
        &input.display().to_string(),
        "-passin",
        &passin,
        "-out",
        &output.display().to_string(),
    ])?;
    openssl_pkcs8_der(&read(&output)?)
}

/// The plain PKCS#8 DER of a PEM private key (any form openssl reads).
///
/// # Errors
/// As [`openssl_decrypt`].
pub fn openssl_pkcs8_der(plain_pem: &[u8]) -> Result<Vec<u8>> {
    let dir = tempdir()?;
    let (input, output) = (dir.path().join("in.pem"), dir.path().join("out.der"));
    write(&input, plain_pem)?;
    tool::OPENSSL.run([
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        &input.display().to_string(),
        "-outform",
        "DER",
        "-out",
        &output.display().to_string(),
    ])?;
    read(&output)
}

/// The key types the tests generate with [`openssl_genpkey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyType {
    /// Ed25519.
    Ed25519,
    /// ECDSA on P-256.
    P256,
    /// ECDSA on P-384.
    P384,
    /// RSA, 2048 bits.
    Rsa2048,
}

impl KeyType {
    fn genpkey_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Ed25519 => &["-algorithm", "ed25519"],
            KeyType::P256 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyType::P384 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
            KeyType::Rsa2048 => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        }
    }
}

/// A fresh plain private key of `key_type` from `openssl genpkey`, as
/// PKCS#8 PEM.
///
/// # Errors
/// As [`openssl_encrypt`].
pub fn openssl_genpkey(key_type: KeyType) -> Result<Vec<u8>> {
    let mut args = vec!["genpkey"];
    args.extend(key_type.genpkey_args());
    Ok(tool::OPENSSL.run(args)?.stdout)
}

/// The public key of the private key in `plain_pem`, as openssl derives it:
/// a SubjectPublicKeyInfo, PEM (`der` false) or DER.
///
/// # Errors
/// As [`openssl_encrypt`].
pub fn openssl_public_key(plain_pem: &[u8], der: bool) -> Result<Vec<u8>> {
    let dir = tempdir()?;
    let input = dir.path().join("in.pem");
    write(&input, plain_pem)?;
    let input = input.display().to_string();
    let mut args = vec!["pkey", "-in", &input, "-pubout"];
    if der {
        args.extend(["-outform", "DER"]);
    }
    Ok(tool::OPENSSL.run(args)?.stdout)
}

fn tempdir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|source| Error::Io {
        context: "creating a temporary directory",
        path: std::env::temp_dir(),
        source,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        context: "writing a key file for openssl",
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        context: "reading what openssl wrote",
        path: path.to_owned(),
        source,
    })
}
