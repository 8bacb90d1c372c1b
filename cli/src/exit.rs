//! Failures and the exit status each one gives, for every subcommand of `host-chat` and
//! for `firmware-sim`.
//!
//! | status | meaning |
//! |---:|---|
//! | 0 | done: the token made or opened, the key printed, the server stopped on request, every line given to a client reached the room |
//! | 1 | refused or not done: a token rejected (invalid, expired, from the future); a chat session that never joined, whose join was refused, or that was given a line which did not reach the room; a benchmark whose clients could not get in |
//! | 2 | usage or key problem: bad arguments, no key, a malformed key, an unreadable or unprotected key file |
//! | 3 | input or system problem: no input where a token was expected, input too long, a read or write failure, a network or OS failure (cannot listen, no randomness) |
//!
//! Every failure is printed as one line on standard error, `PROGRAM: <what went wrong>`,
//! and (for the token tools) nothing goes to standard output. [`exit_code`] finds the
//! status from the error's chain; anything not classified is a system problem (3).

use crate::keys::KeyError;
use core::fmt;

/// Exit status: refused or not done (a token rejected, a line not delivered...).
pub const EXIT_REFUSED: u8 = 1;
/// Exit status: bad usage or a key problem (clap also exits 2 on bad arguments).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: an input or system problem (no input, input too long, I/O, network).
pub const EXIT_INPUT: u8 = 3;

/// The exit-status table for `--help` (the same as the module docs and the README).
pub const EXIT_STATUS_HELP: &str = "\
Exit status (every subcommand):
  0  done: the token made or opened, the server stopped on request, every line given to
     a client reached the room
  1  refused or not done: the token was rejected (invalid, expired, from the future); a
     client never joined, was refused, or a line it was given did not reach the room
  2  usage or key problem: bad arguments, no key, a malformed key, an unreadable or
     unprotected key file
  3  input or system problem: no input where a token was expected, input too long, a
     read or write failure, a network or OS failure (cannot listen, no randomness)";

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Not made with any of our keys, or corrupted: the two are indistinguishable.
    Invalid,
    /// Made with one of our keys, but longer ago than the TTL allows.
    Expired {
        /// Seconds since the token was made.
        age: u64,
        /// The TTL in force.
        ttl: u64,
    },
    /// Made with one of our keys, but stamped too far in the future.
    FromTheFuture {
        /// Seconds ahead of our clock.
        ahead: u64,
        /// The clock skew allowed, seconds.
        skew: u64,
    },
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => f.write_str("invalid token (wrong key, or corrupted)"),
            Self::Expired { age, ttl } => {
                write!(f, "token expired: made {age} s ago, TTL is {ttl} s")
            }
            Self::FromTheFuture { ahead, skew } => write!(
                f,
                "token is from the future: stamped {ahead} s ahead of this clock, over the \
                 {skew} s allowed (check the clocks, or allow more with --clock-skew)"
            ),
        }
    }
}

impl std::error::Error for Rejected {}

/// Standard input holds more than a command accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputTooLong {
    /// What was being read: "message" or "token".
    pub what: &'static str,
    /// The most bytes accepted.
    pub limit: usize,
}

impl fmt::Display for InputTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { what, limit } = self;
        if limit.is_multiple_of(1 << 20) {
            write!(f, "{what} too long: the limit is {} MiB", limit >> 20)
        } else {
            write!(f, "{what} too long: the limit is {limit} bytes")
        }
    }
}

impl std::error::Error for InputTooLong {}

/// Standard input holds nothing (or only whitespace) where a token was expected: an
/// input problem (the step before in a pipe failed?), not a rejected token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoInput {
    /// What was expected: "token".
    pub what: &'static str,
}

impl fmt::Display for NoInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no {} on standard input (it is empty or only whitespace)",
            self.what
        )
    }
}

impl std::error::Error for NoInput {}

/// A command-line value that makes no sense (an address, a name): exits with
/// [`EXIT_USAGE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadArgument(pub String);

impl fmt::Display for BadArgument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadArgument {}

/// A chat session did not do what it was given: it never joined, the server refused
/// it, or lines did not reach the room. Exits with [`EXIT_REFUSED`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotDelivered(pub String);

impl fmt::Display for NotDelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotDelivered {}

/// Checks a chat nickname and room (`--nick`, `--room`) against PROTOCOL.md "Names"
/// (`chat_core::wire::check_name`): the error names the option and the rule broken.
pub fn check_names(nick: &str, room: &str) -> Result<(), BadArgument> {
    let check = chat_core::wire::check_name;
    let (option, name, why) = match (check(nick), check(room)) {
        (Ok(()), Ok(())) => return Ok(()),
        (Err(why), _) => ("--nick", nick, why),
        (Ok(()), Err(why)) => ("--room", room, why),
    };
    Err(BadArgument(format!(
        "{option} {name:?} {why} (a name is 1 to 32 bytes of UTF-8, without a space at either \
         end, control or format characters, or white space other than the space)"
    )))
}

/// The exit status for a failure: [`EXIT_REFUSED`], [`EXIT_USAGE`] or [`EXIT_INPUT`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Rejected>() || cause.is::<NotDelivered>() {
            return EXIT_REFUSED;
        }
        if cause.is::<KeyError>() || cause.is::<BadArgument>() {
            return EXIT_USAGE;
        }
    }
    EXIT_INPUT
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;

    #[test]
    fn codes_and_messages() {
        let err = anyhow::Error::new(Rejected::Expired { age: 3600, ttl: 60 });
        assert_eq!(exit_code(&err), EXIT_REFUSED);
        assert_eq!(
            err.to_string(),
            "token expired: made 3600 s ago, TTL is 60 s"
        );
        let err = Err::<(), _>(KeyError::NoKey).context("x").unwrap_err();
        assert_eq!(exit_code(&err), EXIT_USAGE);
        let err = anyhow::Error::new(InputTooLong {
            what: "message",
            limit: 64 << 20,
        });
        assert_eq!(exit_code(&err), EXIT_INPUT);
        assert_eq!(err.to_string(), "message too long: the limit is 64 MiB");
        let err = anyhow::Error::new(NoInput { what: "token" });
        assert_eq!(exit_code(&err), EXIT_INPUT);
        let err = anyhow::Error::new(NotDelivered("1 of 2 lines".into()));
        assert_eq!(exit_code(&err), EXIT_REFUSED);
        assert_eq!(exit_code(&anyhow::anyhow!("cannot listen")), EXIT_INPUT);
        assert!(check_names("ann", "lobby").is_ok());
        let long = "x".repeat(33);
        assert!(
            check_names(&long, "lobby")
                .unwrap_err()
                .0
                .starts_with("--nick")
        );
        assert!(check_names("ann", "").unwrap_err().0.starts_with("--room"));
        assert!(check_names(&long[..32], &long[..32]).is_ok());
    }
}
