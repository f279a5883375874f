//! `mqtt-sec key encrypt` and `key decrypt`, and the private key files
//! `keygen`, `sign` and `jwt mint` read and write: PKCS#8, plain or
//! encrypted (PBES2, as mqtt-sec-core reads it).

use std::error::Error;
use std::path::Path;
use std::process::ExitCode;

use mqtt_sec_core::Chain;
use mqtt_sec_core::encrypted_key::{DecryptedKey, EncryptedKey, EncryptedKeyError, Kdf};
use mqtt_sec_core::passphrase::Passphrase;
use mqtt_sec_core::pkcs11::TokenKey;
use mqtt_sec_sign::SecretString;
use serde_json::json;
use zeroize::Zeroizing;

use super::token;
use crate::io::{CliError, print_json, read_file, write_private};
use crate::passphrase::{self, Purpose};
use crate::{KdfChoice, KeyDecryptArgs, KeyEncryptArgs, SigningKeyArgs};

impl KdfChoice {
    /// The parameters written for the choice: strong enough that every
    /// reader of mqtt-sec accepts them, and readable by openssl (whose
    /// scrypt memory limit is 32 MiB).
    pub(crate) fn kdf(self) -> Kdf {
        match self {
            KdfChoice::Pbkdf2 => Kdf::default(),
            KdfChoice::Scrypt => Kdf::scrypt_interactive(),
        }
    }
}

/// A private key file as `sign` and `jwt mint` take it.
pub(crate) enum PrivateKey {
    /// A plain PEM file (PKCS#8, or PKCS#1 for RSA): its text.
    Pem(SecretString),
    /// An encrypted PKCS#8 file, decrypted: the PKCS#8 DER.
    Decrypted(DecryptedKey),
}

/// Whether the PEM text holds an encrypted key: a PKCS#8 `ENCRYPTED PRIVATE
/// KEY`, or the traditional `Proc-Type: 4,ENCRYPTED` form (which
/// [`EncryptedKey::from_pem`] refuses with its own error).
fn is_encrypted(text: &[u8]) -> bool {
    let contains = |needle: &[u8]| text.windows(needle.len()).any(|w| w == needle);
    contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(b"Proc-Type: 4,ENCRYPTED")
}

/// The key in `path`, decrypted with the passphrase of `passphrase_file`
/// (or typed at the terminal) when it is encrypted.
pub(crate) fn read_private_key(
    path: &Path,
    passphrase_file: Option<&Path>,
) -> Result<PrivateKey, CliError> {
    let bytes = Zeroizing::new(read_file(path)?);
    if !is_encrypted(&bytes) {
        if passphrase_file.is_some() {
            return Err(CliError::at(
                path,
                "--passphrase-file is given but the key is not encrypted (encrypt it with `mqtt-sec key encrypt`)",
            ));
        }
        let text =
            String::from_utf8(bytes.to_vec()).map_err(|_| CliError::at(path, "not UTF-8 text"))?;
        return Ok(PrivateKey::Pem(SecretString::from(text)));
    }
    let key = EncryptedKey::from_pem(&bytes).map_err(|e| key_error(path, &e))?;
    let passphrase = passphrase::read(passphrase_file, Purpose::Decrypt(path))?;
    let decrypted = key.decrypt(&passphrase).map_err(|e| key_error(path, &e))?;
    Ok(PrivateKey::Decrypted(decrypted))
}

/// A key `sign` and `jwt mint` sign with, made from whichever form
/// [`SigningKeyArgs`] names.
pub(crate) trait LoadSigningKey: Sized {
    /// Why a key of this type cannot be made.
    type Error: Error + 'static;
    /// From a plain PEM file's text.
    fn from_pem(text: &SecretString) -> Result<Self, Self::Error>;
    /// From the PKCS#8 DER of a decrypted file.
    fn from_pkcs8_der(der: &[u8]) -> Result<Self, Self::Error>;
    /// From a key that stays in a PKCS#11 token.
    fn from_token(key: TokenKey) -> Result<Self, Self::Error>;
}

/// Implements [`LoadSigningKey`] with the type's own constructors of the
/// same names.
macro_rules! load_signing_key_with_constructors {
    ($key:ty, $error:ty) => {
        impl LoadSigningKey for $key {
            type Error = $error;
            fn from_pem(text: &SecretString) -> Result<Self, Self::Error> {
                Self::from_pem(text)
            }
            fn from_pkcs8_der(der: &[u8]) -> Result<Self, Self::Error> {
                Self::from_pkcs8_der(der)
            }
            fn from_token(key: TokenKey) -> Result<Self, Self::Error> {
                Self::from_token(key)
            }
        }
    };
}

load_signing_key_with_constructors!(mqtt_sec_sign::Signer, mqtt_sec_sign::KeyError);
load_signing_key_with_constructors!(mqtt_sec_auth::jwt::SigningKey, mqtt_sec_auth::JwtKeyError);

