//! EMQX's `acl` claim as an mqtt-sec-acl policy that ends with the token
//! (feature `acl`).

use std::time::SystemTime;

use mqtt_sec_acl::emqx::{self, NoMatch};
use mqtt_sec_acl::{Action, Policy, Principal, Reason};

use super::verify::{KeyTrust, VerifiedToken};
use crate::TokenAclError;

/// The outcome of [`TokenAcl::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenAclDecision {
    /// A rule of the claim allows it.
    Allowed,
    /// A rule of the claim denies it, or (object form) none lists it.
    Denied,
    /// Array form: no rule matched; the broker's other authorizers decide.
    NoMatch,
    /// The token has expired: its rules no longer grant anything.
    Expired,
}

/// The rules a token's `acl` claim grants its client, until the token's `exp`.
#[derive(Debug, Clone)]
pub struct TokenAcl {
    policy: Policy,
    no_match: NoMatch,
    narrowed: Vec<String>,
    expires_at: SystemTime,
}

impl TokenAcl {
    /// Checks an action of `principal` (the token's client) at `now`.
    pub fn check(
        &self,
        principal: &Principal,
        action: Action,
        topic: &str,
        now: SystemTime,
    ) -> TokenAclDecision {
        if now >= self.expires_at {
            return TokenAclDecision::Expired;
        }
        let decision = self.policy.check(principal, action, topic);
        match (decision.is_allowed(), decision.reason(), self.no_match) {
            (true, _, _) => TokenAclDecision::Allowed,
            (false, Reason::NoMatchingRule, NoMatch::Continue) => TokenAclDecision::NoMatch,
            (false, _, _) => TokenAclDecision::Denied,
        }
    }

    /// The policy (it does not know about expiry: use [`TokenAcl::check`]).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// When the rules stop granting.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Rules whose QoS or retain condition was translated fail-closed.
    pub fn narrowed(&self) -> &[String] {
        &self.narrowed
    }
}

impl VerifiedToken {
    /// The token's EMQX `acl` claim (object or array form) as rules for this
    /// client, expiring with the token; `None` without the claim. Only a
    /// trusted issuer's token grants rules: in a token a device signed
    /// itself the claim is refused, since the device would be choosing its
    /// own permissions.
    ///
    /// # Errors
    /// [`TokenAclError::SelfGranted`] for a per-device token with the
    /// claim, [`TokenAclError::Policy`] naming the broken rule.
    pub fn acl(&self) -> Result<Option<TokenAcl>, TokenAclError> {
        let Some(claim) = self.claim("acl") else {
            return Ok(None);
        };
        if self.key_trust() != KeyTrust::Issuer {
            return Err(TokenAclError::SelfGranted);
        }
        let acl = emqx::parse_acl_claim(claim)?;
        let no_match = acl.no_match();
        let narrowed = acl.narrowed().to_vec();
        Ok(Some(TokenAcl {
            policy: acl.into_policy()?,
            no_match,
            narrowed,
            expires_at: self.expires_at(),
        }))
    }
}
