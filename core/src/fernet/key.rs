//! One Fernet key and the token operations it performs.

use super::base64::{self, Text};
use super::{
    BLOCK_LEN, Decrypted, Envelope, Error, HEADER_LEN, IV_LEN, MAC_LEN, TtlCheck, VERSION,
    ciphertext_len, raw_len, token_len, token_text,
};
use aes::cipher::array::Array;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, InnerIvInit, KeyInit};
use aes::{Aes128Dec, Aes128Enc};
use base64ct::{Base64Url, Encoding};
use core::fmt;
use hmac::{Hmac, Mac};
use rand_core::CryptoRng;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of a key's text form: 32 bytes in padded base64url.
pub const KEY_TEXT_LEN: usize = 44;

/// The raw key bytes, kept only to write the key back out; wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Secret([u8; 32]);

/// A Fernet key with its AES key schedules and HMAC state computed once, so a token
/// costs only its own work.
///
/// Key material is zeroized on drop and never shown by `Debug`.
#[derive(Clone)]
pub struct Key {
    secret: Secret,
    encrypt: Aes128Enc,
    decrypt: Aes128Dec,
    mac: Hmac<Sha256>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key { .. }")
    }
}

/// The text is not a Fernet key: 44 characters of padded base64url for 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidKey;

impl fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid Fernet key: expected 44 characters of base64url (32 bytes)")
    }
}

impl core::error::Error for InvalidKey {}

