//! What the terminal UI shows, kept apart from drawing it ([`super::draw`]) and from the
//! keys that change it ([`super::input`]).

use chat_core::session::ClientState;
use serde_json::Value;
use std::cell::Cell;

/// Conversation lines kept; older ones are dropped.
pub const MAX_LINES: usize = 5000;
/// Wire entries kept; older ones are dropped.
pub const MAX_WIRE: usize = 500;
/// Input lines kept for Up/Down.
pub const MAX_HISTORY: usize = 500;

/// What a conversation line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// A member's message; `own` when it is ours.
    Message { nick: String, own: bool },
    /// The room's own line (joins, leaves).
    Notice { nick: String },
    /// What the client has to say (joined, members, server lost...).
    Info,
    /// Something went wrong.
    Error,
}

/// One line of the conversation pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatLine {
    /// `HH:MM:SS`, UTC.
    pub time: String,
    /// What it is.
    pub kind: LineKind,
    /// Its text.
    pub text: String,
}

/// One of our lines as it went over the wire, and the server's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEntry {
    /// The line's number on the wire.
    pub msg_id: u32,
    /// The original text.
    pub text: String,
    /// The token sent (the last one, if the line was sent again).
    pub token: String,
    /// How many times it was sent.
    pub sends: u32,
    /// The server's receipt, decrypted and summarised.
    pub response: Option<String>,
    /// The receipt's token.
    pub response_token: Option<String>,
}

/// Where the session stands, as the status bar shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    /// Asking the server for the time.
    Syncing,
    /// Asking the server to let us in.
    Joining,
    /// In the room.
    Joined,
    /// Nothing heard from the server for a while.
    Lost,
    /// Saying goodbye.
    Leaving,
    /// Over.
    Closed,
}

impl Conn {
    /// The connection state of a client in `state`; `lost` after a "server lost" event
    /// that no "server back" followed.
    pub fn of(state: ClientState, lost: bool) -> Self {
        match state {
            ClientState::SyncingClock | ClientState::Joining | ClientState::Joined if lost => {
                Self::Lost
            }
            ClientState::SyncingClock => Self::Syncing,
            ClientState::Joining => Self::Joining,
            ClientState::Joined => Self::Joined,
            ClientState::Leaving => Self::Leaving,
            ClientState::Closed => Self::Closed,
        }
    }

    /// Its name in the status bar.
    pub fn label(self) -> &'static str {
        match self {
            Self::Syncing => "syncing",
            Self::Joining => "joining",
            Self::Joined => "joined",
            Self::Lost => "lost",
            Self::Leaving => "leaving",
            Self::Closed => "closed",
        }
    }
}

/// The status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The server, as the user named it.
    pub server: String,
    /// Our room.
    pub room: String,
    /// Our nickname.
    pub nick: String,
    /// Members in the room, as of the last welcome or ping.
    pub members: u32,
    /// The connection state.
    pub conn: Conn,
    /// Round-trip time of the last answered ping, milliseconds.
    pub rtt_ms: Option<u64>,
    /// The server went silent (until it is heard again).
    pub lost: bool,
}

impl Status {
    /// A session about to join.
    pub fn new(server: &str, room: &str, nick: &str) -> Self {
        Self {
            server: server.to_owned(),
            room: room.to_owned(),
            nick: nick.to_owned(),
            members: 0,
            conn: Conn::Joining,
            rtt_ms: None,
            lost: false,
        }
    }
}

/// The pane that PageUp / PageDown scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    /// The conversation.
    Chat,
    /// The wire view.
    Wire,
}

/// A scrollable pane's position: following the newest lines, or held with a given
/// (wrapped) row at the top.
#[derive(Debug, Clone, Default)]
pub struct Scroll {
    /// `None`: follow the end; `Some(row)`: the first row shown.
    pub top: Option<usize>,
    /// Set by the last draw: the largest useful `top` (rows - height).
    pub max: Cell<usize>,
    /// Set by the last draw: rows shown at once.
    pub height: Cell<usize>,
}

