//! Command-line parsing shared by both programs, in the spirit of `lexopt`:
//! a plain loop over `Arg`s, strict about anything unknown. Also the value
//! parsers (port, duration, ...) and environment-variable fallbacks.

use std::ffi::OsString;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// What is wrong with the command line or the environment. Printed as one
/// line by `Display`; the exit code is in `crate::exit`.
#[derive(Debug, PartialEq)]
pub enum UsageError {
    /// As the user wrote it: `-x`, `--bogus`.
    UnknownOption(String),
    /// A positional argument, or anything after `--help`/`--version`.
    UnexpectedArgument(String),
    /// `--help=x`: the option as written.
    TakesNoValue(String),
    NeedsValue(String),
    /// An option (`-s`) or variable (`$UDP_HEADLESS_SERVICE`) whose value
    /// is not UTF-8.
    NotUtf8(String),
    /// `from` (`--port`, `$UDP_HEADLESS_PORT`) has value `text`, which is
    /// not `expected` ("a port (1-65535)").
    BadValue {
        from: String,
        text: String,
        expected: &'static str,
    },
    /// Anything else, as a whole sentence.
    Invalid(String),
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            UsageError::UnknownOption(option) => write!(f, "unknown option '{option}'"),
            UsageError::UnexpectedArgument(arg) => write!(f, "unexpected argument '{arg}'"),
            UsageError::TakesNoValue(option) => write!(f, "option '{option}' takes no value"),
            UsageError::NeedsValue(option) => write!(f, "option '{option}' needs a value"),
            UsageError::NotUtf8(from) => write!(f, "{from}: the value is not UTF-8"),
            UsageError::BadValue {
                from,
                text,
                expected,
            } => write!(f, "{from}: '{text}' is not {expected}"),
            UsageError::Invalid(why) => f.write_str(why),
        }
    }
}

