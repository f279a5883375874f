//! `mqtt-sec revoke`: a signing key, a JWT or a certificate revoked until
//! a time, in the Redis revocation list every verifier and broker of the
//! fleet consults.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mqtt_sec_core::Chain;
use mqtt_sec_core::revocation::{Credential, Kind, RevocationList as _};
use mqtt_sec_redis::{Redis, RedisConfig, RedisRevocationList};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::RevokeArgs;
use crate::io::{CliError, print_json, read_text};

/// The longest revocation: past it the credential should have expired (a
/// key rotated, a certificate past its `notAfter`) and a mistyped year
/// would otherwise keep a key in the list for centuries.
const MAX_REVOCATION: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

pub(crate) fn run(args: &RevokeArgs, json: bool) -> Result<ExitCode, CliError> {
    let kind: Kind = args
        .kind
        .parse()
        .map_err(|e| CliError::new(format!("{e}")))?;
    let value = value_bytes(kind, &args.value, args.hex)?;
    let credential = Credential::new(kind, &value);
    credential
        .check()
        .map_err(|e| CliError::new(e.to_string()))?;
    let now = SystemTime::now();
    let until = until(&args.until, now)?;
    let list = RedisRevocationList::new(redis(args)?);
    list.revoke(credential, until)
        .map_err(|e| CliError::new(format!("--redis: {}", Chain(&e))))?;
    let until_text = rfc3339(until);
    if json {
        print_json(&json!({
            "revoked": credential.to_string(),
            "kind": kind.as_str(),
            "until": until_text,
        }));
    } else {
        println!("revoked {credential} until {until_text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The value's bytes: a kid or jti as its text (or hex with `--hex`, for a
/// kid that is not text), a serial always as hex, as `openssl x509 -serial`
/// prints it (`0x` and `:` separators allowed).
fn value_bytes(kind: Kind, value: &str, hex: bool) -> Result<Vec<u8>, CliError> {
    if kind == Kind::Serial || hex {
        let digits: String = value
            .strip_prefix("0x")
            .or_else(|| value.strip_prefix("0X"))
            .unwrap_or(value)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let digits = if digits.len() % 2 == 1 {
            format!("0{digits}")
        } else {
            digits
        };
        return (0..digits.len())
            .step_by(2)
            .map(|i| {
                digits
                    .get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                    .ok_or_else(|| CliError::new(format!("{kind} {value:?}: not hexadecimal")))
            })
            .collect();
    }
    Ok(value.as_bytes().to_vec())
}

/// `--until`: an RFC 3339 time (`2027-01-31T00:00:00Z`) or a span from now
/// (`+90d`, `+12h`, `+30m`, `+45s`), in the future and at most ten years
/// ahead.
fn until(text: &str, now: SystemTime) -> Result<SystemTime, CliError> {
    let bad = |why: &str| CliError::new(format!("--until {text:?}: {why}"));
    let at = match text.strip_prefix('+') {
        Some(span) => {
            let split = span
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| bad("a span needs a unit: s, m, h or d"))?;
            let (count, unit) = span.split_at(split);
            let count: u64 = count.parse().map_err(|_| bad("not a number"))?;
            let unit = match unit {
                "s" => 1,
                "m" => 60,
                "h" => 3600,
                "d" => 86_400,
                _ => return Err(bad("a span's unit is s, m, h or d")),
            };
            let span = Duration::from_secs(count.saturating_mul(unit));
            now.checked_add(span).ok_or_else(|| bad("too far ahead"))?
        }
        None => {
            let parsed = OffsetDateTime::parse(text, &Rfc3339)
                .map_err(|_| bad("not an RFC 3339 time (2027-01-31T00:00:00Z) or +SPAN"))?;
            let secs = u64::try_from(parsed.unix_timestamp()).map_err(|_| bad("before 1970"))?;
            UNIX_EPOCH
                + Duration::from_secs(secs)
                + Duration::from_nanos(parsed.nanosecond().into())
        }
    };
    if at <= now {
        return Err(bad("in the past: a revocation must end in the future"));
    }
    if at.duration_since(now).unwrap_or_default() > MAX_REVOCATION {
        return Err(bad("more than ten years ahead"));
    }
    Ok(at)
}

fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} s after 1970"))
}

