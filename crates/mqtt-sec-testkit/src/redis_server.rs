//! A real `redis-server` on a free loopback port, in its own temporary
//! directory, for the tests of the Redis-backed stores: never a system
//! service, never shared between tests.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::pki::write_private_file;
use crate::tool::{REDIS_CLI, REDIS_SERVER};
use crate::{Error, IssuedCert, Result};

const HOST: &str = "127.0.0.1";
const POLL: Duration = Duration::from_millis(20);
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A user of Redis' ACL system (Redis 6 and later): its name, password and
/// rules (`~mqtt-sec:* +@all`), as `ACL SETUSER` takes them.
#[derive(Debug, Clone)]
struct AclUser {
    name: String,
    password: String,
    rules: String,
}

/// TLS for the server: its certificate and key, and the CA clients are told
/// to trust.
#[derive(Debug, Clone)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
    ca: PathBuf,
}

/// Builds a [`RedisServer`].
#[derive(Debug, Clone, Default)]
pub struct RedisServerBuilder {
    password: Option<String>,
    users: Vec<AclUser>,
    tls: Option<Tls>,
    cluster_node: bool,
}

impl RedisServerBuilder {
    /// Requires `password` of the default user (`requirepass`).
    #[must_use]
    pub fn password(mut self, password: &str) -> Self {
        self.password = Some(password.to_owned());
        self
    }

    /// Adds an ACL user with `password` and `rules` (for example
    /// `"~mqtt-sec:* +@all"`, or `"~other:* +@all"` for a user that may not
    /// touch the stores' keys).
    #[must_use]
    pub fn acl_user(mut self, name: &str, password: &str, rules: &str) -> Self {
        self.users.push(AclUser {
            name: name.to_owned(),
            password: password.to_owned(),
            rules: rules.to_owned(),
        });
        self
    }

    /// Serves TLS only (`rediss://`), with `server`'s certificate chain and
    /// key; clients verify it against `ca_file`. Client certificates are not
    /// asked for.
    #[must_use]
    pub fn tls(mut self, server: &IssuedCert, ca_file: &Path) -> Self {
        self.tls = Some(Tls {
            cert: server.chain_path().to_owned(),
            key: server.key_path().to_owned(),
            ca: ca_file.to_owned(),
        });
        self
    }

    /// Starts it as a node of a Redis Cluster (`cluster-enabled yes`), with
    /// no slots yet: [`crate::RedisCluster`] starts and joins the nodes.
    #[must_use]
    pub fn cluster_node(mut self) -> Self {
        self.cluster_node = true;
        self
    }

    /// Starts the server and waits until it answers.
    ///
    /// # Errors
    /// [`Error::ToolMissing`] without `redis-server` (give it to
    /// [`crate::or_skip`]); [`Error::BrokerExited`] or [`Error::Timeout`]
    /// when it does not come up.
    pub fn start(&self) -> Result<RedisServer> {
        let binary = REDIS_SERVER.locate()?;
        let dir = tempfile::Builder::new()
            .prefix("mqtt-sec-redis-")
            .tempdir()
            .map_err(|e| Error::io("creating the Redis directory", std::env::temp_dir(), e))?;
        let port = free_port()?;
        let mut config = String::new();
        let _ = writeln!(config, "bind {HOST}");
        let _ = writeln!(config, "dir {}", quoted(dir.path())?);
        let _ = writeln!(config, "logfile {}", quoted(&dir.path().join("redis.log"))?);
        // Nothing persisted: a restarted server starts empty, as one that
        // failed over without its data would.
        let _ = writeln!(config, "save \"\"");
        let _ = writeln!(config, "appendonly no");
        let _ = writeln!(config, "daemonize no");
        // DEBUG SLEEP makes a slow server for the timeout tests.
        let _ = writeln!(config, "enable-debug-command local");
        if self.cluster_node {
            let _ = writeln!(config, "cluster-enabled yes");
            let _ = writeln!(config, "cluster-config-file nodes.conf");
            let _ = writeln!(config, "cluster-node-timeout 2000");
        }
        if let Some(password) = &self.password {
            let _ = writeln!(config, "requirepass {}", word(password)?);
        }
        for user in &self.users {
            let _ = writeln!(
                config,
                "user {} on >{} {}",
                word(&user.name)?,
                word(&user.password)?,
                user.rules
            );
        }
        match &self.tls {
            Some(tls) => {
                let _ = writeln!(config, "port 0");
                let _ = writeln!(config, "tls-port {port}");
                let _ = writeln!(config, "tls-cert-file {}", quoted(&tls.cert)?);
                let _ = writeln!(config, "tls-key-file {}", quoted(&tls.key)?);
                let _ = writeln!(config, "tls-ca-cert-file {}", quoted(&tls.ca)?);
                let _ = writeln!(config, "tls-auth-clients no");
            }
            None => {
                let _ = writeln!(config, "port {port}");
            }
        }
        let config_path = dir.path().join("redis.conf");
        write_private_file(&config_path, config.as_bytes())?;
        let mut server = RedisServer {
            binary,
            child: None,
            port,
            password: self.password.clone(),
            tls_ca: self.tls.as_ref().map(|t| t.ca.clone()),
            config_path,
            dir,
        };
        server.spawn()?;
        Ok(server)
    }
}

