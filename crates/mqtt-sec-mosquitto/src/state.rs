//! Everything one configuration decides, built all at once: a reload builds
//! a new `State` and swaps it in only when every file it names is valid.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use mqtt_sec_acl::{Limits, Policy, PolicyIndex, SubscribeCheck};
use mqtt_sec_auth::password::{HashPolicy, PasswordFile};

use crate::config::{AclConfig, AuthMethod, ConfigError, ConfigFile, Source, SubscribeMode};

/// Largest password or ACL file read (as mqtt-sec-auth and mqtt-sec-acl read
/// them).
const MAX_NAMED_FILE_LEN: usize = 64 * 1024 * 1024;

/// One method of the authentication chain, loaded.
#[derive(Debug)]
pub(crate) enum Method {
    /// A mosquitto, go-auth or mqtt-sec password file.
    PasswordFile {
        /// Where it was read from, for log lines.
        path: PathBuf,
        /// The users.
        file: PasswordFile,
    },
}

/// How accesses are decided.
#[derive(Debug)]
pub(crate) enum Authorization {
    /// Every access allowed (`allow_all = true`).
    AllowAll,
    /// A compiled policy.
    Policy(Box<PolicyIndex>),
}

/// A loaded configuration.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) allow_anonymous: bool,
    pub(crate) superusers: HashSet<String>,
    pub(crate) methods: Vec<Method>,
    pub(crate) authorization: Authorization,
}

impl State {
    /// Reads the configuration at `path` and every file it names.
    pub(crate) fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = Source::read(path)?;
        let config = source.parse()?;
        Self::build(&source, config)
    }

    fn build(source: &Source, config: ConfigFile) -> Result<Self, ConfigError> {
        let mut methods = Vec::with_capacity(config.auth.len());
        for (i, method) in config.auth.iter().enumerate() {
            methods.push(load_method(source, i, method.get_ref(), method.span())?);
        }
        let acl_span = config.acl.span();
        let authorization = load_authorization(source, config.acl.get_ref(), acl_span)?;
        Ok(Self {
            allow_anonymous: config.allow_anonymous,
            superusers: config.superusers.into_iter().collect(),
            methods,
            authorization,
        })
    }
}

fn read_named(
    source: &Source,
    span: &std::ops::Range<usize>,
    field: &str,
    path: &Path,
) -> Result<String, ConfigError> {
    let bytes = mqtt_sec_core::fs::read_bounded(path, MAX_NAMED_FILE_LEN).map_err(|e| {
        source.error(
            span,
            field,
            format!("{}: {}", path.display(), mqtt_sec_core::Chain(&e)),
        )
    })?;
    String::from_utf8(bytes)
        .map_err(|_| source.error(span, field, format!("{}: not UTF-8", path.display())))
}

fn load_method(
    source: &Source,
    index: usize,
    method: &AuthMethod,
    span: std::ops::Range<usize>,
) -> Result<Method, ConfigError> {
    let field = |name: &str| format!("auth[{index}].{name}");
    match method.method.get_ref().as_str() {
        "password_file" => {
            let Some(path) = &method.path else {
                return Err(source.error(
                    &span,
                    field("path"),
                    "missing: the password file to read",
                ));
            };
            let mut policy = HashPolicy::default();
            if let Some(max) = &method.max_iterations {
                policy = policy.max_iterations(*max.get_ref());
            }
            let resolved = source.resolve(path.get_ref());
            let text = read_named(source, &path.span(), &field("path"), &resolved)?;
            let file = PasswordFile::parse_with(&text, &policy).map_err(|e| {
                source.error(
                    &path.span(),
                    field("path"),
                    format!("{}: {e}", resolved.display()),
                )
            })?;
            Ok(Method::PasswordFile {
                path: resolved,
                file,
            })
        }
        other => Err(source.error(
            &method.method.span(),
            field("method"),
            format!("unknown method {other:?}: expected \"password_file\""),
        )),
    }
}

fn load_authorization(
    source: &Source,
    acl: &AclConfig,
    span: std::ops::Range<usize>,
) -> Result<Authorization, ConfigError> {
    let chosen = usize::from(acl.acl_file.is_some())
        + usize::from(acl.policy.is_some())
        + usize::from(acl.allow_all);
    if chosen != 1 {
        return Err(source.error(
            &span,
            "acl",
            "set exactly one of acl_file, policy or allow_all = true",
        ));
    }
    if acl.allow_all {
        return Ok(Authorization::AllowAll);
    }
    let (policy, default_mode) = if let Some(path) = &acl.acl_file {
        let resolved = source.resolve(path.get_ref());
        let text = read_named(source, &path.span(), "acl.acl_file", &resolved)?;
        let policy = mqtt_sec_acl::mosquitto::parse_acl_file(&text).map_err(|e| {
            source.error(
                &path.span(),
                "acl.acl_file",
                format!("{}: {e}", resolved.display()),
            )
        })?;
        (policy, SubscribeMode::GrantAll)
    } else if let Some(path) = &acl.policy {
        let resolved = source.resolve(path.get_ref());
        let text = read_named(source, &path.span(), "acl.policy", &resolved)?;
        let parsed = if resolved.extension().is_some_and(|e| e == "json") {
            Policy::from_json(&text, Limits::default())
        } else {
            Policy::from_toml(&text, Limits::default())
        };
        let policy = parsed.map_err(|e| {
            source.error(
                &path.span(),
                "acl.policy",
                format!("{}: {e}", resolved.display()),
            )
        })?;
        let own = match policy.subscribe_mode() {
            SubscribeCheck::GrantAll => SubscribeMode::GrantAll,
            _ => SubscribeMode::Containment,
        };
        (policy, own)
    } else {
        return Err(source.error(
            &span,
            "acl",
            "set exactly one of acl_file, policy or allow_all = true",
        ));
    };
    let policy = policy.subscribe_check(match acl.subscribe.unwrap_or(default_mode) {
        SubscribeMode::GrantAll => SubscribeCheck::GrantAll,
        SubscribeMode::Containment => SubscribeCheck::Containment,
    });
    Ok(Authorization::Policy(Box::new(PolicyIndex::compile(
        policy,
    ))))
}
