//! Counted nouns: `count(1, "member")` is "1 member", `count(2, "member")` "2 members".
//!
//! One helper for every message that shows a number of things, so none says "1 members".

use core::fmt;

/// `n` and `noun`, in the plural unless `n` is 1: "1 line", "3 lines", "0 lines",
/// "2 deliveries" (a consonant and `y` become `ies`). For an irregular noun use
/// [`count_as`].
pub fn count(n: impl Into<u64>, noun: &str) -> Counted<'_> {
    Counted {
        n: n.into(),
        one: noun,
        many: None,
    }
}

/// `n` and `one` or `many`: `count_as(2, "was", "were")`.
pub fn count_as<'a>(n: impl Into<u64>, one: &'a str, many: &'a str) -> Counted<'a> {
    Counted {
        n: n.into(),
        one,
        many: Some(many),
    }
}

/// A number and its noun, written by `Display`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted<'a> {
    n: u64,
    one: &'a str,
    many: Option<&'a str>,
}

impl Counted<'_> {
    /// The noun alone, agreeing with the number: "member" or "members".
    pub fn noun(&self) -> String {
        if self.n == 1 {
            return self.one.to_owned();
        }
        if let Some(many) = self.many {
            return many.to_owned();
        }
        let noun = self.one;
        let consonant_y = noun.len() >= 2
            && noun.ends_with('y')
            && !noun[..noun.len() - 1].ends_with(['a', 'e', 'i', 'o', 'u']);
        if consonant_y {
            format!("{}ies", &noun[..noun.len() - 1])
        } else if noun.ends_with(['s', 'x']) || noun.ends_with("ch") || noun.ends_with("sh") {
            format!("{noun}es")
        } else {
            format!("{noun}s")
        }
    }
}

impl fmt::Display for Counted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.n, self.noun())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees() {
        assert_eq!(count(1u8, "member").to_string(), "1 member");
        assert_eq!(count(0u8, "member").to_string(), "0 members");
        assert_eq!(count(2u16, "room").to_string(), "2 rooms");
        assert_eq!(count(1u32, "delivery").to_string(), "1 delivery");
        assert_eq!(count(9u64, "delivery").to_string(), "9 deliveries");
        assert_eq!(count(2u8, "key").to_string(), "2 keys");
        assert_eq!(count(3u8, "address").to_string(), "3 addresses");
        assert_eq!(count_as(2u8, "was", "were").to_string(), "2 were");
        assert_eq!(count(1u8, "line").noun(), "line");
    }
}
