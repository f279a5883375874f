//! mosquitto password files, hashed by the real `mosquitto_passwd`.

use std::fmt;
use std::path::Path;

use crate::pki::write_private_file;
use crate::tool::MOSQUITTO_PASSWD;
use crate::{Error, Result};

/// The users of a mosquitto `password_file`.
///
/// Users added with [`PasswordFile::user`] are hashed by `mosquitto_passwd`
/// itself, so the broker reads exactly what its own tool writes. Lines added
/// with [`PasswordFile::raw_line`] are written unchanged: that is how a test
/// hands the broker hashes made by the code under test.
///
/// `Debug` lists the user names only.
#[derive(Clone, Default)]
pub struct PasswordFile {
    plain: Vec<(String, String)>,
    raw: Vec<String>,
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let users: Vec<&str> = self
            .plain
            .iter()
            .map(|(user, _)| user.as_str())
            .chain(
                self.raw
                    .iter()
                    .map(|line| line.split(':').next().unwrap_or_default()),
            )
            .collect();
        f.debug_struct("PasswordFile")
            .field("users", &users)
            .finish_non_exhaustive()
    }
}

impl PasswordFile {
    /// An empty file: every password is wrong.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a user whose password `mosquitto_passwd` will hash.
    pub fn user(mut self, username: &str, password: &str) -> Self {
        self.plain.push((username.to_owned(), password.to_owned()));
        self
    }

    /// Adds a line written as is, such as `alice:$7$101$...`.
    pub fn raw_line(mut self, line: &str) -> Self {
        self.raw.push(line.to_owned());
        self
    }

    /// Writes the file: plaintext users hashed with `mosquitto_passwd -U`,
    /// then the raw lines. (Interop tests read it back to check that their
    /// code verifies what mosquitto's own tool writes.)
    ///
    /// # Errors
    /// [`Error::ToolMissing`] without `mosquitto_passwd`; I/O errors; a user
    /// name or password with a character the file format cannot hold.
    pub fn write(&self, path: &Path) -> Result<()> {
        for (user, password) in &self.plain {
            check_field("user name", user, true)?;
            check_field("password", password, false)?;
        }
        for line in &self.raw {
            check_field("raw password line", line, false)?;
        }
        let mut contents = String::new();
        if !self.plain.is_empty() {
            let scratch = path.with_extension("plain");
            let plain: String = self
                .plain
                .iter()
                .map(|(user, password)| format!("{user}:{password}\n"))
                .collect();
            write_private_file(&scratch, plain.as_bytes())?;
            let hashed = MOSQUITTO_PASSWD.run([std::ffi::OsStr::new("-U"), scratch.as_os_str()]);
            let read = hashed.and_then(|_| {
                std::fs::read_to_string(&scratch)
                    .map_err(|e| Error::io("reading the hashed password file", &scratch, e))
            });
            // The scratch file held plaintext passwords: remove it even on error.
            let removed = std::fs::remove_file(&scratch);
            contents = read?;
            removed.map_err(|e| Error::io("removing the plaintext password file", &scratch, e))?;
        }
        for line in &self.raw {
            contents.push_str(line);
            contents.push('\n');
        }
        write_private_file(path, contents.as_bytes())
    }
}

fn check_field(what: &str, value: &str, is_user: bool) -> Result<()> {
    let bad_char = value
        .chars()
        .any(|c| c == '\n' || c == '\r' || c == '\0' || (is_user && c == ':'));
    if value.is_empty() || bad_char {
        return Err(Error::InvalidRequest(format!(
            "a password file {what} must be non-empty and contain no newline or NUL{}",
            if is_user { " or ':'" } else { "" }
        )));
    }
    Ok(())
}
