//! Who is asking: the client's identity as the broker or gateway knows it.

/// A connected client's identity: its client id, its user name (none for an
/// anonymous client) and the groups or roles an authenticator gave it.
///
/// ```
/// use mqtt_sec_acl::Principal;
/// let device = Principal::new("dev-7").with_username("alice").with_group("devices");
/// assert_eq!(device.username(), Some("alice"));
/// assert!(!device.is_anonymous());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Principal {
    client_id: String,
    username: Option<String>,
    groups: Vec<String>,
}

impl Principal {
    /// An anonymous client with this client id.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            username: None,
            groups: Vec::new(),
        }
    }

    /// Sets the user name.
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Adds a group or role.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.groups.push(group.into());
        self
    }

    /// Makes this the principal of another client, without groups, reusing
    /// its buffers: a broker that checks every message of every client
    /// keeps one and allocates nothing per check.
    ///
    /// ```
    /// use mqtt_sec_acl::Principal;
    /// let mut scratch = Principal::new("dev-1").with_group("devices");
    /// scratch.reset("dev-2", Some("bob"));
    /// assert_eq!(scratch, Principal::new("dev-2").with_username("bob"));
    /// scratch.reset("dev-3", None);
    /// assert!(scratch.is_anonymous());
    /// ```
    pub fn reset(&mut self, client_id: &str, username: Option<&str>) {
        client_id.clone_into(&mut self.client_id);
        match (username, &mut self.username) {
            (Some(new), Some(old)) => new.clone_into(old),
            (new, old) => *old = new.map(str::to_owned),
        }
        self.groups.clear();
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The user name, if the client gave one.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The groups or roles.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// Whether the client connected without a user name.
    pub fn is_anonymous(&self) -> bool {
        self.username.is_none()
    }

    /// Whether the user name or client id contains `+` or `#`, which
    /// mosquitto treats as an attempt to subvert pattern rules.
    pub fn has_wildcard_identity(&self) -> bool {
        let wild = |s: &str| s.bytes().any(|b| b == b'+' || b == b'#');
        wild(&self.client_id) || self.username.as_deref().is_some_and(wild)
    }
}