impl Key {
    /// A key from its 32 bytes: signing key, then encryption key.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let (signing, encryption) = bytes.split_at(16);
        let encryption = Array::from_fn(|i| encryption.get(i).copied().unwrap_or(0));
        Self {
            secret: Secret(*bytes),
            encrypt: Aes128Enc::new(&encryption),
            decrypt: Aes128Dec::new(&encryption),
            mac: <Hmac<Sha256> as KeyInit>::new_from_slice(signing)
                .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Array::default())),
        }
    }

    /// Parses the standard text form (what Python's `Fernet.generate_key()` prints),
    /// in constant time.
    pub fn from_base64(text: &str) -> Result<Self, InvalidKey> {
        let mut bytes = [0u8; 32];
        let result = match Base64Url::decode(text, &mut bytes) {
            Ok(decoded) if decoded.len() == 32 => Ok(Self::from_bytes(&bytes)),
            _ => Err(InvalidKey),
        };
        bytes.zeroize();
        result
    }

    /// A fresh random key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let key = Self::from_bytes(&bytes);
        bytes.zeroize();
        key
    }

    /// Writes the standard text form into `buf` (constant time).
    pub fn to_base64<'a>(&self, buf: &'a mut [u8; KEY_TEXT_LEN]) -> &'a str {
        Base64Url::encode(&self.secret.0, buf).unwrap_or_default()
    }

    /// Encrypts `message` stamped with `timestamp` (Unix seconds) under a random IV, and
    /// writes the token text to the front of `out`.
    pub fn encrypt<'o, R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        timestamp: u64,
        rng: &mut R,
        out: &'o mut [u8],
    ) -> Result<&'o str, Error> {
        self.encrypt_with_iv(message, timestamp, random_iv(rng), out)
    }

    /// As [`encrypt`](Self::encrypt) with a given IV. For reproducible tests only: an IV
    /// must never repeat under one key.
    pub fn encrypt_with_iv<'o>(
        &self,
        message: &[u8],
        timestamp: u64,
        iv: [u8; IV_LEN],
        out: &'o mut [u8],
    ) -> Result<&'o str, Error> {
        if !out_fits(out.len(), message.len()) {
            return Err(Error::BufferTooSmall);
        }
        let at = message_offset(message.len());
        out.get_mut(at..at.saturating_add(message.len()))
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(message);
        self.seal(out, message.len(), timestamp, iv)
    }

    /// Encrypts the message in `buf[..message_len]` and replaces it with the token text,
    /// so a message can be composed where its token will be sent from. `buf` must hold
    /// [`token_len`]`(message_len)` bytes.
    pub fn encrypt_in_place<'b, R: CryptoRng + ?Sized>(
        &self,
        buf: &'b mut [u8],
        message_len: usize,
        timestamp: u64,
        rng: &mut R,
    ) -> Result<&'b str, Error> {
        if message_len > buf.len() || !out_fits(buf.len(), message_len) {
            return Err(Error::BufferTooSmall);
        }
        buf.copy_within(..message_len, message_offset(message_len));
        self.seal(buf, message_len, timestamp, random_iv(rng))
    }

    /// Opens `token` into `out`, which needs [`plaintext_buf_len`](super::plaintext_buf_len)
    /// bytes (the padded length). With a [`TtlCheck`], old and far-future tokens are
    /// refused.
    pub fn decrypt<'o>(
        &self,
        token: &[u8],
        ttl: Option<TtlCheck>,
        out: &'o mut [u8],
    ) -> Result<Decrypted<'o>, Error> {
        let (envelope, ciphertext) = decode(token, out)?;
        envelope.check(ttl)?;
        self.verify(&envelope, ciphertext)?;
        self.open(&envelope, ciphertext)
    }

    /// Opens the token text in `buf` where it lies; the plaintext is returned as a slice
    /// of `buf`.
    pub fn decrypt_in_place<'b>(
        &self,
        buf: &'b mut [u8],
        ttl: Option<TtlCheck>,
    ) -> Result<Decrypted<'b>, Error> {
        let (envelope, ciphertext) = decode_in_place(buf)?;
        envelope.check(ttl)?;
        self.verify(&envelope, ciphertext)?;
        self.open(&envelope, ciphertext)
    }

    /// The token's timestamp, after its MAC is verified; nothing is decrypted.
    pub fn timestamp(&self, token: &[u8]) -> Result<u64, Error> {
        let text = Text::new(token_text(token))?;
        let ciphertext_len = ciphertext_len(text.decoded_len())?;
        let envelope = decode_envelope(&text, ciphertext_len)?;
        envelope.check(None)?;
        let mut mac = self.mac.clone();
        mac.update(&envelope.header);
        let mut chunk = [0u8; 96];
        let mut at = HEADER_LEN;
        let end = HEADER_LEN.saturating_add(ciphertext_len);
        while at < end {
            let n = chunk.len().min(end.saturating_sub(at));
            let part = chunk.get_mut(..n).ok_or(Error::InvalidToken)?;
            text.decode_range(at, part)?;
            mac.update(part);
            at = at.saturating_add(n);
        }
        mac.verify_slice(&envelope.mac)
            .map_err(|_| Error::InvalidToken)?;
        Ok(envelope.timestamp())
    }

    /// Checks the token's MAC in constant time.
    pub(super) fn verify(&self, envelope: &Envelope, ciphertext: &[u8]) -> Result<(), Error> {
        let mut mac = self.mac.clone();
        mac.update(&envelope.header);
        mac.update(ciphertext);
        mac.verify_slice(&envelope.mac)
            .map_err(|_| Error::InvalidToken)
    }

    /// Decrypts a verified ciphertext in place and strips its padding.
    pub(super) fn open<'c>(
        &self,
        envelope: &Envelope,
        ciphertext: &'c mut [u8],
    ) -> Result<Decrypted<'c>, Error> {
        let (blocks, rest) = Array::slice_as_chunks_mut(ciphertext);
        if !rest.is_empty() {
            return Err(Error::InvalidToken);
        }
        cbc::Decryptor::<&Aes128Dec>::inner_iv_init(&self.decrypt, &envelope.iv().into())
            .decrypt_blocks(blocks);
        let pad = usize::from(*ciphertext.last().ok_or(Error::InvalidToken)?);
        let len = ciphertext
            .len()
            .checked_sub(pad)
            .ok_or(Error::InvalidToken)?;
        let (plaintext, padding) = ciphertext.split_at(len);
        if !(1..=BLOCK_LEN).contains(&pad) || padding.iter().any(|&b| usize::from(b) != pad) {
            return Err(Error::InvalidToken);
        }
        Ok(Decrypted {
            plaintext,
            timestamp: envelope.timestamp(),
        })
    }

    /// Turns the message lying at `out[message_offset(message_len)..]` into token text at
    /// the front of `out`.
    pub(super) fn seal<'o>(
        &self,
        out: &'o mut [u8],
        message_len: usize,
        timestamp: u64,
        iv: [u8; IV_LEN],
    ) -> Result<&'o str, Error> {
        let text_len = token_len(message_len);
        let raw_len = raw_len(message_len);
        let start = text_len.checked_sub(raw_len).ok_or(Error::BufferTooSmall)?;
        let raw = out.get_mut(start..text_len).ok_or(Error::BufferTooSmall)?;
        let (header, body) = raw.split_at_mut(HEADER_LEN);
        let (ciphertext, tag) = body.split_at_mut(body.len().saturating_sub(MAC_LEN));

        let (version, rest) = header.split_first_mut().ok_or(Error::BufferTooSmall)?;
        *version = VERSION;
        let (stamp, iv_field) = rest.split_at_mut(8);
        stamp.copy_from_slice(&timestamp.to_be_bytes());
        iv_field.copy_from_slice(&iv);

        let pad_len = ciphertext.len().saturating_sub(message_len);
        let pad_byte = u8::try_from(pad_len).map_err(|_| Error::BufferTooSmall)?;
        ciphertext
            .get_mut(message_len..)
            .ok_or(Error::BufferTooSmall)?
            .fill(pad_byte);
        let (blocks, rest) = Array::slice_as_chunks_mut(ciphertext);
        if !rest.is_empty() {
            return Err(Error::BufferTooSmall);
        }
        cbc::Encryptor::<&Aes128Enc>::inner_iv_init(&self.encrypt, &iv.into())
            .encrypt_blocks(blocks);

        let mut mac = self.mac.clone();
        mac.update(header);
        mac.update(ciphertext);
        tag.copy_from_slice(&mac.finalize().into_bytes());

        let written =
            base64::encode_tail_in_place(out, start, raw_len).ok_or(Error::BufferTooSmall)?;
        let text = out.get(..written).ok_or(Error::BufferTooSmall)?;
        core::str::from_utf8(text).map_err(|_| Error::BufferTooSmall)
    }
}

