//! `stratad devnet`: a whole network on loopback in one command.
//!
//! It starts N `stratad start` child processes, each with its own data
//! directory under a temporary folder (or `--dir`), node 0 the seed of the
//! others; waits until each has a peer; writes records and publishes
//! messages round-robin through the nodes' admin APIs; follows every node's
//! subscription to time each message's propagation; and waits until every
//! node holds every record and has received every message. Progress bars
//! and a live table of propagation times go to stderr (when it is a
//! terminal); the summary goes to stdout. Every child is stopped through
//! its API at the end, on Ctrl-C and on failure, and killed if it does not
//! exit in time: no process is left behind.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::mpsc;

use crate::client::{Client, ClientError};
use crate::datadir;

/// Why a devnet run failed.
#[derive(Debug, thiserror::Error)]
pub enum DevnetError {
    /// `--nodes` out of range.
    #[error("--nodes {0} is out of range: {MIN_NODES} to {MAX_NODES}")]
    Nodes(usize),
    /// A file or folder could not be made, or a process started.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file, folder or program.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A child exited early.
    #[error("node {index} exited with {status}:\n{log}")]
    Exited {
        /// Which node.
        index: usize,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Its log.
        log: String,
    },
    /// A node's admin API failed.
    #[error("node {index}: {source}")]
    Api {
        /// Which node.
        index: usize,
        /// The failure.
        #[source]
        source: ClientError,
    },
    /// Something did not happen in time.
    #[error("{0}")]
    Timeout(String),
    /// A signal ended the run.
    #[error("{0}")]
    Interrupted(&'static str),
}

/// Fewest nodes.
pub const MIN_NODES: usize = 2;
/// Most nodes.
pub const MAX_NODES: usize = 64;

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> DevnetError + 'a {
    move |source| DevnetError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

fn api_err(index: usize) -> impl FnOnce(ClientError) -> DevnetError {
    move |source| DevnetError::Api { index, source }
}

/// Flags of `stratad devnet`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevnetArgs {
    /// How many nodes (2-64).
    #[arg(long, default_value_t = 5)]
    pub nodes: usize,
    /// Records to write, spread over the nodes.
    #[arg(long, default_value_t = 20)]
    pub records: usize,
    /// Messages to publish, spread over the nodes.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Keep the nodes' data directories here instead of a temporary folder.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Seconds the network has to converge before the run fails.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

/// The progress bars' layout.
const BAR_TEMPLATE: &str = "{prefix:>8} {bar:30.cyan/blue} {pos:>4}/{len:4} {msg}";
/// How long a node may take to start or to stop.
const NODE_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between two looks at the nodes.
const POLL: Duration = Duration::from_millis(50);
/// How long receipts may trail convergence.
const RECEIPT_GRACE: Duration = Duration::from_secs(5);

/// One child daemon.
struct Node {
    dir: PathBuf,
    child: Child,
    client: Client,
    p2p: SocketAddr,
}

/// The children; whatever is still running when this is dropped is killed.
#[derive(Default)]
struct Nodes(Vec<Node>);

impl Drop for Nodes {
    fn drop(&mut self) {
        for node in &mut self.0 {
            if matches!(node.child.try_wait(), Ok(None)) {
                let _ = node.child.kill();
            }
            let _ = node.child.wait();
        }
    }
}

/// Runs the devnet; `Ok` when it converged and every node stopped.
pub fn run(args: &DevnetArgs) -> Result<(), DevnetError> {
    if !(MIN_NODES..=MAX_NODES).contains(&args.nodes) {
        return Err(DevnetError::Nodes(args.nodes));
    }
    let temp;
    let root = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("strata-devnet-")
                .tempdir()
                .map_err(io_err(
                    "cannot create a temporary folder in",
                    &std::env::temp_dir(),
                ))?;
            temp.path().to_owned()
        }
    };
    let runtime =
        strata_io::runtime(Some(2)).map_err(io_err("cannot start the runtime in", &root))?;
    let mut nodes = Nodes::default();
    let result = runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(io_err("cannot handle SIGTERM in", &root))?;
        tokio::select! {
            result = devnet(args, &root, &mut nodes) => result,
            _ = tokio::signal::ctrl_c() => Err(DevnetError::Interrupted("interrupted")),
            _ = term.recv() => Err(DevnetError::Interrupted("terminated")),
        }
    });
    runtime.block_on(stop_all(&mut nodes));
    drop(nodes);
    match &result {
        Ok(()) => {}
        Err(_) if args.dir.is_none() => {
            eprintln!("devnet: the nodes' logs were in {}", root.display());
        }
        Err(_) => eprintln!(
            "devnet: the nodes' logs are in {}/node*/stratad.log",
            root.display()
        ),
    }
    result
}

