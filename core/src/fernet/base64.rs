//! Strict, padded base64url for token text.
//!
//! Token bytes are public (they travel in the clear), so this codec is table-driven and
//! variable-time, about four times faster than a constant-time decoder. Keys never pass
//! through here: [`Key`](super::Key) uses `base64ct`, which is constant-time.
//!
//! "Strict" means: only `A-Z a-z 0-9 - _`, length a multiple of four, at most two `=` and
//! only at the end, and the unused low bits of the last symbol zero, so every byte string
//! has exactly one accepted text form.

/// The text is not strict padded base64url.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Invalid;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Symbol value for each byte, `0xFF` where the byte is not in the alphabet.
const DECODE: [u8; 256] = {
    let mut table = [0xFF_u8; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

#[inline(always)]
fn symbol(value: u32) -> u8 {
    // `& 63` keeps the index inside the 64-entry alphabet.
    ALPHABET[(value & 63) as usize]
}

#[inline(always)]
fn value(symbol: u8) -> u32 {
    u32::from(DECODE[usize::from(symbol)])
}

/// Length of the padded text for `len` bytes (saturating: absurd lengths fit no buffer).
pub(crate) const fn encoded_len(len: usize) -> usize {
    len.div_ceil(3).saturating_mul(4)
}

/// Encodes `buf[start..start + len]` to text at `buf[..encoded_len(len)]`, in place.
///
/// Writing starts at the front and runs ahead of reading by at most one symbol per
/// group, so it never overtakes bytes still to be read as long as
/// `start >= encoded_len(len) - len`, which the caller guarantees by placing the bytes at
/// the tail of the text's room. Returns `None` if the room is too small or the placement
/// would overlap unread input.
pub(crate) fn encode_tail_in_place(buf: &mut [u8], start: usize, len: usize) -> Option<usize> {
    let text_len = encoded_len(len);
    if start < text_len.checked_sub(len)? || buf.len() < start.checked_add(len)? {
        return None;
    }
    let full_groups = len / 3;
    for group in 0..full_groups {
        let src = start + 3 * group;
        let bytes: [u8; 3] = buf.get(src..src + 3)?.try_into().ok()?;
        let n = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
        let dst: &mut [u8; 4] = buf.get_mut(4 * group..4 * group + 4)?.try_into().ok()?;
        *dst = [symbol(n >> 18), symbol(n >> 12), symbol(n >> 6), symbol(n)];
    }
    let src = start + 3 * full_groups;
    let dst = 4 * full_groups;
    match len % 3 {
        1 => {
            let n = u32::from(*buf.get(src)?) << 16;
            let out: &mut [u8; 4] = buf.get_mut(dst..dst + 4)?.try_into().ok()?;
            *out = [symbol(n >> 18), symbol(n >> 12), b'=', b'='];
        }
        2 => {
            let n = u32::from(*buf.get(src)?) << 16 | u32::from(*buf.get(src + 1)?) << 8;
            let out: &mut [u8; 4] = buf.get_mut(dst..dst + 4)?.try_into().ok()?;
            *out = [symbol(n >> 18), symbol(n >> 12), symbol(n >> 6), b'='];
        }
        _ => {}
    }
    Some(text_len)
}

/// Decodes one group of four symbols that carries three bytes (no padding).
#[inline(always)]
fn decode_full(group: [u8; 4]) -> Result<[u8; 3], Invalid> {
    let [a, b, c, d] = group.map(value);
    if (a | b | c | d) & 0x80 != 0 {
        return Err(Invalid);
    }
    let n = a << 18 | b << 12 | c << 6 | d;
    Ok([(n >> 16) as u8, (n >> 8) as u8, n as u8])
}

/// A validated view of padded base64url text: its shape is checked up front, the symbols
/// as each range is decoded.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Text<'a> {
    text: &'a [u8],
    decoded_len: usize,
}

impl<'a> Text<'a> {
    pub(crate) fn new(text: &'a [u8]) -> Result<Self, Invalid> {
        let decoded_len = decoded_len(text)?;
        Ok(Self { text, decoded_len })
    }

    /// Number of bytes the text decodes to.
    pub(crate) fn decoded_len(&self) -> usize {
        self.decoded_len
    }

    /// Decodes the bytes `start..start + dst.len()` of the decoded form into `dst`.
    pub(crate) fn decode_range(&self, start: usize, dst: &mut [u8]) -> Result<(), Invalid> {
        let end = start.checked_add(dst.len()).ok_or(Invalid)?;
        if end > self.decoded_len {
            return Err(Invalid);
        }
        let mut pos = start;
        let mut out = dst;
        // Leading partial group.
        while pos % 3 != 0 && !out.is_empty() {
            let bytes = self.group(pos / 3)?;
            let (first, rest) = out.split_first_mut().ok_or(Invalid)?;
            *first = *bytes.get(pos % 3).ok_or(Invalid)?;
            out = rest;
            pos += 1;
        }
        // Whole groups, the hot loop; the final text group may be padded, so it is left
        // to the tail.
        let last_group = self.decoded_len.saturating_sub(1) / 3;
        let whole = (out.len() / 3).min(last_group.saturating_sub(pos / 3));
        let first_group = pos / 3;
        let text = self
            .text
            .get(4 * first_group..4 * (first_group + whole))
            .ok_or(Invalid)?;
        let (out_whole, rest) = out.split_at_mut(3 * whole);
        let (groups, _) = text.as_chunks::<4>();
        let (outs, _) = out_whole.as_chunks_mut::<3>();
        for (group, bytes) in groups.iter().zip(outs) {
            *bytes = decode_full(*group)?;
        }
        pos += 3 * whole;
        // Trailing bytes, possibly from the padded final group.
        for byte in rest {
            *byte = *self.group(pos / 3)?.get(pos % 3).ok_or(Invalid)?;
            pos += 1;
        }
        Ok(())
    }

    /// Decodes group `index`, applying the padding rules if it is the final one.
    fn group(&self, index: usize) -> Result<[u8; 3], Invalid> {
        let at = index.checked_mul(4).ok_or(Invalid)?;
        let group: [u8; 4] = self
            .text
            .get(at..at + 4)
            .ok_or(Invalid)?
            .try_into()
            .map_err(|_| Invalid)?;
        if at + 4 == self.text.len() {
            decode_last(group)
        } else {
            decode_full(group)
        }
    }
}

/// Decodes the final group, which may end in one or two `=`; unused bits must be zero.
fn decode_last(group: [u8; 4]) -> Result<[u8; 3], Invalid> {
    match group {
        [a, b, b'=', b'='] => {
            let (a, b) = (value(a), value(b));
            if (a | b) & 0x80 != 0 || b & 0x0F != 0 {
                return Err(Invalid);
            }
            Ok([(a << 2 | b >> 4) as u8, 0, 0])
        }
        [a, b, c, b'='] => {
            let (a, b, c) = (value(a), value(b), value(c));
            if (a | b | c) & 0x80 != 0 || c & 0x03 != 0 {
                return Err(Invalid);
            }
            let n = a << 18 | b << 12 | c << 6;
            Ok([(n >> 16) as u8, (n >> 8) as u8, 0])
        }
        full => decode_full(full),
    }
}

/// Checks the text's shape (length, padding) and returns its decoded length.
fn decoded_len(text: &[u8]) -> Result<usize, Invalid> {
    if text.len() % 4 != 0 {
        return Err(Invalid);
    }
    let padding = match text {
        [.., b'=', b'='] => 2,
        [.., b'='] => 1,
        _ => 0,
    };
    Ok((text.len() / 4 * 3).saturating_sub(padding))
}

/// Decodes the text in `buf` into its own front and returns the decoded length.
///
/// Safe in place because group `g` is read from `buf[4g..4g + 4]` before
/// `buf[3g..3g + 3]` is written, and `3g + 3 <= 4g + 4`.
pub(crate) fn decode_in_place(buf: &mut [u8]) -> Result<usize, Invalid> {
    let len = decoded_len(buf)?;
    let groups = buf.len() / 4;
    for index in 0..groups {
        let at = 4 * index;
        let group: [u8; 4] = buf
            .get(at..at + 4)
            .ok_or(Invalid)?
            .try_into()
            .map_err(|_| Invalid)?;
        let bytes = if index + 1 == groups {
            decode_last(group)?
        } else {
            decode_full(group)?
        };
        let out: &mut [u8; 3] = buf
            .get_mut(3 * index..3 * index + 3)
            .ok_or(Invalid)?
            .try_into()
            .map_err(|_| Invalid)?;
        *out = bytes;
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64ct::{Base64Url, Encoding};

    fn encode(bytes: &[u8]) -> ([u8; 64], usize) {
        let mut buf = [0u8; 64];
        let text_len = encoded_len(bytes.len());
        let start = text_len - bytes.len();
        buf[start..start + bytes.len()].copy_from_slice(bytes);
        assert_eq!(encode_tail_in_place(&mut buf, start, bytes.len()), Some(text_len));
        (buf, text_len)
    }

    #[test]
    fn matches_base64ct_both_ways() {
        let data: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        for len in 0..=data.len() {
            let bytes = &data[..len];
            let (buf, text_len) = encode(bytes);
            let mut reference = [0u8; 64];
            let reference = Base64Url::encode(bytes, &mut reference).unwrap();
            assert_eq!(&buf[..text_len], reference.as_bytes());

            let text = Text::new(&buf[..text_len]).unwrap();
            assert_eq!(text.decoded_len(), len);
            for start in 0..=len {
                for end in start..=len {
                    let mut out = [0u8; 40];
                    text.decode_range(start, &mut out[..end - start]).unwrap();
                    assert_eq!(&out[..end - start], &bytes[start..end]);
                }
            }
            let mut in_place = buf;
            assert_eq!(decode_in_place(&mut in_place[..text_len]), Ok(len));
            assert_eq!(&in_place[..len], bytes);
        }
    }

    #[test]
    fn rejects_non_strict_text() {
        for bad in [
            &b"QUJD+A=="[..], // '+' is standard base64, not url-safe
            b"QUJD/A==",
            b"QUJDRA=",  // length not a multiple of 4
            b"QR==",     // unused bits set
            b"QUI=",     // fine
            b"QUJ=",     // unused bits set
            b"Q===",     // three pads
            b"QU==QUJD", // padding in the middle
            b"QUJD\nQUJD",
        ] {
            let ok = bad == b"QUI=";
            let mut out = [0u8; 8];
            let text = Text::new(bad);
            let decoded = text.and_then(|t| {
                let n = t.decoded_len().min(out.len());
                t.decode_range(0, &mut out[..n])
            });
            assert_eq!(decoded.is_ok(), ok, "{:?}", core::str::from_utf8(bad));
            let mut buf = [0u8; 16];
            buf[..bad.len()].copy_from_slice(bad);
            assert_eq!(decode_in_place(&mut buf[..bad.len()]).is_ok(), ok);
        }
    }

    #[test]
    fn refuses_overlapping_placement() {
        let mut buf = [0u8; 8];
        assert_eq!(encode_tail_in_place(&mut buf, 0, 3), None);
        assert_eq!(encode_tail_in_place(&mut buf, 1, 3), Some(4));
        assert_eq!(encode_tail_in_place(&mut buf, 6, 3), None);
    }
}
