//! The command line: every subcommand, its options and its help text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

const TOP_HELP: &str = "\
Keys:
  A key is 44 characters of base64url (32 random bytes), the same format as Python's
  `cryptography` Fernet keys. The token commands read keys from, in order:
    --key-file PATH   one key per line; the first makes new tokens, the others (up to 7)
                      are older keys still accepted. Blank lines and `#` comments are
                      ignored. Keep the file private (mode 600).
    HOST_CHAT_KEY     one or more keys separated by commas or spaces, primary first.

Examples:
  (umask 077; host-chat keygen > k)      # a private key file
  echo hi | host-chat encrypt --key-file k | host-chat decrypt --key-file k
  HOST_CHAT_KEY=$(host-chat keygen) host-chat encrypt < notes.txt > notes.token

Exit status:
  0  success
  1  the token was rejected: invalid (wrong key, or corrupted), expired, or from the future
  2  usage or key problem: bad arguments, no key, malformed key, unreadable key file
  3  input or system problem: input too long, read or write failure, no OS randomness";

const KEYGEN_HELP: &str = "\
Examples:
  (umask 077; host-chat keygen > k)      # a private key file
  export HOST_CHAT_KEY=$(host-chat keygen)
  (umask 077; { host-chat keygen; cat k; } > k.new) && mv k.new k   # new primary first";

const ENCRYPT_HELP: &str = "\
Examples:
  echo hi | host-chat encrypt --key-file k | host-chat decrypt --key-file k
  host-chat encrypt --key-file k < photo.jpg > photo.token";

const DECRYPT_HELP: &str = "\
Examples:
  echo hi | host-chat encrypt --key-file k | host-chat decrypt --key-file k
  host-chat decrypt --key-file k --ttl 60 < msg.token   # refuse tokens over a minute old";

const ROTATE_HELP: &str = "\
Examples:
  (umask 077; { host-chat keygen; cat k; } > k.new) && mv k.new k   # new primary, old kept
  host-chat rotate --key-file k < old.token > new.token
  host-chat decrypt --key-file k < new.token";

/// Encrypted chat over UDP, and tools for its Fernet tokens.
///
/// Messages are Fernet tokens (AES-128-CBC + HMAC-SHA256, base64url), interoperable
/// with every other Fernet implementation, e.g. Python's `cryptography`.
#[derive(Debug, Parser)]
#[command(name = "host-chat", version, after_help = TOP_HELP)]
pub struct Cli {
    /// Read the keys from PATH: one per line, the first one makes new tokens [default:
    /// the keys in $HOST_CHAT_KEY].
    #[arg(long, global = true, value_name = "PATH")]
    pub key_file: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a new random key.
    ///
    /// The key comes from the operating system's random number generator and is printed
    /// with a newline, ready for a key file or HOST_CHAT_KEY.
    #[command(after_help = KEYGEN_HELP)]
    Keygen,

    /// Encrypt all of standard input into a token.
    ///
    /// The input is taken as raw bytes (up to 64 MiB), untouched; the token, stamped with
    /// the current time and made with the primary key, is printed with a newline.
    #[command(after_help = ENCRYPT_HELP)]
    Encrypt,

    /// Decrypt a token read from standard input.
    ///
    /// Whitespace around the token is ignored. Exactly the message bytes are written to
    /// standard output, nothing added. Any key of the ring may have made the token.
    #[command(after_help = DECRYPT_HELP)]
    Decrypt(DecryptArgs),

    /// Re-encrypt a token under the primary key, keeping its timestamp.
    ///
    /// Reads a token made with any key of the ring (expired or not) and prints the same
    /// message, with the same timestamp, as a token of the primary key, with a newline.
    /// Like Python's `MultiFernet.rotate`.
    #[command(after_help = ROTATE_HELP)]
    Rotate(RotateArgs),
}

/// Options of `decrypt`.
#[derive(Debug, Args)]
pub struct DecryptArgs {
    /// Refuse tokens made more than SECONDS ago (or over 60 s in the future).
    #[arg(long, value_name = "SECONDS")]
    pub ttl: Option<u64>,

    /// Say on standard error which key opened the token.
    #[arg(short, long)]
    pub verbose: bool,
}

/// Options of `rotate`.
#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Say on standard error which key opened the old token.
    #[arg(short, long)]
    pub verbose: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses() {
        let cli = Cli::try_parse_from(["host-chat", "decrypt", "--ttl", "60", "--key-file", "k"])
            .unwrap();
        assert_eq!(cli.key_file, Some(PathBuf::from("k")));
        assert!(matches!(
            cli.command,
            Command::Decrypt(DecryptArgs {
                ttl: Some(60),
                verbose: false
            })
        ));
        assert!(Cli::try_parse_from(["host-chat", "decrypt", "--ttl", "-1"]).is_err());
    }
}