impl Scroll {
    /// The first row to show, given what the draw found.
    pub fn first_row(&self, max: usize) -> usize {
        self.top.map_or(max, |top| top.min(max))
    }

    /// One page up (toward older lines).
    pub fn page_up(&mut self) {
        let page = self.page();
        let top = self.top.unwrap_or(self.max.get()).min(self.max.get());
        self.top = Some(top.saturating_sub(page));
    }

    /// One page down (toward newer lines); back to following at the end.
    pub fn page_down(&mut self) {
        if let Some(top) = self.top {
            let top = top.saturating_add(self.page());
            self.top = (top < self.max.get()).then_some(top);
        }
    }

    /// Back to following the end.
    pub fn to_end(&mut self) {
        self.top = None;
    }

    fn page(&self) -> usize {
        self.height.get().saturating_sub(1).max(1)
    }
}

/// The input line and its history.
#[derive(Debug, Clone, Default)]
pub struct Editor {
    /// The text being typed.
    pub text: String,
    /// The cursor, in characters from the start.
    pub cursor: usize,
    /// Lines entered, oldest first.
    pub history: Vec<String>,
    /// Browsing the history: the entry shown.
    browsing: Option<usize>,
    /// What was being typed before browsing began.
    draft: String,
}

impl Editor {
    fn byte_at(&self, chars: usize) -> usize {
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }

    fn len(&self) -> usize {
        self.text.chars().count()
    }

    /// Types `c` at the cursor.
    pub fn insert(&mut self, c: char) {
        let at = self.byte_at(self.cursor);
        self.text.insert(at, c);
        self.cursor += 1;
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.len() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    /// Moves the cursor one character left.
    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    /// Moves the cursor one character right.
    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.len());
    }

    /// Moves the cursor to the start.
    pub fn home(&mut self) {
        self.cursor = 0;
    }

    /// Moves the cursor to the end.
    pub fn end(&mut self) {
        self.cursor = self.len();
    }

    /// Deletes from the start to the cursor.
    pub fn kill_to_start(&mut self) {
        let at = self.byte_at(self.cursor);
        self.text.replace_range(..at, "");
        self.cursor = 0;
    }

    /// Deletes from the cursor to the end.
    pub fn kill_to_end(&mut self) {
        let at = self.byte_at(self.cursor);
        self.text.truncate(at);
    }

    /// Shows the previous history entry.
    pub fn history_up(&mut self) {
        let Some(last) = self.history.len().checked_sub(1) else {
            return;
        };
        let shown = match self.browsing {
            None => {
                self.draft = std::mem::take(&mut self.text);
                last
            }
            Some(i) => i.saturating_sub(1),
        };
        self.browsing = Some(shown);
        self.set(self.history[shown].clone());
    }

    /// Shows the next history entry, or what was being typed after the last one.
    pub fn history_down(&mut self) {
        let Some(i) = self.browsing else { return };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            self.set(self.history[i + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(draft);
        }
    }

    fn set(&mut self, text: String) {
        self.text = text;
        self.cursor = self.len();
    }

    /// Takes the line (Enter): empties the editor and remembers the line.
    pub fn submit(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();
        if !line.trim().is_empty() && self.history.last() != Some(&line) {
            self.history.push(line.clone());
            if self.history.len() > MAX_HISTORY {
                self.history.remove(0);
            }
        }
        line
    }
}

/// A command shown above the conversation, outside any border, so that it can be copied
/// with the mouse: a title row, then the command's words on as many rows as it takes,
/// each row but the last ending in ` \` (a shell reads the rows as one command, see
/// [`super::draw::shell_rows`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Banner {
    /// The row above the command.
    pub title: String,
    /// The command, one shell word each (already quoted where needed).
    pub words: Vec<String>,
}

