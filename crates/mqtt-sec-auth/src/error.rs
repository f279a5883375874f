//! Errors, one enum per area.

/// Why a password hash could not be read or made. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// Not `$7$`, `$6$` or go-auth's `PBKDF2$sha512$`/`PBKDF2$sha256$`.
    #[error("unknown hash scheme: expected $7$, $6$ or PBKDF2$sha512$")]
    UnknownScheme,
    /// Wrong number of `$`-separated fields, or an empty one.
    #[error("wrong number of $-separated fields (or an empty field)")]
    Fields,
    /// The iteration count is not a positive decimal number that fits 32 bits.
    #[error("iteration count is not a positive 32-bit decimal number")]
    Iterations,
    /// A field is not standard padded base64.
    #[error("{part} is not standard base64")]
    Base64 {
        /// `salt` or `hash`.
        part: &'static str,
    },
    /// mosquitto accepts 12- or 64-byte salts.
    #[error("salt of {len} bytes: mosquitto accepts 12 or 64")]
    SaltLength {
        /// Decoded length.
        len: usize,
    },
    /// The hash is not 64 bytes (mosquitto) or is empty or oversized (go-auth).
    #[error("hash of {len} bytes has the wrong length")]
    HashLength {
        /// Decoded length.
        len: usize,
    },
    /// The hash string is over 65,535 bytes.
    #[error("hash longer than 65535 bytes")]
    TooLong,
    /// The system random generator failed.
    #[error("random generator failed")]
    Random,
}

/// A password file problem, with its 1-based line (0 for an API call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordFileError {
    /// A line could not be used.
    #[error("line {line}: {error}")]
    Line {
        /// The line.
        line: usize,
        /// What is wrong with it.
        error: PasswordError,
    },
    /// Empty or too long user name (or one a file line cannot hold).
    #[error("line {line}: empty, too long or unwritable user name")]
    BadUser {
        /// The line.
        line: usize,
    },
    /// The user appears twice.
    #[error("line {line}: duplicate user {user:?}")]
    DuplicateUser {
        /// The line of the second occurrence.
        line: usize,
        /// The user name.
        user: String,
    },
    /// The file is over the size limit.
    #[error("password file larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
}

/// Why a certificate identity could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The input is over the size limit.
    #[error("certificate input larger than {max} bytes")]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// No `CERTIFICATE` PEM block.
    #[error("no CERTIFICATE block in the PEM text")]
    Pem,
    /// The DER does not parse as an X.509 certificate.
    #[error("not a valid X.509 certificate: {0}")]
    Certificate(String),
}

/// Why an Azure SAS token was refused. Never contains the token or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SasError {
    /// The shared access key is not base64, or empty.
    #[error("shared access key is not non-empty base64")]
    Key,
    /// The token is over the size limit.
    #[error("token longer than {max} bytes")]
    TooLong {
        /// The limit.
        max: usize,
    },
    /// The token does not have the SAS shape.
    #[error("malformed SAS token: {0}")]
    Malformed(&'static str),
    /// The signature does not match.
    #[error("signature invalid")]
    SignatureInvalid,
    /// The expiry (`se`) has passed.
    #[error("token expired")]
    Expired,
    /// The token is for another resource.
    #[error("token is for another resource")]
    WrongResource,
    /// The token names another policy (or none).
    #[error("token is for another shared access policy")]
    WrongPolicy,
}

/// Any error of this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A password hash problem.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A password file problem.
    #[error(transparent)]
    PasswordFile(#[from] PasswordFileError),
    /// A certificate identity problem.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An Azure SAS token problem.
    #[error(transparent)]
    Sas(#[from] SasError),
}
