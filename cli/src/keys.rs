//! Where the keys come from, and how they are read.
//!
//! The sources, in order of precedence (see [`resolve`]):
//!
//! 1. `--key-file PATH`: one key per line; the first is the primary (it makes new
//!    tokens), the others are older keys still accepted. Blank lines and `#` comments
//!    are ignored.
//! 2. The [`ENV_VAR`] environment variable: one or more keys separated by commas or
//!    whitespace, primary first.
//! 3. A default key file, for the commands that have one (the chat will keep one in the
//!    user's config directory); the token tools pass `None` and fail with
//!    [`KeyError::NoKey`] instead.
//!
//! No error message ever contains key material: a bad key is named by where it is
//! (file and line, or its position in the variable), never by its text.

use chat_core::fernet::{KEY_TEXT_LEN, Key, KeyRing};
use core::fmt;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The environment variable that may hold the keys.
pub const ENV_VAR: &str = "HOST_CHAT_KEY";

/// How many keys a ring holds besides the primary.
pub const OLDER_KEYS: usize = 7;

/// The most keys a key source may hold: the primary and [`OLDER_KEYS`].
pub const MAX_KEYS: usize = OLDER_KEYS + 1;

/// The ring every command uses.
pub type Ring = KeyRing<OLDER_KEYS>;

/// Key files are tiny; anything bigger is a mistake (say, the wrong file), refused before
/// it is read whole.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// Where the keys are to be read from. `Debug` hides the keys of [`KeySource::Env`].
#[derive(Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--key-file PATH`.
    File(PathBuf),
    /// The keys held by [`ENV_VAR`] (the value itself, wiped on drop).
    Env(Zeroizing<String>),
    /// The command's default key file.
    DefaultFile(PathBuf),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Env(_) => f.write_str("Env(..)"),
            Self::DefaultFile(path) => f.debug_tuple("DefaultFile").field(path).finish(),
        }
    }
}

impl KeySource {
    /// A short name for messages, never containing key material.
    pub fn describe(&self) -> String {
        match self {
            Self::File(path) | Self::DefaultFile(path) => format!("key file {}", path.display()),
            Self::Env(_) => ENV_VAR.to_owned(),
        }
    }
}

