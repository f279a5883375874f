//! A real mosquitto broker, started with a generated configuration on free
//! loopback ports and killed on drop.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::passwords::PasswordFile;
use crate::pki::{IssuedCert, write_file, write_private_file};
use crate::tool::MOSQUITTO;
use crate::{Error, Result};

/// The address every listener binds.
const HOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
/// How often readiness and log conditions are polled.
const POLL: Duration = Duration::from_millis(10);
/// Start-up attempts: a free port may be taken between our probe and the
/// broker's bind, which is retried with new ports.
const START_ATTEMPTS: usize = 3;
/// What mosquitto logs when it handles SIGHUP, before it reloads the
/// password, ACL and CRL files.
const RELOAD_MARKER: &str = "Reloading config";

/// Whether the log has mosquitto's `mosquitto version X running` line,
/// written once every listener is open and its certificates are loaded.
/// (mosquitto opens a listen socket before it loads the listener's
/// certificate, so an accepted TCP connection alone does not mean it runs.)
fn logged_running(log: &str) -> bool {
    log.lines()
        .any(|line| line.contains("mosquitto version") && line.trim_end().ends_with("running"))
}

/// Minimum TLS version of a listener (mosquitto's `tls_version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsVersion {
    /// TLS 1.2 and newer.
    Tls12,
    /// TLS 1.3 only.
    Tls13,
}

impl TlsVersion {
    fn config_value(self) -> &'static str {
        match self {
            Self::Tls12 => "tlsv1.2",
            Self::Tls13 => "tlsv1.3",
        }
    }
}

/// A TLS listener: server certificate chain and key, and optionally client
/// certificates required (mTLS), a CRL and a minimum TLS version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    cert_chain: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    use_identity_as_username: bool,
    crl: Option<PathBuf>,
    min_version: Option<TlsVersion>,
}

impl TlsListener {
    /// A listener presenting `server`'s chain (see [`IssuedCert::chain_path`]).
    pub fn new(server: &IssuedCert) -> Self {
        Self::from_files(server.chain_path(), server.key_path())
    }

    /// A listener presenting a PEM chain and key from any files.
    pub fn from_files(cert_chain: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain: cert_chain.into(),
            key: key.into(),
            client_ca: None,
            use_identity_as_username: false,
            crl: None,
            min_version: None,
        }
    }

    /// Requires a client certificate that chains to the CA in `ca_file`
    /// (mosquitto's `require_certificate true` with `cafile`).
    pub fn require_client_cert(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.client_ca = Some(ca_file.into());
        self
    }

    /// Uses the client certificate's common name as the MQTT user name, for
    /// ACLs (mosquitto's `use_identity_as_username`). Needs
    /// [`TlsListener::require_client_cert`].
    pub fn use_identity_as_username(mut self, enabled: bool) -> Self {
        self.use_identity_as_username = enabled;
        self
    }

    /// Checks client certificates against the CRLs in a PEM file (mosquitto's
    /// `crlfile`), such as [`crate::TestPki::crl_path`].
    pub fn crl_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.crl = Some(path.into());
        self
    }

    /// Sets the minimum TLS version (default: mosquitto's, TLS 1.2).
    pub fn min_tls_version(mut self, version: TlsVersion) -> Self {
        self.min_version = Some(version);
        self
    }

    fn kind(&self) -> ListenerKind {
        if self.client_ca.is_some() {
            ListenerKind::MutualTls
        } else {
            ListenerKind::Tls
        }
    }

    fn render(&self, config: &mut String) -> Result<()> {
        if self.use_identity_as_username && self.client_ca.is_none() {
            return Err(Error::InvalidRequest(
                "use_identity_as_username needs require_client_cert: without a client \
                 certificate there is no identity"
                    .into(),
            ));
        }
        let mut line = |key: &str, value: &Path| -> Result<()> {
            let _ = writeln!(config, "{key} {}", config_path(value)?);
            Ok(())
        };
        line("certfile", &self.cert_chain)?;
        line("keyfile", &self.key)?;
        if let Some(ca) = &self.client_ca {
            line("cafile", ca)?;
        }
        if let Some(crl) = &self.crl {
            line("crlfile", crl)?;
        }
        let _ = writeln!(config, "require_certificate {}", self.client_ca.is_some());
        let _ = writeln!(
            config,
            "use_identity_as_username {}",
            self.use_identity_as_username
        );
        if let Some(version) = self.min_version {
            let _ = writeln!(config, "tls_version {}", version.config_value());
        }
        Ok(())
    }
}

