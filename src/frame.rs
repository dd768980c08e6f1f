//! Framed datagrams (docs/PROTOCOL.md): a fixed 22-byte header, then the
//! message. Plain datagrams stay plain; only `sender --confirm`,
//! `relay --frame` and a key send frames, and parsing is total: anything
//! that is not a well-formed frame of a known kind is `None`, i.e. plain
//! bytes.
//!
//! ```text
//! 0      4        5     6           14          22
//! | magic | version | kind | sender id | sequence | kind-specific ...
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Starts every frame. 0xFF never occurs in UTF-8 text, so a text message
/// cannot look like a frame by accident.
pub const MAGIC: [u8; 4] = [0xFF, b'U', b'D', b'H'];
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 22;
/// An acknowledgement is the header alone: never larger than the frame it
/// answers, which has at least a header.
pub const ACK_LEN: usize = HEADER_LEN;

/// The kind byte.
const KIND_DATA: u8 = 1;
const KIND_ACK: u8 = 2;
pub const KIND_FORWARDED: u8 = 3;
/// A forwarded DATA frame: logged once, with its client, and acknowledged
/// to the relay (which acknowledges to the client when all pods have).
const KIND_FORWARDED_DATA: u8 = 4;
/// A message to log, not to acknowledge: what a sender with a key sends
/// without `--confirm`. Only signed (`parse_signed`): unsigned, a message
/// needs no frame, and kind 5 stays plain bytes as before it existed.
const KIND_MESSAGE: u8 = 5;

/// Family bytes of a forwarded frame's original source.
const SOURCE_V4: u8 = 4;
const SOURCE_V6: u8 = 6;

/// Names one message of one sender: what an acknowledgement answers and
/// what the receiver remembers to log each message once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Id {
    /// Random per sender process, so two senders' sequences never mix.
    pub sender: u64,
    pub seq: u64,
}

#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    /// A message to log once and acknowledge.
    Data { id: Id, message: &'a [u8] },
    /// The receiver's answer to `Data` with the same id.
    Ack(Id),
    /// A message to log, never acknowledged (`KIND_MESSAGE`).
    Message { id: Id, message: &'a [u8] },
    /// A message a relay forwarded: logged with the client's address
    /// (`source`) as if the client had sent it directly; acknowledged
    /// (and logged once) only if `confirm`, a DATA frame the relay
    /// forwarded (`KIND_FORWARDED_DATA`).
    Forwarded {
        id: Id,
        source: SocketAddr,
        message: &'a [u8],
        confirm: bool,
    },
}

/// The frame in `datagram`, or None: not a frame, another version, an
/// unknown kind, or cut short. Never panics, whatever the bytes. A MESSAGE
/// frame is None here: unsigned it is plain bytes (see `parse_signed`).
pub fn parse(datagram: &[u8]) -> Option<Frame<'_>> {
    parse_kinds(datagram, false)
}

/// `parse` of the frame a signature covers (`signed::open`), where a
/// MESSAGE frame is one.
pub fn parse_signed(datagram: &[u8]) -> Option<Frame<'_>> {
    parse_kinds(datagram, true)
}

fn parse_kinds(datagram: &[u8], signed: bool) -> Option<Frame<'_>> {
    if datagram.len() < HEADER_LEN || datagram[..4] != MAGIC || datagram[4] != VERSION {
        return None;
    }
    let id = Id {
        sender: u64::from_be_bytes(datagram[6..14].try_into().ok()?),
        seq: u64::from_be_bytes(datagram[14..22].try_into().ok()?),
    };
    let body = &datagram[HEADER_LEN..];
    match datagram[5] {
        KIND_DATA => Some(Frame::Data { id, message: body }),
        KIND_ACK if body.is_empty() => Some(Frame::Ack(id)),
        KIND_MESSAGE if signed => Some(Frame::Message { id, message: body }),
        kind @ (KIND_FORWARDED | KIND_FORWARDED_DATA) => {
            let (&family, rest) = body.split_first()?;
            let port = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
            let rest = &rest[2..];
            let (ip, message) = match family {
                SOURCE_V4 => {
                    let octets: [u8; 4] = rest.get(..4)?.try_into().ok()?;
                    (IpAddr::from(Ipv4Addr::from(octets)), &rest[4..])
                }
                SOURCE_V6 => {
                    let octets: [u8; 16] = rest.get(..16)?.try_into().ok()?;
                    (IpAddr::from(Ipv6Addr::from(octets)), &rest[16..])
                }
                _ => return None,
            };
            Some(Frame::Forwarded {
                id,
                source: SocketAddr::new(ip, port),
                message,
                confirm: kind == KIND_FORWARDED_DATA,
            })
        }
        _ => None,
    }
}