/// Where [`Key::seal`] expects the message: the token's raw bytes sit at the tail of its
/// text's room, so they can be encoded in place.
pub(super) const fn message_offset(message_len: usize) -> usize {
    token_len(message_len)
        .saturating_sub(raw_len(message_len))
        .saturating_add(HEADER_LEN)
}

fn out_fits(out_len: usize, message_len: usize) -> bool {
    token_len(message_len) <= out_len
}

fn random_iv<R: CryptoRng + ?Sized>(rng: &mut R) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    rng.fill_bytes(&mut iv);
    iv
}

/// Decodes the header and MAC of a token whose ciphertext is `ciphertext_len` long.
fn decode_envelope(text: &Text<'_>, ciphertext_len: usize) -> Result<Envelope, Error> {
    let mut envelope = Envelope {
        header: [0; HEADER_LEN],
        mac: [0; MAC_LEN],
    };
    text.decode_range(0, &mut envelope.header)?;
    text.decode_range(HEADER_LEN.saturating_add(ciphertext_len), &mut envelope.mac)?;
    Ok(envelope)
}

/// Decoded tokens up to this size (messages up to 190 bytes) are decoded in one pass on
/// the stack.
const SMALL_TOKEN: usize = 256;

/// Decodes a token (with at most one line ending after it, see [`token_text`]): header
/// and MAC on the stack, the ciphertext straight into `out`.
pub(super) fn decode<'o>(
    token: &[u8],
    out: &'o mut [u8],
) -> Result<(Envelope, &'o mut [u8]), Error> {
    let text = Text::new(token_text(token))?;
    let ciphertext_len = ciphertext_len(text.decoded_len())?;
    let ciphertext = out.get_mut(..ciphertext_len).ok_or(Error::BufferTooSmall)?;
    if text.decoded_len() <= SMALL_TOKEN {
        // One pass over a short token on the stack beats three ranged passes.
        let mut raw = [0u8; SMALL_TOKEN];
        let raw = raw
            .get_mut(..text.decoded_len())
            .ok_or(Error::InvalidToken)?;
        text.decode_range(0, raw)?;
        let (header, body) = raw.split_at(HEADER_LEN);
        let (body, mac) = body.split_at(ciphertext_len);
        ciphertext.copy_from_slice(body);
        let envelope = Envelope {
            header: header.try_into().map_err(|_| Error::InvalidToken)?,
            mac: mac.try_into().map_err(|_| Error::InvalidToken)?,
        };
        return Ok((envelope, ciphertext));
    }
    let envelope = decode_envelope(&text, ciphertext_len)?;
    text.decode_range(HEADER_LEN, ciphertext)?;
    Ok((envelope, ciphertext))
}

/// Decodes token text in place (with at most one line ending after it, see
/// [`token_text`]); the ciphertext stays in `buf`.
pub(super) fn decode_in_place(buf: &mut [u8]) -> Result<(Envelope, &mut [u8]), Error> {
    let text_len = token_text(buf).len();
    let buf = buf.get_mut(..text_len).ok_or(Error::InvalidToken)?;
    let raw_len = base64::decode_in_place(buf)?;
    let ciphertext_len = ciphertext_len(raw_len)?;
    let raw = buf.get_mut(..raw_len).ok_or(Error::InvalidToken)?;
    let (header, body) = raw.split_at_mut(HEADER_LEN);
    let (ciphertext, mac) = body.split_at_mut(ciphertext_len);
    let envelope = Envelope {
        header: header.try_into().map_err(|_| Error::InvalidToken)?,
        mac: (&*mac).try_into().map_err(|_| Error::InvalidToken)?,
    };
    Ok((envelope, ciphertext))
}
