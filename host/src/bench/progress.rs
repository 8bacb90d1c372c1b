//! The progress line on standard error, when it is a terminal.

use super::load::Bench;
use std::io;
use std::time::Duration;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

impl Bench {
    pub(super) fn show_progress(&mut self, now: u64, last: bool) {
        if !self.progress {
            return;
        }
        if !last && now.saturating_sub(self.progress_drawn) < PROGRESS_EVERY.as_nanos() as u64 {
            return;
        }
        self.progress_drawn = now;
        let expected = (self.messages as f64 * self.mean_fanout()).max(1.0);
        let done =
            (self.counts.sent + self.counts.delivered) as f64 / (self.messages as f64 + expected);
        let width = 30;
        let filled = ((done * width as f64) as usize).min(width);
        let secs = now.saturating_sub(self.first_send.unwrap_or(now)) as f64 / 1e9;
        let rate = if secs > 0.0 {
            self.counts.accepted as f64 / secs
        } else {
            0.0
        };
        let mut err = io::stderr().lock();
        let _ = io::Write::write_fmt(
            &mut err,
            format_args!(
                "\r[{}{}] {:3.0}%  sent {}/{}  delivered {}/{}  {:.0} msg/s ",
                "#".repeat(filled),
                ".".repeat(width - filled),
                done * 100.0,
                self.counts.sent,
                self.messages,
                self.counts.delivered,
                self.counts.expected,
                rate
            ),
        );
        if last {
            let _ = io::Write::write_all(&mut err, b"\n");
        }
    }
}