/// The Redis handle: the URL must not hold a password (the arguments of a
/// process are visible to every local user); it comes from
/// `--redis-password-file`.
fn redis(args: &RevokeArgs) -> Result<Redis, CliError> {
    let url = args.redis.clone().into();
    let config = if args.redis_cluster {
        RedisConfig::cluster([url])
    } else {
        RedisConfig::new(url)
    };
    let mut config = config
        .key_prefix(args.key_prefix.clone())
        .timeout(Duration::from_secs(5));
    if config
        .url_has_password()
        .map_err(|e| CliError::new(format!("--redis: {e}")))?
    {
        return Err(CliError::new(
            "--redis: the URL holds a password, which every local user can read in the \
             process list; give it in --redis-password-file",
        ));
    }
    if let Some(path) = &args.redis_password_file {
        config = config.password(password(path)?);
    }
    if let Some(path) = &args.redis_ca {
        config = config.ca_file(path).map_err(|e| CliError::at(path, e))?;
    }
    Redis::new(config).map_err(|e| CliError::new(format!("--redis: {e}")))
}

/// One line, the trailing newline dropped.
fn password(path: &Path) -> Result<mqtt_sec_redis::SecretString, CliError> {
    let text = read_text(path)?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() || line.contains('\n') {
        return Err(CliError::at(path, "expected the password on one line"));
    }
    Ok(line.to_owned().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_hex_as_openssl_prints_them() {
        assert_eq!(
            value_bytes(Kind::Serial, "01:8F", false).unwrap(),
            [1, 0x8f]
        );
        assert_eq!(
            value_bytes(Kind::Serial, "0x18f", false).unwrap(),
            [1, 0x8f]
        );
        assert_eq!(value_bytes(Kind::Serial, "8F01", false).unwrap(), [0x8f, 1]);
        // Odd lengths get a leading zero digit.
        assert_eq!(value_bytes(Kind::Serial, "1", false).unwrap(), [1]);
        assert_eq!(
            value_bytes(Kind::Serial, "18f01", false).unwrap(),
            [1, 0x8f, 1]
        );
        assert!(value_bytes(Kind::Serial, "8G", false).is_err());
        assert!(value_bytes(Kind::Serial, "é1", false).is_err());
        assert_eq!(value_bytes(Kind::Kid, "0x18f", false).unwrap(), b"0x18f");
        assert_eq!(value_bytes(Kind::Kid, "0x18f", true).unwrap(), [1, 0x8f]);
        assert_eq!(value_bytes(Kind::Jti, "a b", false).unwrap(), b"a b");
    }

    #[test]
    fn until_is_a_future_time_or_span_within_ten_years() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            until("+90d", now).unwrap(),
            now + Duration::from_secs(90 * 86_400)
        );
        assert_eq!(
            until("+12h", now).unwrap(),
            now + Duration::from_secs(12 * 3600)
        );
        assert_eq!(until("+30m", now).unwrap(), now + Duration::from_secs(1800));
        assert_eq!(until("+45s", now).unwrap(), now + Duration::from_secs(45));
        assert_eq!(
            until("2027-01-15T08:00:01Z", now).unwrap(),
            now + Duration::from_secs(1)
        );
        assert_eq!(
            until("2027-01-15T09:00:01+01:00", now).unwrap(),
            now + Duration::from_secs(1)
        );
        assert_eq!(
            until("2027-01-15T08:00:01.5Z", now).unwrap(),
            now + Duration::from_millis(1500)
        );
        for (bad, why) in [
            ("+0s", "in the past"),
            ("2027-01-15T08:00:00Z", "in the past"),
            ("+5", "needs a unit"),
            ("+5w", "unit is s, m, h or d"),
            ("+d", "not a number"),
            ("+3661d", "more than ten years"),
            ("+99999999999999999999d", "not a number"),
            ("+18446744073709551615d", "too far ahead"),
            ("tomorrow", "not an RFC 3339 time"),
            ("1969-12-31T00:00:00Z", "before 1970"),
        ] {
            let error = until(bad, now).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
        assert!(until("+3660d", now).is_ok());
        assert_eq!(rfc3339(now), "2027-01-15T08:00:00Z");
    }
}
