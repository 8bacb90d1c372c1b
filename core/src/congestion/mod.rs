//! Congestion control and round-trip estimation, in messages rather than bytes.
//!
//! Both directions of the chat are windowed: the relay keeps at most a congestion window
//! of room messages in flight to each member, and a client keeps at most a congestion
//! window of its own lines in flight to the relay. The window reacts to the network the
//! way QUIC's does (RFC 9002 §7): it grows while messages are acknowledged, halves when a
//! message is found lost or the relay answers "busy", and collapses to the minimum after a
//! retransmission timeout. Under overload the senders therefore send *less*, not more,
//! and throughput degrades smoothly instead of collapsing into retransmissions.
//!
//! As in quinn-proto, the algorithm sits behind a small trait, [`Controller`]: the state
//! machines ask it how many messages may be in flight ([`Controller::window`]) and tell it
//! what happened. [`NewReno`] (RFC 9002 §7.3 and appendix B) is the one this crate ships.
//! [`RttEstimator`] (RFC 6298, RFC 9002 §5) turns samples into a retransmission timeout.

mod new_reno;
mod rtt;

pub use new_reno::NewReno;
pub use rtt::RttEstimator;

/// A congestion controller, counted in messages (each chat datagram is one message).
///
/// Call order: [`on_ack`](Self::on_ack) for every acknowledgement that acknowledges
/// something new; [`on_congestion_event`](Self::on_congestion_event) once per loss episode
/// (the caller keeps its own recovery point, as RFC 9002 §7.3.2 describes, so a burst of
/// losses reduces the window once); [`on_timeout`](Self::on_timeout) when a retransmission
/// timer fires with nothing acknowledged.
pub trait Controller {
    /// Messages that may be unacknowledged at once: at least 1.
    fn window(&self) -> u32;
    /// `acked` messages were newly acknowledged.
    fn on_ack(&mut self, acked: u32);
    /// A message was found lost, or the peer asked us to slow down: multiplicative
    /// decrease (RFC 9002 §7.3.2).
    fn on_congestion_event(&mut self);
    /// The retransmission timer fired: back to the minimum window, and slow start up to
    /// half the window we had (RFC 5681 §3.1, RFC 9002 §7.6.2 persistent congestion).
    fn on_timeout(&mut self);
}
