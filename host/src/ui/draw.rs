//! Drawing a [`TuiState`]: the conversation (and the wire view, when open) on top, the
//! status bar, the input line at the bottom.

use super::state::{Banner, ChatLine, Conn, LineKind, Pane, Scroll, TuiState, WireEntry};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use unicode_width::UnicodeWidthChar as _;

/// Columns before a conversation line's text: `HH:MM:SS` and a two-column mark.
const CHAT_INDENT: usize = 11;
/// Columns before the continuation of a wire entry.
const WIRE_INDENT: usize = 3;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, state: &TuiState) {
    let area = frame.area();
    let banner = state
        .banner
        .as_ref()
        .map(|banner| banner_rows(banner, usize::from(area.width)))
        .unwrap_or_default();
    let banner_height = u16::try_from(banner.len()).unwrap_or(u16::MAX);
    let [top, main, status, input] = Layout::vertical([
        Constraint::Length(banner_height),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    if !banner.is_empty() {
        let rows: Vec<Line<'static>> = banner.into_iter().map(Line::raw).collect();
        frame.render_widget(
            Paragraph::new(rows).style(Style::new().fg(Color::Cyan)),
            top,
        );
    }
    if state.show_wire {
        let [chat, wire] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(main);
        draw_chat(frame, state, chat);
        draw_wire(frame, state, wire);
    } else {
        draw_chat(frame, state, main);
    }
    draw_status(frame, state, status);
    draw_input(frame, state, input);
}

/// The banner's rows at `width` columns: its title (cut to the width), then its command
/// as [`shell_rows`].
pub fn banner_rows(banner: &Banner, width: usize) -> Vec<String> {
    let mut rows = vec![banner.title.chars().take(width).collect()];
    rows.extend(shell_rows(&banner.words, width));
    rows
}

/// A shell command's words on rows of at most `width` columns that a POSIX shell reads
/// back as the same command when they are copied and pasted with their line breaks:
/// every row but the last ends in a backslash (line continuation, which the shell
/// removes before it splits words). Words go whole where they fit, after a space; an
/// unquoted word longer than a row is cut inside, where a backslash-newline vanishes
/// too. (A quoted word is never cut: inside quotes the backslash would stay.)
pub fn shell_rows(words: &[String], width: usize) -> Vec<String> {
    // Room for the trailing " \" (or "\" inside a word).
    let room = width.saturating_sub(2).max(8);
    let mut rows = Vec::new();
    let mut row = String::new();
    for word in words {
        let len = word.chars().count();
        let sep = usize::from(!row.is_empty());
        if row.chars().count() + sep + len <= room {
            if sep == 1 {
                row.push(' ');
            }
            row.push_str(word);
            continue;
        }
        if !row.is_empty() {
            rows.push(format!("{row} \\"));
            row.clear();
        }
        if len <= room || word.starts_with(['\'', '"']) {
            row.push_str(word);
            continue;
        }
        // Cut pieces of a whole row (the backslash takes the last column) while more
        // than a row's room is left; the rest starts the next row.
        let mut rest: &[char] = &word.chars().collect::<Vec<char>>();
        while rest.len() > room {
            // At least one character stays, so the word's end is never a bare "\\".
            let (piece, after) = rest.split_at((room + 1).min(rest.len() - 1));
            rows.push(format!("{}\\", piece.iter().collect::<String>()));
            rest = after;
        }
        row = rest.iter().collect();
    }
    if !row.is_empty() {
        rows.push(row);
    }
    rows
}

fn pane_block(title: String, focused: bool) -> Block<'static> {
    let style = if focused {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new()
    };
    Block::bordered().border_style(style).title(title)
}

fn scroll_note(scroll: &Scroll) -> &'static str {
    if scroll.top.is_some() {
        " [scrolled; Esc: newest] "
    } else {
        ""
    }
}

