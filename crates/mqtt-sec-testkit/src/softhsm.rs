//! SoftHSM 2 tokens for the PKCS#11 tests, in a temporary directory with
//! their own `SOFTHSM2_CONF`, so no test depends on system state.
//!
//! SoftHSM reads `SOFTHSM2_CONF` from the environment when a process
//! initialises the module, once per process, and changing the environment
//! of a running multi-threaded test is unsound. So each test that uses a
//! token runs in a child process: [`SoftHsm::isolated`] called in the test
//! makes the token, runs the same test again in a child process of the
//! test binary with the environment set, and reports the child's result;
//! in the child it returns the token.
//!
//! ```no_run
//! # use mqtt_sec_testkit::{SoftHsm, or_skip};
//! #[test]
//! fn signs_in_the_token() {
//!     let Some(Some(hsm)) = or_skip(SoftHsm::isolated("signs_in_the_token")) else {
//!         return; // skipped, or the child ran the test and passed
//!     };
//!     // In the child: hsm.uri(), hsm.module(), hsm.pin_file(), ...
//! }
//! ```

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Error, Result, tool};

/// The token's label.
pub const TOKEN_LABEL: &str = "mqtt-sec-test";
/// The user PIN of the token.
pub const USER_PIN: &str = "246810";
/// The security officer's PIN.
pub const SO_PIN: &str = "13579111";

/// Set in the child process: the directory of its SoftHSM.
const CHILD_ENV: &str = "MQTT_SEC_TESTKIT_SOFTHSM_DIR";

/// Where distributions install the SoftHSM 2 module.
const MODULE_PATHS: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// An initialised SoftHSM token: its module, label, PINs and the files
/// that hold them.
#[derive(Debug)]
pub struct SoftHsm {
    dir: PathBuf,
    module: PathBuf,
    /// Removes the directory when the parent is done.
    _owned: Option<tempfile::TempDir>,
}

impl SoftHsm {
    /// In the test process: makes a token and runs `test_name` (the name
    /// libtest knows it by, `module::name` in unit tests) in a child process
    /// that sees it, returning `Ok(None)` when the child passed and an
    /// error with its output when it failed. In that child: the token.
    ///
    /// # Errors
    /// [`Error::ToolMissing`] without SoftHSM; [`Error::ToolFailed`] when
    /// the token cannot be made or the child test fails.
    pub fn isolated(test_name: &str) -> Result<Option<Self>> {
        if let Some(hsm) = Self::in_child()? {
            return Ok(Some(hsm));
        }
        let hsm = Self::create()?;
        let exe =
            std::env::current_exe().map_err(|e| Error::io("finding", "the test binary", e))?;
        let output = Command::new(&exe)
            .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
            .env("SOFTHSM2_CONF", hsm.conf())
            .env(CHILD_ENV, &hsm.dir)
            .output()
            .map_err(|e| Error::io("running the test in a child", &exe, e))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        // libtest exits 0 when the filter matched nothing: make sure the
        // child ran exactly this test.
        let ran = stdout.contains("running 1 test") && stdout.contains("test result: ok. 1 passed");
        if output.status.success() && ran {
            return Ok(None);
        }
        Err(Error::ToolFailed {
            tool: "the test in a SoftHSM child process",
            status: output.status.to_string(),
            stderr: format!("{stdout}{}", String::from_utf8_lossy(&output.stderr)),
        })
    }

    /// For a benchmark or program with its own `main`: in the first
    /// process, makes the token and runs the same executable again with the
    /// same arguments in a child process that sees it (its output is the
    /// parent's), returning `Ok(None)` when it succeeded; in that child,
    /// the token.
    ///
    /// # Errors
    /// As [`SoftHsm::isolated`].
    pub fn rerun_with_token() -> Result<Option<Self>> {
        if let Some(hsm) = Self::in_child()? {
            return Ok(Some(hsm));
        }
        let hsm = Self::create()?;
        let exe = std::env::current_exe().map_err(|e| Error::io("finding", "the executable", e))?;
        let status = Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env("SOFTHSM2_CONF", hsm.conf())
            .env(CHILD_ENV, &hsm.dir)
            .status()
            .map_err(|e| Error::io("running in a child", &exe, e))?;
        if status.success() {
            return Ok(None);
        }
        Err(Error::ToolFailed {
            tool: "the SoftHSM child process",
            status: status.to_string(),
            stderr: String::new(),
        })
    }

    /// The token of the parent, when this is its child process.
    fn in_child() -> Result<Option<Self>> {
        let Some(dir) = std::env::var_os(CHILD_ENV) else {
            return Ok(None);
        };
        Ok(Some(Self {
            dir: PathBuf::from(dir),
            module: module()?,
            _owned: None,
        }))
    }

    fn create() -> Result<Self> {
        let module = module()?;
        let owned = tempfile::Builder::new()
            .prefix("mqtt-sec-softhsm-")
            .tempdir()
            .map_err(|e| Error::io("creating", "a SoftHSM directory", e))?;
        let dir = owned.path().to_owned();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).map_err(|e| Error::io("creating", &tokens, e))?;
        let hsm = Self {
            dir,
            module,
            _owned: Some(owned),
        };
        let conf = format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            tokens.display()
        );
        write(&hsm.conf(), conf.as_bytes())?;
        write(&hsm.pin_file(), format!("{USER_PIN}\n").as_bytes())?;
        let conf_path = hsm.conf();
        tool::SOFTHSM2_UTIL.run_with_env(
            [
                "--init-token",
                "--free",
                "--label",
                TOKEN_LABEL,
                "--pin",
                USER_PIN,
                "--so-pin",
                SO_PIN,
            ],
            &[("SOFTHSM2_CONF", conf_path.as_os_str())],
        )?;
        Ok(hsm)
    }

    /// The PKCS#11 module (`libsofthsm2.so`).
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// The configuration file `SOFTHSM2_CONF` names.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// A file holding the user PIN (one line).
    pub fn pin_file(&self) -> PathBuf {
        self.dir.join("user-pin")
    }

    /// A scratch directory beside the token, removed with it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `pkcs11:token=...?module-path=...&pin-source=file:...`: the token,
    /// with no object yet (append `;object=NAME` before the `?`).
    pub fn token_uri(&self) -> String {
        format!(
            "pkcs11:token={TOKEN_LABEL}?module-path={}&pin-source=file:{}",
            self.module.display(),
            self.pin_file().display()
        )
    }

    /// The URI of the private key labelled `object` in the token.
    pub fn key_uri(&self, object: &str) -> String {
        format!(
            "pkcs11:token={TOKEN_LABEL};object={object};type=private?module-path={}&pin-source=file:{}",
            self.module.display(),
            self.pin_file().display()
        )
    }

    /// Runs `softhsm2-util` against this token's configuration.
    ///
    /// # Errors
    /// As [`SoftHsm::isolated`].
    pub fn util<I, S>(&self, args: I) -> Result<std::process::Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let conf = self.conf();
        tool::SOFTHSM2_UTIL.run_with_env(args, &[("SOFTHSM2_CONF", conf.as_os_str())])
    }
}

/// The SoftHSM module: `MQTT_SEC_SOFTHSM_MODULE`, then the usual places.
fn module() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("MQTT_SEC_SOFTHSM_MODULE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    MODULE_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| tool::SOFTHSM2_UTIL.missing())
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}