/// A running `redis-server` on loopback, killed when dropped. Nothing is
/// persisted, so [`RedisServer::restart`] brings back an empty server on
/// the same port (what a failover without replication looks like).
///
/// ```
/// use mqtt_sec_testkit::{RedisServer, or_skip};
///
/// let Some(redis) = or_skip(RedisServer::builder().start()) else { return Ok(()) };
/// assert_eq!(redis.command(&["PING"])?, "PONG");
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// # Ok::<(), mqtt_sec_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    tls_ca: Option<PathBuf>,
    config_path: PathBuf,
    // Last, so the files outlive the process during drop.
    dir: TempDir,
}

impl RedisServer {
    /// A builder for a server without password or TLS.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// The loopback address it listens on.
    pub fn host(&self) -> &'static str {
        HOST
    }

    /// Its port (TLS only when built with [`RedisServerBuilder::tls`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of the default user: `redis://127.0.0.1:PORT/`, with the
    /// password when one is set, or `rediss://localhost:PORT/` with TLS
    /// (the name the test kit's server certificates carry).
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => self.url_as("default", password),
            None => format!("{}://{}:{}/", self.scheme(), self.url_host(), self.port),
        }
    }

    /// The URL of an ACL user.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        format!(
            "{}://{user}:{password}@{}:{}/",
            self.scheme(),
            self.url_host(),
            self.port
        )
    }

    /// The CA file a TLS client must trust, with TLS.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// Its directory (removed on drop).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.dir.path().join("redis.log")) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    /// Runs one command with `redis-cli` as the default user and returns
    /// its reply as `redis-cli` prints it to a pipe (`PONG`; an integer as
    /// its digits; nil as nothing), trimmed.
    ///
    /// # Errors
    /// [`Error::ToolMissing`] without `redis-cli`; [`Error::ToolFailed`]
    /// when it fails or the reply is a Redis error.
    pub fn command(&self, args: &[&str]) -> Result<String> {
        let port = self.port.to_string();
        let mut cli: Vec<&str> = vec!["-h", HOST, "-p", &port, "--no-auth-warning"];
        if let Some(password) = &self.password {
            cli.extend(["-a", password]);
        }
        let ca;
        if let Some(path) = &self.tls_ca {
            ca = path.to_string_lossy().into_owned();
            cli.extend(["--tls", "--cacert", &ca, "--sni", "localhost"]);
        }
        cli.extend(args);
        // -e: an error reply exits non-zero (Redis 7), so it is an error here.
        let output = REDIS_CLI.run(["-e"].iter().chain(&cli))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The milliseconds before `key` expires (`PTTL`: -1 without an
    /// expiry, -2 when there is no such key).
    ///
    /// # Errors
    /// As [`RedisServer::command`], and [`Error::ToolFailed`] for a reply
    /// that is not an integer.
    pub fn pttl_ms(&self, key: &str) -> Result<i64> {
        let reply = self.command(&["PTTL", key])?;
        reply.parse().map_err(|_| Error::ToolFailed {
            tool: "redis-cli",
            status: "0".into(),
            stderr: format!("PTTL {key} answered {reply:?}, not an integer"),
        })
    }

    /// Kills the server at once (SIGKILL: no shutdown, nothing saved), as a
    /// crash or a lost machine would. Clients see refused connections.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Already exited is fine.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a killed server again on the same port, empty.
    ///
    /// # Errors
    /// As [`RedisServerBuilder::start`].
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    fn scheme(&self) -> &'static str {
        if self.tls_ca.is_some() {
            "rediss"
        } else {
            "redis"
        }
    }

    fn url_host(&self) -> &'static str {
        if self.tls_ca.is_some() {
            "localhost"
        } else {
            HOST
        }
    }

    fn spawn(&mut self) -> Result<()> {
        let output_path = self.dir.path().join("output.log");
        let output = File::create(&output_path)
            .map_err(|e| Error::io("creating the Redis output file", &output_path, e))?;
        let output_err = output
            .try_clone()
            .map_err(|e| Error::io("creating the Redis output file", &output_path, e))?;
        let child = Command::new(&self.binary)
            .arg(&self.config_path)
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .map_err(|e| Error::io("starting redis-server", &self.binary, e))?;
        self.child = Some(child);
        self.wait_until_ready()
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child
                    .try_wait()
                    .map_err(|e| Error::io("checking on redis-server", &self.config_path, e))?
            {
                let mut output = String::new();
                if let Ok(mut file) = File::open(self.dir.path().join("output.log")) {
                    let _ = file.read_to_string(&mut output);
                }
                return Err(Error::BrokerExited {
                    status: status.to_string(),
                    output: format!("{output}{}", self.log()),
                });
            }
            if self.log().contains("Ready to accept connections") && self.answers() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("redis-server to accept connections on port {}", self.port),
                    log: self.log(),
                });
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the port takes connections (a TLS port is not spoken to).
    fn answers(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
            return false;
        };
        if self.tls_ca.is_some() {
            return true;
        }
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let mut reply = [0u8; 1];
        // PING answers +PONG, or -NOAUTH with a password: either way a reply.
        stream.write_all(b"PING\r\n").is_ok() && stream.read(&mut reply).is_ok_and(|n| n == 1)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port the OS reports free on loopback.