/// Everything the terminal UI shows.
#[derive(Debug, Clone)]
pub struct TuiState {
    /// A command to copy, above the conversation (the demo's join command).
    pub banner: Option<Banner>,
    /// The conversation, oldest first.
    pub lines: Vec<ChatLine>,
    /// The input line.
    pub editor: Editor,
    /// Our lines on the wire, oldest first.
    pub wire: Vec<WireEntry>,
    /// The wire view is open.
    pub show_wire: bool,
    /// The pane PageUp / PageDown scroll.
    pub focus: Pane,
    /// The status bar.
    pub status: Status,
    /// The conversation's scroll position.
    pub chat_scroll: Scroll,
    /// The wire view's scroll position.
    pub wire_scroll: Scroll,
}

impl TuiState {
    /// An empty screen for `status`, the wire view open if `show_wire`.
    pub fn new(status: Status, show_wire: bool) -> Self {
        Self {
            banner: None,
            lines: Vec::new(),
            editor: Editor::default(),
            wire: Vec::new(),
            show_wire,
            focus: Pane::Chat,
            status,
            chat_scroll: Scroll::default(),
            wire_scroll: Scroll::default(),
        }
    }

    /// Adds a conversation line.
    pub fn push(&mut self, time: &str, kind: LineKind, text: &str) {
        self.lines.push(ChatLine {
            time: time.to_owned(),
            kind,
            text: text.to_owned(),
        });
        if self.lines.len() > MAX_LINES {
            let extra = self.lines.len() - MAX_LINES;
            self.lines.drain(..extra);
        }
    }

    /// Takes one of the client's events, as `host-chat client` names them for `--json`
    /// (`event`, `fields`) and words them for people (`text`); `now` is `HH:MM:SS`.
    pub fn on_event(&mut self, event: &str, text: &str, fields: &Value, now: &str) {
        let str_field = |name: &str| fields[name].as_str().unwrap_or_default().to_owned();
        let time = || {
            fields["time"]
                .as_u64()
                .map_or_else(|| now.to_owned(), crate::net::hms)
        };
        match event {
            "message" => {
                let nick = str_field("nick");
                let own = nick == self.status.nick;
                self.push(&time(), LineKind::Message { nick, own }, &str_field("text"));
            }
            "notice" => {
                let nick = str_field("nick");
                self.push(&time(), LineKind::Notice { nick }, &str_field("text"));
            }
            // The receipts are in the wire view; in the conversation, our line comes
            // back from the room.
            "delivered" | "sent" => {}
            "error" | "refused" | "no_answer" | "connection_refused" => {
                self.push(now, LineKind::Error, text);
            }
            _ => {
                match event {
                    "server_lost" => self.status.lost = true,
                    "server_back" | "joined" => self.status.lost = false,
                    _ => {}
                }
                self.push(now, LineKind::Info, text);
            }
        }
    }

    /// Our line `msg_id` went out as `token` (again, if `again`).
    pub fn wire_sent(&mut self, msg_id: u32, text: &str, token: &str, again: bool) {
        if again && let Some(entry) = self.wire.iter_mut().rev().find(|e| e.msg_id == msg_id) {
            entry.sends += 1;
            token.clone_into(&mut entry.token);
            return;
        }
        self.wire.push(WireEntry {
            msg_id,
            text: text.to_owned(),
            token: token.to_owned(),
            sends: 1,
            response: None,
            response_token: None,
        });
        if self.wire.len() > MAX_WIRE {
            let extra = self.wire.len() - MAX_WIRE;
            self.wire.drain(..extra);
        }
    }

    /// The server answered our line `msg_id` with `token`, which says `summary`.
    pub fn wire_response(&mut self, msg_id: u32, summary: &str, token: &str) {
        match self.wire.iter_mut().rev().find(|e| e.msg_id == msg_id) {
            Some(entry) => {
                entry.response = Some(summary.to_owned());
                entry.response_token = Some(token.to_owned());
            }
            None => self.wire.push(WireEntry {
                msg_id,
                text: String::new(),
                token: String::new(),
                sends: 0,
                response: Some(summary.to_owned()),
                response_token: Some(token.to_owned()),
            }),
        }
    }

