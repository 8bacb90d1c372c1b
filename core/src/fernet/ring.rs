//! Several keys at once, like Python's `MultiFernet`: rotate keys without a flag day.

use super::key::{Key, decode, decode_in_place, message_offset};
use super::{Decrypted, Envelope, Error, IV_LEN, TtlCheck, token_len};
use rand_core::CryptoRng;

/// A primary key that makes every new token, and up to `N` older keys that are still
/// accepted. Trying a token against each key costs one HMAC per key; the token is decoded
/// once.
#[derive(Clone, Debug)]
pub struct KeyRing<const N: usize> {
    primary: Key,
    older: heapless::Vec<Key, N>,
}

/// A token re-encrypted under the primary key by [`KeyRing::rotate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotated<'a> {
    /// The new token text.
    pub token: &'a str,
    /// Which key opened the old token: 0 is the primary.
    pub key_index: usize,
}

impl<const N: usize> KeyRing<N> {
    /// A ring with only `primary`.
    pub fn new(primary: Key) -> Self {
        Self {
            primary,
            older: heapless::Vec::new(),
        }
    }

    /// Adds an older key to accept; gives it back if the ring is full.
    #[allow(
        clippy::result_large_err,
        reason = "the caller gets its key back, as heapless does"
    )]
    pub fn push(&mut self, key: Key) -> Result<(), Key> {
        self.older.push(key)
    }

    /// The key new tokens are made with.
    pub fn primary(&self) -> &Key {
        &self.primary
    }

    /// Number of keys, the primary included.
    pub fn len(&self) -> usize {
        self.older.len().saturating_add(1)
    }

    /// Always false: a ring has at least its primary key.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every key, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        core::iter::once(&self.primary).chain(self.older.iter())
    }

    /// Encrypts with the primary key; see [`Key::encrypt`].
    pub fn encrypt<'o, R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        timestamp: u64,
        rng: &mut R,
        out: &'o mut [u8],
    ) -> Result<&'o str, Error> {
        self.primary.encrypt(message, timestamp, rng, out)
    }

    /// Opens a token made with any key of the ring; also says which key (0 = primary).
    pub fn decrypt<'o>(
        &self,
        token: &[u8],
        ttl: Option<TtlCheck>,
        out: &'o mut [u8],
    ) -> Result<(Decrypted<'o>, usize), Error> {
        let (envelope, ciphertext) = decode(token, out)?;
        self.open(&envelope, ciphertext, ttl)
    }

    /// As [`decrypt`](Self::decrypt), opening the token text where it lies in `buf`.
    pub fn decrypt_in_place<'b>(
        &self,
        buf: &'b mut [u8],
        ttl: Option<TtlCheck>,
    ) -> Result<(Decrypted<'b>, usize), Error> {
        let (envelope, ciphertext) = decode_in_place(buf)?;
        self.open(&envelope, ciphertext, ttl)
    }

    /// Encrypts the message in `buf[..message_len]` in place with the primary key; see
    /// [`Key::encrypt_in_place`].
    pub fn encrypt_in_place<'b, R: CryptoRng + ?Sized>(
        &self,
        buf: &'b mut [u8],
        message_len: usize,
        timestamp: u64,
        rng: &mut R,
    ) -> Result<&'b str, Error> {
        self.primary
            .encrypt_in_place(buf, message_len, timestamp, rng)
    }

    /// The token's timestamp once any key of the ring verifies it.
    pub fn timestamp(&self, token: &[u8]) -> Result<u64, Error> {
        let mut found = Err(Error::InvalidToken);
        for key in self.keys() {
            found = key.timestamp(token);
            if found.is_ok() {
                break;
            }
        }
        found
    }

    /// Re-encrypts a token made with any key under the primary key, keeping its original
    /// timestamp, as `MultiFernet.rotate` does. Expired tokens rotate too: no TTL is
    /// checked. `out` needs as many bytes as the token has.
    pub fn rotate<'o, R: CryptoRng + ?Sized>(
        &self,
        token: &[u8],
        rng: &mut R,
        out: &'o mut [u8],
    ) -> Result<Rotated<'o>, Error> {
        let mut iv = [0u8; IV_LEN];
        rng.fill_bytes(&mut iv);
        self.rotate_with_iv(token, iv, out)
    }

    /// As [`rotate`](Self::rotate) with a given IV, for reproducible tests.
    pub fn rotate_with_iv<'o>(
        &self,
        token: &[u8],
        iv: [u8; IV_LEN],
        out: &'o mut [u8],
    ) -> Result<Rotated<'o>, Error> {
        // The token's shape is judged before `out` is: whatever is too short or
        // malformed to be a token is an invalid token, not a small buffer.
        let text = super::token_text(token);
        let decoded_len = super::base64::Text::new(text)
            .map_err(|_| Error::InvalidToken)?
            .decoded_len();
        super::ciphertext_len(decoded_len)?;
        // The old ciphertext is decoded and decrypted right where `seal` wants the
        // message, so the plaintext never leaves `out`.
        let ciphertext_len = super::plaintext_buf_len(text.len());
        let message_at = message_offset(ciphertext_len.saturating_sub(1));
        let room = out.get_mut(message_at..).ok_or(Error::BufferTooSmall)?;
        let (envelope, ciphertext) = decode(token, room)?;
        let (opened, key_index) = self.open(&envelope, ciphertext, None)?;
        let message_len = opened.plaintext.len();
        // Every message length that pads to the same ciphertext length has the same
        // offset, so the plaintext already lies where `seal` reads it.
        if out.len() < token_len(message_len) {
            return Err(Error::BufferTooSmall);
        }
        let token = self
            .primary
            .seal(out, message_len, envelope.timestamp(), iv)?;
        Ok(Rotated { token, key_index })
    }

    /// The spec's checks on a decoded token, trying each key's MAC in turn, then the
    /// decryption with the key that matched (and its index).
    fn open<'c>(
        &self,
        envelope: &Envelope,
        ciphertext: &'c mut [u8],
        ttl: Option<TtlCheck>,
    ) -> Result<(Decrypted<'c>, usize), Error> {
        envelope.check(ttl)?;
        let (index, key) = self
            .keys()
            .enumerate()
            .find(|(_, key)| key.verify(envelope, ciphertext).is_ok())
            .ok_or(Error::InvalidToken)?;
        Ok((key.open(envelope, ciphertext)?, index))
    }
}
