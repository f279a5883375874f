//! A credential provider behind a box, so that the event loop's type does
//! not depend on which provider the application chose.

use std::future::Future;
use std::pin::Pin;

use mqtt_sec_auth::CredentialError;
use mqtt_sec_auth::credentials::{CredentialProvider, Credentials};

type CredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Credentials, CredentialError>> + Send + 'a>>;

/// [`CredentialProvider`] without its future type.
trait ErasedProvider: Send + Sync {
    fn credentials(&self) -> CredentialsFuture<'_>;
}

impl<P: CredentialProvider> ErasedProvider for P {
    fn credentials(&self) -> CredentialsFuture<'_> {
        Box::pin(CredentialProvider::credentials(self))
    }
}

/// Any provider, boxed.
pub(crate) struct DynCredentials(Box<dyn ErasedProvider>);

impl DynCredentials {
    pub(crate) fn new(provider: impl CredentialProvider + 'static) -> Self {
        Self(Box::new(provider))
    }
}

impl std::fmt::Debug for DynCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DynCredentials")
    }
}

impl CredentialProvider for DynCredentials {
    fn credentials(&self) -> impl Future<Output = Result<Credentials, CredentialError>> + Send {
        self.0.credentials()
    }
}