fn write_header(out: &mut Vec<u8>, kind: u8, id: Id) {
    // Built on the stack and appended once: one capacity check, not five
    // (smaller code in each binary).
    let mut header = [0u8; HEADER_LEN];
    header[..MAGIC.len()].copy_from_slice(&MAGIC);
    header[MAGIC.len()] = VERSION;
    header[MAGIC.len() + 1] = kind;
    header[HEADER_LEN - 16..HEADER_LEN - 8].copy_from_slice(&id.sender.to_be_bytes());
    header[HEADER_LEN - 8..].copy_from_slice(&id.seq.to_be_bytes());
    out.extend_from_slice(&header);
}

/// A data frame carrying `message`.
pub fn data(id: Id, message: &[u8]) -> Vec<u8> {
    with_header(KIND_DATA, id, message)
}

/// A message frame carrying `message`: logged, not acknowledged.
pub fn message(id: Id, message: &[u8]) -> Vec<u8> {
    with_header(KIND_MESSAGE, id, message)
}

fn with_header(kind: u8, id: Id, message: &[u8]) -> Vec<u8> {
    // Room for a signature too: sealing then needs no second allocation.
    let mut out = Vec::with_capacity(HEADER_LEN + message.len() + crate::signed::OVERHEAD);
    write_header(&mut out, kind, id);
    out.extend_from_slice(message);
    out
}

/// The acknowledgement of the data frame `id`.
pub fn ack(id: Id) -> [u8; ACK_LEN] {
    let mut out = Vec::with_capacity(ACK_LEN);
    write_header(&mut out, KIND_ACK, id);
    out.try_into().expect("a header is ACK_LEN bytes")
}

/// Replaces `out` with a forwarded frame: `message` as `source` sent it.
/// An IPv4-mapped source is written as the IPv4 address it is.
pub fn write_forwarded(out: &mut Vec<u8>, id: Id, source: SocketAddr, message: &[u8]) {
    write_source_frame(out, KIND_FORWARDED, id, source, message);
}

/// `write_forwarded` for a DATA frame `id` from `source`: a forwarded DATA
/// frame, which the receiver acknowledges.
pub fn write_forwarded_data(out: &mut Vec<u8>, id: Id, source: SocketAddr, message: &[u8]) {
    write_source_frame(out, KIND_FORWARDED_DATA, id, source, message);
}

fn write_source_frame(out: &mut Vec<u8>, kind: u8, id: Id, source: SocketAddr, message: &[u8]) {
    out.clear();
    write_header(out, kind, id);
    // Kind of address, port, address: on the stack, then appended once.
    let mut addr = [0u8; 19];
    addr[1..3].copy_from_slice(&source.port().to_be_bytes());
    let len = match source.ip().to_canonical() {
        IpAddr::V4(v4) => {
            addr[0] = SOURCE_V4;
            addr[3..7].copy_from_slice(&v4.octets());
            7
        }
        IpAddr::V6(v6) => {
            addr[0] = SOURCE_V6;
            addr[3..].copy_from_slice(&v6.octets());
            19
        }
    };
    out.reserve(len + message.len());
    out.extend_from_slice(&addr[..len]);
    out.extend_from_slice(message);
}

