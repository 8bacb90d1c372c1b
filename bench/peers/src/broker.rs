//! A private mosquitto: its own config file in a fresh temporary directory, one listener
//! on 127.0.0.1 at a free port (no default listener, no persistence), started and stopped
//! by PID.

use anyhow::{Context as _, bail};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long mosquitto may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// What to tell someone without mosquitto.
pub const INSTALL: &str = "mosquitto is not installed: `apt-get install mosquitto \
    mosquitto-clients` (Debian, Ubuntu; as root), or give its path with --mosquitto";

/// The running broker; killed (by PID) and its directory removed when dropped.
#[derive(Debug)]
pub struct Broker {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The config: mosquitto 2.0's defaults for queues and in-flight windows, written out so
/// that the figures say what they were measured with, plus `extra` lines.
fn config(port: u16, extra: &[String]) -> String {
    let mut text = format!(
        "# A private broker for one benchmark run (bench-peers); removed afterwards.\n\
         per_listener_settings false\n\
         listener {port} 127.0.0.1\n\
         allow_anonymous true\n\
         persistence false\n\
         log_dest stderr\n\
         log_type error\n\
         log_type warning\n\
         # mosquitto 2.0's defaults: QoS 1/2 messages in flight and queued per client.\n\
         max_inflight_messages 20\n\
         max_queued_messages 1000\n\
         # Small messages go out at once, as host-chat's datagrams do (default: false).\n\
         set_tcp_nodelay true\n"
    );
    for line in extra {
        let _ = writeln!(text, "{line}");
    }
    text
}

impl Broker {
    /// Starts `program` (mosquitto) with a config of its own; `extra` lines are appended
    /// to it (`max_queued_messages 10000`, ...).
    pub fn start(program: &str, extra: &[String]) -> anyhow::Result<Self> {
        let mut last_error = None;
        // A port found free can be taken before mosquitto binds it: try a few.
        for attempt in 0..3 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .context("cannot find a free port on 127.0.0.1")?
                .port();
            let dir = std::env::temp_dir().join(format!(
                "bench-peers-mosquitto-{}-{attempt}-{port}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let conf = dir.join("mosquitto.conf");
            std::fs::write(&conf, config(port, extra))
                .with_context(|| format!("cannot write {}", conf.display()))?;
            let log = std::fs::File::create(dir.join("mosquitto.log"))?;
            let child = match Command::new(program)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let _ = std::fs::remove_dir_all(&dir);
                    bail!("{INSTALL}");
                }
                Err(e) => return Err(e).with_context(|| format!("cannot start {program}")),
            };
            let mut broker = Self {
                child,
                dir,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            };
            match broker.wait_ready() {
                Ok(()) => return Ok(broker),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("mosquitto did not start")))
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log =
                    std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default();
                bail!("mosquitto stopped at once ({status}): {}", log.trim());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "mosquitto did not listen on {} within {START_TIMEOUT:?}",
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_one_listener_and_no_persistence() {
        let text = config(1883, &["max_queued_messages 5".to_owned()]);
        assert_eq!(text.matches("listener ").count(), 1);
        assert!(text.contains("listener 1883 127.0.0.1\n"));
        assert!(text.contains("persistence false\n"));
        assert!(
            text.ends_with("max_queued_messages 5\n"),
            "extra lines last win"
        );
    }
}
