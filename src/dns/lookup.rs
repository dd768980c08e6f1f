//! The lookup policy: which names to ask (search list, ndots), following
//! CNAMEs, and which error wins when no name resolves.

use super::transport::{self, Question};
use super::wire::{encode_name, name_text, RecordData, RecordType, Reply, RCODE_NXDOMAIN};
use super::{Found, LookupError};
use crate::resolv_conf::ResolvConf;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// A CNAME whose target's addresses are not in the answer is asked for
/// again; this many times at most, against CNAME loops across answers.
const MAX_REQUERIES: usize = 8;
/// Longest CNAME chain followed within one answer.
const MAX_CHAIN: usize = 16;

/// One lookup: the name, the record types wanted in order of preference,
/// the servers, and when to give up.
#[derive(Clone, Copy, Debug)]
pub struct Query<'a> {
    pub conf: &'a ResolvConf,
    pub name: &'a str,
    /// The first type with records wins; the next is asked only when a
    /// name has none of the previous one.
    pub types: &'a [RecordType],
    /// No exchange waits past this; None: only the conf's timeouts bound it.
    pub deadline: Option<Instant>,
    /// Ask over TCP first, when the answer is expected to be too large for
    /// UDP (a Service with many pods): one exchange instead of two.
    pub tcp_first: bool,
}

impl<'a> Query<'a> {
    pub fn new(conf: &'a ResolvConf, name: &'a str, types: &'a [RecordType]) -> Query<'a> {
        Query {
            conf,
            name,
            types,
            deadline: None,
            tcp_first: false,
        }
    }
}

/// Resolves `name` as glibc would (search list, ndots, servers in turn) and
/// returns every address of the first of `types` that has any, trying the
/// next type only when a name has none of the previous one.
pub fn lookup(query: &Query) -> Result<Found, LookupError> {
    let Query { conf, name, .. } = *query;
    encode_name(name).map_err(LookupError::BadName)?;
    let names = search_names(conf, name);
    // When the name as is was asked first, its error is the one glibc
    // reports; otherwise NODATA anywhere beats SERVFAIL beats NXDOMAIN.
    let as_is_first = name.ends_with('.') || name.matches('.').count() >= conf.ndots;
    let mut first = None;
    let mut not_found = Vec::new();
    let mut no_records = None;
    let mut server_failure = None;
    // An authoritative-only server refuses names outside its zones (the
    // bare name, say): that says nothing about the other names.
    let mut refused = None;
    for (i, candidate) in names.iter().enumerate() {
        // A search domain can make the name too long: skip that one.
        let Ok(wire) = encode_name(candidate) else {
            continue;
        };
        let error = match lookup_name(query, &wire) {
            Ok(found) => return Ok(found),
            Err(e) => e,
        };
        match error {
            LookupError::NotFound(_) => not_found.push(candidate.clone()),
            LookupError::NoRecords(..) | LookupError::ServerFailure(_) => {}
            LookupError::Refused(_) => {
                refused = refused.or(Some(error));
                continue;
            }
            // No answer, or none we can read: asking more names would only
            // take longer to fail the same way.
            _ => return Err(error),
        }
        if i == 0 && as_is_first {
            first = Some(error);
        } else if let LookupError::NoRecords(..) = error {
            no_records = no_records.or(Some(error));
        } else if let LookupError::ServerFailure(_) = error {
            server_failure = Some(error);
        }
    }
    let error = match first {
        Some(LookupError::NotFound(_)) => None,
        Some(error) => Some(error),
        None => no_records.or(server_failure),
    };
    // The most specific answer wins; REFUSED only when it is all there is.
    Err(match (error, refused) {
        (Some(error), _) => error,
        (None, Some(refused)) if not_found.is_empty() => refused,
        (None, _) => LookupError::NotFound(not_found),
    })
}

/// The names to ask for, in order, as glibc's res_search: a name ending in
/// a dot is absolute; one with at least `ndots` dots is tried as is first,
/// then with each search domain; one with fewer tries the search domains
/// first and itself last.
// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
pub fn search_names(conf: &ResolvConf, name: &str) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_string()];
    }
    let mut names = Vec::new();
    if name.matches('.').count() >= conf.ndots {
        names.push(name.to_string());
    }
    for domain in &conf.search {
        // An empty domain is the root: the name as is.
        names.push(if domain.is_empty() {
            name.to_string()
        } else {
            format!("{name}.{domain}")
        });
    }
    names.push(name.to_string());
    // A handful of names: a HashSet would cost more code than it saves time.
    let mut unique: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !unique.iter().any(|u| u.eq_ignore_ascii_case(&n)) {
            unique.push(n);
        }
    }
    unique
}

/// One name of the search path: each type in turn; CNAMEs followed.
fn lookup_name(query: &Query, wire: &[u8]) -> Result<Found, LookupError> {
    for &qtype in query.types {
        if let Some(found) = lookup_type(query, wire, qtype)? {
            return Ok(found);
        }
    }
    let types: Vec<&str> = query.types.iter().map(|t| t.name()).collect();
    Err(LookupError::NoRecords(name_text(wire), types.join(" or ")))
}