fn stratad() -> Result<PathBuf, DevnetError> {
    std::env::current_exe().map_err(io_err(
        "cannot find the stratad binary",
        Path::new("stratad"),
    ))
}

/// Starts one node and waits until it has written its addresses.
async fn start_node(root: &Path, index: usize, extra: &[String]) -> Result<Node, DevnetError> {
    let dir = root.join(format!("node{index}"));
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    datadir::remove_runtime(&dir);
    let log_path = dir.join("stratad.log");
    let log = std::fs::File::create(&log_path).map_err(io_err("cannot create", &log_path))?;
    let program = stratad()?;
    let mut child = Command::new(&program)
        .arg("--data-dir")
        .arg(&dir)
        .arg("start")
        .args(["--p2p-listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"])
        .args(["--local-network", "--log-filter", "info"])
        .args([
            "--set",
            "p2p.max_per_ip=256",
            "--set",
            "p2p.timed_sync_secs=1",
        ])
        .args(["--set", "store.durability=\"nosync\""])
        .args(extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(io_err("cannot start", &program))?;
    let deadline = Instant::now() + NODE_TIMEOUT;
    let info = loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            return Err(DevnetError::Exited { index, status, log });
        }
        if let Some(info) = datadir::read_runtime(&dir)
            && info.pid == child.id()
        {
            break info;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DevnetError::Timeout(format!(
                "node {index} did not start within {NODE_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(POLL).await;
    };
    let client = match Client::locate(&dir, Some(info.api), None) {
        Ok(client) => client,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(api_err(index)(e));
        }
    };
    let Some(p2p) = info.p2p.first().copied() else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(DevnetError::Timeout(format!(
            "node {index} listens on no p2p address"
        )));
    };
    Ok(Node {
        dir,
        child,
        client,
        p2p,
    })
}

/// Asks every node to stop, waits for them, kills the ones that do not
/// exit in time.
async fn stop_all(nodes: &mut Nodes) {
    for node in &nodes.0 {
        let _ = node.client.call(Method::POST, "/v1/stop", None).await;
    }
    let deadline = Instant::now() + NODE_TIMEOUT;
    for node in &mut nodes.0 {
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    eprintln!(
                        "devnet: {} did not stop in time; killing it",
                        node.dir.display()
                    );
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => tokio::time::sleep(POLL).await,
            }
        }
    }
}

/// A message's arrival at a node.
struct Arrival {
    node: usize,
    id: String,
    latency_us: u64,
}

