//! Finding and running the external programs the test kit drives.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Error, Result};

/// An external program: its name, the environment variable that may point at
/// it, and where distributions put it when it is not on `PATH` (Debian puts
/// `mosquitto` in `/usr/sbin`, which is not on every user's `PATH`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    env_var: &'static str,
    extra_dirs: &'static [&'static str],
    hint: &'static str,
}

const SBIN_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/opt/homebrew/sbin",
    "/sbin",
];

pub(crate) const MOSQUITTO: Tool = Tool {
    name: "mosquitto",
    env_var: "MQTT_SEC_MOSQUITTO",
    extra_dirs: SBIN_DIRS,
    hint: "install it (Debian/Ubuntu: `apt-get install -y mosquitto`, macOS: `brew install mosquitto`) or set MQTT_SEC_MOSQUITTO to the binary",
};

pub(crate) const MOSQUITTO_PASSWD: Tool = Tool {
    name: "mosquitto_passwd",
    env_var: "MQTT_SEC_MOSQUITTO_PASSWD",
    extra_dirs: SBIN_DIRS,
    hint: "it ships with mosquitto (Debian/Ubuntu: `apt-get install -y mosquitto`) or set MQTT_SEC_MOSQUITTO_PASSWD to the binary",
};

pub(crate) const OPENSSL: Tool = Tool {
    name: "openssl",
    env_var: "MQTT_SEC_OPENSSL",
    extra_dirs: &[],
    hint: "install it (Debian/Ubuntu: `apt-get install -y openssl`) or set MQTT_SEC_OPENSSL to the binary",
};

pub(crate) const SOFTHSM2_UTIL: Tool = Tool {
    name: "softhsm2-util",
    env_var: "MQTT_SEC_SOFTHSM2_UTIL",
    extra_dirs: &[],
    hint: "install SoftHSM 2 (Debian/Ubuntu: `apt-get install -y softhsm2`) or set MQTT_SEC_SOFTHSM2_UTIL to the binary",
};

pub(crate) const REDIS_SERVER: Tool = Tool {
    name: "redis-server",
    env_var: "MQTT_SEC_REDIS_SERVER",
    extra_dirs: SBIN_DIRS,
    hint: "install it (Debian/Ubuntu: `apt-get install -y redis-server`, macOS: `brew install redis`) or set MQTT_SEC_REDIS_SERVER to the binary",
};

pub(crate) const REDIS_CLI: Tool = Tool {
    name: "redis-cli",
    env_var: "MQTT_SEC_REDIS_CLI",
    extra_dirs: &[],
    hint: "it ships with Redis (Debian/Ubuntu: `apt-get install -y redis-tools`) or set MQTT_SEC_REDIS_CLI to the binary",
};

pub(crate) const PYTHON: Tool = Tool {
    name: "python3",
    env_var: "MQTT_SEC_PYTHON",
    extra_dirs: &[],
    hint: "install Python 3 (Debian/Ubuntu: `apt-get install -y python3 python3-pip`) or set MQTT_SEC_PYTHON to the interpreter",
};

impl Tool {
    /// The program's path: the environment override, then `PATH`, then the
    /// extra directories.
    pub(crate) fn locate(&self) -> Result<PathBuf> {
        if let Some(path) = std::env::var_os(self.env_var).filter(|p| !p.is_empty()) {
            let path = PathBuf::from(path);
            return if is_executable(&path) {
                Ok(path)
            } else {
                Err(self.missing())
            };
        }
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        path_dirs
            .iter()
            .map(PathBuf::as_path)
            .chain(self.extra_dirs.iter().map(Path::new))
            .map(|dir| dir.join(self.name))
            .find(|candidate| is_executable(candidate))
            .ok_or_else(|| self.missing())
    }

    /// Runs the program to completion and returns its output, or
    /// [`Error::ToolFailed`] when it exits unsuccessfully.
    pub(crate) fn run<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_with_env(args, &[])
    }

    /// [`Tool::run`] with extra environment variables.
    pub(crate) fn run_with_env<I, S>(&self, args: I, env: &[(&str, &OsStr)]) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let path = self.locate()?;
        let output = Command::new(&path)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .map_err(|e| Error::io("running an external tool", &path, e))?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(Error::ToolFailed {
                tool: self.name,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }

    /// Runs the program to completion and returns its output whatever its
    /// exit status (for verdicts such as `openssl verify`'s).
    pub(crate) fn output<I, S>(&self, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let path = self.locate()?;
        Command::new(&path)
            .args(args)
            .output()
            .map_err(|e| Error::io("running an external tool", &path, e))
    }

    pub(crate) fn missing(&self) -> Error {
        Error::ToolMissing {
            tool: self.name,
            hint: self.hint,
        }
    }
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}
