//! The DNS wire format: a query out, an answer in. The answer is what the
//! network sends, so every read is bounds-checked (see the module above).

use std::net::IpAddr;
use std::rc::Rc;

const HEADER_LEN: usize = 12;
/// Longest message over TCP: its length prefix is 16 bits.
pub(crate) const MAX_MESSAGE: usize = 65_535;
/// Longest name in wire form, length bytes and final zero included.
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;

const FLAG_RESPONSE: u16 = 0x8000;
const FLAG_TRUNCATED: u16 = 0x0200;
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const CLASS_IN: u16 = 1;
const TYPE_CNAME: u16 = 5;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RecordType {
    A,
    Aaaa,
}

impl RecordType {
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Aaaa => 28,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        }
    }

    /// Bytes one more record of this type takes in an answer whose owner
    /// name is compressed: pointer, type, class, TTL, length, address.
    pub(crate) fn record_len(self) -> usize {
        match self {
            RecordType::A => 2 + 10 + 4,
            RecordType::Aaaa => 2 + 10 + 16,
        }
    }
}

/// `name` in wire form (length-prefixed labels, final zero), lowercased so
/// that it compares equal to the names in answers. A trailing dot is
/// allowed.
pub fn encode_name(text: &str) -> Result<Vec<u8>, String> {
    let bare = text.strip_suffix('.').unwrap_or(text);
    if bare.is_empty() {
        return Err("the name is empty".into());
    }
    let mut wire = Vec::with_capacity(bare.len() + 2);
    for label in bare.split('.') {
        if label.is_empty() {
            return Err(format!("'{text}' has an empty label"));
        }
        if label.len() > MAX_LABEL {
            return Err(format!(
                "'{text}' has a label longer than {MAX_LABEL} bytes"
            ));
        }
        wire.push(label.len() as u8);
        wire.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
    }
    wire.push(0);
    if wire.len() > MAX_NAME {
        return Err(format!("'{text}' is longer than {MAX_NAME} bytes"));
    }
    Ok(wire)
}

/// A wire-form name as text, for messages: dots between labels, and bytes
/// that would be ambiguous or unprintable as `\DDD`.
pub fn name_text(wire: &[u8]) -> String {
    let mut text = String::new();
    let mut pos = 0;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        if !text.is_empty() {
            text.push('.');
        }
        let end = (pos + 1 + len as usize).min(wire.len());
        let label = wire.get(pos + 1..end).unwrap_or(&[]);
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                text.push(b as char);
            } else {
                text.push_str(&format!("\\{b:03}"));
            }
        }
        pos += 1 + len as usize;
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

/// A standard query for one name and type, recursion desired.
pub fn build_query(id: u16, name: &[u8], qtype: RecordType) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEADER_LEN + name.len() + 4);
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
    message.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    message.extend_from_slice(name);
    message.extend_from_slice(&qtype.code().to_be_bytes());
    message.extend_from_slice(&CLASS_IN.to_be_bytes());
    message
}

/// An answer, as far as it matters here.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub rcode: u8,
    /// TC: the server left records out.
    pub truncated: bool,
    /// The answer section's A, AAAA and CNAME records of class IN.
    pub records: Vec<Record>,
}

#[derive(Debug, PartialEq)]
pub struct Record {
    /// Wire form, lowercased; shared by consecutive records of one name.
    pub owner: Rc<[u8]>,
    /// Seconds the record may be cached.
    pub ttl: u32,
    pub data: RecordData,
}

#[derive(Debug, PartialEq)]
pub enum RecordData {
    Address(IpAddr),
    /// A CNAME's target, wire form, lowercased.
    Alias(Vec<u8>),
}

#[derive(Debug, PartialEq)]
pub enum ReplyError {
    /// Not an answer to this query: another id, not a response, another
    /// question. Over UDP such a datagram is skipped.
    NotOurs(String),
    /// Cannot be read.
    Malformed(String),
}

// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn malformed(why: impl Into<String>) -> ReplyError {
    ReplyError::Malformed(why.into())
}

/// Reads an answer to the query (`id`, `name`, `qtype`). With TC set, a
/// record cut short ends the list instead of failing the whole answer.
pub fn parse_reply(
    msg: &[u8],
    id: u16,
    name: &[u8],
    qtype: RecordType,
) -> Result<Reply, ReplyError> {
    parse_answer(msg, id, name, qtype, true)
}

