//! /etc/resolv.conf, read the way glibc reads it, so that when the sender
//! asks DNS itself (see `discover`) it asks the same servers for the same
//! names, in the same order, as the system resolver would have.
//!
//! Kept: `nameserver` (IPv4 or IPv6, the first three, as glibc's MAXNS),
//! `search` and `domain` (the last one wins), `options ndots:N timeout:N
//! attempts:N` (clamped to glibc's limits), and, where the system resolver
//! is glibc's, the `LOCALDOMAIN` and `RES_OPTIONS` environment variables
//! and the hostname's domain as the search list when the file names none.
//! musl's resolver ignores those three, and so does a musl build of ours. Comments start with `#` or `;`.
//! Everything else (`sortlist`, `options rotate`, `edns0`, ...) is ignored:
//! it changes neither which names are asked nor what the answer holds.

use std::io;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::time::Duration;

/// Where the system resolver reads its configuration.
pub const PATH: &str = "/etc/resolv.conf";

/// glibc's limits (resolv.h: MAXNS, RES_MAXNDOTS, RES_MAXRETRANS,
/// RES_MAXRETRY).
const MAX_NAMESERVERS: usize = 3;
const MAX_NDOTS: usize = 15;
const MAX_TIMEOUT_SECS: u64 = 30;
const MAX_ATTEMPTS: u32 = 5;

#[derive(Clone, Debug, PartialEq)]
pub struct ResolvConf {
    /// Port 53 from the file; tests put their own server's port here.
    pub nameservers: Vec<SocketAddr>,
    /// Domains tried after (or before, see `ndots`) the name itself.
    pub search: Vec<String>,
    /// A name with fewer dots than this tries the search list first.
    pub ndots: usize,
    /// How long to wait for one server's answer to one query.
    pub timeout: Duration,
    /// Rounds over all the servers before giving up.
    pub attempts: u32,
}

/// glibc's defaults for an empty file, except that glibc would then ask
/// 127.0.0.1: an empty list here means "no server to ask".
impl Default for ResolvConf {
    fn default() -> ResolvConf {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
        }
    }
}

/// Whether this binary's system resolver reads `LOCALDOMAIN`,
/// `RES_OPTIONS` and the hostname's domain: glibc does, musl (the static
/// images) reads /etc/resolv.conf alone. Our client must do the same, or it
/// would resolve another name than the system resolver did.
const SYSTEM_READS_ENV: bool = !cfg!(target_env = "musl");

/// Reads `path`, and what the system resolver takes from the environment.
pub fn load(path: &Path) -> io::Result<ResolvConf> {
    load_as(path, SYSTEM_READS_ENV, |var| std::env::var(var).ok())
}

/// `load`, as glibc (`reads_env`) or musl does, with the environment
/// variables from `env`.
fn load_as(
    path: &Path,
    reads_env: bool,
    env: impl Fn(&str) -> Option<String>,
) -> io::Result<ResolvConf> {
    let mut conf = parse(&std::fs::read_to_string(path)?);
    if !reads_env {
        return Ok(conf);
    }
    if conf.search.is_empty() {
        conf.search = hostname_domain().into_iter().collect();
    }
    if let Some(domains) = env("LOCALDOMAIN") {
        conf.search = domains.split_whitespace().map(domain_name).collect();
    }
    if let Some(options) = env("RES_OPTIONS") {
        apply_options(&mut conf, options.split_whitespace());
    }
    Ok(conf)
}

/// The file's text alone: no environment, no hostname.
pub fn parse(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::default();
    for line in text.lines() {
        // glibc only knows comments at the start of a line; a `#` later on
        // would become a search domain, which can never be meant.
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                let server = words.next().and_then(nameserver);
                if let Some(server) = server {
                    if conf.nameservers.len() < MAX_NAMESERVERS {
                        conf.nameservers.push(server);
                    }
                }
            }
            Some("search") | Some("domain") => {
                conf.search = words.map(domain_name).collect();
            }
            Some("options") => apply_options(&mut conf, words),
            _ => {}
        }
    }
    conf
}

fn apply_options<'a>(conf: &mut ResolvConf, words: impl Iterator<Item = &'a str>) {
    for word in words {
        let Some((name, value)) = word.split_once(':') else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match name {
            "ndots" => conf.ndots = value.min(MAX_NDOTS as u64) as usize,
            // glibc waits at least a second even when told 0.
            "timeout" => conf.timeout = Duration::from_secs(value.clamp(1, MAX_TIMEOUT_SECS)),
            "attempts" => conf.attempts = value.clamp(1, MAX_ATTEMPTS as u64) as u32,
            _ => {}
        }
    }
}