impl UsageError {
    pub fn bad_value(from: &str, text: &str, expected: &'static str) -> UsageError {
        UsageError::BadValue {
            from: from.to_string(),
            text: text.to_string(),
            expected,
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum Arg {
    Short(char),
    Long(String),
    Value(OsString),
}

impl Arg {
    /// An option's long name; `shorts` maps short forms to long names.
    /// None for a positional value or an unknown short option.
    pub fn name<'a>(&'a self, shorts: &[(char, &'a str)]) -> Option<&'a str> {
        match self {
            Arg::Short(c) => shorts.iter().find(|(s, _)| s == c).map(|(_, long)| *long),
            Arg::Long(name) => Some(name),
            Arg::Value(_) => None,
        }
    }

    /// As the user wrote it (`-s`, `--port`, the value).
    pub fn written(&self) -> String {
        match self {
            Arg::Short(c) => format!("-{c}"),
            Arg::Long(name) => format!("--{name}"),
            Arg::Value(v) => v.to_string_lossy().into_owned(),
        }
    }

    /// How the user wrote the option, for error messages.
    pub fn unexpected(&self) -> UsageError {
        match self {
            Arg::Short(c) => UsageError::UnknownOption(format!("-{c}")),
            Arg::Long(name) => UsageError::UnknownOption(format!("--{name}")),
            Arg::Value(v) => UsageError::UnexpectedArgument(v.to_string_lossy().into_owned()),
        }
    }
}

pub struct Parser {
    args: std::vec::IntoIter<OsString>,
    /// The `value` part of `--name=value` or `-svalue`.
    attached: Option<OsString>,
    last_option: String,
    only_values: bool,
}

impl Parser {
    pub fn from_env() -> Parser {
        Parser::new(std::env::args_os().skip(1).collect())
    }

    pub fn new(args: Vec<OsString>) -> Parser {
        Parser {
            args: args.into_iter(),
            attached: None,
            last_option: String::new(),
            only_values: false,
        }
    }

    // Not Iterator: it returns a Result, as lexopt's does.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Arg>, UsageError> {
        self.flag()?;
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        if self.only_values {
            return Ok(Some(Arg::Value(arg)));
        }
        let bytes = arg.as_encoded_bytes();
        if bytes == b"--" {
            self.only_values = true;
            return self.next();
        }
        if bytes.starts_with(b"--") {
            let raw = arg.into_encoded_bytes();
            let (name, value) = match raw.iter().position(|&b| b == b'=') {
                // Keep the value's raw bytes: a message may be any bytes.
                Some(eq) => (&raw[2..eq], Some(os_from_bytes(raw[eq + 1..].to_vec()))),
                None => (&raw[2..], None),
            };
            let name = String::from_utf8_lossy(name).into_owned();
            self.last_option = format!("--{name}");
            self.attached = value;
            return Ok(Some(Arg::Long(name)));
        }
        if bytes.len() >= 2 && bytes[0] == b'-' && bytes[1].is_ascii_alphanumeric() {
            let short = bytes[1] as char;
            let rest = arg.into_encoded_bytes()[2..].to_vec();
            self.last_option = format!("-{short}");
            self.attached = (!rest.is_empty()).then(|| os_from_bytes(rest));
            return Ok(Some(Arg::Short(short)));
        }
        Ok(Some(Arg::Value(arg)))
    }

    /// Checks that the option just returned takes no value (`--help=x`).
    pub fn flag(&mut self) -> Result<(), UsageError> {
        match self.attached.take() {
            Some(_) => Err(UsageError::TakesNoValue(self.last_option.clone())),
            None => Ok(()),
        }
    }

    /// The value of the option just returned by `next`.
    pub fn value(&mut self) -> Result<OsString, UsageError> {
        if let Some(v) = self.attached.take() {
            return Ok(v);
        }
        self.args
            .next()
            .ok_or_else(|| UsageError::NeedsValue(self.last_option.clone()))
    }

    /// The value, as UTF-8 text.
    pub fn text(&mut self) -> Result<String, UsageError> {
        let option = self.last_option.clone();
        let value = self.value()?;
        value.into_string().map_err(|_| UsageError::NotUtf8(option))
    }
}

/// `--help` or `--version` (`option`), alike in both programs: checks it
/// has no value and nothing after it (`-V extra` is a mistake, not a
/// version request), and gives the help text or `program VERSION` to print.
pub fn help_or_version(
    parser: &mut Parser,
    option: &str,
    program: &str,
    help: &str,
) -> Result<String, UsageError> {
    parser.flag()?;
    if let Some(arg) = parser.next()? {
        return Err(UsageError::UnexpectedArgument(arg.written()));
    }
    Ok(match option {
        "help" => help.to_string(),
        _ => format!("{program} {}\n", env!("CARGO_PKG_VERSION")),
    })
}

fn os_from_bytes(bytes: Vec<u8>) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    OsString::from_vec(bytes)
}

/// The option's value if given, else the environment variable's, if set;
/// paired with a label naming where it came from, for error messages. A
/// variable that is not UTF-8 is an error, as the option's value would be.
pub fn option_or_env(
    given: Option<String>,
    option: &str,
    var: &str,
) -> Result<Option<(String, String)>, UsageError> {
    match given {
        Some(text) => Ok(Some((text, option.to_string()))),
        // Empty is unset: a template parameter left blank sets it so.
        None => match std::env::var_os(var).map(std::ffi::OsString::into_string) {
            None => Ok(None),
            Some(Ok(text)) if text.is_empty() => Ok(None),
            Some(Ok(text)) => Ok(Some((text, format!("${var}")))),
            Some(Err(_)) => Err(UsageError::NotUtf8(format!("${var}"))),
        },
    }
}

/// Digits only: Rust's integer parsing would also take `+80`.
fn digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// The UDP port of the original demo, where receivers listen.
const DEFAULT_PORT: u16 = 12000;

/// `-s` or `UDP_HEADLESS_SERVICE`: required, and not empty.
pub fn service(given: Option<String>) -> Result<String, UsageError> {
    let Some((service, _)) = option_or_env(given, "--service", "UDP_HEADLESS_SERVICE")? else {
        return Err(UsageError::Invalid(
            "no service: give -s NAME (or set UDP_HEADLESS_SERVICE)".into(),
        ));
    };
    if service.is_empty() {
        return Err(UsageError::Invalid("the service name is empty".into()));
    }
    // `[::1]` is an IPv6 address; `[::1]:80` and `host:80` carry a port,
    // which DNS would only answer with "no such name".
    if let Some(inside) = service.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        // A zone (`fe80::1%eth0`) is the system resolver's to read.
        let address = inside.split('%').next().unwrap_or_default();
        if address.parse::<std::net::Ipv6Addr>().is_ok() {
            return Ok(inside.to_string());
        }
    }
    if service.starts_with('[') || service.matches(':').count() == 1 {
        return Err(UsageError::Invalid(format!(
            "the service '{service}' is not a name or an address: give the port with -p"
        )));
    }
    Ok(service)
}

/// An address to listen on, `port` added: an IP address, and an IPv6 one
/// may have a zone, as `-s` takes it (`fe80::1%eth0`, or `fe80::1%2` by
/// interface index): a link-local address means nothing without its link.
pub fn ip_with_zone(text: &str, from: &str, port: u16) -> Result<SocketAddr, UsageError> {
    let bad = || UsageError::bad_value(from, text, "an IP address");
    let Some((addr, zone)) = text.split_once('%') else {
        return text
            .parse()
            .map(|ip| SocketAddr::new(ip, port))
            .map_err(|_| bad());
    };
    let addr: Ipv6Addr = addr.parse().map_err(|_| bad())?;
    let scope = match zone.parse() {
        Ok(index) if digits(zone) => index,
        _ => crate::os::sys::interface_index(zone).ok_or_else(|| {
            UsageError::Invalid(format!(
                "{from}: no network interface '{zone}' (in '{text}')"
            ))
        })?,
    };
    Ok(SocketAddr::V6(SocketAddrV6::new(addr, port, 0, scope)))
}

/// `ADDR:PORT` (`[::]:9102`, `10.0.0.1:12001`), an IPv6 address with a
/// zone too, as [`ip_with_zone`] takes it: `[fe80::1%eth0]:12001`.
pub fn socket_addr_with_zone(
    text: &str,
    from: &str,
    expected: &'static str,
) -> Result<SocketAddr, UsageError> {
    let bad = || UsageError::bad_value(from, text, expected);
    let zoned = text.strip_prefix('[').and_then(|t| t.split_once("]:"));
    match zoned {
        Some((ip, port)) if ip.contains('%') => {
            let port = port.parse().ok().filter(|_| digits(port)).ok_or_else(bad)?;
            ip_with_zone(ip, from, port)
        }
        _ => text.parse().map_err(|_| bad()),
    }
}

/// `-p` or `UDP_HEADLESS_PORT`, else [`DEFAULT_PORT`].
pub fn port(given: Option<String>) -> Result<u16, UsageError> {
    match option_or_env(given, "--port", "UDP_HEADLESS_PORT")? {
        Some((text, from)) => parse_port(&text, &from),
        None => Ok(DEFAULT_PORT),
    }
}

fn parse_port(text: &str, what: &str) -> Result<u16, UsageError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 && digits(text) => Ok(port),
        _ => Err(UsageError::bad_value(what, text, "a port (1-65535)")),
    }
}