/// What a listener speaks, to find its port on the running broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ListenerKind {
    /// Plain MQTT over TCP.
    Plain,
    /// TLS, server authentication only.
    Tls,
    /// TLS with a required client certificate.
    MutualTls,
}

#[derive(Debug, Clone)]
enum ListenerSpec {
    Plain,
    Tls(TlsListener),
}

impl ListenerSpec {
    fn kind(&self) -> ListenerKind {
        match self {
            Self::Plain => ListenerKind::Plain,
            Self::Tls(tls) => tls.kind(),
        }
    }
}

/// Builder for a [`Mosquitto`] broker.
///
/// Defaults follow mosquitto 2.0: anonymous clients are refused unless
/// [`MosquittoBuilder::allow_anonymous`] says otherwise. Settings that
/// mosquitto keeps global (`allow_anonymous`, `password_file`, `acl_file`)
/// apply to every listener.
#[derive(Debug, Clone)]
pub struct MosquittoBuilder {
    listeners: Vec<ListenerSpec>,
    allow_anonymous: bool,
    passwords: Option<PasswordFile>,
    acl: Option<String>,
    extra_lines: Vec<String>,
    plugins: Vec<(PathBuf, Vec<(String, String)>)>,
    start_timeout: Duration,
    max_tls: Option<TlsVersion>,
}

impl MosquittoBuilder {
    /// Caps the TLS version of every listener (mosquitto 2.0 has only a
    /// minimum per listener): set through an OpenSSL configuration of the
    /// broker process (`OPENSSL_CONF` with `MaxProtocol`), to test clients
    /// against a broker that cannot speak TLS 1.3.
    pub fn max_tls_version(mut self, version: TlsVersion) -> Self {
        self.max_tls = Some(version);
        self
    }

    /// Adds a plain TCP listener.
    pub fn plain_listener(mut self) -> Self {
        self.listeners.push(ListenerSpec::Plain);
        self
    }

    /// Adds a TLS or mTLS listener.
    pub fn tls_listener(mut self, listener: TlsListener) -> Self {
        self.listeners.push(ListenerSpec::Tls(listener));
        self
    }

