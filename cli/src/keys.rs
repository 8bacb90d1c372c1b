//! Where the keys come from, and how they are read: the one implementation that
//! `host-chat` and `firmware-sim` both use.
//!
//! The sources, in order of precedence (see [`resolve`]):
//!
//! 1. `--key-file PATH`: one key per line; the first is the primary (it makes new
//!    tokens), the others are older keys still accepted. Blank lines and `#` comments
//!    are ignored.
//! 2. The [`ENV_VAR`] environment variable: one or more keys separated by commas or
//!    whitespace, primary first.
//! 3. The default key file ([`default_key_file`]), for the commands that have one (the
//!    chat and `firmware-sim`); the token tools pass `None` and fail with
//!    [`KeyError::NoKey`] instead. Only `host-chat server` creates it when it is missing
//!    ([`load_or_create`]); every other command says where the key comes from
//!    ([`KeyError::NoDefaultKey`]), because a key made on a client could never match the
//!    server's.
//!
//! Key text is 44 characters of padded base64url (32 bytes), as Python's
//! `Fernet.generate_key()` prints it; the standard base64 alphabet (`+` and `/` for `-`
//! and `_`, as `openssl rand -base64 32` prints) is accepted too, as Python's
//! `Fernet(key)` accepts it. A key file that group or others may read is reported like
//! ssh reports an unprotected private key ([`Unprotected`]).
//!
//! No error message ever contains key material: a bad key is named by where it is
//! (file and line, or its position in the variable), never by its text.

