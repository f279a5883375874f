//! The underlying error of a failure, kept whole so that `source()` chains
//! reach it and callers can downcast to it, while the error enums that hold
//! it stay `Clone` and `PartialEq` (rustls' `OtherError` does the same).

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// An underlying error (an I/O error, a JSON error, a replay store's own
/// error), shared rather than turned into a string.
///
/// Two causes are equal when they are the same error value (one was cloned
/// from the other); distinct errors with the same text are not equal.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps an error.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The error itself, to downcast: `cause.get().downcast_ref::<std::io::Error>()`.
    pub fn get(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// The wrapped error as `E`, if it is one.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

/// The cause is transparent: its source is the wrapped error's source, so a
/// chain walked through `source()` does not show the same message twice.
impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Cause {}

impl From<std::io::Error> for Cause {
    fn from(error: std::io::Error) -> Self {
        Self::new(error)
    }
}

/// An error and every [`source`](Error::source) below it, joined by `": "`,
/// for audit events and logs: the errors of this workspace keep their
/// causes out of their own messages, so a log line shows the chain with
/// this.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut next = self.0.source();
        while let Some(error) = next {
            write!(f, ": {error}")?;
            next = error.source();
        }
        Ok(())
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn keeps_the_error_for_downcasting_and_its_chain() {
        let cause = Cause::new(Outer(std::io::Error::other("inner")));
        assert_eq!(cause.to_string(), "outer");
        assert!(cause.downcast_ref::<Outer>().is_some());
        assert!(cause.downcast_ref::<std::io::Error>().is_none());
        assert_eq!(
            cause.source().map(ToString::to_string).as_deref(),
            Some("inner")
        );
        assert_eq!(format!("{cause:?}"), format!("{:?}", cause.get()));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("top")]
    struct Top(#[source] Cause);

    #[test]
    fn a_chain_shows_every_cause_once() {
        let error = Top(Cause::new(Outer(std::io::Error::other("inner"))));
        assert_eq!(Chain(&error).to_string(), "top: outer: inner");
        assert_eq!(format!("{:?}", Chain(&error)), "top: outer: inner");
        let alone = std::io::Error::other("alone");
        assert_eq!(Chain(&alone).to_string(), "alone");
    }

    #[test]
    fn equal_only_to_its_clones() {
        let one = Cause::from(std::io::Error::other("x"));
        assert_eq!(one, one.clone());
        assert_ne!(one, Cause::from(std::io::Error::other("x")));
    }
}
