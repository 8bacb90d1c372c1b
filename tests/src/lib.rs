//! Helpers for the end-to-end tests: building and running the real binaries, with time
//! limits, and the Python `cryptography` oracle.
//!
//! - [`bin`] builds a workspace binary once per test process (`$CARGO build`) and returns
//!   its path; [`host_chat`] is a ready [`Command`] for `host-chat`.
//! - [`run`] runs a command with some standard input and a deadline.
//! - [`TempDir`] is a scratch directory removed on drop.
//! - [`Running`] is a long-running child (a server, an interactive client): lines to its
//!   stdin, its stdout lines read on a thread, waits with deadlines, killed on drop.
//! - [`python`] finds `python3` with `cryptography` (tests needing it are ignored where
//!   `build.rs` did not find it);
//!   [`Python::batch`] runs many Fernet operations in one Python process.
//! - [`proxy`] is a fault-injecting UDP proxy (loss, duplication, reordering,
//!   corruption, truncation, delay); [`vm_rss_kib`] reads a process's resident memory.

pub mod proxy;

use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::io::{self, BufRead, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Whether `value` is a `--json` presence event (protocol version 2) listing `nick`'s
/// `change` (`joined`, `left`, `timed out`, `reconnected`).
pub fn is_presence(value: &Value, nick: &str, change: &str) -> bool {
    value["event"] == "presence"
        && value["changes"].as_array().is_some_and(|changes| {
            changes
                .iter()
                .any(|c| c["nick"] == nick && c["change"] == change)
        })
}

/// Whether `value` is a `--json` room message from `nick` with `text`.
pub fn is_message(value: &Value, nick: &str, text: &str) -> bool {
    value["event"] == "message" && value["nick"] == nick && value["text"] == text
}

/// Waits up to `timeout` for a JSON line of `process` that `wanted` accepts, looking first
/// in `seen` (what was read before) and keeping in `seen` every JSON line it reads: a test
/// that waits for several events in turn does not lose one that came early.
#[track_caller]
pub fn wait_seen(
    process: &mut Running,
    timeout: Duration,
    seen: &mut Vec<Value>,
    mut wanted: impl FnMut(&Value) -> bool,
) -> Value {
    if let Some(value) = seen.iter().find(|v| wanted(v)) {
        return value.clone();
    }
    process.wait_for_json(timeout, |value| {
        seen.push(value.clone());
        wanted(value)
    })
}

/// How long building a binary may take (a cold build on a slow machine).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// How long one run of a binary may take by default.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root: the parent of this package.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lies inside the workspace")
}

/// The path of binary `name` of the workspace package of the same name, built once per
/// test process. See [`bin_of`].
pub fn bin(name: &str) -> PathBuf {
    bin_of(name, name)
}

/// The path of binary `name` of workspace package `package`, built once per test process
/// with `$CARGO build -p package --bin name` (in the same profile and target directory
/// as the running test when they can be told, honouring `CARGO_TARGET_DIR` otherwise).
///
/// The path is the one cargo reports for the artifact, so any target-dir layout works.
/// Panics, with cargo's output, if the build fails or takes over [`BUILD_TIMEOUT`].
pub fn bin_of(package: &str, name: &str) -> PathBuf {
    type Built = HashMap<(String, String), Result<PathBuf, String>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // A failed build is remembered too, so the other tests fail fast with its message.
    let result = built
        .entry((package.to_owned(), name.to_owned()))
        .or_insert_with(|| build(package, name));
    match result {
        Ok(path) => path.clone(),
        Err(why) => panic!("{why}"),
    }
}

fn build(package: &str, name: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace_root()).args([
        "build",
        "--message-format=json-render-diagnostics",
        "-p",
        package,
        "--bin",
        name,
    ]);
    let layout = TestLayout::of_current_exe();
    if let Some(layout) = &layout {
        match layout.profile.as_str() {
            "debug" => {}
            "release" => {
                cmd.arg("--release");
            }
            other => {
                cmd.args(["--profile", other]);
            }
        }
        if std::env::var_os("CARGO_TARGET_DIR").is_none()
            && let Some(dir) = &layout.target_dir
        {
            cmd.arg("--target-dir").arg(dir);
        }
    }
    let started = Instant::now();
    let out = run(&mut cmd, io::empty(), BUILD_TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "`cargo build -p {package} --bin {name}` failed ({}):\n{stderr}",
            out.status
        ));
    }
    let executable = out
        .stdout
        .as_slice()
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .last();
    let path = executable.ok_or_else(|| {
        format!("cargo built no executable for `{name}` of `{package}`:\n{stderr}")
    })?;
    if started.elapsed() > Duration::from_secs(5) {
        eprintln!("built {} in {:.0?}", path.display(), started.elapsed());
    }
    Ok(path)
}