use chat_core::fernet::{KEY_TEXT_LEN, Key, KeyRing};
use core::fmt;
use std::ffi::OsString;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use subtle::{ConditionallySelectable as _, ConstantTimeEq as _};
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
        /// What is wrong with it, without showing it.
        problem: KeyProblem,
    },
    /// The default key file does not exist, and this command may not create it.
    NoDefaultKey {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The key file may be read by group or others, and the command refuses that.
    Unprotected {
        /// Which file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
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
            Self::Malformed { location, problem } => write!(
                f,
                "{location}: not a Fernet key: {problem} (make one with `host-chat keygen`)"
            ),
            Self::NoDefaultKey { path } => write!(
                f,
                "no key: use the chat server's key: copy its key file (`host-chat server` \
                 made it in ~/.config/host-chat/key on its machine) to {} here, set \
                 {ENV_VAR}, or pass --key-file PATH",
                tilde(path)
            ),
            Self::Unprotected { path, mode } => write!(
                f,
                "key file {} is open to {} (mode {mode:04o}): anyone who can read it \
                 can read and forge the chat; make it private with `chmod 600 {}`, or \
                 pass --allow-unprotected-key-file",
                path.display(),
                readers(*mode),
                shell_word(&path.display().to_string())
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

/// The chat's key source, as every chat program finds it (`host-chat server`,
/// `client`, `bench`, and `firmware-sim`): `--key-file`, else [`ENV_VAR`] (its value is
/// `env_value`), else the default key file of this user ([`default_key_file`] of
/// `XDG_CONFIG_HOME` and `HOME`).
pub fn chat_source(
    key_file: Option<&Path>,
    env_value: Option<OsString>,
) -> Result<KeySource, KeyError> {
    let default = default_key_file(
        std::env::var_os("XDG_CONFIG_HOME"),
        std::env::var_os("HOME"),
    );
    resolve(key_file, env_value, default.as_deref())
}

/// What to do with a key file that group or others may read or write (any of the mode
/// bits `0o077`), as ssh judges private keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprotected {
    /// Use it, with a warning ([`Loaded::warning`]).
    Warn,
    /// Refuse it ([`KeyError::Unprotected`]): what the server does unless told
    /// `--allow-unprotected-key-file`.
    Refuse,
}

/// What [`load`] and [`load_or_create`] found.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The keys.
    pub keys: Keys,
    /// The default key file was created, holding a fresh key.
    pub created: Option<PathBuf>,
    /// Something the user should hear about (an unprotected key file), to print on
    /// standard error; it never contains key material.
    pub warning: Option<String>,
}

/// Reads the keys of `source`; a [`KeySource::DefaultFile`] that does not exist yet is
/// created first (directory mode 700, file mode 600) holding `new_key()`. Only the
/// server does this: it is where a chat's key is born.
pub fn load_or_create(
    source: &KeySource,
    unprotected: Unprotected,
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
        created,
        ..load(source, unprotected)?
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

/// Reads and parses the keys of `source`. A default key file that does not exist is
/// [`KeyError::NoDefaultKey`] (only [`load_or_create`] makes one); a key file that
/// group or others may access is refused or warned about, as `unprotected` says.
pub fn load(source: &KeySource, unprotected: Unprotected) -> Result<Loaded, KeyError> {
    let mut warning = None;
    let keys = match source {
        KeySource::File(path) | KeySource::DefaultFile(path) => {
            if let KeySource::DefaultFile(path) = source
                && !path.exists()
            {
                return Err(KeyError::NoDefaultKey { path: path.clone() });
            }
            if let Some(mode) = open_to_others(path) {
                match unprotected {
                    Unprotected::Refuse => {
                        return Err(KeyError::Unprotected {
                            path: path.clone(),
                            mode,
                        });
                    }
                    Unprotected::Warn => {
                        warning = Some(format!(
                            "warning: key file {} is open to {} (mode {mode:04o}); make it \
                             private with `chmod 600 {}`",
                            path.display(),
                            readers(mode),
                            shell_word(&path.display().to_string())
                        ));
                    }
                }
            }
            let text = read_key_file(path)?;
            parse_key_file(&text, &source.describe())?
        }
        KeySource::Env(value) => parse_key_list(value, ENV_VAR)?,
    };
    Ok(Loaded {
        keys,
        created: None,
        warning,
    })
}

/// The permission bits of the regular file at `path` if group or others have any access
/// to it (`mode & 0o077`); `None` if it is private, not a regular file (a pipe from the
/// shell's `<(...)`), or the platform has no such bits.
fn open_to_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(path).ok()?;
        let mode = meta.permissions().mode() & 0o777;
        (meta.is_file() && mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Who besides the owner may access a file of `mode`: "group", "others", or both.
fn readers(mode: u32) -> &'static str {
    match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (true, true) => "group and others",
        (true, false) => "its group",
        _ => "others",
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
        let key = parse_key(text).map_err(|problem| KeyError::Malformed {
            location: location.clone(),
            problem,
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

/// What is wrong with a key's text, said without showing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProblem {
    /// Not 44 characters long (a truncated paste, two keys run together...).
    Length {
        /// How many characters there are.
        got: usize,
    },
    /// A Fernet token (`gAAAAA...`) where a key was expected.
    Token,
    /// 44 characters, not all of them base64.
    NotBase64,
    /// 44 base64 characters that are not the padded text of 32 bytes.
    NotThirtyTwoBytes,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length { got } => write!(
                f,
                "expected {KEY_TEXT_LEN} characters of base64url, got {got}"
            ),
            Self::Token => f.write_str("this is a Fernet token, not a key"),
            Self::NotBase64 => f.write_str(
                "it has characters that are not base64url (A-Z a-z 0-9 - _, and = at the end)",
            ),
            Self::NotThirtyTwoBytes => f.write_str(
                "44 characters of base64, but not the text of 32 bytes (a key ends in `=`, \
                 after one of A E I M Q U Y c g k o s w 0 4 8)",
            ),
        }
    }
}

/// Parses one key's text: padded base64url of 32 bytes, or the same in the standard
/// alphabet (`+` `/`), as Python's `Fernet(key)` takes it. The alphabet is mapped in
/// constant time, then `chat_core`'s constant-time parser reads it; only a key that
/// fails is looked at closer, to say why.
pub fn parse_key(text: &str) -> Result<Key, KeyProblem> {
    let mut url = Zeroizing::new(text.as_bytes().to_vec());
    for byte in url.iter_mut() {
        let plus = byte.ct_eq(&b'+');
        let slash = byte.ct_eq(&b'/');
        byte.conditional_assign(&b'-', plus);
        byte.conditional_assign(&b'_', slash);
    }
    // Only `+` and `/` changed, to other ASCII: still the same valid UTF-8.
    let parsed = core::str::from_utf8(&url)
        .ok()
        .and_then(|url| Key::from_base64(url).ok());
    parsed.ok_or_else(|| diagnose(text))
}

/// Why `text` is not a key (it is known not to be one).
fn diagnose(text: &str) -> KeyProblem {
    let len = text.chars().count();
    if text.starts_with("gAAAA") && len > KEY_TEXT_LEN {
        KeyProblem::Token
    } else if len != KEY_TEXT_LEN {
        KeyProblem::Length { got: len }
    } else if !text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b))
    {
        KeyProblem::NotBase64
    } else {
        KeyProblem::NotThirtyTwoBytes
    }
}

/// `path` for messages, with the home directory written `~` (as a shell reads it).
pub fn tilde(path: &Path) -> String {
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty())
        && let Ok(rest) = path.strip_prefix(&home)
    {
        return format!("~/{}", shell_word(&rest.display().to_string()));
    }
    shell_word(&path.display().to_string())
}

