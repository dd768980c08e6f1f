//! Command-line parsing shared by both programs, in the spirit of `lexopt`:
//! a plain loop over `Arg`s, strict about anything unknown. Also the value
//! parsers (port, duration, ...) and environment-variable fallbacks.

use std::ffi::OsString;
use std::time::Duration;

/// A usage error: printed as one line, exit code [`crate::exit::USAGE`].
#[derive(Debug, PartialEq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(&self.0)
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

    /// How the user wrote the option, for error messages.
    pub fn unexpected(&self) -> UsageError {
        UsageError(match self {
            Arg::Short(c) => format!("unknown option '-{c}'"),
            Arg::Long(name) => format!("unknown option '--{name}'"),
            Arg::Value(v) => format!("unexpected argument '{}'", v.to_string_lossy()),
        })
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
            Some(_) => Err(UsageError(format!(
                "option '{}' takes no value",
                self.last_option
            ))),
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
            .ok_or_else(|| UsageError(format!("option '{}' needs a value", self.last_option)))
    }

    /// The value, as UTF-8 text.
    pub fn text(&mut self) -> Result<String, UsageError> {
        let option = self.last_option.clone();
        let value = self.value()?;
        value
            .into_string()
            .map_err(|_| UsageError(format!("option '{option}': value is not UTF-8")))
    }
}

/// `--help` or `--version` (`option`), alike in both programs: checks it
/// has no value and prints the help text or `program VERSION`.
pub fn print_help_or_version(
    parser: &mut Parser,
    option: &str,
    program: &str,
    help: &str,
) -> Result<(), UsageError> {
    parser.flag()?;
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
/// paired with a label naming where it came from, for error messages.
pub fn option_or_env(given: Option<String>, option: &str, var: &str) -> Option<(String, String)> {
    match given {
        Some(text) => Some((text, option.to_string())),
        None => {
            std::env::var_os(var).map(|v| (v.to_string_lossy().into_owned(), format!("${var}")))
        }
    }
}

pub fn parse_port(text: &str, what: &str) -> Result<u16, UsageError> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => Err(UsageError(format!(
            "{what}: '{text}' is not a port (1-65535)"
        ))),
    }
}

/// `500ms`, `2s`, `1.5s`, `3m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration, UsageError> {
    let bad = || {
        UsageError(format!(
            "{what}: '{text}' is not a duration (like 500ms, 2s, 1.5s, 3m)"
        ))
    };
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(number * scale).map_err(|_| bad())
}

pub fn parse_count(text: &str, what: &str) -> Result<u64, UsageError> {
    text.parse::<u64>()
        .map_err(|_| UsageError(format!("{what}: '{text}' is not a whole number")))
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
            parse_all(&["--help=x"]).unwrap_err().0,
            "option '--help' takes no value"
        );
        assert_eq!(
            parse_all(&["-m"]).unwrap_err().0,
            "option '-m' needs a value"
        );
    }

    #[test]
    fn values() {
        assert_eq!(parse_port("12000", "--port"), Ok(12000));
        for bad in ["0", "65536", "-1", "x", ""] {
            assert!(parse_port(bad, "--port").is_err(), "{bad}");
        }
        let ms = Duration::from_millis;
        for (text, want) in [
            ("500ms", ms(500)),
            ("2", ms(2000)),
            ("1.5s", ms(1500)),
            ("3m", ms(180_000)),
        ] {
            assert_eq!(parse_duration(text, "--interval"), Ok(want), "{text}");
        }
        for bad in ["", "s", "1x", "-1s", "1e3"] {
            assert!(parse_duration(bad, "--interval").is_err(), "{bad}");
        }
    }
}
