//! `mqtt-sec`: the operational chores of a secure MQTT deployment (pins,
//! keys, signed payloads, tokens, password files, ACL checks), thin over the
//! mqtt-sec crates.
//!
//! Exit status: 0 success, allowed or valid; 1 denied, invalid or
//! verification failed; 2 usage or input error (one line on stderr naming
//! the file and, for rule files, the line).
#![forbid(unsafe_code)]

mod commands;
mod io;
mod passphrase;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::io::CliError;

#[derive(Parser, Debug)]
#[command(
    name = "mqtt-sec",
    version,
    about = "Security chores for MQTT deployments"
)]
struct Cli {
    /// Machine-readable output (JSON) where the command has any.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print RFC 7469 pins (base64 SHA-256 of the SPKI) of certificates,
    /// public or private keys and CSRs, one per key.
    Pin(PinArgs),
    /// Make a private key (PKCS#8 PEM) and print its kid: Ed25519 (envelopes
    /// and JWTs) or P-256 (JWTs, TLS client certificates).
    Keygen(KeygenArgs),
    /// Encrypt or decrypt a PKCS#8 private key (PBES2: PBKDF2-HMAC-SHA256
    /// or scrypt, AES-256-CBC), the passphrase from a file or the terminal.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign a payload for a topic: writes the COSE_Sign1 envelope.
    Sign(SignArgs),
    /// Verify an envelope for a topic: writes the payload.
    Verify(VerifyArgs),
    /// Mint or verify JWTs.
    #[command(subcommand)]
    Jwt(JwtCommand),
    /// Manage a mosquitto password file (mosquitto_passwd's common forms).
    Passwd(PasswdArgs),
    /// Check requests against, or lint, an ACL file.
    #[command(subcommand)]
    Acl(AclCommand),
    /// PKCS#11 tokens (HSMs, TPMs and secure elements behind a module).
    #[command(subcommand)]
    Pkcs11(Pkcs11Command),
    /// The mosquitto plugin (mqtt-sec-mosquitto).
    #[command(subcommand)]
    Mosquitto(MosquittoCommand),
    /// Revoke a signing key (kid), a JWT (jti) or a certificate (serial)
    /// until a time, in the Redis revocation list the fleet's verifiers and
    /// brokers consult.
    Revoke(RevokeArgs),
}

#[derive(Args, Debug)]
struct RevokeArgs {
    /// What VALUE names: kid, jti or serial.
    #[arg(value_parser = ["kid", "jti", "serial"])]
    kind: String,
    /// A kid or jti as text (`--hex` for a kid that is not text); a serial
    /// in hex, as `openssl x509 -noout -serial` prints it.
    value: String,
    /// When the revocation ends: an RFC 3339 time (`2027-01-31T00:00:00Z`)
    /// or a span from now (`+90d`, `+12h`); at most ten years ahead. Make
    /// it the credential's own expiry (the token's `exp`, the
    /// certificate's `notAfter`, the key's retirement).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// The Redis server, `redis://[user@]host:port[/db]` or `rediss://`,
    /// without a password (see --redis-password-file).
    #[arg(long, value_name = "URL")]
    redis: String,
    /// --redis is a node of a Redis Cluster (any primary: the others are
    /// found through it).
    #[arg(long)]
    redis_cluster: bool,
    /// A file whose one line is the Redis password.
    #[arg(long, value_name = "FILE")]
    redis_password_file: Option<PathBuf>,
    /// The CA certificates (PEM) that a `rediss://` server's certificate
    /// must chain to (default: the system's).
    #[arg(long, value_name = "FILE")]
    redis_ca: Option<PathBuf>,
    /// The key prefix the verifiers use.
    #[arg(long, default_value = mqtt_sec_redis::DEFAULT_KEY_PREFIX)]
    key_prefix: String,
    /// VALUE is hexadecimal (implied for a serial).
    #[arg(long)]
    hex: bool,
}

#[derive(Subcommand, Debug)]
enum Pkcs11Command {
    /// The module's tokens as PKCS#11 URIs and, with --pin-file, their
    /// private keys: kind, SPKI pin (as `mqtt-sec pin` prints it) and URI.
    List(Pkcs11ListArgs),
}

