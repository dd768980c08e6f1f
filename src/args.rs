//! Command-line parsing shared by both programs, in the spirit of `lexopt`:
//! a plain loop over `Arg`s, strict about anything unknown. Also the value
//! parsers (port, duration, ...) and environment-variable fallbacks.

use std::ffi::OsString;
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
/// version request), and prints the help text or `program VERSION`.
pub fn print_help_or_version(
    parser: &mut Parser,
    option: &str,
    program: &str,
    help: &str,
) -> Result<(), UsageError> {
    parser.flag()?;
    if let Some(arg) = parser.next()? {
        return Err(UsageError::UnexpectedArgument(arg.written()));
    }
    match option {
        "help" => print!("{help}"),
        _ => println!("{program} {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
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
pub const DEFAULT_PORT: u16 = 12000;

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

/// `ADDRESS:PORT` as std reads it, and also a link-local IPv6 address with
/// its interface, `[fe80::1%eth0]:PORT` (a name or an index), which std
/// does not read.
pub fn parse_socket_addr(text: &str) -> Option<std::net::SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let (host, port) = text.strip_prefix('[')?.rsplit_once("]:")?;
    let (ip, zone) = host.split_once('%')?;
    let ip: std::net::Ipv6Addr = ip.parse().ok()?;
    let port = port.parse().ok().filter(|_| digits(port))?;
    let scope = zone
        .parse()
        .ok()
        .filter(|_| digits(zone))
        .or_else(|| crate::sys::interface_index(zone))?;
    Some(std::net::SocketAddrV6::new(ip, port, 0, scope).into())
}

/// `-p` or `UDP_HEADLESS_PORT`, else [`DEFAULT_PORT`].
pub fn port(given: Option<String>) -> Result<u16, UsageError> {
    match option_or_env(given, "--port", "UDP_HEADLESS_PORT")? {
        Some((text, from)) => parse_port(&text, &from),
        None => Ok(DEFAULT_PORT),
    }
}

pub fn parse_port(text: &str, what: &str) -> Result<u16, UsageError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 && digits(text) => Ok(port),
        _ => Err(UsageError::bad_value(what, text, "a port (1-65535)")),
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
            let got = print_help_or_version(&mut parser, "version", "test", "");
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
    fn socket_addresses_with_a_zone() {
        let lo = crate::sys::interface_index("lo").expect("lo has an index");
        for (text, want) in [
            ("127.0.0.1:9", Some("127.0.0.1:9".parse().unwrap())),
            (
                "[fe80::1%lo]:9",
                Some(format!("[fe80::1%{lo}]:9").parse().unwrap()),
            ),
            ("[fe80::1%7]:9", Some("[fe80::1%7]:9".parse().unwrap())),
        ] {
            assert_eq!(parse_socket_addr(text), want, "{text}");
        }
        for bad in [
            "[fe80::1%nosuchif0]:9",
            "[fe80::1%lo]:+9",
            "[fe80::1%]:9",
            "fe80::1%lo:9",
            "[10.0.0.1%lo]:9",
            "[fe80::1%+7]:9",
        ] {
            assert_eq!(parse_socket_addr(bad), None, "{bad}");
        }
    }
}
