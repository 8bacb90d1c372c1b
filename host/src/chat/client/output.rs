//! Showing: each event as text for people (stdout or stderr), as a `--json` object, or
//! on the `--tui` screen.

use super::ChatClient;
use crate::net;
use crate::ui;
use chat_core::session::ClientEvent;
use serde_json::{Value, json};

impl ChatClient {
    /// Shows an event: `text` for people (stdout), or `fields` with `event` as JSON.
    pub(super) fn show(&mut self, event: &str, text: &str, fields: Value) {
        if self.in_tui(event, text, &fields) {
            return;
        }
        if self.json {
            net::out(&with_event(event, fields).to_string());
        } else {
            net::out(text);
        }
    }

    /// Shows a status line: on stderr for people, as JSON on stdout.
    pub(super) fn info(&mut self, event: &str, text: &str, fields: Value) {
        if self.in_tui(event, text, &fields) {
            return;
        }
        if self.json {
            net::out(&with_event(event, fields).to_string());
        } else {
            net::err(text);
        }
    }

    pub(super) fn error(&mut self, text: &str) {
        if self.in_tui("error", text, &json!({})) {
            return;
        }
        if self.json {
            net::out(&json!({"event": "error", "message": text}).to_string());
        } else {
            net::err(text);
        }
    }

    /// `--tui`: hands an event to the screen; `false` without one.
    fn in_tui(&mut self, event: &str, text: &str, fields: &Value) -> bool {
        let now = self.now_hms();
        match &mut self.tui {
            Some(tui) => {
                tui.state.on_event(event, text, fields, &now);
                true
            }
            None => false,
        }
    }

    /// `--tui`: brings the status bar up to date and draws the screen.
    pub(super) fn redraw(&mut self) {
        let Some(tui) = &mut self.tui else { return };
        let status = &mut tui.state.status;
        status.members = self.client.members();
        status.conn = ui::Conn::of(self.client.state(), status.lost);
        status.rtt_ms = self.client.rtt().map(|rtt| rtt.millis());
        // A terminal that cannot be written to is gone: its reader thread says so.
        let _ = tui.draw();
    }

    pub(super) fn now_hms(&self) -> String {
        net::hms(net::unix_millis() / 1000)
    }
}

/// The event's JSON members as every driver writes them (`ClientEvent::json_fields`),
/// without `event` (which `with_event` puts first).
pub(super) fn core_fields<const N: usize>(event: &ClientEvent<N>) -> Value {
    let mut fields: Value =
        serde_json::from_str(&format!("{{{}}}", event.json_fields())).unwrap_or_default();
    if let Some(map) = fields.as_object_mut() {
        map.remove("event");
    }
    fields
}

/// `base` with the members of `extra` added.
pub(super) fn merged(base: &Value, extra: Value) -> Value {
    let mut fields = base.clone();
    if let (Some(map), Value::Object(extra)) = (fields.as_object_mut(), extra) {
        map.extend(extra);
    }
    fields
}

fn with_event(event: &str, fields: Value) -> Value {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), Value::from(event));
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object)
}