#[derive(Args, Debug)]
struct Pkcs11ListArgs {
    /// The PKCS#11 module (a shared library, such as libsofthsm2.so).
    #[arg(long, value_name = "MODULE.so")]
    module: PathBuf,
    /// The file holding the user PIN, to list the private keys.
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum MosquittoCommand {
    /// Validate a plugin configuration and every file it names, as the
    /// plugin's start would, and lint its ACL rules: exit 0 when the broker
    /// would start with it, 1 when it would not (or the lint finds an
    /// error), 2 when the file cannot be read.
    CheckConfig(CheckConfigArgs),
}

#[derive(Args, Debug)]
struct CheckConfigArgs {
    /// The plugin's configuration (what `plugin_opt_config` names).
    file: PathBuf,
}

#[derive(Args, Debug)]
struct PinArgs {
    /// PEM files: certificates, public keys, PKCS#8 private keys or CSRs.
    #[arg(required_unless_present = "connect", conflicts_with = "connect")]
    certificates: Vec<PathBuf>,
    /// Connect to HOST:PORT and print the pins of the chain it presents, leaf first.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// The TLS server name to present (default: the host of --connect).
    #[arg(long, requires = "connect")]
    server_name: Option<String>,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Where to write the private key (refused if it exists).
    #[arg(long, required_unless_present = "pkcs11", conflicts_with = "pkcs11")]
    out: Option<PathBuf>,
    /// Make the key in a PKCS#11 token instead, labelled by the URI's
    /// `object` (sensitive, never extractable, never over an existing
    /// label): `pkcs11:token=T;object=L?module-path=M&pin-source=file:P`.
    #[arg(long, value_name = "URI", conflicts_with = "encrypt")]
    pkcs11: Option<String>,
    /// The file holding the token's user PIN (default: the URI's
    /// `pin-source`, else typed at the terminal).
    #[arg(long, value_name = "FILE", requires = "pkcs11")]
    pin_file: Option<PathBuf>,
    /// Also write the public key as a JWK.
    #[arg(long, value_name = "PUB.jwk")]
    public: Option<PathBuf>,
    /// The key type.
    #[arg(long, value_enum, default_value_t = KeyAlg::Ed25519)]
    alg: KeyAlg,
    /// MQTT topic filters the key may sign envelopes for, written as the
    /// JWK's `mqtt_topics` (repeat for several; Ed25519 only).
    #[arg(long = "topic", value_name = "FILTER", requires = "public")]
    topics: Vec<String>,
    /// Write the key encrypted (PKCS#8 `ENCRYPTED PRIVATE KEY`), under a
    /// passphrase from --passphrase-file or typed twice at the terminal.
    #[arg(long)]
    encrypt: bool,
    /// The file holding the passphrase (one line), with --encrypt.
    #[arg(long, value_name = "FILE", requires = "encrypt")]
    passphrase_file: Option<PathBuf>,
    /// The key derivation, with --encrypt.
    #[arg(long, value_enum, default_value_t = KdfChoice::Pbkdf2, requires = "encrypt")]
    kdf: KdfChoice,
}

/// How a passphrase becomes the key that encrypts a private key.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum KdfChoice {
    /// PBKDF2-HMAC-SHA256, 600,000 iterations (OWASP's figure).
    Pbkdf2,
    /// scrypt N = 2^14, r = 8, p = 1 (16 MiB; what `openssl pkcs8 -scrypt`
    /// writes and the most openssl reads by default).
    Scrypt,
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// Encrypt a PKCS#8 private key, or re-encrypt an encrypted one under a
    /// new passphrase (and strong parameters, whatever its own were).
    Encrypt(KeyEncryptArgs),
    /// Write the plain PKCS#8 key of an encrypted one, for a tool that
    /// cannot read encrypted keys.
    Decrypt(KeyDecryptArgs),
}

#[derive(Args, Debug)]
struct KeyEncryptArgs {
    /// The key: a plain PKCS#8 `PRIVATE KEY` or an `ENCRYPTED PRIVATE KEY`.
    #[arg(long = "in", value_name = "KEY.pem")]
    input: PathBuf,
    /// Where to write the encrypted key (refused if it exists).
    #[arg(long)]
    out: PathBuf,
    /// The file holding the new passphrase (default: typed twice at the
    /// terminal).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    /// The file holding the current passphrase of an encrypted key
    /// (default: typed at the terminal).
    #[arg(long, value_name = "FILE")]
    old_passphrase_file: Option<PathBuf>,
    /// The key derivation.
    #[arg(long, value_enum, default_value_t = KdfChoice::Pbkdf2)]
    kdf: KdfChoice,
}

