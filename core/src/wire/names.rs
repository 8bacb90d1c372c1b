//! Nicknames and room names: which strings may be one (PROTOCOL.md "Names").

use super::NAME_MAX;
use core::fmt;

/// Whether `name` may be a nickname or a room name (PROTOCOL.md "Names"):
///
/// * 1 to [`NAME_MAX`] bytes of UTF-8;
/// * no character of the Unicode general categories Cc (controls), Cf (format characters:
///   U+200B zero width space, U+FEFF, the bidirectional controls, ...), Zl (U+2028) or Zp
///   (U+2029);
/// * no White_Space character other than U+0020 SPACE (so U+00A0, U+3000 are refused), and
///   no space at either end.
///
/// The categories are those of Unicode 15.1. [`check_name`] says which rule a name breaks.
pub fn is_valid_name(name: &str) -> bool {
    check_name(name).is_ok()
}

/// The rule of PROTOCOL.md "Names" that a name breaks ([`check_name`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    /// No bytes at all.
    Empty,
    /// More than [`NAME_MAX`] bytes of UTF-8 (the length in bytes).
    TooLong(usize),
    /// A space (U+0020) as its first or last character.
    SpaceAtEnd,
    /// A character that is a control, a format character, a line or paragraph separator,
    /// or white space other than U+0020.
    Forbidden(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Empty => f.write_str("is empty"),
            Self::TooLong(len) => write!(f, "is {len} bytes long, more than {NAME_MAX}"),
            Self::SpaceAtEnd => f.write_str("starts or ends with a space"),
            Self::Forbidden(c) => write!(
                f,
                "contains U+{:04X}, a control, format or white-space character",
                u32::from(c)
            ),
        }
    }
}

/// Checks `name` against the rules of [`is_valid_name`]: the first rule it breaks, in the
/// order of [`NameError`]'s variants (length, spaces at the ends, then the first
/// forbidden character).
///
/// # Errors
///
/// [`NameError`]: the rule broken.
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameError::TooLong(name.len()));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(NameError::SpaceAtEnd);
    }
    match name
        .chars()
        .find(|&c| c != ' ' && (c.is_control() || c.is_whitespace() || is_format_character(c)))
    {
        Some(c) => Err(NameError::Forbidden(c)),
        None => Ok(()),
    }
}

/// Unicode 15.1 general category Cf (DerivedGeneralCategory.txt).
fn is_format_character(c: char) -> bool {
    const CF: [(u32, u32); 21] = [
        (0x00AD, 0x00AD),
        (0x0600, 0x0605),
        (0x061C, 0x061C),
        (0x06DD, 0x06DD),
        (0x070F, 0x070F),
        (0x0890, 0x0891),
        (0x08E2, 0x08E2),
        (0x180E, 0x180E),
        (0x200B, 0x200F),
        (0x202A, 0x202E),
        (0x2060, 0x2064),
        (0x2066, 0x206F),
        (0xFEFF, 0xFEFF),
        (0xFFF9, 0xFFFB),
        (0x110BD, 0x110BD),
        (0x110CD, 0x110CD),
        (0x13430, 0x1343F),
        (0x1BCA0, 0x1BCA3),
        (0x1D173, 0x1D17A),
        (0xE0001, 0xE0001),
        (0xE0020, 0xE007F),
    ];
    let c = u32::from(c);
    CF.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}