fn draw_chat(frame: &mut Frame<'_>, state: &TuiState, area: Rect) {
    let focused = state.show_wire && state.focus == Pane::Chat;
    let title = format!(
        " room {} {}",
        state.status.room,
        scroll_note(&state.chat_scroll)
    );
    let block = pane_block(title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let rows: Vec<Line<'static>> = state
        .lines
        .iter()
        .flat_map(|line| wrap(&chat_spans(line), width, CHAT_INDENT))
        .collect();
    render_rows(frame, rows, &state.chat_scroll, inner);
}

fn draw_wire(frame: &mut Frame<'_>, state: &TuiState, area: Rect) {
    let focused = state.focus == Pane::Wire;
    let title = format!(
        " wire: own lines, tokens, the server's answers (F2 closes) {}",
        scroll_note(&state.wire_scroll)
    );
    let block = pane_block(title, focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let mut rows: Vec<Line<'static>> = Vec::new();
    if state.wire.is_empty() {
        rows.push(Line::styled(
            "nothing sent yet: each line you send shows here as it goes over the wire",
            Style::new().fg(Color::DarkGray),
        ));
    }
    for entry in &state.wire {
        for spans in wire_spans(entry) {
            rows.extend(wrap(&spans, width, WIRE_INDENT));
        }
    }
    render_rows(frame, rows, &state.wire_scroll, inner);
}

/// Shows the rows `scroll` asks for in `area`, and tells `scroll` what it found.
fn render_rows(frame: &mut Frame<'_>, rows: Vec<Line<'static>>, scroll: &Scroll, area: Rect) {
    let height = usize::from(area.height);
    let max = rows.len().saturating_sub(height);
    scroll.max.set(max);
    scroll.height.set(height);
    let first = scroll.first_row(max);
    let shown: Vec<Line<'static>> = rows.into_iter().skip(first).take(height).collect();
    frame.render_widget(Paragraph::new(shown), area);
}

fn nick_color(nick: &str) -> Color {
    const COLORS: [Color; 5] = [
        Color::Yellow,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
        Color::LightRed,
    ];
    let hash = nick.bytes().fold(0usize, |h, b| {
        h.wrapping_mul(31).wrapping_add(usize::from(b))
    });
    COLORS[hash % COLORS.len()]
}

/// A conversation line: time, mark, nick, text.
fn chat_spans(line: &ChatLine) -> Vec<Span<'static>> {
    let time = Span::styled(format!("{} ", line.time), Style::new().fg(Color::DarkGray));
    let text = line.text.clone();
    match &line.kind {
        LineKind::Message { nick, own: true } => {
            let style = Style::new().fg(Color::Green).add_modifier(Modifier::BOLD);
            vec![
                time,
                Span::styled("> ", style),
                Span::styled(nick.clone(), style),
                Span::raw(": "),
                Span::styled(text, Style::new().add_modifier(Modifier::BOLD)),
            ]
        }
        LineKind::Message { nick, own: false } => vec![
            time,
            Span::raw("  "),
            Span::styled(
                nick.clone(),
                Style::new()
                    .fg(nick_color(nick))
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(": "),
            Span::raw(text),
        ],
        LineKind::Notice { nick } => {
            let style = Style::new()
                .fg(Color::Magenta)
                .add_modifier(Modifier::ITALIC);
            vec![time, Span::styled(format!("* {nick} {text}"), style)]
        }
        LineKind::Info => vec![
            time,
            Span::styled(format!("- {text}"), Style::new().fg(Color::Cyan)),
        ],
        LineKind::Error => vec![
            time,
            Span::styled(
                format!("! {text}"),
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
        ],
    }
}

/// A wire entry: the line sent and its token, the response and its token.
fn wire_spans(entry: &WireEntry) -> Vec<Vec<Span<'static>>> {
    let label = Style::new().add_modifier(Modifier::BOLD);
    let token = Style::new().fg(Color::DarkGray);
    let mut out = Vec::new();
    if entry.sends > 0 {
        let again = if entry.sends > 1 {
            format!(" (sent {} times)", entry.sends)
        } else {
            String::new()
        };
        out.push(vec![
            Span::styled(
                format!("#{} sent{again}: ", entry.msg_id),
                label.fg(Color::Green),
            ),
            Span::raw(entry.text.clone()),
        ]);
        out.push(vec![
            Span::styled("   token: ", label),
            Span::styled(entry.token.clone(), token),
        ]);
    }
    match (&entry.response, &entry.response_token) {
        (Some(response), Some(response_token)) => {
            out.push(vec![
                Span::styled("   response: ", label),
                Span::styled(response.clone(), Style::new().fg(Color::Yellow)),
            ]);
            out.push(vec![
                Span::styled("   response token: ", label),
                Span::styled(response_token.clone(), token),
            ]);
        }
        _ => out.push(vec![
            Span::styled("   response: ", label),
            Span::styled("(waiting for the server)", Style::new().fg(Color::DarkGray)),
        ]),
    }
    out
}

/// The status bar text (also for tests).
pub fn status_text(state: &TuiState) -> String {
    let status = &state.status;
    let members = chat_cli::count(status.members, "member");
    let rtt = status
        .rtt_ms
        .map_or_else(|| "rtt -".to_owned(), |ms| format!("rtt {ms} ms"));
    format!(
        " {} | room {} | {members} | {} | {rtt} | {} ",
        status.server,
        status.room,
        status.conn.label(),
        status.nick
    )
}

fn draw_status(frame: &mut Frame<'_>, state: &TuiState, area: Rect) {
    let bar = Style::new().bg(Color::Blue).fg(Color::White);
    let conn = match state.status.conn {
        Conn::Joined => Color::LightGreen,
        Conn::Lost | Conn::Closed => Color::LightRed,
        _ => Color::Yellow,
    };
    let text = status_text(state);
    // The connection state in its colour: split the text around it.
    let label = format!(" {} ", state.status.conn.label());
    let mut spans = match text.split_once(&format!("|{label}|")) {
        Some((before, after)) => vec![
            Span::raw(format!("{before}|")),
            Span::styled(label, Style::new().fg(conn).add_modifier(Modifier::BOLD)),
            Span::raw(format!("|{after}")),
        ],
        None => vec![Span::raw(text.clone())],
    };
    let hint = " F2 wire | PgUp/PgDn | /quit ";
    let used = text.chars().count() + hint.len();
    if used <= usize::from(area.width) {
        spans.push(Span::raw(" ".repeat(usize::from(area.width) - used)));
        spans.push(Span::raw(hint));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}

fn draw_input(frame: &mut Frame<'_>, state: &TuiState, area: Rect) {
    const PROMPT: &str = "> ";
    let editor = &state.editor;
    let avail = usize::from(area.width).saturating_sub(PROMPT.len() + 1);
    let widths: Vec<(char, usize)> = editor
        .text
        .chars()
        .map(|c| (c, c.width().unwrap_or(0)))
        .collect();
    let cursor_col: usize = widths.iter().take(editor.cursor).map(|&(_, w)| w).sum();
    // Skip enough characters from the start for the cursor to be visible.
    let mut skipped = 0;
    let mut skipped_cols = 0;
    while cursor_col - skipped_cols > avail && skipped < widths.len() {
        skipped_cols += widths[skipped].1;
        skipped += 1;
    }
    let visible: String = widths
        .iter()
        .skip(skipped)
        .map(|&(c, _)| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    let line = if editor.text.is_empty() {
        Line::from(vec![
            Span::styled(PROMPT, Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(
                "type a line, Enter sends; /who, /quit; F2: wire view",
                Style::new().fg(Color::DarkGray),
            ),
        ])
    } else {
        Line::from(vec![
            Span::styled(PROMPT, Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(visible),
        ])
    };
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x.saturating_add(
        u16::try_from(PROMPT.len() + cursor_col - skipped_cols).unwrap_or(u16::MAX),
    );
    if area.height > 0 && x < area.right() {
        frame.set_cursor_position((x, area.y));
    }
}

/// Wraps `spans` to `width` columns, at a space when the row has one past the indent,
/// else anywhere (tokens); continuation rows are indented by `indent` (when that leaves
/// room). Control characters show as U+FFFD; tabs as spaces.
pub fn wrap(spans: &[Span<'_>], width: usize, indent: usize) -> Vec<Line<'static>> {
    /// One character cell: the character, its style, its width.
    type Cell = (char, Style, usize);
    fn line(cells: &[Cell]) -> Line<'static> {
        let mut spans: Vec<Span<'static>> = Vec::new();
        let mut text = String::new();
        let mut style = None;
        for &(c, cell_style, _) in cells {
            if style.is_some_and(|s| s != cell_style) {
                spans.push(Span::styled(
                    std::mem::take(&mut text),
                    style.unwrap_or_default(),
                ));
            }
            style = Some(cell_style);
            text.push(c);
        }
        if !text.is_empty() {
            spans.push(Span::styled(text, style.unwrap_or_default()));
        }
        Line::from(spans)
    }

    if width == 0 {
        return Vec::new();
    }
    let indent = if indent * 2 < width { indent } else { 0 };
    let blank: Vec<Cell> = vec![(' ', Style::new(), 1); indent];
    let cells: Vec<Cell> = spans
        .iter()
        .flat_map(|span| {
            span.content.chars().map(|c| {
                let c = match c {
                    '\t' => ' ',
                    c if c.is_control() => '\u{FFFD}',
                    c => c,
                };
                (c, span.style, c.width().unwrap_or(0))
            })
        })
        .collect();
    let mut lines = Vec::new();
    let mut row: Vec<Cell> = Vec::new();
    let mut col = 0;
    for (i, &(c, style, w)) in cells.iter().enumerate() {
        if col + w > width && col > indent {
            // Carry the row's last word over, unless it is all the row has or it would
            // not fit the next row either (a token: broken in place).
            let fits = |space: usize| {
                let rest = cells[i..].iter().take_while(|&&(c, _, _)| c != ' ');
                let word: usize = row[space + 1..]
                    .iter()
                    .chain(rest)
                    .map(|&(_, _, w)| w)
                    .sum();
                indent + word <= width
            };
            let carry = match row.iter().rposition(|&(c, _, _)| c == ' ') {
                Some(space) if space > indent && c != ' ' && fits(space) => {
                    let carry = row.split_off(space + 1);
                    row.pop();
                    carry
                }
                _ => Vec::new(),
            };
            if row.len() > indent && row.last().is_some_and(|&(c, _, _)| c == ' ') {
                row.pop();
            }
            lines.push(line(&row));
            row.clone_from(&blank);
            col = indent + carry.iter().map(|&(_, _, w)| w).sum::<usize>();
            row.extend(carry);
            if c == ' ' {
                // A space at the break is the break.
                continue;
            }
        }
        row.push((c, style, w));
        col += w;
    }
    if !row.is_empty() || lines.is_empty() {
        lines.push(line(&row));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::state::{Status, TuiState};
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    #[test]
    fn shell_rows_read_back_as_the_same_command() {
        let words: Vec<String> = [
            "HOST_CHAT_KEY=cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=",
            "/a/rather/long/path/to/the/target/directory/debug/host-chat",
            "client",
            "127.0.0.1:40000",
            "--nick",
            "someone",
            "'/with space'",
        ]
        .map(String::from)
        .to_vec();
        for width in [12, 30, 50, 80, 200] {
            let rows = shell_rows(&words, width);
            for row in &rows {
                assert!(
                    row.chars().count() <= width.max(10) || row.starts_with('\''),
                    "{width}: {row:?}"
                );
            }
            if width >= 200 {
                assert_eq!(rows.len(), 1, "{rows:?}");
            }
            // What a shell makes of the rows, pasted with their line breaks.
            let script = format!("printf '%s\\n' {}", rows.join("\n"));
            let out = std::process::Command::new("sh")
                .args(["-c", &script])
                .output()
                .unwrap();
            let printed = String::from_utf8(out.stdout).unwrap();
            let mut expected: Vec<String> = words.clone();
            *expected.last_mut().unwrap() = "/with space".into();
            assert_eq!(
                printed.lines().collect::<Vec<_>>(),
                expected,
                "{width}: {rows:?}"
            );
        }
    }

    #[test]
    fn the_banner_is_drawn_outside_any_border() {
        let mut state = sample();
        state.banner = Some(Banner {
            title: "to join:".into(),
            words: vec![
                "HOST_CHAT_KEY=k".into(),
                "host-chat".into(),
                "client".into(),
            ],
        });
        let backend = TestBackend::new(40, 12);
        let mut terminal = Terminal::new(backend).unwrap();
        terminal.draw(|frame| draw(frame, &state)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        let row = |y: u16| -> String {
            (0..40)
                .map(|x| buffer[(x, y)].symbol().to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        };
        assert_eq!(row(0), "to join:");
        assert_eq!(row(1), "HOST_CHAT_KEY=k host-chat client");
        assert!(row(2).starts_with('┌'), "{}", row(2));
    }

    fn sample() -> TuiState {
        let mut status = Status::new("127.0.0.1:4000", "lobby", "ann");
        status.members = 2;
        status.conn = Conn::Joined;
        status.rtt_ms = Some(3);
        let mut state = TuiState::new(status, false);
        state.push(
            "12:00:00",
            LineKind::Info,
            "joined room lobby on 127.0.0.1:4000 as ann (2 members)",
        );
        state.push(
            "12:00:01",
            LineKind::Notice { nick: "bob".into() },
            "joined the room",
        );
        state.push(
            "12:00:02",
            LineKind::Message {
                nick: "bob".into(),
                own: false,
            },
            "hi ann",
        );
        state.push(
            "12:00:03",
            LineKind::Message {
                nick: "ann".into(),
                own: true,
            },
            "hello bob",
        );
        state.wire_sent(1, "hello bob", "gAAAAABtokenSENT", false);
        state.wire_response(
            1,
            "receipt for line 1: room message #3, 2 members",
            "gAAAAABtokenREPLY",
        );
        state
    }

    fn render(state: &TuiState, width: u16, height: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, state)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
            })
            .collect()
    }

    #[test]
    fn renders_conversation_status_and_input() {
        let mut state = sample();
        state.editor.text = "typing".into();
        state.editor.cursor = 6;
        let screen = render(&state, 100, 20);
        let text = screen.join("\n");
        assert!(screen[0].contains("room lobby"), "{text}");
        assert!(
            screen.iter().any(|l| l.contains("12:00:02   bob: hi ann")),
            "{text}"
        );
        assert!(
            screen
                .iter()
                .any(|l| l.contains("12:00:03 > ann: hello bob")),
            "{text}"
        );
        assert!(
            screen
                .iter()
                .any(|l| l.contains("12:00:01 * bob joined the room")),
            "{text}"
        );
        assert!(
            screen[18]
                .starts_with(" 127.0.0.1:4000 | room lobby | 2 members | joined | rtt 3 ms | ann "),
            "{text}"
        );
        assert!(screen[18].ends_with("/quit "), "{text}");
        assert!(screen[19].starts_with("> typing "), "{text}");
        assert!(
            !text.contains("gAAAAABtokenSENT"),
            "the wire view is closed"
        );
    }

    #[test]
    fn renders_the_wire_view_when_open() {
        let mut state = sample();
        state.toggle_wire();
        let screen = render(&state, 100, 24);
        let text = screen.join("\n");
        assert!(text.contains("wire: own lines"), "{text}");
        assert!(text.contains("#1 sent: hello bob"), "{text}");
        assert!(text.contains("   token: gAAAAABtokenSENT"), "{text}");
        assert!(
            text.contains("   response: receipt for line 1: room message #3, 2 members"),
            "{text}"
        );
        assert!(
            text.contains("   response token: gAAAAABtokenREPLY"),
            "{text}"
        );
        assert!(text.contains("hello bob"), "the conversation stays: {text}");
    }

    #[test]
    fn long_lines_wrap_and_scroll() {
        let mut state = sample();
        for i in 0..40 {
            state.push(
                "12:01:00",
                LineKind::Message {
                    nick: "bob".into(),
                    own: false,
                },
                &format!("line {i} {}", "x".repeat(50)),
            );
        }
        let screen = render(&state, 60, 12);
        let text = screen.join("\n");
        // Following the end: the last line is shown, its continuation indented.
        assert!(text.contains("line 39"), "{text}");
        assert!(
            screen.iter().any(|l| l.starts_with("│           xxxxxxx")),
            "{text}"
        );
        state.chat_scroll.page_up();
        let scrolled = render(&state, 60, 12).join("\n");
        assert!(!scrolled.contains("line 39"), "{scrolled}");
        assert!(scrolled.contains("[scrolled; Esc: newest]"), "{scrolled}");
        // New lines do not move a held view.
        state.push("12:02:00", LineKind::Info, "newer");
        let held = render(&state, 60, 12).join("\n");
        assert_eq!(held.lines().nth(3), scrolled.lines().nth(3));
    }

    #[test]
    fn narrow_and_tiny_terminals_do_not_panic() {
        let mut state = sample();
        state.editor.text = "a long line being typed that is wider than the screen".into();
        state.editor.cursor = state.editor.text.chars().count();
        let screen = render(&state, 40, 10);
        assert!(screen[9].starts_with("> "), "{}", screen.join("\n"));
        assert!(screen[9].contains("the screen"), "{}", screen.join("\n"));
        state.toggle_wire();
        render(&state, 40, 10);
        for (w, h) in [(1, 1), (2, 3), (5, 2), (12, 4), (0, 0)] {
            render(&state, w, h);
        }
    }

    #[test]
    fn wrapping_hangs_and_sanitises() {
        let spans = [Span::raw("abcdefghij\u{1b}[31m")];
        let rows = wrap(&spans, 6, 2);
        let texts: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["abcdef", "  ghij", "  \u{FFFD}[31", "  m"]);
        let rows = wrap(&[Span::raw("12 ab cd efgh ijklmnopqr")], 8, 3);
        let texts: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["12 ab cd", "   efgh", "   ijklm", "   nopqr"]);
        let rows = wrap(&[Span::raw("token: gAAAAABlongtoken")], 12, 2);
        let texts: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            ["token: gAAAA", "  ABlongtoke", "  n"],
            "a word longer than a row breaks in place"
        );
        let styled = [
            Span::styled("ab ", Style::new().fg(Color::Red)),
            Span::raw("cd ef"),
        ];
        let rows = wrap(&styled, 4, 0);
        assert_eq!(rows[0].spans.len(), 1, "{rows:?}");
        assert_eq!(rows[0].to_string(), "ab");
        assert_eq!(rows[1].to_string(), "cd");
        assert_eq!(rows[2].to_string(), "ef");
        assert_eq!(wrap(&[Span::raw("")], 5, 0).len(), 1);
        assert!(wrap(&spans, 0, 0).is_empty());
    }
}