/// The key `args` names: the `--pkcs11` token key, or the `--key` file
/// (decrypted with `--passphrase-file` or a passphrase typed at the
/// terminal when it is encrypted).
pub(crate) fn load_signing_key<K: LoadSigningKey>(args: &SigningKeyArgs) -> Result<K, CliError> {
    match (&args.pkcs11, &args.key) {
        (Some(uri), _) => K::from_token(token::open(uri, args.pin_file.as_deref())?)
            .map_err(|e| CliError::new(format!("--pkcs11: {}", Chain(&e)))),
        (None, Some(path)) => match read_private_key(path, args.passphrase_file.as_deref())? {
            PrivateKey::Pem(text) => K::from_pem(&text),
            PrivateKey::Decrypted(der) => K::from_pkcs8_der(der.expose_secret()),
        }
        .map_err(|e| CliError::at(path, Chain(&e))),
        (None, None) => Err(CliError::new("give --key or --pkcs11")),
    }
}

/// `PATH: error`, with the command that fixes a weak encryption.
fn key_error(path: &Path, error: &EncryptedKeyError) -> CliError {
    match error {
        EncryptedKeyError::WeakParameters { .. } => CliError::at(
            path,
            format!(
                "{}; re-encrypt it with `mqtt-sec key encrypt --in {} --out NEW.pem`",
                Chain(error),
                path.display()
            ),
        ),
        _ => CliError::at(path, Chain(error)),
    }
}

/// Encrypts a PKCS#8 DER key under `passphrase` and writes it to `out`
/// (mode 0600, never over an existing file).
pub(crate) fn write_encrypted(
    out: &Path,
    pkcs8_der: &[u8],
    passphrase: &Passphrase,
    kdf: Kdf,
) -> Result<EncryptedKey, CliError> {
    let encrypted = EncryptedKey::encrypt(pkcs8_der, passphrase, kdf)
        .map_err(|e| CliError::new(format!("encryption: {}", Chain(&e))))?;
    write_private(out, encrypted.to_pem().as_bytes(), true)?;
    Ok(encrypted)
}

/// The PKCS#8 DER of a plain `PRIVATE KEY` file that holds one key.
fn plain_pkcs8(path: &Path, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let blocks = pem::parse_many(bytes).map_err(|e| CliError::at(path, Chain(&e)))?;
    match blocks.as_slice() {
        [block] if block.tag() == "PRIVATE KEY" => Ok(Zeroizing::new(block.contents().to_vec())),
        [block] => Err(CliError::at(
            path,
            format!(
                "a {} block: encrypt a PKCS#8 PRIVATE KEY (convert it with `openssl pkcs8 -topk8 -nocrypt`)",
                block.tag()
            ),
        )),
        [] => Err(CliError::at(path, "no PEM block")),
        _ => Err(CliError::at(
            path,
            "more than one PEM block: give one key per file",
        )),
    }
}

/// `mqtt-sec key encrypt`: a plain PKCS#8 key encrypted, or an encrypted
/// one re-encrypted under a new passphrase and strong parameters (its own
/// may be weak: re-encryption is how a weak key is made strong).
pub(crate) fn encrypt(args: &KeyEncryptArgs, json: bool) -> Result<ExitCode, CliError> {
    let bytes = Zeroizing::new(read_file(&args.input)?);
    let der = if is_encrypted(&bytes) {
        let key = EncryptedKey::from_pem(&bytes).map_err(|e| key_error(&args.input, &e))?;
        let old = passphrase::read(
            args.old_passphrase_file.as_deref(),
            Purpose::Decrypt(&args.input),
        )?;
        let decrypted = key
            .dangerous()
            .decrypt_with_weak_kdf(&old)
            .map_err(|e| key_error(&args.input, &e))?;
        Zeroizing::new(decrypted.expose_secret().to_vec())
    } else {
        if args.old_passphrase_file.is_some() {
            return Err(CliError::at(
                &args.input,
                "--old-passphrase-file is given but the key is not encrypted",
            ));
        }
        plain_pkcs8(&args.input, &bytes)?
    };
    let passphrase =
        passphrase::read(args.passphrase_file.as_deref(), Purpose::Encrypt(&args.out))?;
    let encrypted = write_encrypted(&args.out, &der, &passphrase, args.kdf.kdf())?;
    if json {
        print_json(&json!({
            "out": args.out.display().to_string(),
            "kdf": encrypted.kdf().to_string(),
            "cipher": format!("{:?}", encrypted.cipher()),
        }));
    }
    Ok(ExitCode::SUCCESS)
}

/// `mqtt-sec key decrypt`: the plain PKCS#8 key, for a tool that cannot
/// read an encrypted one (mode 0600, never over an existing file).
pub(crate) fn decrypt(args: &KeyDecryptArgs) -> Result<ExitCode, CliError> {
    let PrivateKey::Decrypted(key) =
        read_private_key(&args.input, args.passphrase_file.as_deref())?
    else {
        return Err(CliError::at(&args.input, "the key is not encrypted"));
    };
    let text = Zeroizing::new(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        key.expose_secret().to_vec(),
    )));
    write_private(&args.out, text.as_bytes(), true)?;
    Ok(ExitCode::SUCCESS)
}