/// `parse_reply`; without `cut_records`, an answer with TC set comes
/// without its records: over UDP, TCP is asked next and its answer
/// replaces this one, so reading them would only cost time.
pub(crate) fn parse_answer(
    msg: &[u8],
    id: u16,
    name: &[u8],
    qtype: RecordType,
    cut_records: bool,
) -> Result<Reply, ReplyError> {
    if msg.len() < HEADER_LEN {
        return Err(malformed(format!(
            "a {}-byte message, shorter than a DNS header",
            msg.len()
        )));
    }
    let got_id = read_u16(msg, 0)?;
    if got_id != id {
        return Err(ReplyError::NotOurs(format!(
            "an answer with id {got_id}, not {id}"
        )));
    }
    let flags = read_u16(msg, 2)?;
    if flags & FLAG_RESPONSE == 0 {
        return Err(ReplyError::NotOurs("a query, not an answer".into()));
    }
    let truncated = flags & FLAG_TRUNCATED != 0;
    let rcode = (flags & 0xf) as u8;
    let questions = read_u16(msg, 4)?;
    let answers = read_u16(msg, 6)?;
    // Some servers drop the question from an error answer.
    if questions == 0 && rcode != RCODE_NOERROR && rcode != RCODE_NXDOMAIN {
        return Ok(Reply {
            rcode,
            truncated,
            records: Vec::new(),
        });
    }
    if questions != 1 {
        return Err(malformed(format!("an answer with {questions} questions")));
    }
    let (qname, pos) = read_name(msg, HEADER_LEN)?;
    let (got_type, got_class) = (read_u16(msg, pos)?, read_u16(msg, pos + 2)?);
    if qname != name || got_type != qtype.code() || got_class != CLASS_IN {
        return Err(ReplyError::NotOurs(format!(
            "an answer about {} type {got_type}, not {} {}",
            name_text(&qname),
            name_text(name),
            qtype.name()
        )));
    }
    if truncated && !cut_records {
        return Ok(Reply {
            rcode,
            truncated,
            records: Vec::new(),
        });
    }
    let mut pos = pos + 4;
    // Sized up front (a record takes at least 11 bytes): growing a vector
    // of thousands of records, and each name byte by byte, costs musl's
    // allocator more than the parse itself.
    let mut records = Vec::with_capacity(usize::from(answers).min(msg.len() / 11));
    let mut scratch = Vec::with_capacity(MAX_NAME);
    let mut last = None;
    for _ in 0..answers {
        match read_record(msg, pos, &mut scratch, &mut last) {
            Ok((record, next)) => {
                if let Some(record) = record {
                    records.push(record);
                }
                pos = next;
            }
            Err(_) if truncated => break,
            Err(e) => return Err(e),
        }
    }
    Ok(Reply {
        rcode,
        truncated,
        records,
    })
}

/// The owner name of the record read last, and the compression pointer it
/// was read from, if it was one.
struct LastOwner {
    pointer: Option<[u8; 2]>,
    name: Rc<[u8]>,
}

/// One resource record at `pos`: the record if it is one we use, and where
/// the next one starts.
/// A Service's records all have one owner, which servers write as one
/// pointer to the question's name: the same pointer again is the same name,
/// shared rather than read and allocated once per record.
fn read_record(
    msg: &[u8],
    pos: usize,
    scratch: &mut Vec<u8>,
    last: &mut Option<LastOwner>,
) -> Result<(Option<Record>, usize), ReplyError> {
    let pointer = match msg.get(pos..pos + 2) {
        Some(&[high, low]) if high & 0xc0 == 0xc0 => Some([high, low]),
        _ => None,
    };
    let (owner, pos) = match last {
        // Still points backwards: it did from an earlier position.
        Some(last) if pointer.is_some() && last.pointer == pointer => (last.name.clone(), pos + 2),
        _ => {
            let after = read_name_into(msg, pos, scratch)?;
            let name = match last {
                Some(last) if *last.name == scratch[..] => last.name.clone(),
                _ => Rc::from(&scratch[..]),
            };
            *last = Some(LastOwner {
                pointer,
                name: name.clone(),
            });
            (name, after)
        }
    };
    // Type, class, TTL and data length: one bounds check for all four.
    let Some(&[t1, t0, c1, c0, l3, l2, l1, l0, r1, r0]) = msg.get(pos..pos + 10) else {
        return Err(cut_short(msg, pos));
    };
    let rtype = u16::from_be_bytes([t1, t0]);
    let class = u16::from_be_bytes([c1, c0]);
    let ttl = u32::from_be_bytes([l3, l2, l1, l0]);
    let rdlength = usize::from(u16::from_be_bytes([r1, r0]));
    let start = pos + 10;
    let end = start + rdlength;
    let Some(rdata) = msg.get(start..end) else {
        return Err(malformed(format!(
            "a record at byte {pos} whose {rdlength} data bytes run past the end"
        )));
    };
    if class != CLASS_IN {
        return Ok((None, end));
    }
    let bad_address = || {
        malformed(format!(
            "an address record of {rdlength} bytes at byte {pos}"
        ))
    };
    let data = match rtype {
        1 => match <[u8; 4]>::try_from(rdata) {
            Ok(octets) => RecordData::Address(IpAddr::from(octets)),
            Err(_) => return Err(bad_address()),
        },
        28 => match <[u8; 16]>::try_from(rdata) {
            Ok(octets) => RecordData::Address(IpAddr::from(octets)),
            Err(_) => return Err(bad_address()),
        },
        TYPE_CNAME => {
            let (target, after) = read_name(msg, start)?;
            if after != end {
                return Err(malformed(format!(
                    "a CNAME at byte {pos} whose name does not fill its {rdlength} bytes"
                )));
            }
            RecordData::Alias(target)
        }
        _ => return Ok((None, end)),
    };
    Ok((Some(Record { owner, ttl, data }), end))
}

