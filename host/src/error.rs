//! Failures and the exit status each one gives.
//!
//! Every failure is printed as one line on standard error, `host-chat: <what went
//! wrong>`, and nothing goes to standard output. The exit status says what kind of
//! failure it was (see [`exit_code`]; `--help` documents the same table).

use crate::keys::KeyError;
use chat_core::fernet::MAX_CLOCK_SKEW;
use core::fmt;

/// Exit status: the token was rejected (invalid, expired or from the future).
pub const EXIT_REJECTED: u8 = 1;
/// Exit status: bad usage or a key problem (clap also exits 2 on bad arguments).
pub const EXIT_USAGE: u8 = 2;
/// Exit status: an input or system problem (input too long, I/O, no randomness).
pub const EXIT_INPUT: u8 = 3;

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
    },
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid => f.write_str("invalid token (wrong key, or corrupted)"),
            Self::Expired { age, ttl } => {
                write!(f, "token expired: made {age} s ago, TTL is {ttl} s")
            }
            Self::FromTheFuture { ahead } => write!(
                f,
                "token is from the future: stamped {ahead} s ahead of this clock, \
                 over the {MAX_CLOCK_SKEW} s allowed (check the clocks)"
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

/// The exit status for a failure: [`EXIT_REJECTED`], [`EXIT_USAGE`] or [`EXIT_INPUT`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Rejected>() {
            return EXIT_REJECTED;
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
        assert_eq!(exit_code(&err), EXIT_REJECTED);
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
    }
}
