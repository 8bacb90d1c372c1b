//! The periodic reading: due every period, rendered from its template, the latest one
//! replacing a reading still waiting.

use crate::TEXT_LEN;
use heapless::String;

/// The periodic reading.
#[derive(Debug)]
pub(super) struct Every<'a> {
    pub(super) period_ms: u64,
    pub(super) template: &'a str,
    pub(super) next_at: u64,
    pub(super) count: u64,
    /// The reading due, rendered, until the client takes it.
    pub(super) due: Option<String<TEXT_LEN>>,
}

impl Every<'_> {
    /// Renders the reading due at `now`, if one is; true if one was still waiting.
    pub(super) fn tick(&mut self, now: u64) -> bool {
        if now < self.next_at {
            return false;
        }
        self.count = self.count.saturating_add(1);
        let replaced = self.due.is_some();
        self.due = Some(render(self.template, self.count, now / 1000));
        // Never in a burst after a stall: the next one a period from now at most.
        self.next_at = self
            .next_at
            .saturating_add(self.period_ms.max(1))
            .max(now.saturating_add(1));
        replaced
    }
}

/// `template` with `{N}` (or `{n}`) and `{uptime}` replaced, cut at [`TEXT_LEN`] bytes (on a
/// character boundary). No `core::fmt`: it stays out of images that print nothing.
pub(super) fn render(template: &str, n: u64, uptime: u64) -> String<TEXT_LEN> {
    let mut out = String::new();
    let mut rest = template;
    while !rest.is_empty() {
        let reading = rest
            .strip_prefix("{N}")
            .or_else(|| rest.strip_prefix("{n}"));
        let (piece, number, skip) = if let Some(after) = reading {
            ("", Some(n), rest.len() - after.len())
        } else if let Some(after) = rest.strip_prefix("{uptime}") {
            ("", Some(uptime), rest.len() - after.len())
        } else {
            let len = rest.chars().next().map_or(1, char::len_utf8);
            (rest.get(..len).unwrap_or(""), None, len)
        };
        let fits = match number {
            Some(number) => push_decimal(&mut out, number),
            None => out.push_str(piece).is_ok(),
        };
        if !fits {
            break;
        }
        rest = rest.get(skip..).unwrap_or("");
    }
    out
}

fn push_decimal(out: &mut String<TEXT_LEN>, mut n: u64) -> bool {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        if let Some(slot) = digits.get_mut(len) {
            *slot = b'0' + (n % 10) as u8;
        }
        len += 1;
        n /= 10;
        if n == 0 || len == digits.len() {
            break;
        }
    }
    digits
        .get(..len)
        .unwrap_or_default()
        .iter()
        .rev()
        .all(|&d| out.push(char::from(d)).is_ok())
}