/// A problem with the keys. Messages name where a key is, never what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No source gave a key.
    NoKey,
    /// [`ENV_VAR`] is set but not valid Unicode.
    EnvNotUnicode,
    /// The key file could not be read.
    Unreadable {
        /// Which file.
        path: PathBuf,
        /// The OS's reason.
        reason: String,
    },
    /// The key file is far bigger than any key file.
    FileTooBig {
        /// Which file.
        path: PathBuf,
    },
    /// A key's text is not a Fernet key.
    Malformed {
        /// Where it is: "key file k, line 3" or "HOST_CHAT_KEY, key 2".
        location: String,
        /// Its length, which helps spot a truncated paste without showing the key.
        len: usize,
    },
    /// The source holds no key at all.
    Empty {
        /// Which source.
        source: String,
    },
    /// The default key file did not exist and could not be created.
    CannotCreate {
        /// Which file.
        path: PathBuf,
        /// The OS's reason.
        reason: String,
    },
    /// The source holds more keys than a ring takes.
    TooMany {
        /// Which source.
        source: String,
        /// How many it holds.
        count: usize,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoKey => write!(
                f,
                "no key: pass --key-file PATH or set {ENV_VAR} (make one with `host-chat keygen`)"
            ),
            Self::EnvNotUnicode => write!(f, "{ENV_VAR} is not valid UTF-8"),
            Self::Unreadable { path, reason } => {
                write!(f, "cannot read key file {}: {reason}", path.display())
            }
            Self::FileTooBig { path } => write!(
                f,
                "key file {} is over {MAX_KEY_FILE_LEN} bytes; is it really a key file?",
                path.display()
            ),
            Self::Malformed { location, len } => write!(
                f,
                "{location}: not a Fernet key (expected {KEY_TEXT_LEN} characters of \
                 base64url, got {len}; make one with `host-chat keygen`)"
            ),
            Self::Empty { source } => write!(
                f,
                "{source} holds no key (make one with `host-chat keygen`)"
            ),
            Self::CannotCreate { path, reason } => write!(
                f,
                "cannot create key file {}: {reason} (pass --key-file PATH or set {ENV_VAR})",
                path.display()
            ),
            Self::TooMany { source, count } => write!(
                f,
                "{source} holds {count} keys; at most {MAX_KEYS} are supported \
                 (the primary and {OLDER_KEYS} older ones)"
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// Picks the key source: `--key-file` if given, else [`ENV_VAR`] if set and not blank,
/// else `default` (which need not exist yet: a command with a default file may create
/// it), else [`KeyError::NoKey`].
///
/// `env_value` is the variable's value as read by the caller, e.g.
/// `std::env::var_os(ENV_VAR)`, so that this stays testable.
pub fn resolve(
    key_file: Option<&Path>,
    env_value: Option<OsString>,
    default: Option<&Path>,
) -> Result<KeySource, KeyError> {
    if let Some(path) = key_file {
        return Ok(KeySource::File(path.to_owned()));
    }
    if let Some(value) = env_value {
        let value = Zeroizing::new(value.into_string().map_err(|_| KeyError::EnvNotUnicode)?);
        if !value.trim().is_empty() {
            return Ok(KeySource::Env(value));
        }
    }
    match default {
        Some(path) => Ok(KeySource::DefaultFile(path.to_owned())),
        None => Err(KeyError::NoKey),
    }
}

/// The chat's default key file: `$XDG_CONFIG_HOME/host-chat/key`, else
/// `$HOME/.config/host-chat/key` (relative or empty variables are ignored, as the XDG
/// spec says). `None` if neither variable helps.
pub fn default_key_file(
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Option<PathBuf> {
    let absolute =
        |value: Option<OsString>| value.map(PathBuf::from).filter(|path| path.is_absolute());
    let config = absolute(xdg_config_home).or_else(|| absolute(home).map(|h| h.join(".config")))?;
    Some(config.join("host-chat").join("key"))
}

/// What [`load_or_create`] did.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The keys.
    pub keys: Keys,
    /// The default key file was created, holding a fresh key.
    pub created: Option<PathBuf>,
}

/// Reads the keys of `source`; a [`KeySource::DefaultFile`] that does not exist yet is
/// created first (directory mode 700, file mode 600) holding `new_key()`.
pub fn load_or_create(
    source: &KeySource,
    new_key: impl FnOnce() -> Result<Key, String>,
) -> Result<Loaded, KeyError> {
    let mut created = None;
    if let KeySource::DefaultFile(path) = source
        && !path.exists()
    {
        let key = new_key().map_err(|reason| KeyError::CannotCreate {
            path: path.clone(),
            reason,
        })?;
        match create_key_file(path, &key) {
            Ok(()) => created = Some(path.clone()),
            // Someone else made it meanwhile: use theirs.
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => {
                return Err(KeyError::CannotCreate {
                    path: path.clone(),
                    reason: io_reason(&err),
                });
            }
        }
    }
    Ok(Loaded {
        keys: load(source)?,
        created,
    })
}

fn create_key_file(path: &Path, key: &Key) -> io::Result<()> {
    use std::io::Write as _;
    let mut dir = std::fs::DirBuilder::new();
    dir.recursive(true);
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        dir.mode(0o700);
        file.mode(0o600);
    }
    if let Some(parent) = path.parent() {
        dir.create(parent)?;
    }
    let mut buf = Zeroizing::new([0u8; KEY_TEXT_LEN]);
    let text = Zeroizing::new(format!(
        "# host-chat key: copy this file to every machine that chats with this one.\n{}\n",
        key.to_base64(&mut buf)
    ));
    let mut file = file.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// The keys of a source, as a ring, with where each came from.
#[derive(Debug, Clone)]
pub struct Keys {
    /// Primary first, as listed.
    pub ring: Ring,
    /// Where each key of `ring` came from, in the same order ("key file k, line 3").
    pub origins: Vec<String>,
}

/// Reads and parses the keys of `source`.
pub fn load(source: &KeySource) -> Result<Keys, KeyError> {
    match source {
        KeySource::File(path) | KeySource::DefaultFile(path) => {
            let text = read_key_file(path)?;
            parse_key_file(&text, &source.describe())
        }
        KeySource::Env(value) => parse_key_list(value, ENV_VAR),
    }
}

/// Reads a key file whole, refusing anything implausibly big.
fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let unreadable = |err: io::Error| KeyError::Unreadable {
        path: path.to_owned(),
        reason: io_reason(&err),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(KeyError::FileTooBig {
            path: path.to_owned(),
        });
    }
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(err) => {
            // Wipe the bytes that came back with the error too.
            drop(Zeroizing::new(err.into_bytes()));
            Err(KeyError::Unreadable {
                path: path.to_owned(),
                reason: "not UTF-8 text".to_owned(),
            })
        }
    }
}

/// An OS error's reason without Rust's " (os error 2)" suffix.
fn io_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// Parses a key file's text: one key per line, primary first; blank lines and comments
/// (from `#` to the end of the line) are ignored. `source` names the file in errors.
pub fn parse_key_file(text: &str, source: &str) -> Result<Keys, KeyError> {
    let entries = text.lines().enumerate().filter_map(|(index, line)| {
        let line = line.split('#').next().unwrap_or_default().trim();
        (!line.is_empty()).then(|| (line, format!("{source}, line {}", index + 1)))
    });
    build(entries, source)
}

/// Parses a list of keys separated by commas or whitespace, primary first, as
/// [`ENV_VAR`] holds them. `source` names the list in errors.
pub fn parse_key_list(text: &str, source: &str) -> Result<Keys, KeyError> {
    let entries = text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|piece| !piece.is_empty())
        .enumerate()
        .map(|(index, piece)| (piece, format!("{source}, key {}", index + 1)));
    build(entries, source)
}

