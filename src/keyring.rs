//! The keys of signed frames (`--key-file PATH`): one key per line, base64
//! of at least 32 random bytes, made with one standard command:
//!
//! ```text
//! head -c 32 /dev/urandom | base64
//! ```
//!
//! (`openssl rand -base64 32` makes the same kind of line.) Blank lines and
//! lines starting with `#` are ignored. The first key signs; every key
//! verifies, so a keyring rotates without downtime as memberlist's does: add
//! the new key second everywhere, then move it first, then remove the old.
//! A key is named on the wire by its id, the first 4 bytes of its SHA-256.
//!
//! Key bytes are never printed: errors name the file and line only, and
//! Debug/Display of a key show its id.

use crate::sha256::{sha256, HmacKey};
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Shorter keys are refused: HMAC-SHA256 is as strong as its key, up to 32
/// bytes.
pub const MIN_KEY_LEN: usize = 32;
/// How to make a key, for errors and docs.
pub const MAKE_ONE: &str = "head -c 32 /dev/urandom | base64";
/// How often `KeyFile::poll` looks at the file: a Secret's update is seen
/// within this long, and the hot path pays a clock read per call.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The first 4 bytes of SHA-256(key): tells a receiver which key to try,
/// and says nothing useful about the key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 4]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        // As one number: one formatting call, no String.
        write!(f, "{:08x}", u32::from_be_bytes([a, b, c, d]))
    }
}

/// One key, ready to sign and verify; its bytes are not kept.
#[derive(Clone)]
pub struct Key {
    pub id: KeyId,
    pub hmac: HmacKey,
}

impl Key {
    pub fn new(bytes: &[u8]) -> Key {
        let digest = sha256(bytes);
        Key {
            id: KeyId([digest[0], digest[1], digest[2], digest[3]]),
            hmac: HmacKey::new(bytes),
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id {})", self.id)
    }
}

/// The keys of a key file, in order: never empty.
#[derive(Clone, Debug)]
pub struct Keyring {
    keys: Vec<Key>,
}

impl Keyring {
    /// The keys in `text`; `what` names the file in errors.
    pub fn parse(text: &str, what: &str) -> Result<Keyring, String> {
        let mut keys: Vec<Key> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = format!("{what}, line {}", n + 1);
            let bytes = base64(line)
                .ok_or_else(|| format!("{at}: not base64 (make a key with: {MAKE_ONE})"))?;
            if bytes.len() < MIN_KEY_LEN {
                return Err(format!(
                    "{at}: a key of {} bytes; at least {MIN_KEY_LEN} are needed (make one with: {MAKE_ONE})",
                    bytes.len()
                ));
            }
            let key = Key::new(&bytes);
            if keys.iter().any(|k| k.id == key.id) {
                return Err(format!(
                    "{at}: key id {} again (the same key twice?)",
                    key.id
                ));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(format!("{what}: no keys (make one with: {MAKE_ONE})"));
        }
        Ok(Keyring { keys })
    }

