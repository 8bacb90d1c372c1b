//! Names in the broker: a room's id, its stream and subjects, and its epoch.
//!
//! A room's id is the first 16 bytes of HMAC-SHA256 under the chat key of
//! `"host-chat room\0" || name`, in hex: the same on every server with the key, opaque to
//! the broker. (A new primary chat key therefore names new streams: rotating the key in a
//! cluster restarts its rooms; their members are told so when they rejoin.)

use crate::keys::Ring;
use chat_core::fernet::KEY_TEXT_LEN;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(ring: &Ring, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut text = [0u8; KEY_TEXT_LEN];
    let key = ring.primary().to_base64(&mut text);
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key.as_bytes())
        .unwrap_or_else(|_| <HmacSha256 as KeyInit>::new_from_slice(&[0]).expect("any key"));
    mac.update(label);
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Room `room`'s id: 32 hex digits.
pub fn room_id(ring: &Ring, room: &str) -> String {
    mac(ring, b"host-chat room\0", &[room.as_bytes()])[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stream holding a room's lines.
pub fn stream(id: &str) -> String {
    format!("HC_{id}")
}

/// The subjects of a room's stream (one per sender session).
pub fn stream_subjects(id: &str) -> String {
    format!("hc.{id}.*")
}

/// The subject of the lines of `session` in a room.
pub fn line_subject(id: &str, session: u64) -> String {
    format!("hc.{id}.{session:016x}")
}

/// The subject servers tell each other about a room's members on.
pub fn presence_subject(id: &str) -> String {
    format!("hcp.{id}")
}

/// Every room's presence subject.
pub const PRESENCE_ALL: &str = "hcp.*";

/// The room id in a presence subject.
pub fn id_of_presence_subject(subject: &str) -> Option<&str> {
    subject.strip_prefix("hcp.")
}

/// A line's name for deduplication (`Nats-Msg-Id`): its sender's session and number.
pub fn msg_id(origin: u64, msg_id: u32) -> String {
    format!("{origin:016x}-{msg_id}")
}

/// A room's epoch, the same on every server: derived from its stream's name and creation
/// time, so a stream deleted and made again (the room restarted, its history gone) has
/// another. Never 0.
pub fn epoch(ring: &Ring, stream: &str, created_unix_nanos: i128) -> u64 {
    let bytes = mac(
        ring,
        b"host-chat epoch\0",
        &[stream.as_bytes(), &created_unix_nanos.to_be_bytes()],
    );
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_be_bytes(first).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_core::fernet::Key;

    #[test]
    fn ids_are_keyed_and_stable() {
        let a = Ring::new(Key::from_bytes(&[1; 32]));
        let b = Ring::new(Key::from_bytes(&[2; 32]));
        assert_eq!(room_id(&a, "lobby"), room_id(&a, "lobby"));
        assert_ne!(room_id(&a, "lobby"), room_id(&b, "lobby"));
        assert_ne!(room_id(&a, "lobby"), room_id(&a, "lobby2"));
        assert_eq!(room_id(&a, "lobby").len(), 32);
        assert!(!room_id(&a, "lobby").contains("lobby"));
        assert_eq!(line_subject("ab", 0x1f), "hc.ab.000000000000001f");
        assert_ne!(epoch(&a, "HC_x", 1), epoch(&a, "HC_x", 2));
        assert_eq!(id_of_presence_subject(&presence_subject("ab")), Some("ab"));
    }
}
