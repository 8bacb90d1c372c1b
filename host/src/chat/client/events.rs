//! Each event of the session, shown (and acted on: the tally, `/who`'s answer, a refused
//! join, moving to another server).

use super::output::{core_fields, merged};
use super::{ChatClient, TEXT};
use crate::net;
use chat_cli::count;
use chat_core::session::{ClientEvent, ClientState};
use serde_json::{Value, json};

impl ChatClient {
    /// Acts on every event the session has; `true` when it is over.
    pub(super) fn events(&mut self) -> bool {
        let mut closed = false;
        while let Some(event) = self.client.poll_event() {
            closed |= self.event(event);
        }
        closed
    }

    /// Acts on one event; `true` when the session is over.
    fn event(&mut self, event: ClientEvent<TEXT>) -> bool {
        let server = self.server.clone();
        // The members every driver writes for this event (chat_core), plus ours.
        let core = core_fields(&event);
        let fields = |extra: Value| merged(&core, extra);
        match event {
            ClientEvent::Joined {
                members,
                rejoined,
                resumed,
                ..
            } => {
                self.refused_told = false;
                self.joined = true;
                let (nick, room) = (self.client.nick().to_owned(), self.client.room().to_owned());
                let members = count(members, "member");
                let text = if rejoined && resumed {
                    format!(
                        "back in room {room} on {server} as {nick} ({members}): what was said \
                         meanwhile follows"
                    )
                } else if rejoined {
                    format!(
                        "joined room {room} again on {server} as {nick} ({members}); the room \
                         was restarted, so earlier messages may be missing"
                    )
                } else {
                    format!(
                        "joined room {room} on {server} as {nick} ({members}); type a line and \
                         Enter to send it, /who lists the room, /quit leaves"
                    )
                };
                self.info(
                    "joined",
                    &text,
                    fields(json!({"nick": nick, "room": room, "server": server})),
                );
            }
            ClientEvent::Message {
                nick,
                text,
                timestamp,
                ..
            } => {
                let shown = format!("[{}] {nick}: {text}", net::hms(timestamp));
                self.show("message", &shown, fields(json!({})));
            }
            ClientEvent::Delivered {
                id,
                seq,
                recipients,
            } => {
                self.pending.remove(&id);
                let text = format!(
                    "server: delivered as #{seq} to {}",
                    count(recipients, "member")
                );
                self.show("delivered", &text, fields(json!({})));
            }
            ClientEvent::Refused { id, reason } => {
                let line = self.pending.remove(&id).unwrap_or_default();
                self.undelivered += 1;
                self.info(
                    "refused",
                    &format!(
                        "server: line {id} refused ({}: the server takes shorter lines, check \
                         --max-datagram): {line}",
                        reason.as_str()
                    ),
                    fields(json!({"text": line})),
                );
            }
            ClientEvent::Presence {
                members,
                skipped,
                changes,
            } => {
                let mut parts: Vec<String> = changes
                    .iter()
                    .map(|(kind, nick)| format!("{nick} {}", kind.as_str()))
                    .collect();
                if skipped > 0 {
                    parts.push(format!(
                        "{} more (/who lists the room)",
                        count(skipped, "change")
                    ));
                }
                let shown = format!(
                    "[{}] * {} ({})",
                    self.now_hms(),
                    parts.join(", "),
                    count(members, "member")
                );
                self.show("presence", &shown, fields(json!({})));
            }
            ClientEvent::Undelivered { id, text } => {
                let line = self
                    .pending
                    .remove(&id)
                    .unwrap_or_else(|| text.as_str().to_owned());
                let why = if self.joined {
                    "the session ended before the server took it"
                } else {
                    "never joined"
                };
                self.not_delivered(Some(id), &line, why);
            }
            ClientEvent::Notice { text } => {
                if self.client.state() == ClientState::Closed && !self.leaving {
                    // A refused join comes as a notice, then Closed.
                    self.refusal = Some(text.as_str().to_owned());
                }
                self.info(
                    "server_notice",
                    &format!("server: {text}"),
                    fields(json!({})),
                );
            }
            ClientEvent::Missed { from, to } => {
                let last = to.saturating_sub(1);
                let which = if last == from {
                    format!("message #{from}")
                } else {
                    format!("{} (#{from} to #{last})", count(to - from, "message"))
                };
                self.info(
                    "missed",
                    &format!("missed {which}: the server dropped them before they reached us"),
                    fields(json!({})),
                );
            }
            ClientEvent::Members {
                total,
                start,
                names,
            } => {
                let listed: Vec<&str> = names.iter().collect();
                let end = start as usize + listed.len();
                if end as u32 >= total || listed.is_empty() {
                    // The last page: the next ones come by themselves.
                    self.who_pending = false;
                }
                let text = if start == 0 && end as u32 >= total {
                    format!(
                        "{} in room {}: {}",
                        count(total, "member"),
                        self.client.room(),
                        listed.join(", ")
                    )
                } else {
                    format!(
                        "members {}-{end} of {total} in room {}: {}",
                        start + 1,
                        self.client.room(),
                        listed.join(", ")
                    )
                };
                self.show("members", &text, fields(json!({})));
            }
            ClientEvent::NoAnswer { waited } => {
                let secs = waited.millis().saturating_add(500) / 1000;
                if self.servers.len() > 1 {
                    let now = self.clock.now();
                    self.fail_over(now, &format!("did not answer within {secs} s"));
                    return false;
                }
                // Nothing listening has been said already: no need for the key hint.
                let refused = self
                    .refused_at
                    .is_some_and(|at| self.clock.now() - at <= waited);
                let fields = fields(json!({"server": server, "connection_refused": refused}));
                if refused && self.tui.is_none() && !self.json {
                    return false;
                }
                let text = if refused {
                    format!(
                        "no answer from {server} within {secs} s: nothing is listening there \
                         (connection refused); still trying"
                    )
                } else {
                    format!(
                        "no answer from {server} within {secs} s: is `host-chat server` \
                         running there, with the same key? (still trying)"
                    )
                };
                self.info("no_answer", &text, fields);
            }
            ClientEvent::ServerLost { silent_for } => {
                let secs = silent_for.millis() / 1000;
                if self.servers.len() > 1 {
                    let now = self.clock.now();
                    self.fail_over(now, &format!("said nothing for {secs} s"));
                } else {
                    self.info(
                        "server_lost",
                        &format!(
                            "[{}] no word from {server} for {secs} s; still trying",
                            self.now_hms()
                        ),
                        fields(json!({"server": server})),
                    );
                }
            }
            ClientEvent::ServerBack => {
                self.refused_told = false;
                self.info(
                    "server_back",
                    &format!("[{}] {server} answers again", self.now_hms()),
                    fields(json!({"server": server})),
                );
            }
            ClientEvent::Rejoining => self.info(
                "rejoining",
                &format!(
                    "[{}] {server} no longer has us as a member (we were silent past its member \
                     timeout, or it restarted); joining again where we were",
                    self.now_hms()
                ),
                fields(json!({"server": server})),
            ),
            ClientEvent::ClockSynced { unix_secs } => self.info(
                "clock_synced",
                &format!("clock set from the server: {} UTC", net::hms(unix_secs)),
                fields(json!({})),
            ),
            ClientEvent::Closed => {
                if self.refusal.is_none() {
                    let text = if self.joined {
                        "left the room"
                    } else {
                        "gave up: never joined"
                    };
                    self.info("closed", text, fields(json!({"joined": self.joined})));
                }
                return true;
            }
        }
        false
    }
}