/// Where the running test binary lives: `<target>/<profile>/deps/<test>`.
#[derive(Debug)]
struct TestLayout {
    profile: String,
    /// The target directory, if it is recognisably one (cargo marks it with
    /// `CACHEDIR.TAG`).
    target_dir: Option<PathBuf>,
}

impl TestLayout {
    fn of_current_exe() -> Option<Self> {
        let exe = std::env::current_exe().ok()?;
        let deps = exe.parent()?;
        if deps.file_name()? != "deps" {
            return None;
        }
        let profile_dir = deps.parent()?;
        let profile = profile_dir.file_name()?.to_str()?.to_owned();
        let target_dir = profile_dir
            .parent()
            .filter(|dir| dir.join("CACHEDIR.TAG").is_file())
            .map(Path::to_owned);
        Some(Self {
            profile,
            target_dir,
        })
    }
}

/// A [`Command`] for the `host-chat` binary, isolated from the caller's keys: no
/// `HOST_CHAT_KEY`, and `HOME` / `XDG_CONFIG_HOME` pointing nowhere, so no default key
/// file of the user's can be found.
pub fn host_chat() -> Command {
    let mut cmd = Command::new(bin("host-chat"));
    let nowhere = std::env::temp_dir().join("e2e-tests-no-home");
    cmd.env_remove("HOST_CHAT_KEY")
        .env("HOME", &nowhere)
        .env("XDG_CONFIG_HOME", &nowhere);
    cmd
}

/// A `host-chat server` on a free port of 127.0.0.1 with `key` and the `extra` options;
/// it reports the port it got (`--print-port`). Killed on drop, like every [`Running`].
#[derive(Debug)]
pub struct ChatServer {
    pub process: Running,
    pub addr: SocketAddr,
}

impl ChatServer {
    pub fn start(key: &str, extra: &[&str]) -> Self {
        let mut cmd = host_chat();
        cmd.args(["server", "--bind", "127.0.0.1:0", "--print-port"])
            .args(extra)
            .env("HOST_CHAT_KEY", key);
        let mut process = Running::spawn("server", &mut cmd);
        let port: u16 = process
            .wait_for(Duration::from_secs(10), |_| true)
            .trim()
            .parse()
            .expect("the server prints its port first");
        Self {
            process,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

/// What a finished process left.
#[derive(Debug)]
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote on stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code (panics if a signal ended the process).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {}", self.stderr_text()))
    }

    /// Stdout as text (panics if it is not UTF-8).
    pub fn stdout_text(&self) -> &str {
        std::str::from_utf8(&self.stdout).expect("stdout is UTF-8")
    }

    /// Stderr as text, lossily.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Asserts success, showing stderr if not; returns self.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.status.success(),
            "failed with {}: {}",
            self.status,
            self.stderr_text()
        );
        self
    }

    /// Asserts the failure contract of the CLI: exit code `code`, nothing on stdout, and
    /// exactly one line on stderr, which it returns (without the newline).
    #[track_caller]
    pub fn failure(&self, code: i32) -> String {
        let stderr = self.stderr_text();
        assert_eq!(self.code(), code, "exit code; stderr: {stderr}");
        assert!(
            self.stdout.is_empty(),
            "stdout should be empty, got {} bytes",
            self.stdout.len()
        );
        assert!(
            stderr.ends_with('\n') && stderr.matches('\n').count() == 1,
            "stderr should be one line: {stderr:?}"
        );
        stderr.trim_end().to_owned()
    }
}

/// Runs `cmd` with `stdin` as its standard input (written from another thread, so the
/// input may be far bigger than a pipe; the process may stop reading early), collects
/// its output, and kills it if it runs longer than `timeout` (then panics).
pub fn run(cmd: &mut Command, stdin: impl Read + Send + 'static, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"));
    let writer = {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let mut stdin = stdin;
        thread::spawn(move || {
            // A process that stops reading early (say, on input too long) closes the
            // pipe: that is its business, not a test failure.
            let _ = io::copy(&mut stdin, &mut pipe);
        })
    };
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let status = wait(&mut child, timeout).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} took over {timeout:?}; killed");
    });
    let _ = writer.join();
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