/// `--refresh` or `UDP_HEADLESS_REFRESH`: None is by TTL.
pub fn refresh(given: Option<String>) -> Result<Option<Duration>, UsageError> {
    match option_or_env(given, "--refresh", "UDP_HEADLESS_REFRESH")? {
        Some((text, from)) => Ok(Some(parse_duration(&text, &from)?)),
        None => Ok(None),
    }
}

/// `--rcvbuf` or `UDP_HEADLESS_RCVBUF`: None is the default.
pub fn rcvbuf(given: Option<String>) -> Result<Option<usize>, UsageError> {
    match option_or_env(given, "--rcvbuf", "UDP_HEADLESS_RCVBUF")? {
        Some((text, from)) => Ok(Some(parse_count(&text, &from)? as usize)),
        None => Ok(None),
    }
}

/// `--metrics` or `UDP_HEADLESS_METRICS`: where to serve them, if at all.
pub fn metrics(given: Option<String>) -> Result<Option<SocketAddr>, UsageError> {
    match option_or_env(given, "--metrics", "UDP_HEADLESS_METRICS")? {
        Some((text, from)) => Ok(Some(text.parse::<SocketAddr>().map_err(|_| {
            UsageError::bad_value(&from, &text, "ADDR:PORT (like [::]:9102)")
        })?)),
        None => Ok(None),
    }
}

