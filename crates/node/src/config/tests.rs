//! The network presets: monerod's seeds, well-formed and public. Nothing
//! here dials them: the node's tests run strata's network (no seeds) or
//! clear them.

use std::collections::HashSet;
use std::net::SocketAddr;

use super::{Config, Network};
use crate::netgroup::is_routable;

#[test]
fn monero_presets_carry_monerods_seeds_and_strata_none() {
    let strata = Network::STRATA;
    assert!(strata.fixed_seeds.is_empty() && strata.dns_seeds.is_empty());
    assert_eq!(Network::MONERO_MAINNET.fixed_seeds.len(), 6);
    assert_eq!(Network::MONERO_MAINNET.dns_seeds.len(), 4);
    for network in [Network::MONERO_TESTNET, Network::MONERO_STAGENET] {
        assert_eq!(network.fixed_seeds.len(), 5, "{}", network.name);
        // monerod asks no DNS seeds off the main network.
        assert!(network.dns_seeds.is_empty(), "{}", network.name);
    }
    assert!(
        Network::MONERO_MAINNET
            .fixed_seeds
            .contains(&"176.9.0.187:18080".parse().unwrap())
    );
    assert!(
        Network::MONERO_MAINNET
            .dns_seeds
            .contains(&"seeds.moneroseeds.se")
    );
}

#[test]
fn config_new_takes_the_networks_seeds() {
    for network in Network::ALL {
        let config = Config::new(network);
        assert_eq!(config.fixed_seeds, network.fixed_seeds, "{}", network.name);
        let names: Vec<&str> = config.dns_seeds.iter().map(String::as_str).collect();
        assert_eq!(names, network.dns_seeds, "{}", network.name);
        assert_eq!(config.default_port, network.port);
        // Seeds of other kinds stay the operator's to give.
        assert!(config.seeds.is_empty() && config.peers.is_empty());
    }
}

#[test]
fn fixed_seeds_are_public_distinct_and_on_the_networks_port() {
    for network in Network::ALL {
        let mut seen = HashSet::new();
        for &addr in network.fixed_seeds {
            assert!(
                is_routable(addr.ip()),
                "{}: {addr} is not public",
                network.name
            );
            assert!(!addr.ip().is_loopback(), "{}: {addr}", network.name);
            assert_eq!(addr.port(), network.port, "{}: {addr}", network.name);
            assert!(seen.insert(addr), "{}: {addr} twice", network.name);
            // What the text of the address says, it is.
            assert_eq!(addr.to_string().parse::<SocketAddr>().unwrap(), addr);
        }
    }
}

/// A DNS host name: dot-separated labels of letters, digits and hyphens,
/// none empty, none longer than 63, none starting or ending with a hyphen,
/// at most 253 in all, and not an address.
fn is_host_name(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && name.parse::<std::net::IpAddr>().is_err()
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

#[test]
fn dns_seeds_are_distinct_host_names() {
    assert!(!is_host_name("seeds..example"));
    assert!(!is_host_name("-seeds.example"));
    assert!(!is_host_name("192.0.2.1"));
    assert!(!is_host_name("localhost"));
    for network in Network::ALL {
        let mut seen = HashSet::new();
        for &name in network.dns_seeds {
            assert!(is_host_name(name), "{}: `{name}`", network.name);
            assert!(seen.insert(name), "{}: `{name}` twice", network.name);
        }
    }
}

#[test]
fn presets_keep_their_names_ids_and_ports() {
    let names: Vec<&str> = Network::ALL.iter().map(|n| n.name).collect();
    assert_eq!(
        names,
        [
            "strata",
            "monero-mainnet",
            "monero-testnet",
            "monero-stagenet"
        ]
    );
    for network in Network::ALL {
        assert_eq!(Network::by_name(network.name), Some(network));
    }
    assert_eq!(Network::by_name("monero"), None);
    let ports: Vec<u16> = Network::ALL.iter().map(|n| n.port).collect();
    assert_eq!(ports, [7710, 18080, 28080, 38080]);
    let ids: HashSet<_> = Network::ALL.iter().map(|n| n.id).collect();
    assert_eq!(ids.len(), Network::ALL.len());
}
