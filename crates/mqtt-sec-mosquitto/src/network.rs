//! Client addresses as the plugin counts them: networks in CIDR notation
//! (allow-lists), and the origin a counter is kept under (an IPv4 address,
//! an IPv6 /64, or one bucket for peers without an IP address).

use std::net::IpAddr;

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix` or a bare address (a /32 or /128).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        let cidr = Self {
            network: address,
            prefix,
        };
        if masked(address, prefix) != address {
            return Err(format!(
                "{text:?} has host bits set: the network is {}/{prefix}",
                masked(address, prefix)
            ));
        }
        Ok(cidr)
    }

    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        address.is_ipv4() == self.network.is_ipv4() && masked(address, self.prefix) == self.network
    }
}

/// The address with all but its first `prefix` bits cleared.
fn masked(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & mask).into())
        }
    }
}

/// An IPv4 client reaching a dual-stack listener shows as `::ffff:a.b.c.d`:
/// the same client as `a.b.c.d`.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        IpAddr::V4(_) => address,
    }
}

/// Where a login comes from, as counted: an IPv4 address, an IPv6 /64, or
/// (for a peer mosquitto gives no parsable address for, such as a Unix
/// socket) one shared bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Origin {
    Ip(IpAddr),
    Unknown,
}

impl Origin {
    pub(crate) fn of(address: Option<IpAddr>) -> Self {
        match address.map(canonical) {
            Some(IpAddr::V6(v6)) => Self::Ip(masked(IpAddr::V6(v6), 64)),
            Some(v4) => Self::Ip(v4),
            None => Self::Unknown,
        }
    }

    /// Its name in a store the brokers share: the address (an IPv6 /64
    /// as its network address), or `unknown`; never a `|`.
    pub(crate) fn shared_name(&self) -> String {
        match self {
            Origin::Ip(ip) => ip.to_string(),
            Origin::Unknown => "unknown".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing_and_matching() {
        let net = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.255".parse().unwrap()));
        assert!(!net.contains("192.0.3.0".parse().unwrap()));
        assert!(net.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let one = Cidr::parse("2001:db8::1").unwrap();
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("203.0.113.9".parse().unwrap())
        );
        for bad in [
            "192.0.2.1/24",
            "192.0.2.0/33",
            "::/129",
            "example.com",
            "10.0.0.0/x",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// An address is in a network exactly when its first `prefix` bits
        /// are the network's.
        #[test]
        fn cidr_contains_is_a_prefix_comparison(network: u32, address: u32, prefix in 0_u8..=32) {
            let shift = 32 - u32::from(prefix);
            let network = network.checked_shr(shift).unwrap_or(0).checked_shl(shift).unwrap_or(0);
            let cidr = Cidr::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(network))).unwrap();
            let same_prefix = prefix == 0 || (network ^ address) >> shift == 0;
            proptest::prop_assert_eq!(cidr.contains(IpAddr::from(std::net::Ipv4Addr::from(address))), same_prefix);
        }
    }
}
