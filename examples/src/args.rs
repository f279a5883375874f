//! The flags every example takes to run against a real broker instead of the
//! embedded one, and what they resolve to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mqtt_sec_auth::SecretString;
use mqtt_sec_auth::secrecy::ExposeSecret;
use mqtt_sec_tls::pkcs11::{Pkcs11Uri, TokenKey};
use mqtt_sec_tls::rustls::crypto::ring;
use mqtt_sec_tls::{ClientTls, Identity, Passphrase, Pin, PinSet, TrustRoots};

use crate::lab::Error;

/// `--broker` and the files to reach it. Without `--broker` the example
/// starts its embedded broker and makes its own throwaway PKI.
#[derive(clap::Args, Debug, Clone, Default)]
#[command(group(clap::ArgGroup::new("client_key").args(["key", "pkcs11"])))]
pub struct BrokerArgs {
    /// Run against this broker (mqtts://HOST:PORT) instead of the embedded one.
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,
    /// CA certificates (PEM) the broker's certificate chains to [default:
    /// the system's roots].
    #[arg(long, value_name = "FILE", requires = "broker")]
    pub ca: Option<PathBuf>,
    /// Client certificate chain (PEM) for mTLS; every client of the example
    /// presents it.
    #[arg(long, value_name = "FILE", requires_all = ["broker", "client_key"])]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert: plain PKCS#8, or encrypted with
    /// --key-passphrase-file.
    #[arg(long, value_name = "FILE", requires_all = ["broker", "cert"])]
    pub key: Option<PathBuf>,
    /// File holding the passphrase (one line) of an encrypted --key
    /// (PKCS#8 `ENCRYPTED PRIVATE KEY`, as `mqtt-sec keygen --encrypt` or
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it).
    #[arg(long, value_name = "FILE", requires = "key")]
    pub key_passphrase_file: Option<PathBuf>,
    /// The private key of --cert in a PKCS#11 token instead of --key, by
    /// its RFC 7512 URI (`pkcs11:token=T;object=L?module-path=M&pin-source=file:P`).
    #[arg(long, value_name = "URI", requires_all = ["broker", "cert"], conflicts_with = "key")]
    pub pkcs11: Option<String>,
    /// The broker's pin (base64 SHA-256 of its SPKI, as `mqtt-sec pin`
    /// prints); repeat to add backup pins. Without it the pin of the
    /// certificate the broker presents is learned on the first connection
    /// (trust on first use: fine for a demo, not for a device).
    #[arg(long = "pin", value_name = "PIN", requires = "broker")]
    pub pins: Vec<Pin>,
    /// MQTT username, for brokers with password authentication.
    #[arg(long, value_name = "NAME", requires = "broker")]
    pub username: Option<String>,
    /// File whose first line is the password of --username.
    #[arg(long, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
}

/// A real broker to run against, from [`BrokerArgs`].
#[derive(Debug)]
pub struct RealBroker {
    url: String,
    pins: PinSet,
    roots: TrustRoots,
    identity: Option<(PathBuf, PathBuf)>,
    key_passphrase: Option<Passphrase>,
    /// `--cert` and the `--pkcs11` URI (checked when parsed; kept as text
    /// to keep this small).
    token_key: Option<(PathBuf, String)>,
    credentials: Option<(String, SecretString)>,
}

impl BrokerArgs {
    /// The passphrase of `--key-passphrase-file`, when given.
    ///
    /// # Errors
    /// When the file cannot be read or holds no single-line passphrase.
    pub fn key_passphrase(&self) -> Result<Option<Passphrase>, Error> {
        Ok(match &self.key_passphrase_file {
            Some(path) => Some(Passphrase::from_file(path)?),
            None => None,
        })
    }

