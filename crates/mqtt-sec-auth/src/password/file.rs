//! Whole mosquitto password files: one `user:hash` per line.

use std::fmt;

use secrecy::SecretString;

use super::hash::{HashParams, PasswordHash};
use crate::error::{PasswordError, PasswordFileError};

/// Largest password file accepted, in bytes.
pub const MAX_PASSWORD_FILE_LEN: usize = 16 * 1024 * 1024;
/// Longest user name mosquitto accepts.
const MAX_USERNAME_LEN: usize = 65_535;

/// The users of a mosquitto `password_file`, in file order.
///
/// Reading follows mosquitto 2.0: `#` comment lines and blank lines are
/// skipped, blanks around the user name and the hash are trimmed. Unlike
/// mosquitto, which skips lines it cannot use, every other problem is an
/// error naming its line, so a typo does not silently lock a user out.
/// `Debug` lists user names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PasswordFile {
    users: Vec<(String, PasswordHash)>,
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field(
                "users",
                &self
                    .users
                    .iter()
                    .map(|(u, _)| u.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl PasswordFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses a password file.
    ///
    /// # Errors
    /// [`PasswordFileError`] with the 1-based line number: a line without
    /// `:`, a user name [`PasswordFile::set`] would refuse (empty, too long,
    /// starting with `#`, holding a carriage return), a duplicate user, or a hash
    /// [`PasswordHash::parse`] refuses; or the whole file over 16 MiB.
    pub fn parse(text: &str) -> Result<Self, PasswordFileError> {
        if text.len() > MAX_PASSWORD_FILE_LEN {
            return Err(PasswordFileError::TooLarge {
                max: MAX_PASSWORD_FILE_LEN,
            });
        }
        let mut file = Self::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            if raw.starts_with('#') || raw.trim().is_empty() {
                continue;
            }
            let (user, hash) = raw.split_once(':').ok_or(PasswordFileError::Line {
                line,
                error: PasswordError::Fields,
            })?;
            let user = user.trim();
            // A name we could not write back (one starting with `#` after
            // leading blanks would come back as a comment) is refused.
            if !writable_user(user) {
                return Err(PasswordFileError::BadUser { line });
            }
            if file.get(user).is_some() {
                return Err(PasswordFileError::DuplicateUser {
                    line,
                    user: user.to_owned(),
                });
            }
            let hash = PasswordHash::parse(hash.trim())
                .map_err(|error| PasswordFileError::Line { line, error })?;
            file.users.push((user.to_owned(), hash));
        }
        Ok(file)
    }

    /// The hash of `user`.
    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.users.iter().find(|(u, _)| u == user).map(|(_, h)| h)
    }

    /// Whether `user` exists and `password` matches. An unknown user costs a
    /// verification against the first user's hash, so that timing does not
    /// tell which user names exist (when the file's hashes share parameters).
    ///
    /// Each decision is an audit event on `mqtt_sec::audit` with the user name
    /// (at most 256 bytes, escaped) and the reason; never the password.
    pub fn verify(&self, user: &str, password: &SecretString) -> bool {
        let (ok, reason) = match self.get(user) {
            Some(hash) if hash.verify(password) => (true, "password accepted"),
            Some(_) => (false, "wrong password"),
            None => {
                if let Some((_, hash)) = self.users.first() {
                    let _ = hash.verify(password);
                }
                (false, "unknown user")
            }
        };
        let shown = crate::audit::bounded(user);
        if ok {
            tracing::info!(target: "mqtt_sec::audit", user = ?shown, "password accepted");
        } else {
            tracing::warn!(target: "mqtt_sec::audit", user = ?shown, reason, "password rejected");
        }
        ok
    }

    /// Adds or replaces `user` with a new `$7$` hash of `password`.
    ///
    /// # Errors
    /// [`PasswordFileError::BadUser`] (line 0) for a user name that is empty,
    /// too long, or holds `:`, a line break or surrounding blanks;
    /// [`PasswordError::Random`] if no salt could be drawn.
    pub fn set(
        &mut self,
        user: &str,
        password: &SecretString,
        params: HashParams,
    ) -> Result<(), PasswordFileError> {
        if !writable_user(user) {
            return Err(PasswordFileError::BadUser { line: 0 });
        }
        let hash = PasswordHash::generate(password, params)
            .map_err(|error| PasswordFileError::Line { line: 0, error })?;
        match self.users.iter_mut().find(|(u, _)| u == user) {
            Some(entry) => entry.1 = hash,
            None => self.users.push((user.to_owned(), hash)),
        }
        Ok(())
    }

    /// Removes `user`; returns whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let before = self.users.len();
        self.users.retain(|(u, _)| u != user);
        self.users.len() != before
    }

    /// The user names, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.iter().map(|(u, _)| u.as_str())
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there is no user.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Whether `user` fits on a `user:hash` line and reads back as itself: not
/// empty, at most 65,535 bytes, no surrounding blanks, no leading `#` (a
/// comment), no `:` or line break.
fn writable_user(user: &str) -> bool {
    !user.is_empty()
        && user.len() <= MAX_USERNAME_LEN
        && user.trim() == user
        && !user.starts_with('#')
        && !user.contains([':', '\n', '\r'])
}

/// The file's text, one `user:hash` line per user, as mosquitto reads it.
impl fmt::Display for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.users
            .iter()
            .try_for_each(|(user, hash)| writeln!(f, "{user}:{hash}"))
    }
}