fn build<'t>(
    entries: impl Iterator<Item = (&'t str, String)>,
    source: &str,
) -> Result<Keys, KeyError> {
    let mut keys = Vec::new();
    let mut origins = Vec::new();
    for (text, location) in entries {
        let key = Key::from_base64(text).map_err(|_| KeyError::Malformed {
            location: location.clone(),
            len: text.chars().count(),
        })?;
        keys.push(key);
        origins.push(location);
    }
    if keys.len() > MAX_KEYS {
        return Err(KeyError::TooMany {
            source: source.to_owned(),
            count: keys.len(),
        });
    }
    let mut keys = keys.into_iter();
    let primary = keys.next().ok_or_else(|| KeyError::Empty {
        source: source.to_owned(),
    })?;
    let mut ring = Ring::new(primary);
    for key in keys {
        // Cannot fail: the count was checked above.
        if ring.push(key).is_err() {
            return Err(KeyError::TooMany {
                source: source.to_owned(),
                count: MAX_KEYS + 1,
            });
        }
    }
    Ok(Keys { ring, origins })
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
    const K2: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn resolve_order() {
        let flag = Path::new("k");
        let default = Path::new("d");
        let env = || Some(OsString::from(K1));
        assert_eq!(
            resolve(Some(flag), env(), Some(default)),
            Ok(KeySource::File("k".into()))
        );
        assert_eq!(
            resolve(None, env(), Some(default)),
            Ok(KeySource::Env(Zeroizing::new(K1.to_owned())))
        );
        assert_eq!(
            resolve(None, Some(" \n".into()), Some(default)),
            Ok(KeySource::DefaultFile("d".into()))
        );
        assert_eq!(resolve(None, None, None), Err(KeyError::NoKey));
        assert_eq!(resolve(None, Some("".into()), None), Err(KeyError::NoKey));
    }

    #[test]
    fn key_file_format() {
        let text = format!("# my keys\n\n  {K1}  # new\r\n{K2}\n");
        let keys = parse_key_file(&text, "key file k").unwrap();
        assert_eq!(keys.ring.len(), 2);
        assert_eq!(keys.origins, ["key file k, line 3", "key file k, line 4"]);
        let mut buf = [0; KEY_TEXT_LEN];
        assert_eq!(keys.ring.primary().to_base64(&mut buf), K1);
    }

    #[test]
    fn key_list_format() {
        let keys = parse_key_list(&format!(" {K2},{K1}\n"), ENV_VAR).unwrap();
        assert_eq!(keys.ring.len(), 2);
        let mut buf = [0; KEY_TEXT_LEN];
        assert_eq!(keys.ring.primary().to_base64(&mut buf), K2);
        assert_eq!(
            parse_key_list(&format!("{K1} ,, {K2}"), ENV_VAR)
                .unwrap()
                .ring
                .len(),
            2
        );
    }

    #[test]
    fn errors_never_show_keys() {
        let broken = &K1[..43];
        let err = parse_key_file(&format!("{K2}\n{broken}\n"), "key file k").unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("key file k, line 2: not a Fernet key"),
            "{text}"
        );
        assert!(text.contains("got 43"), "{text}");
        assert!(!text.contains(broken), "{text}");

        let err = parse_key_list(&format!("{K1},{broken}x"), ENV_VAR).unwrap_err();
        assert!(
            err.to_string().starts_with("HOST_CHAT_KEY, key 2:"),
            "{err}"
        );
        assert!(!err.to_string().contains(&K1[..10]), "{err}");
    }

    #[test]
    fn counts() {
        assert!(matches!(
            parse_key_file("# nothing\n\n", "key file k"),
            Err(KeyError::Empty { .. })
        ));
        let eight = [K1; MAX_KEYS].join("\n");
        assert_eq!(parse_key_file(&eight, "f").unwrap().ring.len(), MAX_KEYS);
        let nine = [K1; MAX_KEYS + 1].join(",");
        assert_eq!(
            parse_key_list(&nine, ENV_VAR).unwrap_err(),
            KeyError::TooMany {
                source: ENV_VAR.to_owned(),
                count: 9
            }
        );
    }

    #[test]
    fn default_file_location() {
        assert_eq!(
            default_key_file(Some("/x".into()), Some("/h".into())),
            Some(PathBuf::from("/x/host-chat/key"))
        );
        assert_eq!(
            default_key_file(Some("rel".into()), Some("/h".into())),
            Some(PathBuf::from("/h/.config/host-chat/key"))
        );
        assert_eq!(default_key_file(None, None), None);
    }

    #[test]
    fn creates_the_default_file_once() {
        let dir = std::env::temp_dir().join(format!("host-chat-keys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("host-chat").join("key");
        let source = KeySource::DefaultFile(path.clone());
        let fresh = || Ok(Key::from_base64(K1).unwrap());
        let first = load_or_create(&source, fresh).unwrap();
        assert_eq!(first.created.as_deref(), Some(path.as_path()));
        let again = load_or_create(&source, || Err("unused".into())).unwrap();
        assert!(again.created.is_none());
        let mut buf = [0; KEY_TEXT_LEN];
        assert_eq!(again.keys.ring.primary().to_base64(&mut buf), K1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file() {
        let err = load(&KeySource::File("/nonexistent/k".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read key file /nonexistent/k: No such file or directory"
        );
    }
}