/// The value at `per_mille` thousandths of `sorted` (nearest rank).
fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank: the smallest value with at least p% of them at or below.
    let len = sorted.len();
    let rank = (len * per_mille).div_ceil(1000);
    sorted[rank.clamp(1, len) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

async fn devnet(args: &DevnetArgs, root: &Path, nodes: &mut Nodes) -> Result<(), DevnetError> {
    let n = args.nodes;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(BAR_TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let started = Instant::now();

    // Start node 0, then the others with node 0 as their seed. Each also
    // keeps node 0 and its predecessor as peers, so the network is
    // connected whatever the address book draws.
    let boot = bars.add(ProgressBar::new(n as u64));
    boot.set_style(style.clone());
    boot.set_prefix("start");
    boot.set_message("starting nodes");
    nodes.0.push(start_node(root, 0, &[]).await?);
    boot.inc(1);
    let seed = nodes.0[0].p2p.to_string();
    for i in 1..n {
        let mut extra = vec![
            "--seed".to_owned(),
            seed.clone(),
            "--peer".into(),
            seed.clone(),
        ];
        if i >= 2 {
            extra.push("--peer".into());
            extra.push(nodes.0[i - 1].p2p.to_string());
        }
        nodes.0.push(start_node(root, i, &extra).await?);
        boot.inc(1);
    }
    boot.finish_with_message(format!(
        "{n} nodes started in {:.1} s",
        started.elapsed().as_secs_f64()
    ));

    // Wait until every node has a ready peer.
    let connect = bars.add(ProgressBar::new(n as u64));
    connect.set_style(style.clone());
    connect.set_prefix("connect");
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let mut connected = 0;
        for (i, node) in nodes.0.iter().enumerate() {
            let status = node
                .client
                .call(Method::GET, "/v1/status", None)
                .await
                .map_err(api_err(i))?;
            let peers = status["peers"]["inbound"].as_u64().unwrap_or(0)
                + status["peers"]["outbound"].as_u64().unwrap_or(0);
            if peers > 0 {
                connected += 1;
            }
        }
        connect.set_position(connected);
        if connected == n as u64 {
            break;
        }
        if Instant::now() > deadline {
            return Err(DevnetError::Timeout(format!(
                "only {connected} of {n} nodes have a peer after {}s",
                args.timeout
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    connect.finish_with_message("every node has a peer");

    // Follow every node's messages.
    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel::<Arrival>();
    let (live_tx, mut live) = mpsc::unbounded_channel::<()>();
    let mut followers = Vec::new();
    for (i, node) in nodes.0.iter().enumerate() {
        let client = node.client.clone();
        let tx = arrivals_tx.clone();
        let live_tx = live_tx.clone();
        followers.push(tokio::spawn(async move {
            let _ = client
                .lines("/v1/subscribe", |line| {
                    if line.get("subscribed").is_some() {
                        let _ = live_tx.send(());
                        return true;
                    }
                    let (Some(sent), Some(received), Some(id)) = (
                        line["sent_at_us"].as_u64(),
                        line["received_at_us"].as_u64(),
                        line["id"].as_str(),
                    ) else {
                        return true;
                    };
                    tx.send(Arrival {
                        node: i,
                        id: id.to_owned(),
                        latency_us: received.saturating_sub(sent),
                    })
                    .is_ok()
                })
                .await;
        }));
    }
    drop(arrivals_tx);
    for _ in 0..n {
        tokio::time::timeout(NODE_TIMEOUT, live.recv())
            .await
            .map_err(|_| DevnetError::Timeout("a node's subscription did not start".into()))?;
    }

    // Write records and publish messages round-robin.
    let record_bars: Vec<ProgressBar> = (0..n)
        .map(|i| {
            let bar = bars.add(ProgressBar::new(args.records as u64));
            bar.set_style(style.clone());
            bar.set_prefix(format!("node{i}"));
            bar
        })
        .collect();
    let publish_start = Instant::now();
    let mut expected_messages = vec![0usize; n];
    let mut published = 0;
    let rounds = args.records.max(args.messages);
    for r in 0..rounds {
        let i = r % n;
        let client = &nodes.0[i].client;
        if r < args.records {
            let body = json!({ "key": format!("devnet/{r}"), "value": format!("record {r} from node {i}") });
            client
                .call(Method::POST, "/v1/records", Some(&body))
                .await
                .map_err(api_err(i))?;
        }
        if r < args.messages {
            let body = json!({ "data": format!("message {r} from node {i}") });
            client
                .call(Method::POST, "/v1/publish", Some(&body))
                .await
                .map_err(api_err(i))?;
            published += 1;
            for (j, e) in expected_messages.iter_mut().enumerate() {
                if j != i {
                    *e += 1;
                }
            }
        }
    }

    // Until every node has every record and every message.
    let table = bars.add(ProgressBar::new_spinner());
    table.set_style(
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    let mut latencies: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut seen: Vec<HashMap<String, ()>> = vec![HashMap::new(); n];
    let mut converged_at = None;
    let mut records_on = vec![0u64; n];
    while converged_at.is_none() {
        while let Ok(a) = arrivals.try_recv() {
            if seen[a.node].insert(a.id, ()).is_none() {
                latencies[a.node].push(a.latency_us);
            }
        }
        for (i, node) in nodes.0.iter().enumerate() {
            let status = node
                .client
                .call(Method::GET, "/v1/status", None)
                .await
                .map_err(api_err(i))?;
            records_on[i] = status["store"]["records"].as_u64().unwrap_or(0);
            record_bars[i].set_position(records_on[i]);
            record_bars[i].set_message(format!(
                "records, {}/{} messages",
                latencies[i].len(),
                expected_messages[i]
            ));
        }
        table.set_message(live_table(&latencies, &expected_messages));
        let records_done = records_on.iter().all(|r| *r >= args.records as u64);
        let messages_done = (0..n).all(|i| latencies[i].len() >= expected_messages[i]);
        if records_done && messages_done {
            converged_at = Some(publish_start.elapsed());
            break;
        }
        if Instant::now() > deadline {
            table.finish();
            return Err(DevnetError::Timeout(format!(
                "the network did not converge within {}s: records per node {:?} of {}, \
                 messages per node {:?} of {:?}",
                args.timeout,
                records_on,
                args.records,
                latencies.iter().map(Vec::len).collect::<Vec<_>>(),
                expected_messages
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    for bar in &record_bars {
        bar.finish();
    }
    table.finish_with_message(live_table(&latencies, &expected_messages));

    // Receipts trail the records by a round trip.
    let expected_receipts = (args.records * (n - 1)) as u64;
    let receipts_deadline = Instant::now() + RECEIPT_GRACE;
    let mut receipts;
    loop {
        receipts = 0;
        for (i, node) in nodes.0.iter().enumerate() {
            let status = node
                .client
                .call(Method::GET, "/v1/status", None)
                .await
                .map_err(api_err(i))?;
            receipts += status["deliveries"]["receipts"].as_u64().unwrap_or(0);
        }
        if receipts >= expected_receipts || Instant::now() > receipts_deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    for follower in followers {
        follower.abort();
    }
    let _ = bars.clear();

    let mut all: Vec<u64> = latencies.iter().flatten().copied().collect();
    all.sort_unstable();
    let converged = converged_at.unwrap_or_default();
    println!("devnet summary");
    match &args.dir {
        Some(dir) => println!("  nodes                {n} (data in {})", dir.display()),
        None => println!("  nodes                {n}"),
    }
    println!(
        "  records              {} written, {} on every node",
        args.records, args.records
    );
    println!(
        "  messages             {published} published, {} deliveries",
        all.len()
    );
    println!("  propagation p50      {}", ms(percentile(&all, 500)));
    println!("  propagation p99      {}", ms(percentile(&all, 990)));
    println!(
        "  propagation max      {}",
        ms(all.last().copied().unwrap_or(0))
    );
    println!(
        "  converged in         {:.3} s after the first write",
        converged.as_secs_f64()
    );
    println!("  receipts collected   {receipts} of {expected_receipts}");
    println!(
        "  total run            {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The live table: per node, messages received and their propagation.
fn live_table(latencies: &[Vec<u64>], expected: &[usize]) -> String {
    let mut out = String::from("node    messages   p50        p99        max");
    for (i, l) in latencies.iter().enumerate() {
        let mut sorted = l.clone();
        sorted.sort_unstable();
        out.push_str(&format!(
            "\nnode{i:<3} {:>4}/{:<4}  {:<10} {:<10} {}",
            sorted.len(),
            expected[i],
            ms(percentile(&sorted, 500)),
            ms(percentile(&sorted, 990)),
            ms(sorted.last().copied().unwrap_or(0)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 500), 50);
        assert_eq!(percentile(&v, 990), 99);
        assert_eq!(percentile(&[7], 990), 7);
        assert_eq!(percentile(&[], 500), 0);
    }
}
