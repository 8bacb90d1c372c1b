//! Client events as JSON, for the drivers' `--json` output: one shape on every driver
//! (`host-chat client`, `firmware-sim`, the firmware image), which each may extend with
//! members of its own; written through `fmt`, with no allocation.

use super::ClientEvent;
use core::fmt::{self, Write as _};

/// A string as a JSON string literal (quoted, escaped).
#[derive(Clone, Copy, Debug)]
pub struct JsonStr<'a>(pub &'a str);

impl fmt::Display for JsonStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// An event's JSON object members, without the braces (see
/// [`ClientEvent::json_fields`]).
#[derive(Clone, Copy, Debug)]
pub struct JsonFields<'a, const TEXT: usize>(&'a ClientEvent<TEXT>);

impl<const TEXT: usize> ClientEvent<TEXT> {
    /// The event as JSON object members, `"event":"message","seq":3,...`, without the
    /// braces, so a driver can add members of its own (`"nick"`, `"server"`, ...):
    /// `format!("{{{}}}", event.json_fields())` is a whole object.
    pub fn json_fields(&self) -> JsonFields<'_, TEXT> {
        JsonFields(self)
    }
}

/// Writes `["a","b"]`.
fn json_list<'n>(f: &mut fmt::Formatter<'_>, names: impl Iterator<Item = &'n str>) -> fmt::Result {
    f.write_char('[')?;
    for (i, name) in names.enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        write!(f, "{}", JsonStr(name))?;
    }
    f.write_char(']')
}

impl<const TEXT: usize> fmt::Display for JsonFields<'_, TEXT> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ClientEvent::Joined {
                members,
                rejoined,
                resumed,
                nick,
            } => write!(
                f,
                r#""event":"joined","members":{members},"rejoined":{rejoined},"resumed":{resumed},"nick":{}"#,
                JsonStr(nick)
            ),
            ClientEvent::Message {
                seq,
                nick,
                text,
                timestamp,
            } => write!(
                f,
                r#""event":"message","seq":{seq},"nick":{},"text":{},"time":{timestamp}"#,
                JsonStr(nick),
                JsonStr(text)
            ),
            ClientEvent::Delivered {
                id,
                seq,
                recipients,
            } => write!(
                f,
                r#""event":"delivered","id":{id},"seq":{seq},"recipients":{recipients}"#
            ),
            ClientEvent::Refused { id, reason } => write!(
                f,
                r#""event":"refused","id":{id},"reason":{}"#,
                JsonStr(reason.as_str())
            ),
            ClientEvent::Undelivered { id, text } => write!(
                f,
                r#""event":"undelivered","id":{id},"text":{}"#,
                JsonStr(text)
            ),
            ClientEvent::Presence {
                members,
                skipped,
                changes,
            } => {
                write!(
                    f,
                    r#""event":"presence","members":{members},"skipped":{skipped},"changes":["#
                )?;
                for (i, (kind, nick)) in changes.iter().enumerate() {
                    if i > 0 {
                        f.write_char(',')?;
                    }
                    write!(
                        f,
                        r#"{{"nick":{},"change":{}}}"#,
                        JsonStr(nick),
                        JsonStr(kind.as_str())
                    )?;
                }
                f.write_char(']')
            }
            ClientEvent::Notice { text } => {
                write!(f, r#""event":"server_notice","text":{}"#, JsonStr(text))
            }
            ClientEvent::Missed { from, to } => {
                write!(f, r#""event":"missed","from":{from},"to":{to}"#)
            }
            ClientEvent::Members {
                total,
                start,
                names,
            } => {
                write!(
                    f,
                    r#""event":"members","total":{total},"start":{start},"names":"#
                )?;
                json_list(f, names.iter())
            }
            ClientEvent::NoAnswer { waited } => {
                write!(f, r#""event":"no_answer","waited_ms":{}"#, waited.millis())
            }
            ClientEvent::ServerLost { silent_for } => write!(
                f,
                r#""event":"server_lost","silent_ms":{}"#,
                silent_for.millis()
            ),
            ClientEvent::ServerBack => f.write_str(r#""event":"server_back""#),
            ClientEvent::Rejoining => f.write_str(r#""event":"rejoining""#),
            ClientEvent::ClockSynced { unix_secs } => {
                write!(f, r#""event":"clock_synced","unix":{unix_secs}"#)
            }
            ClientEvent::Closed => f.write_str(r#""event":"closed""#),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::session::{NameList, PresenceChanges};
    use crate::time::Duration;
    use crate::wire::{PresenceKind, RefuseReason};
    use std::format;

    #[test]
    fn events_are_json_members() {
        let message: ClientEvent<16> = ClientEvent::Message {
            seq: 3,
            nick: heapless::String::try_from("ann").unwrap(),
            text: heapless::String::try_from("a \"quote\"\n").unwrap(),
            timestamp: 1_700_000_000,
        };
        assert_eq!(
            format!("{{{}}}", message.json_fields()),
            r#"{"event":"message","seq":3,"nick":"ann","text":"a \"quote\"\n","time":1700000000}"#
        );
        let delivered: ClientEvent<16> = ClientEvent::Delivered {
            id: 1,
            seq: 7,
            recipients: 2,
        };
        assert_eq!(
            format!("{}", delivered.json_fields()),
            r#""event":"delivered","id":1,"seq":7,"recipients":2"#
        );
        let refused: ClientEvent<16> = ClientEvent::Refused {
            id: 2,
            reason: RefuseReason::TOO_LONG,
        };
        assert_eq!(
            format!("{}", refused.json_fields()),
            r#""event":"refused","id":2,"reason":"too long""#
        );
        let lost: ClientEvent<16> = ClientEvent::ServerLost {
            silent_for: Duration::from_secs(15),
        };
        assert_eq!(
            format!("{}", lost.json_fields()),
            r#""event":"server_lost","silent_ms":15000"#
        );
        assert_eq!(format!("{}", JsonStr("\u{1}")), r#""\u0001""#);
        let mut names = NameList::default();
        assert!(names.push("ann") && names.push("bob, jr"));
        let members: ClientEvent<16> = ClientEvent::Members {
            total: 3,
            start: 0,
            names,
        };
        assert_eq!(
            format!("{}", members.json_fields()),
            r#""event":"members","total":3,"start":0,"names":["ann","bob, jr"]"#
        );
        let mut changes = PresenceChanges::default();
        assert!(changes.push(PresenceKind::Left, "ann"));
        let presence: ClientEvent<32> = ClientEvent::Presence {
            members: 4,
            skipped: 1,
            changes,
        };
        assert_eq!(
            format!("{}", presence.json_fields()),
            r#""event":"presence","members":4,"skipped":1,"changes":[{"nick":"ann","change":"left"}]"#
        );
    }
}