#[derive(Args, Debug)]
struct KeyDecryptArgs {
    /// The encrypted key.
    #[arg(long = "in", value_name = "KEY.pem")]
    input: PathBuf,
    /// Where to write the plain key (mode 0600, refused if it exists).
    #[arg(long)]
    out: PathBuf,
    /// The file holding the passphrase (default: typed at the terminal).
    #[arg(long, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum KeyAlg {
    /// Ed25519: envelopes (mqtt-sec-sign) and EdDSA JWTs.
    Ed25519,
    /// ECDSA P-256: ES256 JWTs and TLS client certificates.
    P256,
    /// RSA: refused with the openssl command to use (no RSA key generator
    /// is built in; see docs/decisions.md).
    Rsa,
}

/// The private key `sign` and `jwt mint` sign with: a PEM file or a key
/// that stays in a PKCS#11 token.
#[derive(Args, Debug)]
struct SigningKeyArgs {
    /// The private key PEM: PKCS#8, plain or encrypted (or PKCS#1 for an
    /// RSA key).
    #[arg(long, required_unless_present = "pkcs11", conflicts_with = "pkcs11")]
    key: Option<PathBuf>,
    /// A key in a PKCS#11 token, by its URI.
    #[arg(long, value_name = "URI")]
    pkcs11: Option<String>,
    /// The file holding the token's user PIN (default: the URI's
    /// `pin-source`, else typed at the terminal).
    #[arg(long, value_name = "FILE", requires = "pkcs11")]
    pin_file: Option<PathBuf>,
    /// The file holding the passphrase of an encrypted --key (default:
    /// typed at the terminal).
    #[arg(long, value_name = "FILE", conflicts_with = "pkcs11")]
    passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// The Ed25519 key.
    #[command(flatten)]
    key: SigningKeyArgs,
    /// The MQTT topic the envelope is bound to.
    #[arg(long)]
    topic: String,
    /// The payload (default: standard input).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// Where to write the envelope (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Sign for a retained publish (the topic's state), not a live message.
    #[arg(long)]
    retained: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// Trusted keys: a JWK Set, one JWK or a public key PEM (SubjectPublicKeyInfo).
    #[arg(long)]
    keys: PathBuf,
    /// The MQTT topic the envelope arrived on.
    #[arg(long)]
    topic: String,
    /// The envelope (default: standard input).
    #[arg(long = "in")]
    input: Option<PathBuf>,
    /// Where to write the payload (default: standard output).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Clock skew tolerated on the envelope's time, in seconds.
    #[arg(long, value_name = "SECS")]
    max_skew: Option<u64>,
    /// The envelope was delivered with the MQTT retain flag (it counts only
    /// if the envelope was also signed as retained).
    #[arg(long)]
    retained: bool,
}

#[derive(Subcommand, Debug)]
enum JwtCommand {
    /// Mint a token with a device key (Ed25519, P-256 or RSA PEM).
    Mint(JwtMintArgs),
    /// Verify a token; prints its claims as JSON.
    Verify(JwtVerifyArgs),
}

#[derive(Args, Debug)]
struct JwtMintArgs {
    /// The Ed25519, P-256 or RSA key.
    #[command(flatten)]
    key: SigningKeyArgs,
    /// `sub`: the client id the token is for.
    #[arg(long)]
    sub: String,
    /// `aud` (repeat for several).
    #[arg(long)]
    aud: Vec<String>,
    /// `iss`.
    #[arg(long)]
    iss: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600, value_name = "SECS")]
    ttl: u64,
    /// Another claim, its value as JSON (`acl=[...]`, `model="x"`).
    #[arg(long, value_name = "NAME=JSON")]
    claim: Vec<String>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("keysource").required(true).args(["devices", "keys", "secret_file"])))]
struct JwtVerifyArgs {
    /// A device key document (`{"devices": {"ID": {"keys": [...]}}}`): the
    /// key must be one of the keys of the identity the token claims.
    #[arg(long)]
    devices: Option<PathBuf>,
    /// Trusted issuer keys: a JWK Set, one JWK or a public key PEM
    /// (SubjectPublicKeyInfo); any of them vouches for any `sub`.
    #[arg(long, alias = "key")]
    keys: Option<PathBuf>,
    /// A trusted issuer's HS256 secret (the file's bytes; one trailing
    /// newline is dropped), named by `--kid`.
    #[arg(long, requires = "kid")]
    secret_file: Option<PathBuf>,
    /// The key id of the `--secret-file` secret (a secret gets no default:
    /// its thumbprint would be a hash of it).
    #[arg(long, requires = "secret_file")]
    kid: Option<String>,
    /// Accept only this algorithm (EdDSA, ES256, RS256, HS256).
    #[arg(long)]
    alg: Option<String>,
    /// Required audience.
    #[arg(long)]
    aud: Option<String>,
    /// Required issuer.
    #[arg(long)]
    iss: Option<String>,
    /// The client id `sub` must name (otherwise `sub` is not bound).
    #[arg(long)]
    client_id: Option<String>,
    /// The token (`-` reads it from standard input).
    token: String,
}

