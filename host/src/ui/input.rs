//! Keys: how they change the [`TuiState`], and what they ask of the session.

use super::state::TuiState;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// What a key asks of the session, beyond changing the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A line to send (or a command the session knows: `/help`, `//text`...).
    Line(String),
    /// `/who`: ask for the member list.
    Who,
    /// `/quit` (or Ctrl+D on an empty line): leave once our lines are answered.
    Quit,
    /// Ctrl+C: leave now; a second one stops without waiting for the server.
    Interrupt,
    /// Ctrl+L: repaint the whole screen.
    Redraw,
}

/// The keys, for the help line and the docs.
pub const KEYS_HELP: &str = "Enter send, Up/Down history, PgUp/PgDn scroll, F2 or Ctrl+W wire \
                             view, Tab switch pane, Esc follow, /who, /quit, Ctrl+C leave";

/// Applies `key` to `state`; returns what the session should do about it.
pub fn on_key(state: &mut TuiState, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    let alt = key.modifiers.contains(KeyModifiers::ALT);
    let editor = &mut state.editor;
    match key.code {
        KeyCode::Char('c') if ctrl => return Some(Action::Interrupt),
        KeyCode::Char('d') if ctrl => {
            if editor.text.is_empty() {
                return Some(Action::Quit);
            }
            editor.delete();
        }
        KeyCode::Char('l') if ctrl => return Some(Action::Redraw),
        KeyCode::Char('w') if ctrl => state.toggle_wire(),
        KeyCode::F(2) => state.toggle_wire(),
        KeyCode::Char('a') if ctrl => editor.home(),
        KeyCode::Char('e') if ctrl => editor.end(),
        KeyCode::Char('b') if ctrl => editor.left(),
        KeyCode::Char('f') if ctrl => editor.right(),
        KeyCode::Char('u') if ctrl => editor.kill_to_start(),
        KeyCode::Char('k') if ctrl => editor.kill_to_end(),
        KeyCode::Char('p') if ctrl => editor.history_up(),
        KeyCode::Char('n') if ctrl => editor.history_down(),
        KeyCode::Char(_) if ctrl || alt => {}
        KeyCode::Char(c) => editor.insert(c),
        KeyCode::Backspace => editor.backspace(),
        KeyCode::Delete => editor.delete(),
        KeyCode::Left => editor.left(),
        KeyCode::Right => editor.right(),
        KeyCode::Home => editor.home(),
        KeyCode::End => editor.end(),
        KeyCode::Up => editor.history_up(),
        KeyCode::Down => editor.history_down(),
        KeyCode::PageUp => state.focused_scroll().page_up(),
        KeyCode::PageDown => state.focused_scroll().page_down(),
        KeyCode::Esc => {
            state.chat_scroll.to_end();
            state.wire_scroll.to_end();
        }
        KeyCode::Tab | KeyCode::BackTab if state.show_wire => {
            state.focus = match state.focus {
                super::Pane::Chat => super::Pane::Wire,
                super::Pane::Wire => super::Pane::Chat,
            };
        }
        KeyCode::Enter => {
            let line = editor.submit();
            state.chat_scroll.to_end();
            return command(line);
        }
        _ => {}
    }
    None
}

