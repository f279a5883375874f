//! One module per command family.

pub(crate) mod acl;
pub(crate) mod envelope;
pub(crate) mod jwt;
pub(crate) mod key;
pub(crate) mod keyfile;
pub(crate) mod mosquitto;
pub(crate) mod passwd;
pub(crate) mod pin;
pub(crate) mod revoke;
pub(crate) mod token;