    /// The keys in the file at `path`.
    pub fn load(path: &Path) -> Result<Keyring, String> {
        let what = format!("key file {}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| format!("{what}: {e}"))?;
        Keyring::parse(&text, &what)
    }

    /// The key that signs: the first.
    pub fn signing(&self) -> &Key {
        &self.keys[0]
    }

    /// The key named `id`, if this keyring has it.
    pub fn find(&self, id: KeyId) -> Option<&Key> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Standard base64 (`base64`'s and openssl's alphabet), padding optional.
/// None for any other character or an impossible length.
fn base64(text: &str) -> Option<Vec<u8>> {
    let body = text
        .strip_suffix("==")
        .or(text.strip_suffix('='))
        .unwrap_or(text);
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // 6 bits left over: one character past a whole group, not a byte.
    (bits < 6).then_some(out)
}

/// What identifies one version of the file, also through a Kubernetes
/// Secret volume, where `PATH` is a symlink into `..data/`, itself a
/// symlink swapped atomically to a new directory on each update: the
/// resolved path changes then, and an edit in place changes the rest.
#[derive(Clone, Debug, PartialEq)]
struct Stamp {
    /// Compared as bytes: enough for a canonical path, and smaller code
    /// than `PathBuf`'s `==`, which compares component by component.
    resolved: std::ffi::OsString,
    device: u64,
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    let resolved = std::fs::canonicalize(path)?.into_os_string();
    let meta = std::fs::metadata(&resolved)?;
    Ok(Stamp {
        resolved,
        device: meta.dev(),
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

/// A key file that is read again when it changes (`poll`).
#[derive(Debug)]
pub struct KeyFile {
    path: PathBuf,
    keys: Keyring,
    stamp: Option<Stamp>,
    next_check: Instant,
}

/// What `KeyFile::poll` found: one log line each (Display).
#[derive(Debug, PartialEq)]
pub enum Reload {
    /// The file changed and its keys are now in use.
    Loaded {
        path: PathBuf,
        keys: usize,
        signing: KeyId,
    },
    /// The file changed but cannot be used; the keys before stay in use.
    Kept { error: String, keys: usize },
}

impl fmt::Display for Reload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reload::Loaded {
                path,
                keys,
                signing,
            } => write!(
                f,
                "key file {} reloaded: {keys} key(s), signing with key id {signing}",
                path.display()
            ),
            Reload::Kept { error, keys } => {
                write!(f, "{error}; still using the {keys} key(s) loaded before")
            }
        }
    }
}

impl KeyFile {
    /// Reads the keys at `path`: an error is one line naming the problem.
    pub fn open(path: &Path) -> Result<KeyFile, String> {
        // The stamp first: a change while reading is then seen next poll.
        let stamp = stamp(path).ok();
        let keys = Keyring::load(path)?;
        Ok(KeyFile {
            path: path.to_path_buf(),
            keys,
            stamp,
            next_check: Instant::now() + CHECK_EVERY,
        })
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the file again if it changed, looking at most every
    /// `CHECK_EVERY`: cheap enough to call for every datagram. Some when
    /// something happened that the caller should log.
    pub fn poll(&mut self, now: Instant) -> Option<Reload> {
        if now < self.next_check {
            return None;
        }
        self.next_check = now + CHECK_EVERY;
        self.reload_if_changed()
    }

    /// `poll` without waiting for `CHECK_EVERY` (tests, SIGHUP). Out of
    /// line: once a second at most, so not worth a copy in each hot loop.
    #[inline(never)]
    pub fn reload_if_changed(&mut self) -> Option<Reload> {
        let stamp = stamp(&self.path).ok();
        if stamp.is_some() && stamp == self.stamp {
            return None;
        }
        // A missing file is reported once, not every second.
        if stamp.is_none() && self.stamp.is_none() {
            return None;
        }
        self.stamp = stamp;
        match Keyring::load(&self.path) {
            Ok(keys) => {
                self.keys = keys;
                Some(Reload::Loaded {
                    path: self.path.clone(),
                    keys: self.keys.len(),
                    signing: self.keys.signing().id,
                })
            }
            Err(error) => Some(Reload::Kept {
                error,
                keys: self.keys.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two keys as `head -c 32 /dev/urandom | base64` prints them (made
    // once, for these tests only).
    const A: &str = "q7Xf0hV9mQh2yqgk3tJ3m1VnUe0x6bq2mC3Yg5H4rZk=";
    const B: &str = "8Jm2bq6jQeXo4n0ZC0e5uQ1m1s7wqz2b9c8v7x6y5w4=";

    #[test]
    fn base64_decodes_the_standard_alphabet() {
        let cases: [(&str, Option<&[u8]>); 9] = [
            ("", Some(b"")),
            ("Zg==", Some(b"f")),
            ("Zm8=", Some(b"fo")),
            ("Zm9v", Some(b"foo")),
            ("Zm9vYg", Some(b"foob")),
            ("+/+/", Some(&[0xfb, 0xff, 0xbf])),
            ("Zm9vY", None),
            ("Zm9v!", None),
            ("Zm 9v", None),
        ];
        for (text, want) in cases {
            assert_eq!(base64(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn parses_keys_comments_and_blank_lines() {
        let text = format!("# rotated 2026-12-01\n\n  {B}  \n{A}\n");
        let ring = Keyring::parse(&text, "test").unwrap();
        assert_eq!(ring.len(), 2);
        let b = Key::new(&base64(B).unwrap());
        let a = Key::new(&base64(A).unwrap());
        assert_eq!(ring.signing().id, b.id, "the first key signs");
        assert_eq!(ring.find(a.id).unwrap().id, a.id, "every key verifies");
        assert!(ring.find(KeyId([0; 4])).is_none());
        // The id is the first 4 bytes of SHA-256(key).
        assert_eq!(a.id.0[..], sha256(&base64(A).unwrap())[..4]);
    }

    #[test]
    fn bad_files_are_one_line_without_key_material() {
        let short = "c2hvcnQga2V5IG9mIDE2IGJ5dA=="; // 19 bytes
        let not_base64 = "q7Xf0hV9mQh2yqgk3tJ3m1VnUe0x6bq2mC3Yg5H4rZk*";
        let cases = [
            (format!("{A}\n{short}\n"), "test, line 2: a key of 19 bytes"),
            (format!("{not_base64}\n"), "test, line 1: not base64"),
            (format!("{A}\n#\n{A}\n"), "test, line 3: key id "),
            ("# nothing\n\n".to_string(), "test: no keys"),
            (String::new(), "test: no keys"),
        ];
        for (text, want) in cases {
            let err = Keyring::parse(&text, "test").unwrap_err();
            assert!(err.starts_with(want), "{err}");
            assert!(!err.contains('\n'), "{err}");
            for secret in [A, short, not_base64, &A[..8], &short[..8]] {
                assert!(!err.contains(secret), "{err} shows key material");
            }
        }
    }

    #[test]
    fn debug_and_display_show_ids_only() {
        let ring = Keyring::parse(A, "test").unwrap();
        let shown = format!("{ring:?} {:?} {}", ring.signing(), ring.signing().id);
        let id = ring.signing().id.to_string();
        assert_eq!(id.len(), 8);
        assert!(shown.contains(&id), "{shown}");
        let bytes = base64(A).unwrap();
        assert!(!shown.contains(&crate::sha256::hex(&bytes[..4])), "{shown}");
        assert!(!shown.contains(&A[..8]), "{shown}");
    }

    /// A Secret volume as the kubelet lays it out: `keys` -> `..data/keys`,
    /// `..data` -> `..<timestamp>`, swapped by renaming a new symlink over
    /// `..data`.
    #[test]
    fn reloads_after_a_secret_volume_swap_and_keeps_keys_on_a_bad_file() {
        let dir = std::env::temp_dir().join(format!("keyring-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("..v1")).unwrap();
        std::fs::write(dir.join("..v1/keys"), format!("{A}\n")).unwrap();
        std::os::unix::fs::symlink("..v1", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/keys", dir.join("keys")).unwrap();
        let swap_to = |version: &str, text: String| {
            std::fs::create_dir_all(dir.join(version)).unwrap();
            // Same length as before and maybe the same mtime second: the
            // resolved path must be what tells.
            std::fs::write(dir.join(version).join("keys"), text).unwrap();
            std::os::unix::fs::symlink(version, dir.join("..data_tmp")).unwrap();
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        };
        let a = Key::new(&base64(A).unwrap()).id;
        let b = Key::new(&base64(B).unwrap()).id;

        let mut file = KeyFile::open(&dir.join("keys")).unwrap();
        assert_eq!(file.keys().signing().id, a);
        assert_eq!(file.reload_if_changed(), None, "unchanged");
        assert_eq!(file.poll(Instant::now()), None, "not yet time to look");

        swap_to("..v2", format!("{B}\n"));
        let event = file.reload_if_changed().expect("the swap is seen");
        assert_eq!(
            event.to_string(),
            format!(
                "key file {} reloaded: 1 key(s), signing with key id {b}",
                dir.join("keys").display()
            )
        );
        assert_eq!(file.keys().signing().id, b);
        assert_eq!(file.reload_if_changed(), None, "reported once");

        swap_to("..v3", "c2hvcnQ=\n".into());
        let event = file.reload_if_changed().expect("the bad file is reported");
        assert!(matches!(event, Reload::Kept { keys: 1, .. }), "{event}");
        assert!(event.to_string().contains("line 1: a key of 5 bytes"));
        assert_eq!(file.keys().signing().id, b, "the keys before stay");
        assert_eq!(file.reload_if_changed(), None, "reported once");

        // Edited in place (no swap): length and mtime tell.
        std::fs::write(dir.join("..v3/keys"), format!("{A}\n{B}\n")).unwrap();
        assert!(matches!(
            file.reload_if_changed(),
            Some(Reload::Loaded { keys: 2, .. })
        ));
        assert!(file.poll(Instant::now() + 2 * CHECK_EVERY).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
