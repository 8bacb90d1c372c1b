//! The line record: what a server stores in a room's stream (JetStream) for each line, as
//! the plaintext of a Fernet token under the chat key. The broker only ever sees the
//! token; every server opens it (MAC first) before the line reaches its members.
//!
//! ```text
//! 0      1     2              10       14     15          15+n     17+n
//! +------+-----+--------------+--------+------+-----------+--------+---------- - -
//! | 0xF5 | ver | origin (u64) | msg_id | nlen | nick      | tlen   | text
//! +------+-----+--------------+--------+------+-----------+--------+---------- - -
//! ```
//!
//! `0xF5` never starts UTF-8 text nor a chat frame (`0xC1`): a record is never mistaken for
//! either, and a datagram carrying one is dropped as malformed. Integers are big endian;
//! `nlen` is a `u8`, `tlen` a `u16`. `origin` is the sender's session, `msg_id` its number
//! for the line: together they name the line across servers (the stream's deduplication
//! key).

use crate::wire::{Error, NAME_MAX, is_valid_name};

/// First byte of a line record.
pub const RECORD_MAGIC: u8 = 0xF5;
/// The record format this crate writes and reads.
pub const RECORD_VERSION: u8 = 1;
/// Bytes a record adds to its text, with the longest nickname: less than a `Deliver`
/// frame adds ([`DELIVER_OVERHEAD`](crate::wire::DELIVER_OVERHEAD)), so the token of any
/// line the relay takes fits its largest datagram.
pub const RECORD_OVERHEAD: usize = 2 + 8 + 4 + 1 + NAME_MAX + 2;

/// A line as the stream keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRecord<'a> {
    /// The sender's session.
    pub origin: u64,
    /// The sender's number for the line.
    pub msg_id: u32,
    /// The sender's nickname in the room.
    pub nick: &'a str,
    /// The line.
    pub text: &'a str,
}

impl<'a> LineRecord<'a> {
    /// Parses a whole record.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        let (header, rest) = bytes.split_first_chunk::<14>().ok_or(Error::Truncated)?;
        let [
            magic,
            version,
            o0,
            o1,
            o2,
            o3,
            o4,
            o5,
            o6,
            o7,
            m0,
            m1,
            m2,
            m3,
        ] = *header;
        if magic != RECORD_MAGIC {
            return Err(Error::NotAFrame);
        }
        if version != RECORD_VERSION {
            return Err(Error::UnknownKind(version));
        }
        let (&nlen, rest) = rest.split_first().ok_or(Error::Truncated)?;
        let (nick, rest) = rest
            .split_at_checked(usize::from(nlen))
            .ok_or(Error::Truncated)?;
        let nick = core::str::from_utf8(nick).map_err(|_| Error::Malformed)?;
        if !is_valid_name(nick) {
            return Err(Error::Malformed);
        }
        let (tlen, rest) = rest.split_first_chunk::<2>().ok_or(Error::Truncated)?;
        let (text, rest) = rest
            .split_at_checked(usize::from(u16::from_be_bytes(*tlen)))
            .ok_or(Error::Truncated)?;
        if !rest.is_empty() {
            return Err(Error::TrailingBytes);
        }
        Ok(Self {
            origin: u64::from_be_bytes([o0, o1, o2, o3, o4, o5, o6, o7]),
            msg_id: u32::from_be_bytes([m0, m1, m2, m3]),
            nick,
            text: core::str::from_utf8(text).map_err(|_| Error::Malformed)?,
        })
    }

    /// The exact length [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        15usize
            .saturating_add(self.nick.len())
            .saturating_add(2)
            .saturating_add(self.text.len())
    }

    /// Writes the record to the front of `buf`; its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, Error> {
        let nlen = u8::try_from(self.nick.len()).map_err(|_| Error::Malformed)?;
        let tlen = u16::try_from(self.text.len()).map_err(|_| Error::Malformed)?;
        let len = self.buffer_len();
        let out = buf.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let (header, rest) = out
            .split_first_chunk_mut::<15>()
            .ok_or(Error::BufferTooSmall)?;
        header[0] = RECORD_MAGIC;
        header[1] = RECORD_VERSION;
        header[2..10].copy_from_slice(&self.origin.to_be_bytes());
        header[10..14].copy_from_slice(&self.msg_id.to_be_bytes());
        header[14] = nlen;
        let (nick, rest) = rest
            .split_at_mut_checked(self.nick.len())
            .ok_or(Error::BufferTooSmall)?;
        nick.copy_from_slice(self.nick.as_bytes());
        let (tl, text) = rest
            .split_first_chunk_mut::<2>()
            .ok_or(Error::BufferTooSmall)?;
        *tl = tlen.to_be_bytes();
        text.copy_from_slice(self.text.as_bytes());
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_what_is_not_a_record() {
        let record = LineRecord {
            origin: 0x0102_0304_0506_0708,
            msg_id: 77,
            nick: "ann",
            text: "héllo",
        };
        let mut buf = [0u8; 64];
        let len = record.emit(&mut buf).unwrap();
        assert_eq!(len, record.buffer_len());
        assert_eq!(LineRecord::parse(&buf[..len]), Ok(record));
        assert_eq!(LineRecord::parse(&buf[..len - 1]), Err(Error::Truncated));
        let mut long = buf;
        assert_eq!(
            LineRecord::parse(&long[..len + 1]),
            Err(Error::TrailingBytes)
        );
        long[0] = 0xC1;
        assert_eq!(LineRecord::parse(&long[..len]), Err(Error::NotAFrame));
        assert_eq!(
            record.emit(&mut [0u8; 10]),
            Err(Error::BufferTooSmall),
            "never panics on a short buffer"
        );
        let longest = LineRecord {
            nick: "n234567890123456789012345678901x",
            text: "",
            ..record
        };
        assert_eq!(longest.buffer_len(), RECORD_OVERHEAD);
        const { assert!(RECORD_OVERHEAD <= crate::wire::DELIVER_OVERHEAD) };
    }

    #[test]
    fn parses_any_bytes_without_panicking() {
        let mut bytes = [0u8; 40];
        for seed in 0..2000u32 {
            let mut x = seed.wrapping_mul(2_654_435_761);
            for b in bytes.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *b = x as u8;
            }
            bytes[0] = RECORD_MAGIC;
            bytes[1] = RECORD_VERSION;
            for len in 0..bytes.len() {
                let _ = LineRecord::parse(&bytes[..len]);
            }
        }
    }
}