/// A sender id that another process is unlikely to share.
pub fn random_sender_id() -> u64 {
    crate::os::random_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Id = Id {
        sender: 0x0102_0304_0506_0708,
        seq: 42,
    };

    /// The example in docs/PROTOCOL.md, byte by byte.
    const DATA_TEST: &[u8] =
        b"\xffUDH\x01\x01\x01\x02\x03\x04\x05\x06\x07\x08\0\0\0\0\0\0\0\x2atest";

    #[test]
    fn encodes_as_documented() {
        assert_eq!(data(ID, b"test"), DATA_TEST);
        let mut want = DATA_TEST.to_vec();
        want[5] = KIND_MESSAGE;
        assert_eq!(message(ID, b"test"), want);
        assert_eq!(&ack(ID)[..5], b"\xffUDH\x01");
        assert_eq!(ack(ID)[5], KIND_ACK);
        assert_eq!(ack(ID)[6..], DATA_TEST[6..HEADER_LEN]);
        let mut fwd = Vec::new();
        write_forwarded(&mut fwd, ID, "10.1.2.3:5000".parse().unwrap(), b"hi");
        let mut want = DATA_TEST[..HEADER_LEN].to_vec();
        want[5] = KIND_FORWARDED;
        want.extend_from_slice(b"\x04\x13\x88\x0a\x01\x02\x03hi");
        assert_eq!(fwd, want);
        write_forwarded_data(&mut fwd, ID, "10.1.2.3:5000".parse().unwrap(), b"hi");
        want[5] = KIND_FORWARDED_DATA;
        assert_eq!(fwd, want);
    }

    #[test]
    fn round_trips() {
        let sources = ["10.1.2.3:5000", "[fd00::1]:1", "[::ffff:10.0.0.1]:7"];
        for message in [&b""[..], b"x", b"\xffUDH\x01\x01", &[0u8; 300]] {
            let framed = data(ID, message);
            assert_eq!(parse(&framed), Some(Frame::Data { id: ID, message }));
            let framed = super::message(ID, message);
            assert_eq!(parse(&framed), None, "unsigned: plain bytes");
            let got = parse_signed(&framed);
            assert_eq!(got, Some(Frame::Message { id: ID, message }));
            for (source, confirm) in sources.iter().flat_map(|s| [(s, false), (s, true)]) {
                let source: SocketAddr = source.parse().unwrap();
                let mut fwd = Vec::new();
                let kind = if confirm {
                    KIND_FORWARDED_DATA
                } else {
                    KIND_FORWARDED
                };
                write_source_frame(&mut fwd, kind, ID, source, message);
                let want = SocketAddr::new(source.ip().to_canonical(), source.port());
                let got = parse(&fwd);
                assert_eq!(
                    got,
                    Some(Frame::Forwarded {
                        id: ID,
                        source: want,
                        message,
                        confirm
                    })
                );
            }
        }
        assert_eq!(parse(&ack(ID)), Some(Frame::Ack(ID)));
    }

    #[test]
    fn anything_else_is_plain_bytes() {
        let with = |at: usize, byte: u8| {
            let mut d = DATA_TEST.to_vec();
            d[at] = byte;
            d
        };
        let mut ack_with_tail = ack(ID).to_vec();
        ack_with_tail.push(0);
        let forwarded = |source: &[u8]| {
            let mut d = DATA_TEST[..HEADER_LEN].to_vec();
            d[5] = KIND_FORWARDED;
            d.extend_from_slice(source);
            d
        };
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("text", b"test".to_vec()),
            ("magic only", MAGIC.to_vec()),
            ("header cut short", DATA_TEST[..HEADER_LEN - 1].to_vec()),
            ("wrong magic", with(0, 0xFE)),
            ("wrong magic, last byte", with(3, b'h')),
            ("version 0", with(4, 0)),
            ("version 2", with(4, 2)),
            ("kind 0", with(5, 0)),
            ("kind 5 (MESSAGE), unsigned", with(5, 5)),
            ("kind 6", with(5, 6)),
            ("kind 255", with(5, 255)),
            ("ack with a tail", ack_with_tail),
            ("forwarded, no source", forwarded(b"")),
            (
                "forwarded, family 5",
                forwarded(b"\x05\x00\x01\x0a\x00\x00\x01"),
            ),
            ("forwarded, port cut", forwarded(b"\x04\x00")),
            (
                "forwarded, IPv4 cut",
                forwarded(b"\x04\x00\x01\x0a\x00\x00"),
            ),
            ("forwarded, IPv6 cut", forwarded(&[6, 0, 1, 0xfd, 0, 0, 0])),
        ];
        for (what, datagram) in cases {
            assert_eq!(parse(&datagram), None, "{what}");
        }
    }

    #[test]
    fn never_panics_on_any_prefix_or_mutation() {
        let mut fwd = Vec::new();
        write_forwarded_data(&mut fwd, ID, "[fd00::1]:9".parse().unwrap(), b"m");
        for frame in [DATA_TEST.to_vec(), ack(ID).to_vec(), fwd] {
            for len in 0..=frame.len() {
                let _ = parse(&frame[..len]);
                for at in 0..len {
                    for byte in [0, 1, 2, 3, 4, 5, 6, 0xff] {
                        let mut d = frame[..len].to_vec();
                        d[at] = byte;
                        let _ = parse(&d);
                        let _ = parse_signed(&d);
                    }
                }
            }
        }
    }

    #[test]
    fn sender_ids_differ() {
        assert_ne!(random_sender_id(), random_sender_id());
    }
}
