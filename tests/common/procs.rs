//! The real binary as child processes, for the black-box tests that kill and restart
//! them: free loopback ports, a guard that kills its child however the test ends, waits
//! for a listener, and the resident memory of a process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port nobody listens on right now. Processes that must come back on the same
/// port (a restarted broker or sim) need a number chosen up front; port 0 cannot do that.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The binary with warn-level logs, no stdin, and no provider keys from the caller's
/// environment (each test sets the fake keys it needs).
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_llm-router"));
    c.env("RUST_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("LLM_ROUTER_CONFIG_DIR")
        .stdin(Stdio::null());
    c
}

/// A child process killed (SIGKILL) and reaped on drop, so a failed test leaves no
/// process behind. Its stderr goes to `log`, read back for failure messages.
pub struct Proc {
    child: Child,
    pub log: std::path::PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout discarded and stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: &Path) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawn llm-router");
        Self {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap: no shutdown path of the child runs.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the child has exited (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `n` bytes of the child's log, for a failure message.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(n);
        text.get(start..).unwrap_or_default().to_owned()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections on `127.0.0.1:port`.
pub fn wait_port(port: u16, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} never listened on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of process `pid` in bytes (`VmRSS` of /proc/<pid>/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A simulated provider on `port` with extra `args` (faults, latency, seed).
pub fn sim(port: u16, args: &[&str], log: &Path) -> Proc {
    let mut cmd = bin();
    cmd.args(["sim-provider", "--listen", &format!("127.0.0.1:{port}")])
        .args(args);
    let p = Proc::spawn(cmd, log);
    wait_port(port, Duration::from_secs(20), "the sim");
    p
}

/// The embedded broker on fixed ports and `data`, with extra `args` (limits).
pub fn broker(grpc: u16, rest: u16, data: &Path, args: &[&str], log: &Path) -> Proc {
    let mut cmd = bin();
    cmd.args(["broker", "--grpc-port", &grpc.to_string()])
        .args(["--rest-port", &rest.to_string()])
        .arg("--data-dir")
        .arg(data)
        .args(args);
    let p = Proc::spawn(cmd, log);
    wait_port(grpc, Duration::from_secs(20), "the broker");
    wait_port(rest, Duration::from_secs(20), "the broker's REST port");
    p
}
