//! Files, standard streams and the one error type: input and usage problems
//! (exit status 2), each a single line that names the file.

use mqtt_sec_core::Chain;
use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

/// Largest input read from a file or standard input.
pub(crate) const MAX_INPUT: u64 = 16 * 1024 * 1024;

/// An input or usage error: exit status 2.
#[derive(Debug)]
pub(crate) struct CliError(String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the underlying message holds.
        f.write_str(&self.0.replace('\n', " "))
    }
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        CliError(message.into())
    }

    /// `PATH: message`.
    pub(crate) fn at(path: &Path, message: impl fmt::Display) -> Self {
        CliError(format!("{}: {message}", path.display()))
    }
}

/// Exit status 1: denied, invalid or failed verification.
pub(crate) fn failed() -> ExitCode {
    ExitCode::from(1)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| CliError::at(path, Chain(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_INPUT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::at(path, Chain(&e)))?;
    if bytes.len() as u64 > MAX_INPUT {
        return Err(CliError::at(path, format!("larger than {MAX_INPUT} bytes")));
    }
    Ok(bytes)
}

pub(crate) fn read_text(path: &Path) -> Result<String, CliError> {
    String::from_utf8(read_file(path)?).map_err(|_| CliError::at(path, "not UTF-8 text"))
}

/// A file, or standard input when `path` is `None`.
pub(crate) fn read_input(path: Option<&Path>) -> Result<Vec<u8>, CliError> {
    match path {
        Some(path) => read_file(path),
        None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .take(MAX_INPUT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| CliError::new(format!("standard input: {}", Chain(&e))))?;
            if bytes.len() as u64 > MAX_INPUT {
                return Err(CliError::new(format!(
                    "standard input: larger than {MAX_INPUT} bytes"
                )));
            }
            Ok(bytes)
        }
    }
}

/// The first line of standard input, without its line ending (a password).
pub(crate) fn read_stdin_line() -> Result<String, CliError> {
    let bytes = read_input(None)?;
    let text =
        String::from_utf8(bytes).map_err(|_| CliError::new("standard input: not UTF-8 text"))?;
    let line = text.lines().next().unwrap_or("");
    Ok(line.to_owned())
}

/// A file, or standard output when `path` is `None`.
pub(crate) fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<(), CliError> {
    match path {
        Some(path) => std::fs::write(path, bytes).map_err(|e| CliError::at(path, Chain(&e))),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)
                .and_then(|()| out.flush())
                .map_err(|e| CliError::new(format!("standard output: {}", Chain(&e))))
        }
    }
}

/// Writes a file readable by its owner only, through a temporary file and a
/// rename so that readers never see half of it. `create_new` refuses to
/// replace an existing file.
pub(crate) fn write_private(path: &Path, bytes: &[u8], create_new: bool) -> Result<(), CliError> {
    write_private_owned(path, bytes, create_new, None)
}

/// [`write_private`], the file given to `owner` (uid, gid) before it
/// appears under its name.
pub(crate) fn write_private_owned(
    path: &Path,
    bytes: &[u8],
    create_new: bool,
    owner: Option<(u32, u32)>,
) -> Result<(), CliError> {
    if create_new && path.exists() {
        return Err(CliError::at(path, "already exists; not overwritten"));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| CliError::at(path, "not a file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = options
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            #[cfg(unix)]
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
            #[cfg(not(unix))]
            let _ = owner;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(CliError::at(path, Chain(&e)));
    }
    Ok(())
}

/// Prints a JSON value on standard output.
pub(crate) fn print_json(value: &serde_json::Value) {
    println!("{value}");
}
