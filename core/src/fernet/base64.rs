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
// Indexing in the table constants is evaluated at compile time: out of bounds would
// fail the build, it cannot panic at run time.
#[allow(clippy::indexing_slicing)]
const DECODE: [u8; 256] = {
    let mut table = [0xFF_u8; 256];
    let mut i = 0;
    while i < 64 {
        table[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// Flag set in every [`SHIFTED`] entry of a byte outside the alphabet; valid entries
/// stay below bit 24, so one test per group (or per several) finds any bad symbol.
const BAD: u32 = 0xFF00_0000;

/// `DECODE` pre-shifted to each of the four positions of a group, so a group decodes to
/// its 24-bit value with four loads and three ORs (1 KiB per position).
#[cfg(feature = "fast-base64")]
#[allow(clippy::indexing_slicing)]
const SHIFTED: [[u32; 256]; 4] = {
    let mut tables = [[BAD; 256]; 4];
    let mut i = 0;
    while i < 64 {
        let byte = ALPHABET[i] as usize;
        let value = i as u32;
        tables[0][byte] = value << 18;
        tables[1][byte] = value << 12;
        tables[2][byte] = value << 6;
        tables[3][byte] = value;
        i += 1;
    }
    tables
};

/// The two symbols of every 12-bit value, first symbol in the low byte (8 KiB), so a
/// group of three bytes encodes with two loads.
#[cfg(feature = "fast-base64")]
#[allow(clippy::indexing_slicing)]
const PAIRS: [u16; 4096] = {
    let mut table = [0_u16; 4096];
    let mut i = 0;
    while i < 4096 {
        table[i] = u16::from_le_bytes([ALPHABET[i >> 6], ALPHABET[i & 63]]);
        i += 1;
    }
    table
};

// The lookups below index tables whose length covers every possible index (a `u8` into
// 256 entries, a value masked to 6 or 12 bits into 64 or 4096), so the `get` fallbacks
// are unreachable and compile away.

#[inline(always)]
fn symbol(value: u32) -> u8 {
    ALPHABET.get((value & 63) as usize).copied().unwrap_or(b'A')
}

#[inline(always)]
fn value(symbol: u8) -> u32 {
    u32::from(DECODE.get(usize::from(symbol)).copied().unwrap_or(0xFF))
}

/// The four symbols of the 24 low bits of `n`, first symbol in the low byte.
#[cfg(feature = "fast-base64")]
#[inline(always)]
fn encode_group(n: u32) -> u32 {
    let pair = |bits: u32| u32::from(PAIRS.get((bits & 0xFFF) as usize).copied().unwrap_or(0));
    pair(n >> 12) | pair(n) << 16
}

/// The four symbols of the 24 low bits of `n`, first symbol in the low byte: the small
/// version for firmware, where 12 KiB of tables cost more flash than the speed is worth.
/// Also built for the tests, which check it against the table-driven one.
#[cfg(any(test, not(feature = "fast-base64")))]
#[inline(always)]
fn encode_group_small(n: u32) -> u32 {
    u32::from_le_bytes([symbol(n >> 18), symbol(n >> 12), symbol(n >> 6), symbol(n)])
}

#[cfg(not(feature = "fast-base64"))]
use self::encode_group_small as encode_group;

/// The 24-bit value of a group of four symbols, with [`BAD`] bits set if any symbol is
/// outside the alphabet.
#[cfg(feature = "fast-base64")]
#[inline(always)]
fn group_value([a, b, c, d]: [u8; 4]) -> u32 {
    let [t0, t1, t2, t3] = &SHIFTED;
    let at =
        |table: &[u32; 256], symbol: u8| table.get(usize::from(symbol)).copied().unwrap_or(BAD);
    at(t0, a) | at(t1, b) | at(t2, c) | at(t3, d)
}

/// As above, from the 256-byte table only (and built for the tests, like
/// [`encode_group_small`]).
#[cfg(any(test, not(feature = "fast-base64")))]
#[inline(always)]
fn group_value_small(group: [u8; 4]) -> u32 {
    let [a, b, c, d] = group.map(value);
    if [a, b, c, d].iter().any(|&v| v > 63) {
        return BAD;
    }
    a << 18 | b << 12 | c << 6 | d
}

#[cfg(not(feature = "fast-base64"))]
use self::group_value_small as group_value;

/// Length of the padded text for `len` bytes (saturating: absurd lengths fit no buffer).
pub(crate) const fn encoded_len(len: usize) -> usize {
    len.div_ceil(3).saturating_mul(4)
}

/// Encodes `buf[start..start + len]` to text at `buf[..encoded_len(len)]`, in place.
///
/// Writing starts at the front and runs ahead of reading by at most one symbol per
/// group, so it never overtakes bytes still to be read as long as
/// `start >= encoded_len(len) - len`, which the caller guarantees by placing the bytes at
/// the tail of the text's room. Each step reads all of its input before writing its
/// output, so the bound also holds for steps of several groups. Returns `None` if the
/// room is too small or the placement would overlap unread input.
pub(crate) fn encode_tail_in_place(buf: &mut [u8], start: usize, len: usize) -> Option<usize> {
    let text_len = encoded_len(len);
    if start < text_len.checked_sub(len)? || buf.len() < start.checked_add(len)? {
        return None;
    }
    let full_groups = len / 3;
    let mut group = 0;
    // Hot loop: four groups (12 bytes to 16 symbols) a step.
    while group + 4 <= full_groups {
        let src = start + 3 * group;
        let bytes: [u8; 12] = buf.get(src..src + 12)?.try_into().ok()?;
        let [b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11] = bytes;
        let lo = u64::from_be_bytes([0, 0, b0, b1, b2, b3, b4, b5]);
        let hi = u64::from_be_bytes([0, 0, b6, b7, b8, b9, b10, b11]);
        let text = |x: u64| {
            u64::from(encode_group((x >> 24) as u32)) | u64::from(encode_group(x as u32)) << 32
        };
        let dst: &mut [u8; 16] = buf.get_mut(4 * group..4 * group + 16)?.try_into().ok()?;
        *dst = (u128::from(text(lo)) | u128::from(text(hi)) << 64).to_le_bytes();
        group += 4;
    }
    while group < full_groups {
        let src = start + 3 * group;
        let [b0, b1, b2]: [u8; 3] = buf.get(src..src + 3)?.try_into().ok()?;
        let n = u32::from_be_bytes([0, b0, b1, b2]);
        let dst: &mut [u8; 4] = buf.get_mut(4 * group..4 * group + 4)?.try_into().ok()?;
        *dst = encode_group(n).to_le_bytes();
        group += 1;
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
    let n = group_value(group);
    if n & BAD != 0 {
        return Err(Invalid);
    }
    let [_, b0, b1, b2] = n.to_be_bytes();
    Ok([b0, b1, b2])
}

/// Decodes four whole groups (16 symbols to 12 bytes), the hot loops' step.
#[inline(always)]
fn decode_four(text: &[u8; 16], out: &mut [u8; 12]) -> Result<(), Invalid> {
    let [
        a0,
        a1,
        a2,
        a3,
        b0,
        b1,
        b2,
        b3,
        c0,
        c1,
        c2,
        c3,
        d0,
        d1,
        d2,
        d3,
    ] = *text;
    let a = group_value([a0, a1, a2, a3]);
    let b = group_value([b0, b1, b2, b3]);
    let c = group_value([c0, c1, c2, c3]);
    let d = group_value([d0, d1, d2, d3]);
    if (a | b | c | d) & BAD != 0 {
        return Err(Invalid);
    }
    // Two stores: bytes 0..8 from groups a, b and the top of c, bytes 8..12 from the rest.
    let head = u64::from(a) << 40 | u64::from(b) << 16 | u64::from(c >> 8);
    let tail = c << 24 | d;
    let (first, last) = out.split_at_mut(8);
    first.copy_from_slice(&head.to_be_bytes());
    last.copy_from_slice(&tail.to_be_bytes());
    Ok(())
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
        // Leading partial group, decoded once.
        let skip = pos % 3;
        if skip != 0 && !out.is_empty() {
            let bytes = self.group(pos / 3)?;
            let n = (3 - skip).min(out.len());
            let (head, rest) = out.split_at_mut_checked(n).ok_or(Invalid)?;
            // A zipped copy of at most two bytes: `copy_from_slice` would call `memcpy`.
            for (byte, decoded) in head.iter_mut().zip(bytes.iter().skip(skip)) {
                *byte = *decoded;
            }
            out = rest;
            pos += n;
        }
        // From here on `pos` is at a group boundary or nothing is left to decode.
        // Whole groups, the hot loop; the final text group may be padded, so it is left
        // to the tail.
        let last_group = self.decoded_len.saturating_sub(1) / 3;
        let whole = (out.len() / 3).min(last_group.saturating_sub(pos / 3));
        let first_group = pos / 3;
        let text = self
            .text
            .get(4 * first_group..4 * (first_group + whole))
            .ok_or(Invalid)?;
        let (out_whole, rest) = out.split_at_mut_checked(3 * whole).ok_or(Invalid)?;
        let (fours, groups) = text.as_chunks::<16>();
        let (out_fours, out_groups) = out_whole.as_chunks_mut::<12>();
        for (four, bytes) in fours.iter().zip(out_fours) {
            decode_four(four, bytes)?;
        }
        let (groups, _) = groups.as_chunks::<4>();
        let (out_groups, _) = out_groups.as_chunks_mut::<3>();
        for (group, bytes) in groups.iter().zip(out_groups) {
            *bytes = decode_full(*group)?;
        }
        pos += 3 * whole;
        // Trailing bytes (at most one group's), possibly from the padded final group.
        if !rest.is_empty() {
            let bytes = self.group(pos / 3)?;
            if rest.len() > bytes.len() {
                return Err(Invalid);
            }
            for (byte, decoded) in rest.iter_mut().zip(bytes.iter()) {
                *byte = *decoded;
            }
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
    if !text.len().is_multiple_of(4) {
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
/// Safe in place because each step reads its groups `g..g + k` from `buf[4g..4g + 4k]`
/// before it writes `buf[3g..3g + 3k]`, and `3g + 3k <= 4g + 4k`.
pub(crate) fn decode_in_place(buf: &mut [u8]) -> Result<usize, Invalid> {
    let len = decoded_len(buf)?;
    let groups = buf.len() / 4;
    // The final group may be padded; every other one is whole.
    let whole = groups.saturating_sub(1);
    let mut index = 0;
    while index + 4 <= whole {
        let text: [u8; 16] = buf
            .get(4 * index..4 * index + 16)
            .ok_or(Invalid)?
            .try_into()
            .map_err(|_| Invalid)?;
        let out: &mut [u8; 12] = buf
            .get_mut(3 * index..3 * index + 12)
            .ok_or(Invalid)?
            .try_into()
            .map_err(|_| Invalid)?;
        decode_four(&text, out)?;
        index += 4;
    }
    while index < groups {
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
        index += 1;
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
        assert_eq!(
            encode_tail_in_place(&mut buf, start, bytes.len()),
            Some(text_len)
        );
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
    fn long_texts_round_trip_and_reject_any_bad_symbol() {
        let data: [u8; 300] = core::array::from_fn(|i| (i * 73 + 5) as u8);
        for len in (0..=data.len()).step_by(7).chain(280..=data.len()) {
            let bytes = &data[..len];
            let text_len = encoded_len(len);
            let mut buf = [0u8; 400];
            let start = text_len - len;
            buf[start..start + len].copy_from_slice(bytes);
            assert_eq!(encode_tail_in_place(&mut buf, start, len), Some(text_len));
            let mut reference = [0u8; 400];
            let reference = Base64Url::encode(bytes, &mut reference).unwrap();
            assert_eq!(&buf[..text_len], reference.as_bytes());

            let mut out = [0u8; 300];
            let text = Text::new(&buf[..text_len]).unwrap();
            text.decode_range(0, &mut out[..len]).unwrap();
            assert_eq!(&out[..len], bytes);
            let mut in_place = buf;
            assert_eq!(decode_in_place(&mut in_place[..text_len]), Ok(len));
            assert_eq!(&in_place[..len], bytes);

            // Any symbol replaced by a byte outside the alphabet (or by `=` before the
            // final group, where it may be padding) is refused, wherever it falls in the
            // decoding loops.
            let padding = buf[..text_len]
                .iter()
                .rev()
                .take_while(|&&b| b == b'=')
                .count();
            for at in 0..text_len - padding {
                for bad in [b'=', b'+', b'/', 0, 0x80, 0xFF] {
                    if bad == b'=' && at + 4 >= text_len {
                        continue;
                    }
                    let mut corrupt = buf;
                    corrupt[at] = bad;
                    let text = &corrupt[..text_len];
                    let decoded = Text::new(text).and_then(|t| {
                        let n = t.decoded_len();
                        t.decode_range(0, &mut out[..n])
                    });
                    assert!(decoded.is_err(), "len {len}, byte {at} = {bad:#x}");
                    let mut in_place = corrupt;
                    assert!(decode_in_place(&mut in_place[..text_len]).is_err());
                }
            }
        }
    }

    #[test]
    fn two_bad_symbols_never_cancel_out() {
        // The bad-symbol flag is ORed over a group and over four groups; two bad symbols
        // anywhere (same group or not) must still be refused.
        // Unpadded, and ending in one or two `=` (the final group's own checks).
        let data: [u8; 48] = core::array::from_fn(|i| (i * 29 + 3) as u8);
        for len in [48, 47, 46] {
            let (buf, text_len) = encode(&data[..len]);
            assert_eq!(text_len, 64);
            let symbols = text_len - (48 - len);
            let mut out = [0u8; 48];
            for first in 0..symbols {
                for second in first + 1..symbols {
                    for bad in [b'+', 0xFF] {
                        let mut corrupt = buf;
                        corrupt[first] = bad;
                        corrupt[second] = bad;
                        let text = Text::new(&corrupt[..text_len]).unwrap();
                        assert_eq!(
                            text.decode_range(0, &mut out[..len]),
                            Err(Invalid),
                            "{len}: {first} {second}"
                        );
                        assert_eq!(decode_in_place(&mut corrupt[..text_len]), Err(Invalid));
                    }
                }
            }
        }
    }

    /// The firmware's table-free group functions (what a build without `fast-base64`
    /// uses) give what the tables give.
    #[cfg(feature = "fast-base64")]
    #[test]
    fn the_small_group_functions_agree_with_the_tables() {
        for position in 0..4 {
            for value in 0..64u32 {
                for others in [0u32, 63, 0b10_1010, 0b01_0101] {
                    let n = (0..4).fold(0, |n, p| {
                        n | if p == position { value } else { others } << (18 - 6 * p)
                    });
                    assert_eq!(encode_group(n), encode_group_small(n), "{n:#08x}");
                }
            }
        }
        let agree = |group: [u8; 4]| {
            let (fast, small) = (group_value(group), group_value_small(group));
            // Only the flag of a bad group matters: its value is never used.
            assert_eq!(fast & BAD != 0, small & BAD != 0, "{group:?}");
            if fast & BAD == 0 {
                assert_eq!(fast, small, "{group:?}");
            }
        };
        // Every byte at every position, among valid symbols and among bad ones.
        for position in 0..4 {
            for byte in 0..=u8::MAX {
                for other in [b'A', b'z', b'-', b'_', b'+', b'=', 0x80, 0xFF] {
                    let mut group = [other; 4];
                    group[position] = byte;
                    agree(group);
                }
            }
        }
        // Every mix of valid and bad symbols (two bad ones among valid, say).
        let some = [
            b'A', b'Q', b'z', b'0', b'_', b'-', b'+', b'/', b'=', 0x00, 0x80, 0xFF,
        ];
        for a in some {
            for b in some {
                for c in some {
                    for d in some {
                        agree([a, b, c, d]);
                    }
                }
            }
        }
    }

    #[test]
    fn refuses_overlapping_placement() {
        let mut buf = [0u8; 8];
        assert_eq!(encode_tail_in_place(&mut buf, 0, 3), None);
        assert_eq!(encode_tail_in_place(&mut buf, 1, 3), Some(4));
        assert_eq!(encode_tail_in_place(&mut buf, 6, 3), None);
    }

    #[test]
    fn a_refused_placement_leaves_the_buffer_alone() {
        // Input running past the end of the buffer is refused before anything is
        // written, whatever the length (one group, several, the four-group steps).
        for len in 1..=40 {
            let text_len = encoded_len(len);
            let mut buf = [0u8; 64];
            let room = &mut buf[..text_len + 1];
            for (i, byte) in room.iter_mut().enumerate() {
                *byte = i as u8;
            }
            let start = text_len + 1 - len + 1;
            let before = room.to_vec();
            assert_eq!(encode_tail_in_place(room, start, len), None, "{len}");
            assert_eq!(room, &before[..], "{len}");
        }
        // And an exact fit is fine.
        let mut buf = [7u8; 4];
        assert_eq!(encode_tail_in_place(&mut buf, 1, 3), Some(4));
        assert_eq!(&buf, b"BwcH");
    }
}
