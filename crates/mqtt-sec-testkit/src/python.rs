//! Running an interop script with Python packages from the registry (pycose,
//! PyJWT, cryptography, ...).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::tool::PYTHON;
use crate::{Error, Result};

/// A Python interop script and the modules it imports.
#[derive(Debug, Clone, Copy)]
pub struct PythonScript<'a> {
    path: &'a Path,
    modules: &'a [&'a str],
    install_hint: &'static str,
}

impl<'a> PythonScript<'a> {
    /// A script at `path` that needs `modules` importable; `install_hint` says
    /// how to get them (for example ``"`pip install pycose \"cbor2<6\"`"``).
    pub fn new(path: &'a Path, modules: &'a [&'a str], install_hint: &'static str) -> Self {
        Self {
            path,
            modules,
            install_hint,
        }
    }

    /// Runs the script with `args`, `stdin` as its standard input, and returns
    /// its standard output.
    ///
    /// # Errors
    /// [`Error::ToolMissing`] when `python3` or one of the modules is missing
    /// (so [`crate::or_skip`] skips locally and fails in CI);
    /// [`Error::ToolFailed`] when the script exits unsuccessfully.
    pub fn run(&self, args: &[&str], stdin: &str) -> Result<String> {
        let python = PYTHON.locate()?;
        let probe = Command::new(&python)
            .arg("-c")
            .arg(format!("import {}", self.modules.join(", ")))
            .output()
            .map_err(|e| Error::io("running python3", &python, e))?;
        if !probe.status.success() {
            return Err(Error::ToolMissing {
                tool: "python3 modules",
                hint: self.install_hint,
            });
        }
        let mut child = Command::new(&python)
            .arg(self.path)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::io("running a python script", self.path, e))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .map_err(|e| Error::io("writing to a python script", self.path, e))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| Error::io("running a python script", self.path, e))?;
        if !output.status.success() {
            return Err(Error::ToolFailed {
                tool: "python3",
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