/// A possibly compressed name at `pos`: the name in wire form (lowercased)
/// and where the bytes after it start.
fn read_name(msg: &[u8], start: usize) -> Result<(Vec<u8>, usize), ReplyError> {
    let mut name = Vec::with_capacity(64);
    let after = read_name_into(msg, start, &mut name)?;
    Ok((name, after))
}

/// `read_name` into `name` (cleared first); returns where the bytes after
/// it start.
fn read_name_into(msg: &[u8], start: usize, name: &mut Vec<u8>) -> Result<usize, ReplyError> {
    name.clear();
    let mut pos = start;
    let mut after = None;
    // Each pointer must point before the one followed last: a message can
    // then hold only finitely many jumps, and no loop.
    let mut floor = usize::MAX;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(malformed(format!(
                "a name at byte {start} that runs past the end"
            )));
        };
        match len & 0xc0 {
            0x00 if len == 0 => {
                name.push(0);
                return Ok(after.unwrap_or(pos + 1));
            }
            0x00 => {
                let Some(label) = msg.get(pos + 1..pos + 1 + len as usize) else {
                    return Err(malformed(format!(
                        "a name at byte {start} that runs past the end"
                    )));
                };
                if name.len() + 1 + label.len() + 1 > MAX_NAME {
                    return Err(malformed(format!(
                        "a name at byte {start} longer than {MAX_NAME} bytes"
                    )));
                }
                name.push(len);
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + len as usize;
            }
            0xc0 => {
                let Some(&low) = msg.get(pos + 1) else {
                    return Err(malformed(format!(
                        "a name at byte {start} that runs past the end"
                    )));
                };
                let target = (usize::from(len & 0x3f) << 8) | usize::from(low);
                if target >= pos.min(floor) {
                    return Err(malformed(format!(
                        "a compression pointer at byte {pos} that does not point backwards"
                    )));
                }
                after.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            _ => {
                return Err(malformed(format!(
                    "an unknown label type {len:#04x} at byte {pos}"
                )))
            }
        }
    }
}

fn read_u16(msg: &[u8], pos: usize) -> Result<u16, ReplyError> {
    match msg.get(pos..pos + 2) {
        Some(&[high, low]) => Ok(u16::from_be_bytes([high, low])),
        _ => Err(cut_short(msg, pos)),
    }
}