/// `10.96.0.10`, `fd00::a` or `fe80::1%eth0`, on port 53.
fn nameserver(text: &str) -> Option<SocketAddr> {
    let (addr, scope) = match text.split_once('%') {
        Some((addr, scope)) => (addr, Some(scope)),
        None => (text, None),
    };
    match (addr.parse::<IpAddr>().ok()?, scope) {
        (IpAddr::V6(ip), Some(scope)) => {
            let scope_id = scope
                .parse()
                .ok()
                .or_else(|| crate::os::sys::interface_index(scope))?;
            Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope_id)))
        }
        (ip, _) => Some(SocketAddr::new(ip, 53)),
    }
}

/// Search domains are written with or without the root's trailing dot.
fn domain_name(text: &str) -> String {
    text.strip_suffix('.').unwrap_or(text).to_string()
}

/// glibc's search list when the file has none: the hostname after its
/// first dot, if it has one.
fn hostname_domain() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let (_, domain) = name.trim().split_once('.')?;
    (!domain.is_empty()).then(|| domain_name(domain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_pod() {
        let conf = parse(
            "search default.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver 10.96.0.10\n\
             options ndots:5\n",
        );
        assert_eq!(conf.nameservers, vec!["10.96.0.10:53".parse().unwrap()]);
        assert_eq!(
            conf.search,
            [
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local"
            ]
        );
        assert_eq!(conf.ndots, 5);
        assert_eq!(conf.timeout, Duration::from_secs(5));
        assert_eq!(conf.attempts, 2);
    }

    #[test]
    fn at_most_three_servers_of_both_families() {
        let conf = parse(
            "nameserver fd00::10\n\
             nameserver 10.0.0.1\n\
             nameserver fe80::1%7\n\
             nameserver 10.0.0.4\n\
             nameserver not-an-address\n",
        );
        let want: Vec<SocketAddr> = vec![
            "[fd00::10]:53".parse().unwrap(),
            "10.0.0.1:53".parse().unwrap(),
            "[fe80::1%7]:53".parse().unwrap(),
        ];
        assert_eq!(conf.nameservers, want);
    }

    #[test]
    fn last_of_search_and_domain_wins() {
        assert_eq!(
            parse("search a b.\ndomain c.example\n").search,
            ["c.example"]
        );
        assert_eq!(parse("domain c\nsearch a b\n").search, ["a", "b"]);
    }

    #[test]
    fn comments_and_junk() {
        let conf = parse(
            "# nameserver 10.0.0.1\n\
             ; search nope\n\
             nameserver 10.0.0.2 # the cluster DNS\n\
             search a ;b\n\
             options\n\
             options ndots timeout:x attempts:-1 rotate edns0\n\
             \n\
             nameserver\n\
             bogus line here\n",
        );
        assert_eq!(conf.nameservers, vec!["10.0.0.2:53".parse().unwrap()]);
        assert_eq!(conf.search, ["a"]);
        assert_eq!(conf.ndots, 1);
        assert_eq!(conf.attempts, 2);
    }

    #[test]
    fn options_are_clamped_like_glibc() {
        let conf = parse("options ndots:99 timeout:0 attempts:0\n");
        assert_eq!(
            (conf.ndots, conf.timeout, conf.attempts),
            (15, Duration::from_secs(1), 1)
        );
        let conf = parse("options timeout:300 attempts:9 ndots:0\n");
        assert_eq!(
            (conf.ndots, conf.timeout, conf.attempts),
            (0, Duration::from_secs(30), 5)
        );
    }

    #[test]
    fn the_environment_counts_only_where_the_system_resolver_reads_it() {
        let path = std::env::temp_dir().join(format!("resolv-conf-{}", std::process::id()));
        std::fs::write(&path, "search a.example\noptions ndots:2\n").unwrap();
        let env = |var: &str| match var {
            "LOCALDOMAIN" => Some("b.example. c.example".to_string()),
            "RES_OPTIONS" => Some("ndots:4".to_string()),
            _ => None,
        };
        let glibc = load_as(&path, true, env).unwrap();
        assert_eq!(
            (glibc.search, glibc.ndots),
            (vec!["b.example".into(), "c.example".into()], 4)
        );
        let musl = load_as(&path, false, env).unwrap();
        assert_eq!((musl.search, musl.ndots), (vec!["a.example".into()], 2));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(SYSTEM_READS_ENV, cfg!(target_env = "gnu"));
    }

    #[test]
    fn load_missing_file_is_an_error() {
        assert!(load(Path::new("/nonexistent/resolv.conf")).is_err());
    }
}