/// Runs `cmd` with `stdin` bytes and the default [`RUN_TIMEOUT`].
pub fn run_with(cmd: &mut Command, stdin: impl Into<Vec<u8>>) -> Output {
    run(cmd, io::Cursor::new(stdin.into()), RUN_TIMEOUT)
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

fn wait(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for a child") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A long-running child process with piped standard streams: lines go to its stdin,
/// its stdout lines arrive on a channel (read by a thread), its stderr is collected.
/// Every wait has a deadline; the child is killed on drop.
#[derive(Debug)]
pub struct Running {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every stdout line read so far, for failure messages.
    seen: Vec<String>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Running {
    /// Spawns `cmd`; `name` labels it in failure messages.
    pub fn spawn(name: &str, cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
        });
        Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `line` and a newline to its stdin.
    #[track_caller]
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|err| panic!("{}: writing stdin: {err}", self.name));
    }

    /// Closes its stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line, if one comes within `timeout` (`None` also at end of output).
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Reads stdout lines until one satisfies `wanted`, and returns it; panics (showing
    /// everything it printed) if none does within `timeout`.
    #[track_caller]
    pub fn wait_for(&mut self, timeout: Duration, mut wanted: impl FnMut(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_line(left) {
                Some(line) if wanted(&line) => return line,
                Some(_) => {}
                None => panic!(
                    "{}: the awaited line did not come within {timeout:?}\n{}",
                    self.name,
                    self.report()
                ),
            }
        }
    }

    /// As [`wait_for`](Self::wait_for), for a program printing one JSON object per line
    /// (other lines are skipped).
    #[track_caller]
    pub fn wait_for_json(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Value {
        let line = self.wait_for(timeout, |line| {
            serde_json::from_str::<Value>(line).is_ok_and(|value| wanted(&value))
        });
        serde_json::from_str(&line).expect("checked above")
    }

    /// Waits for the `event` JSON event.
    #[track_caller]
    pub fn wait_event(&mut self, timeout: Duration, event: &str) -> Value {
        self.wait_for_json(timeout, |value| value["event"] == event)
    }

    /// Waits up to `timeout` for it to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait(&mut self.child, timeout)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its stderr so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }

    /// What it printed so far, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "--- {} stdout:\n{}\n--- stderr:\n{}",
            self.name,
            self.seen.join("\n"),
            self.stderr_text()
        )
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A scratch directory, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temp dir; `label` helps find it.
    pub fn new(label: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("e2e-tests-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temp dir");
        Self(path)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `name` inside it, private to its owner (mode 600, as a key
    /// file must be), and returns the file's path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("writing a temp file");
        set_mode(&path, 0o600);
        path
    }
}

/// Sets the permission bits of `path` (Unix; nothing elsewhere).
pub fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .expect("setting a file's mode");
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// The permission bits of `path` (Unix; 0 elsewhere).
pub fn mode_of(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path)
            .expect("a file's metadata")
            .permissions()
            .mode()
            & 0o777
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        0
    }
}

/// Whether process `pid` still exists (`kill -0`, which sends no signal).
pub fn process_exists(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("running kill -0")
        .success()
}

/// Sends signal `name` (`INT`, `TERM`...) to process `pid` with `kill`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator (SplitMix64) for reproducible test data.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..=max`.
    pub fn up_to(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses lower- or upper-case hex (panics on anything else).
pub fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len().is_multiple_of(2), "odd hex length");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The current time, Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`), where
/// `/proc` exists.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A Python interpreter that has `cryptography`.
#[derive(Debug, Clone)]
pub struct Python {
    exe: OsString,
}

/// The interpreter to use: `$PYTHON` if set, else `python3`.
fn python_exe() -> OsString {
    std::env::var_os("PYTHON")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into())
}

/// Python with `cryptography`, found once per process. Tests that call it carry
/// `#[cfg_attr(not(have_python), ignore = ...)]` (see `build.rs`), so they only run where
/// it was found, and on CI; a missing interpreter there fails the test.
pub fn python() -> Python {
    static FOUND: OnceLock<Result<Python, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let exe = python_exe();
        let mut cmd = Command::new(&exe);
        cmd.args(["-c", "import cryptography.fernet"]);
        let status = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("{}: {err}", exe.to_string_lossy()))
            .and_then(|mut child| {
                wait(&mut child, Duration::from_secs(30))
                    .ok_or_else(|| "python took over 30 s to start".to_owned())
            })?;
        if status.success() {
            Ok(Python { exe })
        } else {
            Err(format!(
                "{} cannot import cryptography",
                exe.to_string_lossy()
            ))
        }
    });
    match found {
        Ok(python) => python.clone(),
        Err(why) => panic!(
            "python3 with `cryptography` is needed ({why}): pip install cryptography, or \
             set PYTHON to an interpreter that has it"
        ),
    }
}

impl Python {
    /// Runs the Fernet operations `ops` (see `tests/python/fernet_oracle.py` for their
    /// format) in one Python process and returns one result object per operation.
    pub fn batch(&self, ops: &[Value]) -> Vec<Value> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/fernet_oracle.py");
        let input = serde_json::to_vec(&ops).expect("ops serialize");
        let out = run(
            Command::new(&self.exe)
                .arg(script)
                .env("PYTHONDONTWRITEBYTECODE", "1"),
            io::Cursor::new(input),
            RUN_TIMEOUT,
        );
        assert!(
            out.status.success(),
            "the Python oracle failed ({}): {}",
            out.status,
            out.stderr_text()
        );
        let results: Vec<Value> =
            serde_json::from_slice(&out.stdout).expect("the oracle answers a JSON list");
        assert_eq!(results.len(), ops.len(), "one result per op");
        results
    }

    /// Runs one operation.
    pub fn one(&self, op: Value) -> Value {
        self.batch(&[op]).remove(0)
    }
}
