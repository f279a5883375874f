//! Whole mosquitto password files: one `user:hash` per line.

use std::collections::HashMap;
use std::fmt;

use secrecy::SecretString;

use super::hash::{HashParams, HashPolicy, PasswordHash};
use crate::error::{PasswordError, PasswordFileError};

/// Largest password file accepted, in bytes.
pub(crate) const MAX_PASSWORD_FILE_LEN: usize = 16 * 1024 * 1024;
/// Longest user name mosquitto accepts.
const MAX_USERNAME_LEN: usize = 65_535;

/// The users of a mosquitto `password_file`, in file order.
///
/// Reading follows mosquitto 2.0: `#` comment lines and blank lines are
/// skipped, blanks around the user name and the hash are trimmed. Unlike
/// mosquitto, which skips lines it cannot use, every other problem is an
/// error naming its line, so a typo does not silently lock a user out.
/// Loading and lookups cost the same per user however many there are.
/// `Debug` lists user names only.
#[derive(Clone, Default)]
pub struct PasswordFile {
    users: Vec<(String, PasswordHash)>,
    /// Position of each user in `users`.
    index: HashMap<String, usize>,
    /// What an unknown user's login is checked against, so that it costs
    /// what most users' logins cost (see [`PasswordFile::verify`]).
    decoy: Option<PasswordHash>,
}

impl PartialEq for PasswordFile {
    fn eq(&self, other: &Self) -> bool {
        self.users == other.users
    }
}

impl Eq for PasswordFile {}

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

    /// Parses a password file, with the default [`HashPolicy`].
    ///
    /// # Errors
    /// [`PasswordFileError`] with the 1-based line number: a line without
    /// `:`, a user name [`PasswordFile::set`] would refuse (empty, too long,
    /// starting with `#`, holding a carriage return), a duplicate user, or a hash
    /// [`PasswordHash::parse`] refuses; or the whole file over 16 MiB.
    pub fn parse(text: &str) -> Result<Self, PasswordFileError> {
        Self::parse_with(text, &HashPolicy::default())
    }

    /// As [`PasswordFile::parse`], reading each hash with `policy`.
    ///
    /// # Errors
    /// As [`PasswordFile::parse`].
    pub fn parse_with(text: &str, policy: &HashPolicy) -> Result<Self, PasswordFileError> {
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
            if file.index.contains_key(user) {
                return Err(PasswordFileError::DuplicateUser {
                    line,
                    user: user.to_owned(),
                });
            }
            let hash = PasswordHash::parse_with(hash.trim(), policy)
                .map_err(|error| PasswordFileError::Line { line, error })?;
            file.index.insert(user.to_owned(), file.users.len());
            file.users.push((user.to_owned(), hash));
        }
        file.update_decoy();
        Ok(file)
    }

    /// The hash of `user`.
    pub fn get(&self, user: &str) -> Option<&PasswordHash> {
        self.index.get(user).map(|&i| &self.users[i].1)
    }

    /// Whether `user` exists and `password` matches. An unknown user costs a
    /// verification against a decoy with the parameters most of the file's
    /// users have, so that timing does not tell which user names exist, and
    /// one user with a costly hash does not make every bogus login pay for it.
    ///
    /// Each decision is an audit event on `mqtt_sec::audit` with the user name
    /// (at most 256 bytes, escaped) and the reason; never the password.
    pub fn verify(&self, user: &str, password: &SecretString) -> bool {
        let (ok, reason) = match self.get(user) {
            Some(hash) if hash.verify(password) => (true, "password accepted"),
            Some(_) => (false, "wrong password"),
            None => {
                if let Some(decoy) = &self.decoy {
                    let _ = decoy.verify(password);
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
        match self.index.get(user) {
            Some(&i) => self.users[i].1 = hash,
            None => {
                self.index.insert(user.to_owned(), self.users.len());
                self.users.push((user.to_owned(), hash));
            }
        }
        self.update_decoy();
        Ok(())
    }

    /// Removes `user`; returns whether it was there.
    pub fn remove(&mut self, user: &str) -> bool {
        let Some(at) = self.index.remove(user) else {
            return false;
        };
        self.users.remove(at);
        for (position, (name, _)) in self.users.iter().enumerate().skip(at) {
            self.index.insert(name.clone(), position);
        }
        self.update_decoy();
        true
    }

    /// Picks the decoy for unknown users: a hash (that no password matches)
    /// with the scheme and parameters most users have.
    fn update_decoy(&mut self) {
        let mut counts: HashMap<_, usize> = HashMap::new();
        for (_, hash) in &self.users {
            *counts.entry(hash.cost()).or_default() += 1;
        }
        self.decoy = counts
            .into_iter()
            .max_by_key(|((_, iterations, len), count)| {
                (*count, std::cmp::Reverse((*iterations, *len)))
            })
            .and_then(|(cost, _)| {
                self.users
                    .iter()
                    .find(|(_, hash)| hash.cost() == cost)
                    .map(|(_, hash)| hash.decoy())
            });
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

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// The review: an unknown user was checked against the first user's
    /// hash, so one costly first line made every bogus login pay for it.
    /// The decoy has the parameters most users have, and matches nothing.
    #[test]
    fn unknown_users_are_checked_against_the_most_common_parameters() {
        let costly =
            HashParams::with_iterations(NonZeroU32::new(200_000).unwrap_or(NonZeroU32::MIN));
        let mut file = PasswordFile::new();
        file.set("first", &secret("a"), costly).unwrap();
        for i in 0..3 {
            file.set(
                &format!("user{i}"),
                &secret("b"),
                HashParams::MOSQUITTO_PASSWD,
            )
            .unwrap();
        }
        let cheap = file.get("user0").map(PasswordHash::cost);
        let decoy = file.decoy.clone().unwrap();
        assert_eq!(Some(decoy.cost()), cheap);
        assert_ne!(
            Some(decoy.cost()),
            file.get("first").map(PasswordHash::cost)
        );
        for password in ["a", "b", ""] {
            assert!(!decoy.verify(&secret(password)));
            assert!(!file.verify("nobody", &secret(password)));
        }
        // The same after loading the file from text, and after edits.
        let mut reloaded = PasswordFile::parse(&file.to_string()).unwrap();
        assert_eq!(reloaded.decoy.as_ref().map(PasswordHash::cost), cheap);
        for i in 0..3 {
            assert!(reloaded.remove(&format!("user{i}")));
        }
        assert_eq!(
            reloaded.decoy.as_ref().map(PasswordHash::cost),
            reloaded.get("first").map(PasswordHash::cost)
        );
        assert!(reloaded.remove("first"));
        assert!(reloaded.decoy.is_none());
        assert!(!reloaded.verify("first", &secret("a")));
    }

    #[test]
    fn removing_keeps_the_index_in_step() {
        let mut file = PasswordFile::new();
        for user in ["a", "b", "c", "d"] {
            file.set(user, &secret(user), HashParams::MOSQUITTO_PASSWD)
                .unwrap();
        }
        assert!(file.remove("b"));
        assert!(!file.remove("b"));
        for user in ["a", "c", "d"] {
            assert!(file.verify(user, &secret(user)), "{user}");
        }
        assert_eq!(file.users().collect::<Vec<_>>(), ["a", "c", "d"]);
        assert!(file.get("b").is_none());
    }
}
