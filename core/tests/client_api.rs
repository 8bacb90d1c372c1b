//! The client's public types, at their limits: the lists events carry (names and
//! presence changes in `N` bytes), and what `send` says when it does not take a line.

use chat_core::session::{NameList, PresenceChanges, SendError};
use chat_core::wire::{NAME_MAX, PresenceKind};

const LONGEST: &str = "a-name-of-thirty-two-bytes-long!";

#[test]
fn a_name_list_holds_exactly_its_bytes() {
    // Each name takes its bytes and a separator.
    let mut names: NameList<8> = NameList::default();
    assert!(names.is_empty());
    assert_eq!(names.len(), 0);
    assert!(names.push("ann"));
    assert!(!names.is_empty());
    assert!(names.push("bob"), "8 of 8 bytes");
    assert!(!names.push("c"), "full");
    assert!(names.iter().eq(["ann", "bob"]));
    assert_eq!(names.len(), 2);
    let mut one: NameList<{ NAME_MAX + 1 }> = NameList::default();
    assert!(one.push(LONGEST));
    assert!(one.iter().eq([LONGEST]));
}

#[test]
fn presence_changes_hold_the_longest_names() {
    let mut changes: PresenceChanges<64> = PresenceChanges::default();
    assert!(changes.is_empty());
    assert!(changes.push(PresenceKind::Replaced, LONGEST));
    assert!(!changes.is_empty());
    assert!(changes.push(PresenceKind::Left, "ann"));
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().eq([
        (PresenceKind::Replaced, LONGEST),
        (PresenceKind::Left, "ann")
    ]));
    // A change takes its name, a tag and a separator.
    let mut exact: PresenceChanges<{ NAME_MAX + 2 }> = PresenceChanges::default();
    assert!(exact.push(PresenceKind::Joined, LONGEST));
    assert!(!exact.push(PresenceKind::Joined, "a"));
}

#[test]
fn send_errors_say_what_to_do() {
    assert_eq!(
        SendError::TooLong { max: 810 }.to_string(),
        "message too long: at most 810 bytes"
    );
    assert_eq!(
        SendError::QueueFull.to_string(),
        "too many messages waiting for the server"
    );
    assert_eq!(SendError::Closed.to_string(), "not connected");
}