    /// Lets clients connect without a user name (default false, as in
    /// mosquitto 2.0).
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = allow;
        self
    }

    /// Sets the `password_file`.
    pub fn password_file(mut self, passwords: PasswordFile) -> Self {
        self.passwords = Some(passwords);
        self
    }

    /// Sets the `acl_file` contents, in mosquitto's ACL syntax.
    pub fn acl_file(mut self, contents: &str) -> Self {
        self.acl = Some(contents.to_owned());
        self
    }

    /// Loads a plugin (mosquitto's `plugin` line) with its options (each a
    /// `plugin_opt_<key> <value>` line), after the other global settings:
    /// for example the mqtt-sec-mosquitto library with
    /// `[("config", path)]`. A plugin whose init fails makes
    /// [`MosquittoBuilder::start`] fail with [`Error::BrokerExited`] and
    /// the broker's reason.
    pub fn plugin<K: Into<String>, V: Into<String>>(
        mut self,
        library: impl Into<PathBuf>,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let options = options
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.plugins.push((library.into(), options));
        self
    }

    /// Appends a raw line to the global part of the configuration, for
    /// options this builder does not cover.
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra_lines.push(line.to_owned());
        self
    }

    /// How long to wait for the broker to accept connections (default 15 s).
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Starts mosquitto and waits until it has logged that it runs and every
    /// listener accepts TCP connections.
    ///
    /// # Errors
    /// [`Error::ToolMissing`] without mosquitto (or without
    /// `mosquitto_passwd` when users must be hashed); [`Error::BrokerExited`]
    /// when mosquitto rejects the configuration, with its reason;
    /// [`Error::Timeout`] when it never listens; [`Error::InvalidRequest`] for
    /// a builder with no listener or inconsistent options.
    pub fn start(&self) -> Result<Mosquitto> {
        if self.listeners.is_empty() {
            return Err(Error::InvalidRequest(
                "a broker needs at least one listener".into(),
            ));
        }
        let binary = MOSQUITTO.locate()?;
        let mut attempt = 1;
        loop {
            match self.start_once(&binary) {
                Err(Error::BrokerExited { output, .. })
                    if attempt < START_ATTEMPTS && output.contains("Address already in use") =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(&self, binary: &Path) -> Result<Mosquitto> {
        let dir = tempfile::Builder::new()
            .prefix("mqtt-sec-mosquitto-")
            .tempdir()
            .map_err(|e| Error::io("creating the broker directory", std::env::temp_dir(), e))?;
        let ports = free_ports(self.listeners.len())?;
        let password_path = dir.path().join("passwords");
        let acl_path = dir.path().join("acl");
        let log_path = dir.path().join("mosquitto.log");
        let output_path = dir.path().join("output.log");
        let config_path = dir.path().join("mosquitto.conf");

        let mut config = String::new();
        let _ = writeln!(config, "per_listener_settings false");
        let _ = writeln!(config, "allow_anonymous {}", self.allow_anonymous);
        let _ = writeln!(config, "persistence false");
        if is_root() {
            // mosquitto started as root drops to the `mosquitto` user, which
            // cannot read this directory; staying root is what a test wants.
            let _ = writeln!(config, "user root");
        }
        let _ = writeln!(config, "log_dest file {}", self::config_path(&log_path)?);
        let _ = writeln!(config, "log_type all");
        let _ = writeln!(config, "connection_messages true");
        if let Some(passwords) = &self.passwords {
            passwords.write(&password_path)?;
            let _ = writeln!(
                config,
                "password_file {}",
                self::config_path(&password_path)?
            );
        }
        if let Some(acl) = &self.acl {
            write_private_file(&acl_path, acl.as_bytes())?;
            let _ = writeln!(config, "acl_file {}", self::config_path(&acl_path)?);
        }
        for line in &self.extra_lines {
            let _ = writeln!(config, "{line}");
        }
        for (library, options) in &self.plugins {
            let _ = writeln!(config, "plugin {}", self::config_path(library)?);
            for (key, value) in options {
                if key.contains(char::is_whitespace) || value.contains(['\n', '\r']) {
                    return Err(Error::InvalidRequest(format!(
                        "plugin option {key:?} cannot be written to mosquitto.conf"
                    )));
                }
                let _ = writeln!(config, "plugin_opt_{key} {value}");
            }
        }
        let mut listeners = Vec::with_capacity(self.listeners.len());
        for (spec, port) in self.listeners.iter().zip(ports) {
            let _ = writeln!(config, "\nlistener {port} {HOST}");
            if let ListenerSpec::Tls(tls) = spec {
                tls.render(&mut config)?;
            }
            listeners.push((spec.kind(), port));
        }
        write_file(&config_path, config.as_bytes())?;

        let output = File::create(&output_path)
            .map_err(|e| Error::io("creating the broker output file", &output_path, e))?;
        let output_err = output
            .try_clone()
            .map_err(|e| Error::io("creating the broker output file", &output_path, e))?;
        let mut command = Command::new(binary);
        if let Some(version) = self.max_tls {
            let protocol = match version {
                TlsVersion::Tls12 => "TLSv1.2",
                TlsVersion::Tls13 => "TLSv1.3",
            };
            let openssl_conf = dir.path().join("openssl.cnf");
            let text = format!(
                "openssl_conf = mqtt_sec_conf\n[mqtt_sec_conf]\nssl_conf = mqtt_sec_ssl\n\
                 [mqtt_sec_ssl]\nsystem_default = mqtt_sec_tls\n[mqtt_sec_tls]\nMaxProtocol = {protocol}\n"
            );
            write_file(&openssl_conf, text.as_bytes())?;
            command.env("OPENSSL_CONF", &openssl_conf);
        }
        let child = command
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .map_err(|e| Error::io("starting mosquitto", binary, e))?;
        let mut broker = Mosquitto {
            child,
            listeners,
            password_path: self.passwords.as_ref().map(|_| password_path),
            acl_path: self.acl.as_ref().map(|_| acl_path),
            log_path,
            output_path,
            config,
            dir,
        };
        broker.wait_until_listening(self.start_timeout)?;
        Ok(broker)
    }
}

/// A running mosquitto broker on loopback, killed when dropped.
///
/// ```
/// use mqtt_sec_testkit::{Mosquitto, or_skip};
///
/// // Skips (with the reason on stderr) where mosquitto is not installed,
/// // fails under CI=true.
/// let Some(broker) = or_skip(Mosquitto::builder().plain_listener().allow_anonymous(true).start())
/// else {
///     return Ok(());
/// };
/// let port = broker.plain_port().expect("a plain listener was configured");
/// std::net::TcpStream::connect((broker.host(), port))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    listeners: Vec<(ListenerKind, u16)>,
    password_path: Option<PathBuf>,
    acl_path: Option<PathBuf>,
    log_path: PathBuf,
    output_path: PathBuf,
    config: String,
    // Last, so the files outlive the process during drop.
    dir: TempDir,
}

impl Mosquitto {
    /// A builder with no listener yet.
    pub fn builder() -> MosquittoBuilder {
        MosquittoBuilder {
            listeners: Vec::new(),
            allow_anonymous: false,
            passwords: None,
            acl: None,
            extra_lines: Vec::new(),
            plugins: Vec::new(),
            start_timeout: Duration::from_secs(15),
            max_tls: None,
        }
    }

    /// The host every listener binds: `127.0.0.1`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Every listener's kind and port, in the order they were added.
    pub fn listeners(&self) -> &[(ListenerKind, u16)] {
        &self.listeners
    }

    /// Port of the first listener of a kind.
    pub fn port(&self, kind: ListenerKind) -> Option<u16> {
        self.listeners
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, port)| *port)
    }

    /// Port of the first plain listener.
    pub fn plain_port(&self) -> Option<u16> {
        self.port(ListenerKind::Plain)
    }

    /// Port of the first TLS listener without client certificates.
    pub fn tls_port(&self) -> Option<u16> {
        self.port(ListenerKind::Tls)
    }

    /// Port of the first listener that requires client certificates.
    pub fn mtls_port(&self) -> Option<u16> {
        self.port(ListenerKind::MutualTls)
    }

    /// The generated `mosquitto.conf`, for failure messages.
    pub fn config(&self) -> &str {
        &self.config
    }

    /// The directory holding the configuration, log and secrets files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Everything the broker logged so far (`log_type all`), with what it
    /// printed on stdout and stderr.
    pub fn log(&self) -> String {
        let read = |path: &Path| fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
        let mut log = read(&self.output_path).unwrap_or_default();
        log.push_str(&read(&self.log_path).unwrap_or_default());
        log
    }

    /// Waits until the log contains `needle`, for things the broker does
    /// asynchronously (such as logging a denied publish).
    ///
    /// # Errors
    /// [`Error::Timeout`] with the log when `needle` never appears.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.wait_until(timeout, &format!("log {needle:?}"), |log| {
            log.contains(needle)
        })
    }

    /// Replaces the ACL file and makes the broker reload it.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the broker was started without an ACL
    /// file; otherwise as [`Mosquitto::reload`].
    pub fn set_acl(&self, contents: &str) -> Result<()> {
        let path = self.acl_path.as_deref().ok_or_else(|| {
            Error::InvalidRequest("the broker was started without acl_file".into())
        })?;
        write_private_file(path, contents.as_bytes())?;
        self.reload()
    }

    /// Replaces the password file and makes the broker reload it.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when the broker was started without a
    /// password file; otherwise as [`Mosquitto::reload`].
    pub fn set_passwords(&self, passwords: &PasswordFile) -> Result<()> {
        let path = self.password_path.as_deref().ok_or_else(|| {
            Error::InvalidRequest("the broker was started without password_file".into())
        })?;
        passwords.write(path)?;
        self.reload()
    }

    /// Sends SIGHUP and waits until the broker has logged that it reloads its
    /// configuration. mosquitto reloads in its single event loop, so every
    /// connection or packet handled after this returns sees the new password,
    /// ACL and CRL files.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the broker does not log the reload within 10 s;
    /// [`Error::Io`] when the signal cannot be sent.
    pub fn reload(&self) -> Result<()> {
        let before = self.log().matches(RELOAD_MARKER).count();
        self.send_sighup()?;
        self.wait_until(Duration::from_secs(10), "reload after SIGHUP", |log| {
            log.matches(RELOAD_MARKER).count() > before
        })
    }

    #[cfg(unix)]
    fn send_sighup(&self) -> Result<()> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let pid = i32::try_from(self.child.id())
            .map_err(|_| Error::InvalidRequest("broker pid out of range".into()))?;
        kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|errno| {
            Error::io(
                "sending SIGHUP to mosquitto",
                self.config_path(),
                errno.into(),
            )
        })
    }

    #[cfg(not(unix))]
    fn send_sighup(&self) -> Result<()> {
        Err(Error::InvalidRequest(
            "reloading mosquitto needs SIGHUP, which only Unix has".into(),
        ))
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.conf")
    }

    fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&str) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if done(&log) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: what.to_owned(),
                    log,
                });
            }
            std::thread::sleep(POLL);
        }
    }

    fn wait_until_listening(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pending: Vec<u16> = self.listeners.iter().map(|(_, port)| *port).collect();
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .map_err(|e| Error::io("checking on mosquitto", self.config_path(), e))?
            {
                return Err(Error::BrokerExited {
                    status: status.to_string(),
                    output: self.log(),
                });
            }
            if logged_running(&self.log()) {
                pending.retain(|port| {
                    let addr = SocketAddr::from((HOST, *port));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
                });
                if pending.is_empty() {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("listen on ports {pending:?}"),
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        // Already exited is fine; there is nothing else to do on failure.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Ports the OS reports free on loopback. All are held open together so
/// they differ; the broker binds them right after they are released.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    let sockets = (0..count)
        .map(|_| TcpListener::bind((HOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io("finding a free loopback port", "127.0.0.1:0", e))?;
    sockets
        .iter()
        .map(|s| s.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(|e| Error::io("finding a free loopback port", "127.0.0.1:0", e))
}

/// A path as mosquitto's configuration parser takes it: it splits values at
/// white space, so such paths are refused rather than silently truncated.
fn config_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::InvalidRequest(format!("path {} is not UTF-8", path.display())))?;
    if text.chars().any(char::is_whitespace) {
        return Err(Error::InvalidRequest(format!(
            "mosquitto cannot read the path {text:?}, which contains white space; \
             set TMPDIR to a directory without spaces"
        )));
    }
    Ok(text.to_owned())
}

#[cfg(unix)]
fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

#[cfg(not(unix))]
fn is_root() -> bool {
    false
}
