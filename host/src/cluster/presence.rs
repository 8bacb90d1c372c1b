//! What the servers of a cluster tell each other about a room's members, on the room's
//! presence subject (core NATS: nothing is kept). Each message is a Fernet token under
//! the chat key of one JSON object:
//!
//! | `t` | fields | when |
//! |---|---|---|
//! | `join` | `server`, `session`, `nick` | a member joined here |
//! | `left` | `server`, `session`, `nick`, `kind` (1 joined ... 4 replaced) | a member left here |
//! | `beat` | `server`, `count` | every [`HEARTBEAT`] per open room: this server is alive and has `count` members there |
//! | `who` | `server` | a server opened the room (or lost count): every other server answers on the reply subject... |
//! | `roster` | `server`, `members` (`[[session, nick], ...]`) | ...with its members |
//!
//! A server that sends no `beat` for [`SILENCE`] is taken for gone, with its members.

use crate::keys::Ring;
use serde_json::{Value, json};
use std::time::Duration;

/// How often a server says it is alive, per open room.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A server silent this long is gone.
pub const SILENCE: Duration = Duration::from_secs(7);

/// One presence message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Join {
        server: u64,
        session: u64,
        nick: String,
    },
    Left {
        server: u64,
        session: u64,
        nick: String,
        kind: u8,
    },
    Beat {
        server: u64,
        count: u64,
    },
    Who {
        server: u64,
    },
    Roster {
        server: u64,
        members: Vec<(u64, String)>,
    },
}

impl Message {
    /// The server that sent it.
    pub fn server(&self) -> u64 {
        match self {
            Self::Join { server, .. }
            | Self::Left { server, .. }
            | Self::Beat { server, .. }
            | Self::Who { server }
            | Self::Roster { server, .. } => *server,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Self::Join {
                server,
                session,
                nick,
            } => json!({"t": "join", "server": server, "session": session, "nick": nick}),
            Self::Left {
                server,
                session,
                nick,
                kind,
            } => json!({"t": "left", "server": server, "session": session, "nick": nick,
                        "kind": kind}),
            Self::Beat { server, count } => json!({"t": "beat", "server": server, "count": count}),
            Self::Who { server } => json!({"t": "who", "server": server}),
            Self::Roster { server, members } => {
                json!({"t": "roster", "server": server, "members": members})
            }
        }
    }

    fn from_json(value: &Value) -> Option<Self> {
        let server = value["server"].as_u64()?;
        let session = || value["session"].as_u64();
        let nick = || value["nick"].as_str().map(str::to_owned);
        Some(match value["t"].as_str()? {
            "join" => Self::Join {
                server,
                session: session()?,
                nick: nick()?,
            },
            "left" => Self::Left {
                server,
                session: session()?,
                nick: nick()?,
                kind: u8::try_from(value["kind"].as_u64()?).ok()?,
            },
            "beat" => Self::Beat {
                server,
                count: value["count"].as_u64()?,
            },
            "who" => Self::Who { server },
            "roster" => Self::Roster {
                server,
                members: value["members"]
                    .as_array()?
                    .iter()
                    .map(|m| Some((m[0].as_u64()?, m[1].as_str()?.to_owned())))
                    .collect::<Option<_>>()?,
            },
            _ => return None,
        })
    }

    /// The message as a token.
    pub fn seal(&self, ring: &Ring, rng: &mut impl rand::CryptoRng) -> Vec<u8> {
        let plain = self.to_json().to_string();
        let mut out = vec![0u8; chat_core::fernet::token_len(plain.len())];
        let now = crate::net::unix_millis() / 1000;
        match ring.encrypt(plain.as_bytes(), now, rng, &mut out) {
            Ok(token) => token.as_bytes().to_vec(),
            Err(_) => Vec::new(),
        }
    }

    /// Opens a token from the presence subject (any age: the broker is not the network).
    pub fn open(ring: &Ring, token: &[u8]) -> Option<Self> {
        let mut plain = vec![0u8; chat_core::fernet::plaintext_buf_len(token.len())];
        let (opened, _) = ring.decrypt(token, None, &mut plain).ok()?;
        let value: Value = serde_json::from_slice(opened.plaintext).ok()?;
        Self::from_json(&value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::fernet::Key;

    #[test]
    fn round_trips_sealed_and_refuses_other_keys() {
        let ring = Ring::new(Key::from_bytes(&[3; 32]));
        let other = Ring::new(Key::from_bytes(&[4; 32]));
        let mut rng = crate::net::rng().unwrap();
        for message in [
            Message::Join {
                server: 1,
                session: u64::MAX,
                nick: "ann".into(),
            },
            Message::Left {
                server: 1,
                session: 2,
                nick: "bob".into(),
                kind: 3,
            },
            Message::Beat {
                server: 7,
                count: 3,
            },
            Message::Who { server: 9 },
            Message::Roster {
                server: 9,
                members: vec![(1, "a".into()), (u64::MAX, "b c".into())],
            },
        ] {
            let token = message.seal(&ring, &mut rng);
            assert!(!String::from_utf8_lossy(&token).contains("ann"));
            assert_eq!(Message::open(&ring, &token), Some(message));
            assert_eq!(Message::open(&other, &token), None);
        }
    }
}
