#![allow(clippy::panic, reason = "a server that cannot start fails the test")]
//! The real KubeMQ community server v2.4.0, started from `../shared/kubemq-server/start.sh`
//! (or `$KUBEMQ_SERVER_DIR/start.sh`) on free loopback ports, for the tests that run on both
//! brokers. The server is a separate process: stopping it is a SIGTERM (or SIGKILL) and a
//! wait until the pid is gone.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Where `start.sh` and the packed binary live.
pub fn server_dir() -> PathBuf {
    std::env::var_os("KUBEMQ_SERVER_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/kubemq-server"),
        PathBuf::from,
    )
}

/// One running real server with its own scratch folder (binary, store, log).
pub struct RealServer {
    pub grpc_port: u16,
    pub rest_port: u16,
    pub api_port: u16,
    prom_port: u16,
    pid: Option<u32>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    // start.sh refuses a port in use, so a port taken between this and its start only
    // fails that attempt; `start` tries again with new ones.
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl RealServer {
    /// Starts a server and returns once it accepts gRPC (start.sh waits for that).
    pub fn start() -> Self {
        let mut server = Self {
            grpc_port: 0,
            rest_port: 0,
            api_port: 0,
            prom_port: 0,
            pid: None,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        let mut last = String::new();
        for _ in 0..3 {
            server.grpc_port = free_port();
            server.rest_port = free_port();
            server.api_port = free_port();
            server.prom_port = free_port();
            match server.launch() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("the real KubeMQ server did not start: {last}");
    }

    /// `start.sh` on this server's ports (it wipes the store first).
    fn launch(&mut self) -> Result<(), String> {
        let script = server_dir().join("start.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg(self.dir.path())
            .env("GRPC_PORT", self.grpc_port.to_string())
            .env("REST_PORT", self.rest_port.to_string())
            .env("API_PORT", self.api_port.to_string())
            .env("KUBEMQ_PROM_PORT", self.prom_port.to_string())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}{}",
                script.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("start.sh printed no pid: {e}"))?;
        self.pid = Some(pid);
        Ok(())
    }

    pub fn grpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// The server's own log: subscriptions, channel creations, server-side errors.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("kubemq.log")).unwrap_or_default()
    }

    /// Stops the server (SIGTERM, or SIGKILL when `hard`) and waits until it is gone.
    pub fn stop(&mut self, hard: bool) {
        let Some(pid) = self.pid.take() else { return };
        let signal = if hard { "-KILL" } else { "-TERM" };
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        let proc = PathBuf::from(format!("/proc/{pid}"));
        while proc.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if proc.exists() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// Stops and starts the server on the same ports. start.sh wipes the store, so this is
    /// a fresh server at the same address, as after a rolling replacement.
    pub fn restart(&mut self) {
        self.stop(false);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.launch() {
                Ok(()) => return,
                Err(e) if Instant::now() > deadline => panic!("restart failed: {e}"),
                // The old process's ports can take a moment to be free again.
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

impl Drop for RealServer {
    fn drop(&mut self) {
        self.stop(false);
    }
}