/// `Ok(None)`: the name exists without records of this type (NODATA).
// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn lookup_type(
    query: &Query,
    wire: &[u8],
    qtype: RecordType,
) -> Result<Option<Found>, LookupError> {
    let mut name = wire.to_vec();
    // The TTLs of the CNAMEs followed in earlier answers.
    let mut ttl = u32::MAX;
    for _ in 0..=MAX_REQUERIES {
        let question = Question::new(&name, qtype, query.tcp_first);
        let reply = transport::query(query.conf, &question, query.deadline)?;
        if reply.rcode == RCODE_NXDOMAIN {
            return Err(LookupError::NotFound(vec![name_text(wire)]));
        }
        let chain = follow(&reply, &name, qtype);
        ttl = ttl.min(chain.ttl.unwrap_or(u32::MAX));
        if !chain.addrs.is_empty() {
            return Ok(Some(Found {
                name: name_text(&chain.name),
                addrs: chain.addrs,
                truncated: reply.truncated,
                ttl: Duration::from_secs(ttl.into()),
            }));
        }
        if chain.name == name || reply.truncated {
            return Ok(None);
        }
        // The chain ends at a name whose addresses the server left out.
        name = chain.name;
    }
    Ok(None)
}

/// Where a CNAME chain led within one answer.
#[derive(Debug)]
pub(crate) struct Chain {
    /// The last name of the chain (the name asked if there is no CNAME).
    pub name: Vec<u8>,
    /// That name's addresses of the type asked.
    pub addrs: Vec<IpAddr>,
    /// The smallest TTL of the CNAMEs and addresses used; None if none.
    pub ttl: Option<u32>,
}

/// Follows the CNAME chain from `name` within the answer. Records about
/// other names are ignored: nobody asked for them.
pub(crate) fn follow(reply: &Reply, name: &[u8], qtype: RecordType) -> Chain {
    let mut name = name.to_vec();
    let mut ttl: Option<u32> = None;
    for _ in 0..MAX_CHAIN {
        let next = reply.records.iter().find_map(|r| match &r.data {
            RecordData::Alias(target) if *r.owner == name[..] => Some((target.clone(), r.ttl)),
            _ => None,
        });
        match next {
            Some((target, cname_ttl)) => {
                name = target;
                ttl = Some(ttl.map_or(cname_ttl, |t| t.min(cname_ttl)));
            }
            None => break,
        }
    }
    let mut addrs = Vec::with_capacity(reply.records.len());
    // Records of one name share it: comparing the pointer spares the bytes.
    let mut owner: Option<&Rc<[u8]>> = None;
    for record in &reply.records {
        let same = owner.is_some_and(|o| Rc::ptr_eq(o, &record.owner));
        if !same && *record.owner != name[..] {
            continue;
        }
        owner = Some(&record.owner);
        let wanted = match record.data {
            RecordData::Address(ip @ IpAddr::V4(_)) => (qtype == RecordType::A).then_some(ip),
            RecordData::Address(ip @ IpAddr::V6(_)) => (qtype == RecordType::Aaaa).then_some(ip),
            RecordData::Alias(_) => None,
        };
        if let Some(ip) = wanted {
            addrs.push(ip);
            ttl = Some(ttl.map_or(record.ttl, |t| t.min(record.ttl)));
        }
    }
    if addrs.is_empty() {
        // A chain without addresses says nothing about how long to keep them.
        ttl = None;
    }
    Chain { name, addrs, ttl }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(search: &[&str], ndots: usize) -> ResolvConf {
        ResolvConf {
            search: search.iter().map(|s| s.to_string()).collect(),
            ndots,
            ..ResolvConf::default()
        }
    }

    #[test]
    fn search_order_is_glibcs() {
        let k8s = conf(
            &[
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
            ],
            5,
        );
        assert_eq!(
            search_names(&k8s, "web"),
            [
                "web.default.svc.cluster.local",
                "web.svc.cluster.local",
                "web.cluster.local",
                "web"
            ]
        );
        // Five dots: as is first.
        assert_eq!(search_names(&k8s, "a.b.c.d.e.f")[0], "a.b.c.d.e.f");
        assert_eq!(search_names(&k8s, "a.b.c.d.e.f").len(), 4);
        assert_eq!(search_names(&k8s, "a.b.c.d.e")[3], "a.b.c.d.e");
        assert_eq!(search_names(&k8s, "web."), ["web"]);
        let one = conf(&["example"], 1);
        assert_eq!(search_names(&one, "a.b"), ["a.b", "a.b.example"]);
        assert_eq!(search_names(&one, "a"), ["a.example", "a"]);
        // The root on the list ("search ." parses as "") is the name as is.
        assert_eq!(search_names(&conf(&["", "x"], 1), "a"), ["a", "a.x"]);
        assert_eq!(search_names(&conf(&[], 1), "a"), ["a"]);
        // Each name once, whatever its case; the first spelling kept.
        assert_eq!(search_names(&conf(&["x", "X", ""], 1), "a"), ["a.x", "a"]);
    }
}