fn free_port() -> Result<u16> {
    TcpListener::bind((HOST, 0))
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::io("finding a free loopback port", "127.0.0.1:0", e))
}

/// A path as a quoted `redis.conf` argument.
fn quoted(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| Error::InvalidRequest(format!("path {} is not UTF-8", path.display())))?;
    if text.contains(['"', '\\', '\n', '\r']) {
        return Err(Error::InvalidRequest(format!(
            "redis.conf cannot take the path {text:?}"
        )));
    }
    Ok(format!("\"{text}\""))
}

/// A user name or password as one bare `redis.conf` word.
fn word(text: &str) -> Result<&str> {
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'') {
        return Err(Error::InvalidRequest(format!(
            "{text:?} cannot be written to redis.conf as one word"
        )));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{CertSpec, TestPki, or_skip};

    #[test]
    fn a_server_answers_and_comes_back_empty_after_a_kill() {
        let Some(mut redis) = or_skip(RedisServer::builder().start()) else {
            return;
        };
        assert_eq!(redis.command(&["SET", "k", "v"]).unwrap(), "OK");
        assert_eq!(redis.command(&["GET", "k"]).unwrap(), "v");
        redis.kill();
        assert!(!redis.is_running());
        assert!(TcpStream::connect((HOST, redis.port())).is_err());
        redis.restart().unwrap();
        assert!(redis.is_running());
        assert_eq!(redis.command(&["GET", "k"]).unwrap(), "");
        assert!(redis.command(&["NOSUCHCOMMAND"]).is_err());
    }

    #[test]
    fn passwords_acl_users_and_tls_are_enforced() {
        let Some(redis) = or_skip(
            RedisServer::builder()
                .password("s3cret")
                .acl_user("verifier", "v3rifier", "~mqtt-sec:* +@all")
                .start(),
        ) else {
            return;
        };
        assert_eq!(redis.command(&["PING"]).unwrap(), "PONG");
        assert!(redis.url().contains("default:s3cret@"));
        assert!(
            redis
                .url_as("verifier", "v3rifier")
                .contains("verifier:v3rifier@")
        );
        // The ACL user exists with its key pattern.
        let users = redis.command(&["ACL", "LIST"]).unwrap();
        assert!(
            users.contains("user verifier on") && users.contains("~mqtt-sec:*"),
            "{users}"
        );
        // Without the password: refused.
        let mut stream = TcpStream::connect((HOST, redis.port())).unwrap();
        stream.write_all(b"GET k\r\n").unwrap();
        let mut reply = [0u8; 7];
        stream.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"-NOAUTH");

        let mut pki = TestPki::new().unwrap();
        let server = pki.issue(&CertSpec::localhost_server("redis")).unwrap();
        let Some(tls) = or_skip(
            RedisServer::builder()
                .tls(&server, pki.root().cert_path())
                .start(),
        ) else {
            return;
        };
        assert!(tls.url().starts_with("rediss://localhost:"));
        assert_eq!(tls.command(&["PING"]).unwrap(), "PONG");
    }
}
