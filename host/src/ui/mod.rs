//! The terminal UI of `host-chat client --tui` (and `host-chat demo --tui`), with
//! ratatui on crossterm.
//!
//! - [`state`]: what is shown ([`TuiState`]): the conversation, the input line and its
//!   history, the wire entries, the status bar, the scroll positions;
//! - [`draw`]: [`draw()`](draw::draw) renders a `TuiState` into a frame, nothing else;
//! - [`input`]: [`on_key`] applies a key to a `TuiState` and says what the session
//!   should do ([`Action`]);
//! - here: the real terminal ([`Tui`]: raw mode and the alternate screen, restored on
//!   drop and on panic) and the thread that reads its events ([`spawn_events`]).
//!
//! The session (`chat::client`) owns a [`Tui`], feeds it the client's events, and
//! redraws after each turn of its event loop.

pub mod draw;
pub mod input;
pub mod state;

pub use input::{Action, on_key};
pub use ratatui::crossterm::event::Event;
pub use state::{Banner, Conn, Pane, Status, TuiState};

use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, event, execute, terminal};
use std::io::{self, IsTerminal as _, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Once};

/// The terminal is in raw mode on the alternate screen (for the panic hook).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The real terminal, showing a [`TuiState`]. Dropping it restores the terminal.
pub struct Tui {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    /// What is shown.
    pub state: TuiState,
}

impl std::fmt::Debug for Tui {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tui").field("state", &self.state).finish()
    }
}

impl Tui {
    /// Takes over the terminal (raw mode, alternate screen) to show `state`. Fails when
    /// standard input or output is not a terminal.
    pub fn start(state: TuiState) -> anyhow::Result<Self> {
        check_terminal()?;
        install_panic_hook();
        terminal::enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on, failing restores the terminal (`restore` in `Drop` or below).
        let terminal = execute!(io::stdout(), terminal::EnterAlternateScreen)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match terminal {
            Ok(terminal) => Ok(Self { terminal, state }),
            Err(err) => {
                restore();
                Err(err.into())
            }
        }
    }

    /// Draws the state.
    pub fn draw(&mut self) -> io::Result<()> {
        let state = &self.state;
        self.terminal
            .draw(|frame| draw::draw(frame, state))
            .map(drop)
    }

    /// Repaints the whole screen on the next draw (Ctrl+L).
    pub fn clear(&mut self) -> io::Result<()> {
        self.terminal.clear()
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Fails (a usage error) unless standard input and output are a terminal.
pub fn check_terminal() -> anyhow::Result<()> {
    if io::stdin().is_terminal() && io::stdout().is_terminal() {
        return Ok(());
    }
    Err(crate::error::BadArgument(
        "--tui needs a terminal on standard input and output (without one, leave --tui \
         out, or use --json)"
            .into(),
    )
    .into())
}

/// Gives the terminal back: cooked mode, the main screen, the cursor. Does nothing when
/// the UI is not active, so it may run more than once.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

/// On panic, restores the terminal before the message is printed (once per process).
fn install_panic_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Starts a thread that reads the terminal's events and hands each to `tx`, made by
/// `wrap` (`None` when the terminal is gone), waking the event loop with `waker`.
pub fn spawn_events<T, F>(tx: Sender<T>, waker: Arc<mio::Waker>, wrap: F) -> io::Result<()>
where
    T: Send + 'static,
    F: Fn(Option<Event>) -> T + Send + 'static,
{
    std::thread::Builder::new()
        .name("terminal".into())
        .spawn(move || {
            loop {
                let event = event::read().ok();
                let gone = event.is_none();
                if tx.send(wrap(event)).is_err() {
                    break;
                }
                let _ = waker.wake();
                if gone {
                    break;
                }
            }
        })
        .map(drop)
}