/// `text` as one word for a POSIX shell: as is when it is plain, else single-quoted.
pub fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_./-+=:@%,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Where another machine keeps the default key file, as its shell writes it (the
/// default when `XDG_CONFIG_HOME` is not set there).
pub const REMOTE_KEY_FILE: &str = "~/.config/host-chat/key";

/// A shell command, run on this machine, that copies the key file at `path` to the
/// default key file of another machine over ssh, creating the folder there (mode 700)
/// and the file (mode 600) if they do not exist yet. `OTHER-MACHINE` is for the user to
/// fill in.
pub fn copy_command(path: &Path) -> String {
    format!(
        "ssh OTHER-MACHINE 'umask 077 && mkdir -p ~/.config/host-chat && cat > \
         {REMOTE_KEY_FILE}' < {}",
        tilde(path)
    )
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
        assert!(
            text.contains("expected 44 characters of base64url, got 43"),
            "{text}"
        );
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
        // Only the server creates it; anyone else is told where the key comes from.
        let err = load(&source, Unprotected::Warn).unwrap_err();
        assert_eq!(err, KeyError::NoDefaultKey { path: path.clone() });
        assert!(!path.exists());
        let first = load_or_create(&source, Unprotected::Refuse, fresh).unwrap();
        assert_eq!(first.created.as_deref(), Some(path.as_path()));
        assert!(first.warning.is_none());
        let again = load_or_create(&source, Unprotected::Refuse, || Err("unused".into())).unwrap();
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

    #[cfg(unix)]
    #[test]
    fn unprotected_files_are_refused_or_warned_about() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("host-chat-perm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("k");
        std::fs::write(&path, format!("{K1}\n")).unwrap();
        let source = KeySource::File(path.clone());
        for (mode, who) in [
            (0o644, "group and others"),
            (0o640, "its group"),
            (0o604, "others"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = load(&source, Unprotected::Refuse).unwrap_err();
            assert_eq!(
                err,
                KeyError::Unprotected {
                    path: path.clone(),
                    mode
                }
            );
            let text = err.to_string();
            assert!(
                text.contains(&format!("open to {who} (mode 0{mode:o})")),
                "{text}"
            );
            assert!(
                text.contains("chmod 600") && !text.contains(&K1[..8]),
                "{text}"
            );
            let loaded = load(&source, Unprotected::Warn).unwrap();
            let warning = loaded.warning.unwrap();
            assert!(warning.contains(&format!("open to {who}")), "{warning}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            load(&source, Unprotected::Refuse)
                .unwrap()
                .warning
                .is_none()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn key_problems_are_named() {
        // The standard alphabet is the same key.
        let raw: [u8; 32] = core::array::from_fn(|i| (i * 37 + 250) as u8);
        let key = Key::from_bytes(&raw);
        let mut buf = [0; KEY_TEXT_LEN];
        let url = key.to_base64(&mut buf).to_owned();
        assert!(url.contains(['-', '_']), "{url}");
        let standard = url.replace('-', "+").replace('_', "/");
        let parsed = parse_key(&standard).unwrap();
        assert_eq!(parsed.to_base64(&mut buf), url);
        assert_eq!(
            parse_key(&url[..43]).unwrap_err(),
            KeyProblem::Length { got: 43 }
        );
        assert_eq!(
            parse_key(&format!("{url}{url}")).unwrap_err(),
            KeyProblem::Length { got: 88 }
        );
        assert_eq!(
            parse_key(&format!("gAAAAA{url}")).unwrap_err(),
            KeyProblem::Token
        );
        assert_eq!(
            parse_key(&format!("{}!=", &url[..42])).unwrap_err(),
            KeyProblem::NotBase64
        );
        // The last symbol before `=` carries 2 unused bits, which must be zero.
        assert_eq!(
            parse_key(&format!("{}B=", &url[..42])).unwrap_err(),
            KeyProblem::NotThirtyTwoBytes
        );
        assert_eq!(
            parse_key("").unwrap_err().to_string(),
            "expected 44 characters of base64url, got 0"
        );
    }

    #[test]
    fn messages_for_the_shell() {
        assert_eq!(shell_word("/a/b-c_d.key"), "/a/b-c_d.key");
        assert_eq!(shell_word("/a b/it's"), r"'/a b/it'\''s'");
        assert!(copy_command(Path::new("/etc/k")).ends_with(" < /etc/k"));
        assert!(
            copy_command(Path::new("/etc/k"))
                .starts_with("ssh OTHER-MACHINE 'umask 077 && mkdir -p ~/.config/host-chat")
        );
    }

    #[test]
    fn missing_file() {
        let err = load(&KeySource::File("/nonexistent/k".into()), Unprotected::Warn).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read key file /nonexistent/k: No such file or directory"
        );
    }
}
