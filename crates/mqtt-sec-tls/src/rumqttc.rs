//! rumqttc glue (feature `rumqttc`): a [`ClientTls`] as rumqttc's
//! transport, and `MqttOptions` for an `mqtts://` URL.

use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::client_config::ClientTls;

/// Why a broker URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `mqtts://` (plain `mqtt://` would send credentials in clear).
    #[error("{0:?}: use an mqtts:// URL; this helper never connects without TLS")]
    NotTls(String),
    /// No host, a bad port, or a path or query that MQTT URLs do not have.
    #[error(
        "{url:?}: {problem}; expected mqtts://host[:port], such as mqtts://broker.example:8883"
    )]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong.
        problem: &'static str,
    },
}

impl ClientTls {
    /// rumqttc's transport for this configuration.
    pub fn transport(&self) -> Transport {
        Transport::tls_with_config(TlsConfiguration::Rustls(self.config()))
    }

    /// `MqttOptions` for `mqtts://host[:port]` (port 8883 by default; IPv6
    /// hosts in brackets) over this configuration.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mqtt_sec_testkit::TestPki;
    /// use mqtt_sec_tls::rustls::crypto::ring;
    /// use mqtt_sec_tls::{ClientTls, TrustRoots};
    /// let pki = TestPki::new()?;
    /// let tls = ClientTls::builder(Arc::new(ring::default_provider()))
    ///     .trust(TrustRoots::new().pem_file(pki.root().cert_path())?)
    ///     .no_identity()
    ///     .build()?;
    /// let options = tls.mqtt_options("mqtts://broker.example", "device-1")?;
    /// assert_eq!(options.broker_address(), ("broker.example".to_owned(), 8883));
    /// assert!(tls.mqtt_options("mqtt://broker.example", "device-1").is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`UrlError`].
    pub fn mqtt_options(&self, url: &str, client_id: &str) -> Result<MqttOptions, UrlError> {
        let (host, port) = parse_mqtts_url(url)?;
        let mut options = MqttOptions::new(client_id, host, port);
        options.set_transport(self.transport());
        Ok(options)
    }
}

fn parse_mqtts_url(url: &str) -> Result<(String, u16), UrlError> {
    let malformed = |problem| UrlError::Malformed {
        url: url.to_owned(),
        problem,
    };
    let Some(rest) = url.strip_prefix("mqtts://") else {
        return Err(UrlError::NotTls(url.to_owned()));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.contains(['/', '?', '#', '@']) {
        return Err(malformed("no path, query, fragment or credentials"));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| malformed("unclosed [ in an IPv6 host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(malformed("no host"));
    }
    let port = match port {
        None => 8883,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| malformed("the port is not 1-65535"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_mqtts_url("mqtts://b.example"),
            Ok(("b.example".into(), 8883))
        );
        assert_eq!(
            parse_mqtts_url("mqtts://b.example:443/"),
            Ok(("b.example".into(), 443))
        );
        assert_eq!(
            parse_mqtts_url("mqtts://[::1]:8884"),
            Ok(("::1".into(), 8884))
        );
        assert_eq!(
            parse_mqtts_url("mqtts://127.0.0.1"),
            Ok(("127.0.0.1".into(), 8883))
        );
        assert!(matches!(
            parse_mqtts_url("mqtt://b.example"),
            Err(UrlError::NotTls(_))
        ));
        assert!(matches!(
            parse_mqtts_url("https://b.example"),
            Err(UrlError::NotTls(_))
        ));
        for bad in [
            "mqtts://",
            "mqtts://:8883",
            "mqtts://b:0",
            "mqtts://b:99999",
            "mqtts://b:x",
            "mqtts://u:p@b",
            "mqtts://b/t",
            "mqtts://[::1",
        ] {
            assert!(
                matches!(parse_mqtts_url(bad), Err(UrlError::Malformed { .. })),
                "{bad}"
            );
        }
    }
}