/// What an entered line asks for.
fn command(line: String) -> Option<Action> {
    if line.is_empty() {
        return None;
    }
    if let Some(command) = line.strip_prefix('/')
        && !command.starts_with('/')
    {
        match command.trim() {
            "quit" | "exit" | "q" => return Some(Action::Quit),
            "who" | "members" => return Some(Action::Who),
            _ => {}
        }
    }
    Some(Action::Line(line))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::state::Status;

    fn state() -> TuiState {
        TuiState::new(Status::new("s", "lobby", "ann"), false)
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_text(s: &mut TuiState, text: &str) {
        for c in text.chars() {
            assert_eq!(on_key(s, key(KeyCode::Char(c))), None);
        }
    }

    fn enter(s: &mut TuiState) -> Option<Action> {
        on_key(s, key(KeyCode::Enter))
    }

    #[test]
    fn typing_and_enter_send_a_line() {
        let mut s = state();
        type_text(&mut s, "hello");
        assert_eq!(s.editor.text, "hello");
        assert_eq!(enter(&mut s), Some(Action::Line("hello".into())));
        assert_eq!(s.editor.text, "");
        assert_eq!(s.editor.cursor, 0);
        assert_eq!(enter(&mut s), None, "an empty line sends nothing");
    }

    #[test]
    fn editing_moves_and_deletes() {
        let mut s = state();
        type_text(&mut s, "héllo");
        on_key(&mut s, key(KeyCode::Left));
        on_key(&mut s, key(KeyCode::Left));
        on_key(&mut s, key(KeyCode::Backspace));
        assert_eq!(s.editor.text, "hélo");
        type_text(&mut s, "L");
        assert_eq!(s.editor.text, "héLlo");
        on_key(&mut s, key(KeyCode::Home));
        on_key(&mut s, key(KeyCode::Delete));
        assert_eq!(s.editor.text, "éLlo");
        on_key(&mut s, key(KeyCode::Right));
        on_key(&mut s, key(KeyCode::Backspace));
        on_key(&mut s, key(KeyCode::Backspace));
        assert_eq!(s.editor.text, "Llo");
        assert_eq!(s.editor.cursor, 0);
        on_key(&mut s, key(KeyCode::End));
        type_text(&mut s, "!");
        on_key(&mut s, key(KeyCode::Delete));
        assert_eq!(s.editor.text, "Llo!");
        on_key(&mut s, key(KeyCode::Right));
        assert_eq!(s.editor.cursor, 4, "the cursor stops at the end");
        on_key(&mut s, key(KeyCode::Left));
        on_key(&mut s, ctrl('k'));
        assert_eq!(s.editor.text, "Llo");
        on_key(&mut s, key(KeyCode::Left));
        on_key(&mut s, ctrl('u'));
        assert_eq!(s.editor.text, "o");
        assert_eq!(s.editor.cursor, 0);
    }

    #[test]
    fn history_goes_up_and_down_and_keeps_the_draft() {
        let mut s = state();
        for line in ["one", "two", "two", "three"] {
            type_text(&mut s, line);
            enter(&mut s);
        }
        assert_eq!(s.editor.history, ["one", "two", "three"], "no repeats");
        type_text(&mut s, "draft");
        on_key(&mut s, key(KeyCode::Up));
        assert_eq!(s.editor.text, "three");
        assert_eq!(s.editor.cursor, 5);
        on_key(&mut s, key(KeyCode::Up));
        on_key(&mut s, key(KeyCode::Up));
        on_key(&mut s, key(KeyCode::Up));
        assert_eq!(s.editor.text, "one", "stops at the oldest");
        on_key(&mut s, key(KeyCode::Down));
        assert_eq!(s.editor.text, "two");
        on_key(&mut s, key(KeyCode::Down));
        on_key(&mut s, key(KeyCode::Down));
        assert_eq!(s.editor.text, "draft");
        on_key(&mut s, key(KeyCode::Down));
        assert_eq!(s.editor.text, "draft");
        on_key(&mut s, key(KeyCode::Up));
        on_key(&mut s, key(KeyCode::Backspace));
        assert_eq!(enter(&mut s), Some(Action::Line("thre".into())));
        assert_eq!(s.editor.history.last().map(String::as_str), Some("thre"));
    }

    #[test]
    fn commands_and_control_keys() {
        let mut s = state();
        type_text(&mut s, "/quit");
        assert_eq!(enter(&mut s), Some(Action::Quit));
        type_text(&mut s, " /who ");
        assert_eq!(
            enter(&mut s),
            Some(Action::Line(" /who ".into())),
            "a command starts the line"
        );
        type_text(&mut s, "/who");
        assert_eq!(enter(&mut s), Some(Action::Who));
        type_text(&mut s, "//quit");
        assert_eq!(enter(&mut s), Some(Action::Line("//quit".into())));
        type_text(&mut s, "/help");
        assert_eq!(enter(&mut s), Some(Action::Line("/help".into())));
        assert_eq!(on_key(&mut s, ctrl('c')), Some(Action::Interrupt));
        assert_eq!(on_key(&mut s, ctrl('d')), Some(Action::Quit));
        type_text(&mut s, "x");
        assert_eq!(
            on_key(&mut s, ctrl('d')),
            None,
            "Ctrl+D on text does not quit"
        );
        assert_eq!(on_key(&mut s, ctrl('l')), Some(Action::Redraw));
        let released = KeyEvent {
            kind: KeyEventKind::Release,
            ..key(KeyCode::Char('z'))
        };
        assert_eq!(on_key(&mut s, released), None);
        assert_eq!(s.editor.text, "x");
    }

    #[test]
    fn wire_view_toggles_and_takes_the_focus() {
        let mut s = state();
        on_key(&mut s, key(KeyCode::F(2)));
        assert!(s.show_wire);
        on_key(&mut s, key(KeyCode::Tab));
        assert_eq!(s.focus, crate::ui::Pane::Wire);
        s.wire_scroll.max.set(50);
        s.wire_scroll.height.set(10);
        on_key(&mut s, key(KeyCode::PageUp));
        assert_eq!(s.wire_scroll.top, Some(41));
        assert_eq!(s.chat_scroll.top, None);
        on_key(&mut s, ctrl('w'));
        assert!(!s.show_wire);
        assert_eq!(s.focus, crate::ui::Pane::Chat);
        on_key(&mut s, key(KeyCode::Esc));
        assert_eq!(s.wire_scroll.top, None);
    }
}
