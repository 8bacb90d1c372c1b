//! The device's key, read the way `host-chat` reads its primary key: the first key of
//! `--key-file PATH` (blank lines and `#` comments skipped), else the first key of
//! `HOST_CHAT_KEY` (keys separated by commas or whitespace). A device holds one key.

use chat_core::fernet::Key;
use std::path::Path;

/// The environment variable that may hold the key.
pub const ENV_VAR: &str = "HOST_CHAT_KEY";

/// Key files are tiny; a bigger file is the wrong file.
const MAX_KEY_FILE_LEN: u64 = 64 * 1024;

/// The first key of `text`, a key file's contents.
pub fn first_key_of_file(text: &str) -> Option<(usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line.trim()))
        .find(|(_, line)| !line.is_empty() && !line.starts_with('#'))
}

/// The first key of `value`, an `HOST_CHAT_KEY` value.
pub fn first_key_of_env(value: &str) -> Option<&str> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .find(|key| !key.is_empty())
}

/// Loads the key from `key_file`, or else from [`ENV_VAR`]. Error messages never
/// contain key material.
pub fn load(key_file: Option<&Path>) -> Result<Key, String> {
    if let Some(path) = key_file {
        let shown = path.display();
        let len = std::fs::metadata(path)
            .map_err(|e| format!("cannot read key file {shown}: {e}"))?
            .len();
        if len > MAX_KEY_FILE_LEN {
            return Err(format!("key file {shown} is too big to be a key file"));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {shown}: {e}"))?;
        let (line, key) =
            first_key_of_file(&text).ok_or_else(|| format!("key file {shown} holds no key"))?;
        return Key::from_base64(key).map_err(|_| {
            format!("key file {shown}, line {line}: not a Fernet key (44 characters of base64url)")
        });
    }
    match std::env::var(ENV_VAR) {
        Ok(value) => {
            let key = first_key_of_env(&value).ok_or_else(|| format!("{ENV_VAR} holds no key"))?;
            Key::from_base64(key).map_err(|_| {
                format!("{ENV_VAR}: the first key is not a Fernet key (44 characters of base64url)")
            })
        }
        Err(_) => Err(format!(
            "no key: pass --key-file PATH or set {ENV_VAR} (make one with `host-chat keygen`)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_key() {
        let file = "\n# my key\n  cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=  \nother\n";
        assert_eq!(
            first_key_of_file(file),
            Some((3, "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4="))
        );
        assert_eq!(first_key_of_file("# none\n\n"), None);
        assert_eq!(first_key_of_env(" ,a, b"), Some("a"));
        assert_eq!(first_key_of_env("  "), None);
    }
}
