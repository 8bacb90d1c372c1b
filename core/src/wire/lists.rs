//! The lists some frames carry: member names ([`Names`]) and presence changes ([`Changes`]).

use super::codec::{Reader, Writer};
use super::{PresenceKind, is_valid_name};

/// Names in a [`Body::Members`](super::Body::Members) frame, each behind a `u8` length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Names<'a> {
    pub(super) count: u8,
    pub(super) bytes: &'a [u8],
}

impl<'a> Names<'a> {
    /// Packs as many of `names` as fit into `storage`, stopping at the first that does not
    /// fit; returns the list. Invalid names are skipped.
    pub fn pack<'n>(names: impl Iterator<Item = &'n str>, storage: &'a mut [u8]) -> Names<'a> {
        let (count, bytes) = pack_entries(names.map(|name| (None, name)), storage);
        Names { count, bytes }
    }

    /// How many names.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The names, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader(self.bytes);
        core::iter::from_fn(move || r.name().ok())
    }
}

/// Presence changes in a [`Body::Presence`](super::Body::Presence) frame: each a kind byte and a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Changes<'a> {
    pub(super) count: u8,
    pub(super) bytes: &'a [u8],
}

impl<'a> Changes<'a> {
    /// Packs as many of `changes` as fit into `storage`, in order, stopping at the first
    /// that does not fit; returns the list. Invalid names are skipped.
    pub fn pack<'n>(
        changes: impl Iterator<Item = (PresenceKind, &'n str)>,
        storage: &'a mut [u8],
    ) -> Changes<'a> {
        let (count, bytes) = pack_entries(changes.map(|(k, n)| (Some(k), n)), storage);
        Changes { count, bytes }
    }

    /// How many changes.
    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The changes, in order.
    pub fn iter(&self) -> impl Iterator<Item = (PresenceKind, &'a str)> + 'a {
        let mut r = Reader(self.bytes);
        core::iter::from_fn(move || {
            let kind = PresenceKind::from_u8(r.u8().ok()?)?;
            Some((kind, r.name().ok()?))
        })
    }
}

/// Writes `(kind?, name)` entries into `storage` while they fit (at most 255).
fn pack_entries<'n, 's>(
    entries: impl Iterator<Item = (Option<PresenceKind>, &'n str)>,
    storage: &'s mut [u8],
) -> (u8, &'s [u8]) {
    let mut w = Writer {
        buf: storage,
        len: 0,
    };
    let mut count: u8 = 0;
    for (kind, name) in entries {
        if count == u8::MAX {
            break;
        }
        if !is_valid_name(name) {
            continue;
        }
        let before = w.len;
        let written = match kind {
            Some(kind) => w.u8(kind.to_u8()).and_then(|()| w.name(name)),
            None => w.name(name),
        };
        if written.is_err() {
            w.len = before;
            break;
        }
        count = count.saturating_add(1);
    }
    let len = w.len;
    (count, w.buf.get(..len).unwrap_or_default())
}