/// `500ms`, `2s`, `1.5s`, `3m`, `1h`; a bare number is seconds. Decimal
/// arithmetic, not `f64`: float parsing alone is 15 KB of a binary that
/// must stay under 600 KB (docs/BENCHMARKS.md, Footprint).
pub fn parse_duration(text: &str, what: &str) -> Result<Duration, UsageError> {
    let bad = || UsageError::bad_value(what, text, "a duration (like 500ms, 2s, 1.5s, 3m)");
    let too_long = || UsageError::Invalid(format!("{what}: '{text}' is too long"));
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let nanos_per_unit: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(bad()),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(bad());
    }
    // The number in units of 10^-12 (below a nanosecond even for ms),
    // digits past that are dropped.
    const PLACES: usize = 12;
    let mut scaled: u128 = 0;
    let digits = whole
        .bytes()
        .chain(fraction.bytes().chain(std::iter::repeat(b'0')).take(PLACES));
    for digit in digits {
        scaled = scaled
            .checked_mul(10)
            .and_then(|n| n.checked_add(u128::from(digit - b'0')))
            .ok_or_else(too_long)?;
    }
    let nanos =
        scaled.checked_mul(nanos_per_unit).ok_or_else(too_long)? / 10u128.pow(PLACES as u32);
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

pub fn parse_count(text: &str, what: &str) -> Result<u64, UsageError> {
    match text.parse::<u64>() {
        Ok(n) if digits(text) => Ok(n),
        _ => Err(UsageError::bad_value(what, text, "a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(args: &[&str]) -> Result<Vec<(Arg, Option<String>)>, UsageError> {
        let mut p = Parser::new(args.iter().map(OsString::from).collect());
        let mut out = Vec::new();
        while let Some(arg) = p.next()? {
            let takes_value = matches!(&arg, Arg::Short('m') | Arg::Long(_))
                && !matches!(&arg, Arg::Long(l) if l == "help");
            let value = if takes_value { Some(p.text()?) } else { None };
            out.push((arg, value));
        }
        Ok(out)
    }

    #[test]
    fn forms() {
        use Arg::*;
        let got = parse_all(&[
            "-m",
            "a",
            "-mb",
            "--long",
            "c",
            "--long=d=e",
            "--help",
            "--",
            "-m",
        ]);
        assert_eq!(
            got.unwrap(),
            vec![
                (Short('m'), Some("a".into())),
                (Short('m'), Some("b".into())),
                (Long("long".into()), Some("c".into())),
                (Long("long".into()), Some("d=e".into())),
                (Long("help".into()), None),
                (Value("-m".into()), None),
            ]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse_all(&["--help=x"]),
            Err(UsageError::TakesNoValue("--help".into()))
        );
        assert_eq!(parse_all(&["-m"]), Err(UsageError::NeedsValue("-m".into())));
        assert_eq!(
            Arg::Short('x').unexpected().to_string(),
            "unknown option '-x'"
        );
    }

    #[test]
    fn nothing_after_help_or_version() {
        for args in [&["extra"][..], &["-s", "x"], &["--version"]] {
            let mut parser = Parser::new(args.iter().map(OsString::from).collect());
            let got = help_or_version(&mut parser, "version", "test", "");
            assert_eq!(
                got,
                Err(UsageError::UnexpectedArgument(args[0].to_string()))
            );
        }
    }

    #[test]
    fn a_variable_that_is_not_utf8_is_an_error() {
        use std::os::unix::ffi::OsStringExt;
        let var = format!("UDP_HEADLESS_TEST_NOT_UTF8_{}", std::process::id());
        // SAFETY of set_var: the name is this test's own.
        std::env::set_var(&var, OsString::from_vec(b"svc\xff".to_vec()));
        assert_eq!(
            option_or_env(None, "-s", &var),
            Err(UsageError::NotUtf8(format!("${var}")))
        );
        assert_eq!(
            option_or_env(Some("a".into()), "-s", &var),
            Ok(Some(("a".into(), "-s".into())))
        );
        std::env::remove_var(&var);
        assert_eq!(option_or_env(None, "-s", &var), Ok(None));
    }

    #[test]
    fn values() {
        assert_eq!(parse_port("12000", "--port"), Ok(12000));
        for bad in ["0", "65536", "-1", "x", "", "+80", " 80", "８0"] {
            assert_eq!(
                parse_port(bad, "--port"),
                Err(UsageError::bad_value("--port", bad, "a port (1-65535)")),
            );
        }
        assert_eq!(parse_count("7", "--repeat"), Ok(7));
        for bad in ["+7", "-7", "7 ", ""] {
            assert!(
                matches!(parse_count(bad, "-r"), Err(UsageError::BadValue { .. })),
                "{bad}"
            );
        }
        let ms = Duration::from_millis;
        for (text, want) in [
            ("500ms", ms(500)),
            ("2", ms(2000)),
            ("1.5s", ms(1500)),
            ("3m", ms(180_000)),
            ("1.", ms(1000)),
            (".25s", ms(250)),
            ("0.0015m", ms(90)),
            ("1.5ms", Duration::from_micros(1500)),
            ("2h", ms(7_200_000)),
            ("0.0000000015s", Duration::from_nanos(1)),
            ("1000000000", Duration::from_secs(1_000_000_000)),
        ] {
            assert_eq!(parse_duration(text, "--interval"), Ok(want), "{text}");
        }
        for bad in [
            "",
            "s",
            "1x",
            "-1s",
            "1e3",
            ".",
            ".s",
            "1.2.3",
            "+1s",
            "inf",
            "18446744073709551616",
            "99999999999999999999999999999h",
        ] {
            assert!(parse_duration(bad, "--interval").is_err(), "{bad}");
        }
        let too_long = parse_duration("99999999999999h", "-i").unwrap_err();
        assert_eq!(too_long.to_string(), "-i: '99999999999999h' is too long");
    }

    #[test]
    fn a_service_is_a_name_or_an_address_without_a_port() {
        let given = |text: &str| service(Some(text.to_string())).map_err(|e| e.to_string());
        for (text, want) in [
            ("headless-udp", "headless-udp"),
            ("headless-udp.default.svc", "headless-udp.default.svc"),
            ("10.0.0.1", "10.0.0.1"),
            ("::1", "::1"),
            ("[::1]", "::1"),
            ("fe80::1%eth0", "fe80::1%eth0"),
            ("[fe80::1%eth0]", "fe80::1%eth0"),
        ] {
            assert_eq!(given(text), Ok(want.to_string()), "{text}");
        }
        for bad in [
            "127.0.0.1:12000",
            "headless-udp:12000",
            "[::1]:12000",
            "[x]",
        ] {
            let error = given(bad).unwrap_err();
            assert_eq!(
                error,
                format!("the service '{bad}' is not a name or an address: give the port with -p")
            );
        }
        assert_eq!(given(""), Err("the service name is empty".to_string()));
    }

    #[test]
    fn addresses_to_listen_on_may_have_a_zone() {
        let bind = |text: &str| ip_with_zone(text, "--bind", 9).map_err(|e| e.to_string());
        assert_eq!(bind("10.0.0.1"), Ok("10.0.0.1:9".parse().unwrap()));
        assert_eq!(bind("::1"), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(bind("fe80::1%1"), Ok("[fe80::1%1]:9".parse().unwrap()));
        // Every Linux has `lo`, index 1.
        assert_eq!(bind("fe80::1%lo"), Ok("[fe80::1%1]:9".parse().unwrap()));
        assert_eq!(
            bind("fe80::1%no-such-if"),
            Err("--bind: no network interface 'no-such-if' (in 'fe80::1%no-such-if')".into())
        );
        for bad in ["nowhere", "10.0.0.1%lo", "fe80::1%", "%lo"] {
            assert_eq!(
                bind(bad).map_err(|e| e.contains("is not an IP address")),
                Err(!bad.ends_with('%')),
                "{bad}"
            );
        }
        let listen = |text: &str| socket_addr_with_zone(text, "--listen", "ADDR:PORT");
        assert_eq!(
            listen("[fe80::1%lo]:12001"),
            Ok("[fe80::1%1]:12001".parse().unwrap())
        );
        assert_eq!(listen("[::]:12001"), Ok("[::]:12001".parse().unwrap()));
        assert_eq!(listen("10.0.0.1:5"), Ok("10.0.0.1:5".parse().unwrap()));
        for bad in [
            "[fe80::1%lo]:x",
            "[fe80::1%lo]",
            "fe80::1%lo:1",
            "[fe80::1%lo]:+1",
        ] {
            assert!(listen(bad).is_err(), "{bad}");
        }
    }
}
