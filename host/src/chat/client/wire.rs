//! `--show-wire` and the `--tui` wire view: our datagrams decrypted (a chat line out, the
//! server's answer in).

use super::ChatClient;
use crate::keys::Ring;
use crate::net;
use chat_cli::count;
use chat_core::fernet::plaintext_buf_len;
use chat_core::wire::{Body, Plaintext};
use serde_json::json;

impl ChatClient {
    /// `--show-wire` (and the wire view of `--tui`): describes a datagram if it is one of
    /// ours (a chat line out, or the server's receipt in).
    pub(super) fn show_wire(&mut self, outgoing: bool, datagram: &[u8]) {
        match describe_wire(&self.ring, outgoing, datagram) {
            Some(Wire::Sent {
                msg_id,
                text,
                token,
            }) => {
                let again = !self.wire_shown.insert(msg_id);
                if let Some(tui) = &mut self.tui {
                    tui.state.wire_sent(msg_id, &text, &token, again);
                } else if self.json {
                    net::out(
                        &json!({"event": "wire", "direction": "out", "msg_id": msg_id, "text": text,
                                "token": token, "retransmission": again})
                        .to_string(),
                    );
                } else if again {
                    net::out(&format!("resent: {text}"));
                    net::out(&format!("token: {token}"));
                } else {
                    net::out(&format!("sent: {text}"));
                    net::out(&format!("token: {token}"));
                }
            }
            Some(Wire::Receipt {
                msg_id,
                summary,
                token,
            }) => {
                if let Some(tui) = &mut self.tui {
                    tui.state.wire_response(msg_id, &summary, &token);
                } else if self.json {
                    net::out(
                        &json!({"event": "wire", "direction": "in", "response": summary,
                                "token": token})
                        .to_string(),
                    );
                } else {
                    net::out(&format!("response: {summary}"));
                    net::out(&format!("response token: {token}"));
                }
            }
            None => {}
        }
    }
}

/// One of our datagrams, decrypted: what `--show-wire` and the wire view show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wire {
    /// A chat line we sent.
    Sent {
        /// Its number on the wire.
        msg_id: u32,
        /// The original text.
        text: String,
        /// The token (the datagram).
        token: String,
    },
    /// The server's receipt for one of our lines.
    Receipt {
        /// The line's number on the wire.
        msg_id: u32,
        /// What the receipt says.
        summary: String,
        /// The token (the datagram).
        token: String,
    },
}

/// Describes `datagram` if it is one of ours: a chat line out (`outgoing`), or the
/// server's receipt in; `None` for anything else (pings, joins, room messages...).
pub fn describe_wire(ring: &Ring, outgoing: bool, datagram: &[u8]) -> Option<Wire> {
    let mut plain = vec![0u8; plaintext_buf_len(datagram.len())];
    let (opened, _) = ring.decrypt(datagram, None, &mut plain).ok()?;
    let Ok(Plaintext::Frame(repr)) = Plaintext::parse(opened.plaintext) else {
        return None;
    };
    let token = String::from_utf8_lossy(datagram).into_owned();
    match (outgoing, repr.body) {
        (true, Body::Chat { msg_id, text }) => Some(Wire::Sent {
            msg_id,
            text: text.to_owned(),
            token,
        }),
        (
            false,
            Body::Receipt {
                msg_id,
                seq,
                recipients,
            },
        ) => {
            let summary = format!(
                "receipt for line {msg_id}: room message #{seq}, {}",
                count(recipients, "member")
            );
            Some(Wire::Receipt {
                msg_id,
                summary,
                token,
            })
        }
        (false, Body::Refused { msg_id, reason }) => Some(Wire::Receipt {
            msg_id,
            summary: format!("answer to line {msg_id}: refused ({})", reason.as_str()),
            token,
        }),
        _ => None,
    }
}