// Out of line: inlined, it made the binary larger (under 600 KB).
#[inline(never)]
fn cut_short(msg: &[u8], pos: usize) -> ReplyError {
    malformed(format!(
        "a {}-byte message cut short at byte {pos}",
        msg.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::lookup::follow;

    const ID: u16 = 0xbeef;

    fn wire(name: &str) -> Vec<u8> {
        encode_name(name).unwrap()
    }

    fn header(flags: u16, questions: u16, answers: u16) -> Vec<u8> {
        let mut msg = ID.to_be_bytes().to_vec();
        for field in [flags, questions, answers, 0, 0] {
            msg.extend(field.to_be_bytes());
        }
        msg
    }

    /// svc.example A: a CNAME to pods.svc.example, then its two addresses,
    /// names compressed as servers do.
    fn valid() -> Vec<u8> {
        let mut msg = header(0x8180, 1, 3);
        msg.extend(wire("svc.example")); // 12..25
        msg.extend([0, 1, 0, 1]);
        msg.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 7]); // 29..41
        msg.extend(b"\x04pods\xc0\x0c"); // 41..48
        for last in [1, 2] {
            msg.extend([0xc0, 41, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, last]);
        }
        msg
    }

    fn parse(msg: &[u8]) -> Result<Reply, ReplyError> {
        parse_reply(msg, ID, &wire("svc.example"), RecordType::A)
    }

    fn is_malformed(result: Result<Reply, ReplyError>, what: &str) {
        match result {
            Err(ReplyError::Malformed(why)) => assert!(why.contains(what), "{why}"),
            other => panic!("{other:?} is not malformed ({what})"),
        }
    }

    fn is_not_ours(result: Result<Reply, ReplyError>) {
        assert!(matches!(result, Err(ReplyError::NotOurs(_))), "{result:?}");
    }

    #[test]
    fn reads_cname_and_addresses() {
        let mut msg = valid();
        // The second address's TTL: 5 becomes 0x0100_0003.
        msg[70] = 1;
        msg[73] = 3;
        let reply = parse(&msg).unwrap();
        assert_eq!((reply.rcode, reply.truncated), (0, false));
        assert_eq!(reply.records.len(), 3);
        assert_eq!(reply.records[2].ttl, 0x0100_0003);
        let chain = follow(&reply, &wire("svc.example"), RecordType::A);
        assert_eq!(name_text(&chain.name), "pods.svc.example");
        assert_eq!(
            chain.addrs,
            ["10.0.0.1", "10.0.0.2"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        // The smallest TTL of the CNAME and the addresses.
        assert_eq!(chain.ttl, Some(5));
        msg[38] = 2;
        let reply = parse(&msg).unwrap();
        let chain = follow(&reply, &wire("svc.example"), RecordType::A);
        assert_eq!(chain.ttl, Some(2));
        let none = follow(&reply, &wire("svc.example"), RecordType::Aaaa);
        assert!(none.addrs.is_empty());
    }

    #[test]
    fn query_is_what_servers_expect() {
        let query = build_query(0x1234, &wire("Headless-UDP.default"), RecordType::Aaaa);
        let mut want = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend(b"\x0cheadless-udp\x07default\x00\x00\x1c\x00\x01");
        assert_eq!(query, want);
    }

    #[test]
    fn short_header() {
        for len in 0..HEADER_LEN {
            is_malformed(parse(&valid()[..len]), "shorter than a DNS header");
        }
    }

    #[test]
    fn another_id_or_question_or_a_query() {
        let mut msg = valid();
        msg[1] ^= 1;
        is_not_ours(parse(&msg));
        let mut msg = valid();
        msg[2] &= 0x7f;
        is_not_ours(parse(&msg));
        let mut msg = valid();
        msg[14] = b'x';
        is_not_ours(parse(&msg));
        let mut msg = valid();
        msg[26] = 28;
        is_not_ours(parse(&msg));
        let mut msg = valid();
        msg[28] = 3;
        is_not_ours(parse(&msg));
        // Case does not matter.
        let mut msg = valid();
        msg[13] = b'S';
        assert!(parse(&msg).is_ok());
    }

    #[test]
    fn question_counts() {
        let mut msg = valid();
        msg[5] = 2;
        is_malformed(parse(&msg), "2 questions");
        // An error answer without its question is still an answer.
        let msg = header(0x8182, 0, 0);
        assert_eq!(parse(&msg).unwrap().rcode, RCODE_SERVFAIL);
        is_malformed(parse(&header(0x8180, 0, 0)), "0 questions");
    }

    #[test]
    fn pointer_to_itself_or_forwards() {
        let mut msg = header(0x8180, 1, 0);
        msg.extend([0xc0, 12, 0, 1, 0, 1]);
        is_malformed(parse(&msg), "does not point backwards");
        let mut msg = header(0x8180, 1, 0);
        msg.extend([0xc0, 200, 0, 1, 0, 1]);
        is_malformed(parse(&msg), "does not point backwards");
        let mut msg = header(0x8180, 1, 0);
        msg.extend([0xff, 0xff, 0, 1, 0, 1]);
        is_malformed(parse(&msg), "does not point backwards");
    }

    #[test]
    fn pointer_loops() {
        // A label, then a pointer back to it: "a.a.a.a..." forever.
        let mut msg = valid();
        msg.truncate(29);
        msg.extend([1, b'a', 0xc0, 29, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1]);
        msg[7] = 1;
        is_malformed(parse(&msg), "does not point backwards");
        // Two pointers pointing at each other, the first backwards.
        let mut msg = valid();
        msg.truncate(29);
        msg.extend([0xc0, 31, 0xc0, 29, 0, 1]);
        msg[7] = 1;
        is_malformed(parse(&msg), "does not point backwards");
    }

    #[test]
    fn labels_and_names_too_long_or_unknown() {
        let mut msg = header(0x8180, 1, 0);
        msg.push(0x40);
        msg.extend([0; 70]);
        is_malformed(parse(&msg), "unknown label type");
        let mut msg = header(0x8180, 1, 0);
        msg.push(0x80);
        is_malformed(parse(&msg), "unknown label type");
        // Five labels of 63 bytes: 320 bytes.
        let mut msg = header(0x8180, 1, 0);
        for _ in 0..5 {
            msg.push(63);
            msg.extend([b'x'; 63]);
        }
        msg.extend([0, 0, 1, 0, 1]);
        is_malformed(parse(&msg), "longer than 255");
        // Within the message, a name cut by its end.
        let mut msg = header(0x8180, 1, 0);
        msg.extend([20, b'x', b'y']);
        is_malformed(parse(&msg), "runs past the end");
        let mut msg = header(0x8180, 1, 0);
        msg.extend([3, b'x', b'y', b'z', 0xc0]);
        is_malformed(parse(&msg), "runs past the end");
    }

    #[test]
    fn record_lengths_that_lie() {
        // Past the end.
        let mut msg = valid();
        let len = msg.len();
        msg[len - 5] = 200;
        is_malformed(parse(&msg), "run past the end");
        // An A record of 5 bytes, within the message.
        let mut msg = valid();
        msg[len - 5] = 5;
        msg.push(0);
        is_malformed(parse(&msg), "address record of 5 bytes");
        // A CNAME that does not fill its data.
        let mut msg = valid();
        msg[40] = 8;
        is_malformed(parse(&msg), "does not fill");
        // A record cut in its fixed fields.
        is_malformed(parse(&valid()[..len - 10]), "cut short");
    }

    #[test]
    fn huge_counts_are_believed_only_as_far_as_the_bytes_go() {
        let mut msg = valid();
        msg[6] = 0xff;
        msg[7] = 0xff;
        is_malformed(parse(&msg), "runs past the end");
        // With TC set, the records that are there count.
        msg[2] |= 0x02;
        let reply = parse(&msg).unwrap();
        assert!(reply.truncated);
        assert_eq!(reply.records.len(), 3);
        // Half a record at the end of a truncated answer.
        let mut msg = valid();
        msg[2] |= 0x02;
        let len = msg.len();
        assert_eq!(parse(&msg[..len - 3]).unwrap().records.len(), 2);
    }

    #[test]
    fn owners_by_pointer_and_in_full() {
        // After valid()'s three: svc.example by pointer (as the CNAME's
        // owner), pods.svc.example again, then written out in full.
        let mut msg = valid();
        msg[7] = 6;
        msg.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 3]);
        msg.extend([0xc0, 41, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 4]);
        msg.extend(wire("pods.svc.example"));
        msg.extend([0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 5]);
        let reply = parse(&msg).unwrap();
        let owners: Vec<String> = reply.records.iter().map(|r| name_text(&r.owner)).collect();
        let pods = "pods.svc.example";
        let want = ["svc.example", pods, pods, "svc.example", pods, pods];
        assert_eq!(owners, want);
        let shared =
            |a: usize, b: usize| Rc::ptr_eq(&reply.records[a].owner, &reply.records[b].owner);
        assert!(shared(1, 2) && shared(4, 5));
        let chain = follow(&reply, &wire("svc.example"), RecordType::A);
        let addrs: Vec<String> = chain.addrs.iter().map(IpAddr::to_string).collect();
        assert_eq!(name_text(&chain.name), pods);
        assert_eq!(addrs, ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5"]);
    }

    #[test]
    fn a_truncated_answer_over_udp_comes_without_records() {
        let mut msg = valid();
        msg[2] |= 0x02;
        let reply = parse_answer(&msg, ID, &wire("svc.example"), RecordType::A, false).unwrap();
        assert_eq!((reply.truncated, reply.records.len()), (true, 0));
        // Still checked as an answer to this query.
        is_not_ours(parse_answer(&msg, ID, &wire("other"), RecordType::A, false));
        assert_eq!(parse(&msg).unwrap().records.len(), 3);
    }

    #[test]
    fn other_classes_and_types_are_skipped() {
        let mut msg = valid();
        msg[7] = 4;
        msg.extend([0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 5, 0, 3, 2, b'h', b'i']); // TXT
        let mut msg2 = msg.clone();
        msg2[7] = 5;
        msg2.extend([0xc0, 41, 0, 1, 0, 3, 0, 0, 0, 5, 0, 4, 10, 0, 0, 3]); // class CH
        for msg in [msg, msg2] {
            let reply = parse(&msg).unwrap();
            assert_eq!(reply.records.len(), 3);
        }
    }

    #[test]
    fn cname_loops_end() {
        // a -> b -> a, and no address.
        let mut msg = header(0x8180, 1, 2);
        msg.extend(wire("a")); // 12..15
        msg.extend([0, 1, 0, 1]);
        msg.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 5, 0, 3, 1, b'b', 0]); // b at 31
        msg.extend([0xc0, 31, 0, 5, 0, 1, 0, 0, 0, 5, 0, 2, 0xc0, 12]);
        let reply = parse_reply(&msg, ID, &wire("a"), RecordType::A).unwrap();
        let chain = follow(&reply, &wire("a"), RecordType::A);
        assert!(chain.addrs.is_empty());
    }

    #[test]
    fn names() {
        assert_eq!(wire("Svc.Example."), b"\x03svc\x07example\x00");
        assert!(encode_name("").is_err());
        assert!(encode_name(".").is_err());
        assert!(encode_name("a..b").is_err());
        assert!(encode_name(&"x".repeat(64)).is_err());
        assert!(encode_name(&"x".repeat(63)).is_ok());
        let long = vec!["x".repeat(63); 4].join(".");
        assert_eq!(long.len(), 255);
        assert!(encode_name(&long).is_err());
        assert!(encode_name(&long[2..]).is_ok());
        assert_eq!(name_text(&wire("a.b")), "a.b");
        assert_eq!(name_text(b"\x03a.\\\x01\x00"), "a\\046\\092.\\000");
        assert_eq!(name_text(b"\x00"), ".");
        assert_eq!(name_text(b"\x09cut"), "cut");
    }

    /// xorshift64*: a fixed seed, so a failure can be replayed.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Whatever comes back, parsing and following it must not panic.
    fn digest(msg: &[u8]) {
        for qtype in [RecordType::A, RecordType::Aaaa] {
            if let Ok(reply) = parse_reply(msg, ID, &wire("svc.example"), qtype) {
                let _ = follow(&reply, &wire("svc.example"), qtype);
                for record in &reply.records {
                    let _ = name_text(&record.owner);
                }
            }
        }
    }

    #[test]
    fn fuzz_random_bytes() {
        let mut rng = Rng(0x5eed_0001);
        for _ in 0..20_000 {
            let len = rng.below(600);
            let mut msg: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Most with our id and a response flag, to get past the header.
            if len >= HEADER_LEN && rng.below(4) != 0 {
                msg[..2].copy_from_slice(&ID.to_be_bytes());
                msg[2] |= 0x80;
                msg[4] = 0;
                msg[5] = 1;
            }
            digest(&msg);
        }
    }

    #[test]
    fn fuzz_mutated_answers() {
        let mut rng = Rng(0x5eed_0002);
        let base = valid();
        for _ in 0..50_000 {
            let mut msg = base.clone();
            for _ in 0..1 + rng.below(6) {
                match rng.below(5) {
                    0 => msg.truncate(rng.below(msg.len() + 1)),
                    1 if !msg.is_empty() => {
                        let at = rng.below(msg.len());
                        msg.remove(at);
                    }
                    2 => msg.insert(rng.below(msg.len() + 1), rng.next() as u8),
                    _ if !msg.is_empty() => {
                        let at = rng.below(msg.len());
                        msg[at] = if rng.below(2) == 0 {
                            rng.next() as u8
                        } else {
                            // Pointer bytes and small numbers are the tricky ones.
                            [0xc0, 0xff, 0, 1, 12, 63, 64][rng.below(7)]
                        };
                    }
                    _ => {}
                }
            }
            digest(&msg);
        }
    }
}