#[derive(Args, Debug)]
struct PasswdArgs {
    /// Create a new file (replacing an existing one).
    #[arg(short = 'c', conflicts_with_all = ["delete", "verify"])]
    create: bool,
    /// Batch: the password is the last argument, not read from standard input.
    #[arg(short = 'b', requires = "password", conflicts_with_all = ["delete", "verify"])]
    batch: bool,
    /// Delete the user.
    #[arg(short = 'D', conflicts_with = "verify")]
    delete: bool,
    /// PBKDF2 iterations (default 210,000; mosquitto_passwd writes 101).
    #[arg(short = 'I', value_name = "ITERATIONS")]
    iterations: Option<u32>,
    /// Check USER's password (read from standard input) instead of changing the file.
    #[arg(long)]
    verify: bool,
    /// Owner of the file written, `USER` or `USER:GROUP` (default: the
    /// replaced file's owner; for a new file written by root, the
    /// `mosquitto` user when it exists). The mode is always 0600.
    #[arg(long, value_name = "USER[:GROUP]", conflicts_with = "verify")]
    owner: Option<String>,
    /// The password file.
    file: PathBuf,
    /// The user.
    user: String,
    /// The password, with -b.
    password: Option<String>,
}

#[derive(Subcommand, Debug)]
enum AclCommand {
    /// Decide one request; prints allow or deny and the deciding rule.
    Check(AclCheckArgs),
    /// Report invalid lines, dead rules and risky placeholders.
    Lint(AclLintArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AclFormat {
    /// mosquitto's acl_file.
    Mosquitto,
    /// mqtt-sec-acl's native format as JSON.
    Json,
    /// mqtt-sec-acl's native format as TOML.
    Toml,
}

#[derive(Args, Debug)]
struct AclFileArgs {
    /// The rule file.
    #[arg(long)]
    file: PathBuf,
    /// Its format (default: by extension, .json/.toml, else mosquitto).
    #[arg(long, value_enum)]
    format: Option<AclFormat>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["publish", "subscribe", "receive"])))]
struct AclCheckArgs {
    #[command(flatten)]
    file: AclFileArgs,
    /// The username of the client.
    #[arg(long)]
    username: Option<String>,
    /// The client id.
    #[arg(long, default_value = "")]
    client_id: String,
    /// Publish to TOPIC.
    #[arg(long)]
    publish: bool,
    /// Subscribe to the filter TOPIC.
    #[arg(long)]
    subscribe: bool,
    /// Be sent a message on TOPIC.
    #[arg(long)]
    receive: bool,
    /// The topic name or filter.
    topic: String,
}

#[derive(Args, Debug)]
struct AclLintArgs {
    #[command(flatten)]
    file: AclFileArgs,
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let json = cli.json;
    match cli.command {
        Command::Pin(args) => commands::pin::run(&args, json),
        Command::Keygen(args) => commands::envelope::keygen(&args, json),
        Command::Key(KeyCommand::Encrypt(args)) => commands::key::encrypt(&args, json),
        Command::Key(KeyCommand::Decrypt(args)) => commands::key::decrypt(&args),
        Command::Sign(args) => commands::envelope::sign(&args),
        Command::Verify(args) => commands::envelope::verify(&args),
        Command::Jwt(JwtCommand::Mint(args)) => commands::jwt::mint(&args),
        Command::Jwt(JwtCommand::Verify(args)) => commands::jwt::verify(&args, json),
        Command::Passwd(args) => commands::passwd::run(&args, json),
        Command::Acl(AclCommand::Check(args)) => commands::acl::check(&args, json),
        Command::Acl(AclCommand::Lint(args)) => commands::acl::lint(&args, json),
        Command::Pkcs11(Pkcs11Command::List(args)) => commands::token::list(&args, json),
        Command::Mosquitto(MosquittoCommand::CheckConfig(args)) => {
            commands::mosquitto::check_config(&args, json)
        }
        Command::Revoke(args) => commands::revoke::run(&args, json),
    }
}

fn main() -> ExitCode {
    // clap exits with 2 on usage errors and 0 for --help/--version.
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("mqtt-sec: {error}");
            ExitCode::from(2)
        }
    }
}
