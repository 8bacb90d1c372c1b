//! Big-endian fields and length-prefixed strings, read from and written to byte slices.

use super::{Error, PresenceKind, is_valid_name};

/// Reads fields from the front of a slice.
pub(super) struct Reader<'a>(pub(super) &'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        self.take(N)?.try_into().map_err(|_| Error::Truncated)
    }

    pub(super) fn u8(&mut self) -> Result<u8, Error> {
        Ok(u8::from_be_bytes(self.array()?))
    }

    pub(super) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(super) fn str(&mut self, len: usize) -> Result<&'a str, Error> {
        core::str::from_utf8(self.take(len)?).map_err(|_| Error::Malformed)
    }

    pub(super) fn name(&mut self) -> Result<&'a str, Error> {
        let len = usize::from(self.u8()?);
        let name = self.str(len)?;
        if is_valid_name(name) {
            Ok(name)
        } else {
            Err(Error::Malformed)
        }
    }

    pub(super) fn text(&mut self) -> Result<&'a str, Error> {
        let len = usize::from(self.u16()?);
        self.str(len)
    }

    /// `count` names, each behind a kind byte if `kinds`, checked; returns their bytes.
    pub(super) fn entries(&mut self, count: u8, kinds: bool) -> Result<&'a [u8], Error> {
        let rest = self.0;
        for _ in 0..count {
            if kinds && PresenceKind::from_u8(self.u8()?).is_none() {
                return Err(Error::Malformed);
            }
            self.name()?;
        }
        let used = rest.len().saturating_sub(self.0.len());
        Ok(rest.get(..used).unwrap_or_default())
    }
}

/// Writes fields to a slice.
pub(super) struct Writer<'a> {
    pub(super) buf: &'a mut [u8],
    pub(super) len: usize,
}

impl Writer<'_> {
    pub(super) fn bytes(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        self.buf
            .get_mut(self.len..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    pub(super) fn u8(&mut self, v: u8) -> Result<(), Error> {
        self.bytes(&[v])
    }

    pub(super) fn u16(&mut self, v: u16) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn u32(&mut self, v: u32) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn u64(&mut self, v: u64) -> Result<(), Error> {
        self.bytes(&v.to_be_bytes())
    }

    pub(super) fn name(&mut self, name: &str) -> Result<(), Error> {
        if !is_valid_name(name) {
            return Err(Error::Malformed);
        }
        self.u8(u8::try_from(name.len()).map_err(|_| Error::Malformed)?)?;
        self.bytes(name.as_bytes())
    }

    pub(super) fn text(&mut self, text: &str) -> Result<(), Error> {
        self.u16(u16::try_from(text.len()).map_err(|_| Error::Malformed)?)?;
        self.bytes(text.as_bytes())
    }
}