    /// Opens or closes the wire view.
    pub fn toggle_wire(&mut self) {
        self.show_wire = !self.show_wire;
        if !self.show_wire {
            self.focus = Pane::Chat;
        }
    }

    /// The scroll position of the focused pane.
    pub fn focused_scroll(&mut self) -> &mut Scroll {
        match self.focus {
            Pane::Wire if self.show_wire => &mut self.wire_scroll,
            _ => &mut self.chat_scroll,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state() -> TuiState {
        TuiState::new(Status::new("127.0.0.1:4000", "lobby", "ann"), false)
    }

    #[test]
    fn events_become_lines() {
        let mut s = state();
        s.on_event(
            "message",
            "",
            &json!({"nick": "ann", "text": "hi", "time": 3661}),
            "x",
        );
        s.on_event(
            "message",
            "",
            &json!({"nick": "bob", "text": "yo", "time": 0}),
            "x",
        );
        s.on_event(
            "notice",
            "",
            &json!({"nick": "cy", "text": "joined"}),
            "12:00:00",
        );
        s.on_event("delivered", "server: delivered", &json!({}), "x");
        s.on_event("server_lost", "lost it", &json!({}), "12:00:01");
        assert!(s.status.lost);
        s.on_event("error", "bad", &json!({}), "12:00:02");
        assert_eq!(s.lines.len(), 5);
        assert_eq!(s.lines[0].time, "01:01:01");
        assert_eq!(
            s.lines[0].kind,
            LineKind::Message {
                nick: "ann".into(),
                own: true
            }
        );
        assert_eq!(
            s.lines[1].kind,
            LineKind::Message {
                nick: "bob".into(),
                own: false
            }
        );
        assert_eq!(s.lines[2].time, "12:00:00");
        assert_eq!(s.lines[3].kind, LineKind::Info);
        assert_eq!(s.lines[4].kind, LineKind::Error);
        s.on_event("server_back", "back", &json!({}), "x");
        assert!(!s.status.lost);
    }

    #[test]
    fn wire_entries_pair_lines_and_receipts() {
        let mut s = state();
        s.wire_sent(1, "hello", "tok1", false);
        s.wire_sent(1, "hello", "tok1b", true);
        s.wire_response(1, "receipt for line 1: room message #4, 2 members", "rtok");
        s.wire_response(9, "receipt for line 9: refused", "rtok9");
        assert_eq!(s.wire.len(), 2);
        assert_eq!(s.wire[0].sends, 2);
        assert_eq!(s.wire[0].token, "tok1b");
        assert_eq!(s.wire[0].response_token.as_deref(), Some("rtok"));
        assert_eq!(s.wire[1].sends, 0);
    }

    #[test]
    fn connection_states() {
        assert_eq!(Conn::of(ClientState::Joined, false), Conn::Joined);
        assert_eq!(Conn::of(ClientState::Joined, true), Conn::Lost);
        assert_eq!(Conn::of(ClientState::Closed, true), Conn::Closed);
        assert_eq!(
            Conn::of(ClientState::SyncingClock, false).label(),
            "syncing"
        );
    }

    #[test]
    fn scrolling_holds_and_follows() {
        let mut scroll = Scroll::default();
        scroll.max.set(30);
        scroll.height.set(11);
        assert_eq!(scroll.first_row(30), 30);
        scroll.page_up();
        assert_eq!(scroll.top, Some(20));
        scroll.page_up();
        scroll.page_up();
        scroll.page_up();
        assert_eq!(scroll.top, Some(0));
        scroll.page_down();
        assert_eq!(scroll.top, Some(10));
        scroll.page_down();
        assert_eq!(scroll.top, Some(20));
        scroll.page_down();
        assert_eq!(scroll.top, None, "back to following the end");
        scroll.page_down();
        assert_eq!(scroll.top, None);
    }
}