    /// The real broker named by `--broker`, or `None` for the embedded one.
    /// Learns the broker's pin when none is given.
    ///
    /// # Errors
    /// A malformed URL, unreadable files, or a broker that cannot be reached.
    pub fn real_broker(&self) -> Result<Option<RealBroker>, Error> {
        let Some(url) = &self.broker else {
            return Ok(None);
        };
        let roots = match &self.ca {
            Some(ca) => TrustRoots::new().pem_file(ca)?,
            None => TrustRoots::new().system()?,
        };
        let (host, port) = host_and_port(url, &roots)?;
        let pins = match self.pins.split_first() {
            Some((primary, [])) => PinSet::builder([*primary]).allow_without_backup().build()?,
            Some((primary, backup)) => PinSet::builder([*primary])
                .backup(backup.iter().copied())
                .build()?,
            None => {
                let address = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                let presented = mqtt_sec_tls::danger::fetch_server_pins(
                    &address,
                    &host,
                    Arc::new(ring::default_provider()),
                    Duration::from_secs(10),
                )?;
                let leaf = presented
                    .into_iter()
                    .next()
                    .ok_or("the broker presented no certificate")?;
                PinSet::builder([leaf]).allow_without_backup().build()?
            }
        };
        let credentials = match &self.username {
            Some(user) => {
                let password = match &self.password_file {
                    Some(path) => {
                        let file = SecretString::from(
                            std::fs::read_to_string(path)
                                .map_err(|e| format!("{}: {e}", path.display()))?,
                        );
                        let first_line = file.expose_secret().lines().next().unwrap_or_default();
                        SecretString::from(first_line.to_owned())
                    }
                    None => SecretString::from(String::new()),
                };
                Some((user.clone(), password))
            }
            None => None,
        };
        Ok(Some(RealBroker {
            url: url.clone(),
            pins,
            roots,
            identity: self.cert.clone().zip(self.key.clone()),
            key_passphrase: self.key_passphrase()?,
            token_key: match (&self.cert, &self.pkcs11) {
                (Some(cert), Some(uri)) => {
                    uri.parse::<Pkcs11Uri>()?;
                    Some((cert.clone(), uri.clone()))
                }
                _ => None,
            },
            credentials,
        }))
    }
}

/// Host and port of an `mqtts://` URL, parsed the way the clients will.
fn host_and_port(url: &str, roots: &TrustRoots) -> Result<(String, u16), Error> {
    let options = ClientTls::builder(Arc::new(ring::default_provider()))
        .trust(roots.clone())
        .no_identity()
        .build()?
        .mqtt_options(url, "probe")?;
    Ok(options.broker_address())
}

impl RealBroker {
    /// The broker's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pins given, or learned from the broker.
    pub fn pins(&self) -> &PinSet {
        &self.pins
    }

    /// The trusted roots (`--ca`, or the system's).
    pub fn roots(&self) -> &TrustRoots {
        &self.roots
    }

    /// Whether `--cert` and `--key` (or `--pkcs11`) were given.
    pub fn has_identity(&self) -> bool {
        self.identity.is_some() || self.token_key.is_some()
    }

    /// The `--username` and password given.
    pub fn credentials(&self) -> Option<(&str, &SecretString)> {
        self.credentials
            .as_ref()
            .map(|(user, pass)| (user.as_str(), pass))
    }

    /// A client configuration trusting `--ca`, requiring `pins`, and
    /// presenting `--cert` when given (its key decrypted with
    /// `--key-passphrase-file` when given).
    ///
    /// # Errors
    /// When a file cannot be read or the configuration is refused.
    pub fn client_tls(&self, pins: PinSet) -> Result<ClientTls, Error> {
        let builder = ClientTls::builder(Arc::new(ring::default_provider()))
            .trust(self.roots.clone())
            .pins(pins);
        if let Some((cert, uri)) = &self.token_key {
            let key = TokenKey::open(&uri.parse::<Pkcs11Uri>()?, None)?;
            return Ok(builder.identity(Identity::from_token(cert, key)?).build()?);
        }
        let builder = match (&self.identity, &self.key_passphrase) {
            (Some((cert, key)), Some(passphrase)) => {
                builder.identity(Identity::from_encrypted_pem_files(cert, key, passphrase)?)
            }
            (Some((cert, key)), None) => builder.identity(Identity::from_pem_files(cert, key)?),
            (None, _) => builder.no_identity(),
        };
        Ok(builder.build()?)
    }
}
