//! Helpers shared by the benches: process CPU and RSS from /proc, ports, percentiles.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// utime + stime of a process (`self` for this one), in seconds.
pub fn process_cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits up to 10 s for something to listen on `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `p` quantile of sorted latencies, in ms.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A child process of the release binary, killed on drop.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    pub fn spawn(args: &[&str], extra: &[&std::ffi::OsStr]) -> Self {
        Self::spawn_env(args, extra, None)
    }

    /// As [`Proc::spawn`], with extra environment variables.
    pub fn spawn_env(
        args: &[&str],
        extra: &[&std::ffi::OsStr],
        env: impl IntoIterator<Item = (&'static str, String)>,
    ) -> Self {
        // BENCH_BIN runs another build (an A/B comparison) under the same bench.
        let bin = std::env::var_os("BENCH_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_llm-router").into());
        let child = Command::new(bin)
            .args(args)
            .args(extra)
            .envs(env)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start llm-router");
        Self { child }
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&self.pid())
    }

    /// Context switches of all the process's threads so far: each one is a thread going to
    /// sleep or being preempted, which is what latency at low load is made of.
    pub fn context_switches(&self) -> u64 {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{}/task", self.pid())) else {
            return 0;
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .map(|status| {
                status
                    .lines()
                    .filter(|l| l.contains("ctxt_switches:"))
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum::<u64>()
            })
            .sum()
    }

    pub fn status_mb(&self, key: &str) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kb / 1024.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits up to 20 s for /ready on `port` (a worker's metrics port, the gateway's port).
pub async fn wait_ready(port: u16) {
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(&url).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "port {port} did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A numeric setting from the environment, or `default` when unset or unparsable.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The routes every config file gets by default, switched off so the benches need no keys.
pub const BUILTIN_ROUTES_OFF: &str = r#"
[routes.openai]
enabled = false
[routes.claude]
enabled = false
[routes.summarize]
enabled = false
[routes.sentiment]
enabled = false
"#;

/// `llm-router sim-provider` on a free port with `args` after the listen address.
pub fn spawn_sim(args: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut all = vec!["sim-provider", "--listen", &listen];
    all.extend_from_slice(args);
    (Proc::spawn(&all, &[]), port)
}

/// The environment sizing a spawned process's tokio pool from the bench variable `key`
/// (BENCH_BROKER_THREADS, BENCH_WORKER_THREADS); unset keeps tokio's default, one per core.
fn tokio_threads(key: &str) -> Option<(&'static str, String)> {
    let threads = std::env::var(key).ok().filter(|n| !n.is_empty())?;
    Some(("TOKIO_WORKER_THREADS", threads))
}

/// `llm-router broker` (default fsync) with its data under `dir`; returns its gRPC port
/// once it listens.
pub fn spawn_broker(dir: &std::path::Path) -> (Proc, u16) {
    let grpc = free_port();
    let rest = free_port();
    let data = dir.join("broker");
    let broker = Proc::spawn_env(
        &[
            "broker",
            "--grpc-port",
            &grpc.to_string(),
            "--rest-port",
            &rest.to_string(),
            "--data-dir",
        ],
        &[data.as_os_str()],
        tokio_threads("BENCH_BROKER_THREADS"),
    );
    wait_for_port(grpc);
    (broker, grpc)
}

/// `llm-router worker` with `id` on the broker's gRPC port; returns its metrics port once
/// it is ready.
pub async fn spawn_worker(grpc: u16, config: &std::path::Path, id: &str) -> (Proc, u16) {
    let metrics = free_port();
    let worker = Proc::spawn_env(
        &[
            "worker",
            "--broker",
            &format!("127.0.0.1:{grpc}"),
            "--metrics-port",
            &metrics.to_string(),
            "--id",
            id,
            "--config",
        ],
        &[config.as_os_str()],
        tokio_threads("BENCH_WORKER_THREADS"),
    );
    wait_ready(metrics).await;
    (worker, metrics)
}

/// Requests started in the first `WARM_UP` of an open loop are not counted.
pub const WARM_UP: Duration = Duration::from_secs(1);

/// Latencies of an open loop's measured window, sorted, and the requests that failed in it.
pub struct Phase {
    pub lat: Vec<Duration>,
    pub failed: usize,
    /// Requests completed per second of the measured window.
    pub rate: f64,
    /// Requests started, warm-up included (for CPU per request).
    pub sent: usize,
}

/// Open loop at `rate` requests/s for `WARM_UP` + `measure`: one request in each slot of
/// 1/rate s, at a random point within its slot. Latency is from the task's start to its
/// answer; `request`'s future says whether the answer was a success.
///
/// Why not a tokio interval: tokio timers fire on 1 ms ticks, so at 1,000/s every request
/// would leave at the same phase of the millisecond, and so reach a simulated provider's
/// own 1 ms timer (its latency) at a fixed phase as well. Whether one path's extra hops
/// cross the sim's next tick (and wait a whole extra millisecond) then depends on how the
/// processes' clocks happen to line up, not on the path. Random send points within each
/// slot, timed by an OS thread to the microsecond, spread the phases evenly for both
/// paths; the mean rate and the spacing (never a burst of more than two in 2/rate s) stay.
pub async fn open_loop<F, Fut>(rate: f64, measure: Duration, request: F) -> Phase
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    open_loop_timed(rate, measure, || {
        let fut = request();
        async move {
            let t = Instant::now();
            fut.await.then(|| t.elapsed())
        }
    })
    .await
}

/// As [`open_loop`], for requests that time themselves (time to first chunk, say): the
/// future gives its latency, or `None` when the request failed. It starts when its task
/// does, at its send point.
pub async fn open_loop_timed<F, Fut>(rate: f64, measure: Duration, request: F) -> Phase
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Option<Duration>> + Send + 'static,
{
    let start = Instant::now();
    let total = WARM_UP + measure;
    let slots = (total.as_secs_f64() * rate) as u64;
    let mut sends = send_points(start, rate, slots);
    let mut tasks = Vec::with_capacity(slots as usize);
    while let Some(at) = sends.recv().await {
        let counted = at >= start + WARM_UP;
        let fut = request();
        tasks.push(tokio::spawn(async move { (counted, fut.await) }));
    }
    let sent = tasks.len();
    let mut lat = Vec::new();
    let mut failed = 0;
    for t in tasks {
        match t.await.unwrap() {
            (false, _) => {}
            (true, Some(d)) => lat.push(d),
            (true, None) => failed += 1,
        }
    }
    lat.sort();
    let rate = lat.len() as f64 / measure.as_secs_f64();
    Phase {
        lat,
        failed,
        rate,
        sent,
    }
}

/// A thread that, for slot k of `slots`, sleeps until `start + (k + u)/rate` (u uniform
/// in 0..1) and then hands that instant over; the channel closes after the last slot.
fn send_points(
    start: Instant,
    rate: f64,
    slots: u64,
) -> tokio::sync::mpsc::UnboundedReceiver<Instant> {
    use rand::Rng;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let mut rng = rand::thread_rng();
        for k in 0..slots {
            let offset = (k as f64 + rng.gen::<f64>()) / rate;
            let at = start + Duration::from_secs_f64(offset);
            let now = Instant::now();
            if at > now {
                std::thread::sleep(at - now);
            }
            if tx.send(at).is_err() {
                return;
            }
        }
    });
    rx
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Named figures collected run by run, printed as a table of medians with every run's value.
#[derive(Default)]
pub struct Runs {
    rows: Vec<(String, Vec<f64>)>,
}

impl Runs {
    /// Adds one run's figures; every run must name the same figures in the same order.
    pub fn push(&mut self, values: Vec<(String, f64)>) {
        if self.rows.is_empty() {
            self.rows = values
                .iter()
                .map(|(n, _)| (n.clone(), Vec::new()))
                .collect();
        }
        for (row, (_, v)) in self.rows.iter_mut().zip(values) {
            row.1.push(v);
        }
    }

    /// The markdown table: figure, median over the runs, each run's value.
    pub fn table(&self) -> String {
        let runs = self.rows.first().map_or(0, |r| r.1.len());
        let mut out = format!("| figure | median of {runs} | runs |\n|---|---|---|\n");
        for (name, values) in &self.rows {
            let shown: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
            out.push_str(&format!(
                "| {name} | {:.3} | {} |\n",
                median(values.clone()),
                shown.join(", ")
            ));
        }
        out
    }
}

/// A closed loop: `in_flight` tasks each sending the next request as soon as the last
/// answered. Answers count only between [`ClosedLoop::count`] and [`ClosedLoop::finish`],
/// so a warm-up and a CPU reading can sit around the measured window.
pub struct ClosedLoop {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    counting: std::sync::Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(usize, usize)>>,
}

impl ClosedLoop {
    /// Starts the tasks; `request` answers whether its call succeeded.
    pub fn start<F, Fut>(in_flight: usize, request: F) -> Self
    where
        F: Fn() -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let stop = Arc::new(AtomicBool::new(false));
        let counting = Arc::new(AtomicBool::new(false));
        let tasks = (0..in_flight)
            .map(|_| {
                let (request, stop, counting) = (request.clone(), stop.clone(), counting.clone());
                tokio::spawn(async move {
                    let (mut ok, mut failed) = (0usize, 0usize);
                    while !stop.load(Ordering::Relaxed) {
                        let good = request().await;
                        if counting.load(Ordering::Relaxed) {
                            if good {
                                ok += 1;
                            } else {
                                failed += 1;
                            }
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        Self {
            stop,
            counting,
            tasks,
        }
    }

    /// From now on, answers count.
    pub fn count(&self) {
        self.counting
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops counting and the tasks; answers that succeeded and failed while counting.
    pub async fn finish(self) -> (usize, usize) {
        use std::sync::atomic::Ordering;
        self.counting.store(false, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        let (mut ok, mut failed) = (0, 0);
        for t in self.tasks {
            let (o, f) = t.await.unwrap_or((0, 0));
            ok += o;
            failed += f;
        }
        (ok, failed)
    }
}
