//! The command line: subcommands, their flags, and how they print.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::client::{Client, ClientError};
use crate::config::{self, Config, ConfigError, Sources};
use crate::daemon::StartError;
use crate::datadir::DirError;
use crate::ping::PingError;

/// Why a command failed; printed as `stratad: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A `--set` flag without `=`.
    #[error("--set {0}: expected FIELD=VALUE")]
    BadSet(String),
    /// The configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The daemon did not start, or stopped with an error.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The running daemon could not be asked.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The data directory.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A ping failed.
    #[error(transparent)]
    Ping(#[from] PingError),
    /// The devnet failed.
    #[error("devnet: {0}")]
    Devnet(#[from] crate::devnet::DevnetError),
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A manual page was asked for a command that does not exist.
    #[error("no command `{0}`: `stratad --help` lists them")]
    NoCommand(String),
    /// Standard output is closed or full.
    #[error("writing to stdout: {0}")]
    Stdout(#[source] std::io::Error),
    /// `id` with neither a running daemon nor a key file.
    #[error("no node key in {} yet: `stratad start` creates one", .0.display())]
    NoKey(PathBuf),
}

/// The version `--version` prints: the crate's, and the git commit it was
/// built from (`unknown` when the build had no repository; see build.rs).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("STRATA_COMMIT"), ")");

/// The strata node daemon.
#[derive(Debug, Parser)]
#[command(name = "stratad", version = VERSION, about, long_about = None)]
pub struct Cli {
    /// The data directory (default: $XDG_DATA_HOME/strata or
    /// ~/.local/share/strata).
    #[arg(long, global = true, env = "STRATA_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The admin API address, for commands that talk to a running daemon
    /// (default: read from stratad.json in the data directory).
    #[arg(long, global = true, env = "STRATA_API", value_name = "ADDR")]
    pub api: Option<SocketAddr>,
    /// A file holding the admin token (default: admin.token in the data
    /// directory).
    #[arg(long, global = true, env = "STRATA_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags that set configuration fields.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// The configuration file (default: stratad.toml in the data
    /// directory, if it exists).
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Network: strata, monero-mainnet, monero-testnet or monero-stagenet.
    #[arg(long, value_name = "NAME")]
    pub network: Option<String>,
    /// P2P listen address (repeatable); port 0 picks a free port.
    #[arg(long = "p2p-listen", value_name = "ADDR")]
    pub p2p_listen: Vec<String>,
    /// A peer to stay connected to (repeatable).
    #[arg(long = "peer", value_name = "ADDR")]
    pub peers: Vec<String>,
    /// A seed node (repeatable).
    #[arg(long = "seed", value_name = "ADDR")]
    pub seeds: Vec<String>,
    /// Admin API address; port 0 picks a free port.
    #[arg(long = "api-listen", value_name = "ADDR")]
    pub api_listen: Option<String>,
    /// Treat loopback and private addresses as routable.
    #[arg(long)]
    pub local_network: bool,
    /// Log filter (RUST_LOG syntax).
    #[arg(long = "log-filter", value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Log format: text or json.
    #[arg(long = "log-format", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Sets any field: `--set p2p.outbound=4` (repeatable).
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (logs to stderr; SIGINT or SIGTERM
    /// stop it gracefully).
    Start(ConfigArgs),
    /// Print the effective configuration as commented TOML.
    Config(ConfigArgs),
    /// Stop the running daemon gracefully.
    Stop,
    /// Show version, uptime, network, key, peers, address book, store and
    /// sync state.
    Status {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// List connected peers.
    Peers {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send Levin PINGs to any peer (monerod included) and print the RTT.
    Ping {
        /// The peer's p2p address.
        addr: SocketAddr,
        /// How many pings.
        #[arg(long, short = 'c', default_value_t = 3)]
        count: usize,
        /// Seconds to wait for each answer.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// Store a record signed with the node key and publish it.
    Put {
        /// The record's key.
        key: String,
        /// The record's value.
        value: String,
        /// The version (default: the stored version plus one).
        #[arg(long)]
        version: Option<u64>,
        /// Seconds until every node drops the record (default: never).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a record of this node: a signed tombstone replaces it
    /// everywhere, and is itself collected after the store's tombstone
    /// horizon.
    Delete {
        /// The record's key.
        key: String,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print a record's value.
    Get {
        /// The record's key.
        key: String,
        /// The author's key, hex (default: this node's).
        #[arg(long)]
        author: Option<String>,
        /// Print the whole record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List an author's records.
    List {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// The author's key, hex (default: this node's).
        #[arg(long)]
        author: Option<String>,
        /// Most records.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Publish a gossip message.
    Publish {
        /// The message.
        data: String,
        /// The id of a message every node must deliver before this one
        /// (repeatable).
        #[arg(long, value_name = "ID")]
        after: Vec<String>,
    },
    /// Print gossip messages as they arrive, one JSON object per line.
    Subscribe {
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<usize>,
    },
    /// Show the delivery receipts of a record this node published.
    Delivery {
        /// The record's id (hex, as `put` prints it).
        id: String,
        /// Challenge the nodes that hold it to prove they hold its bytes
        /// now, and show who did.
        #[arg(long)]
        verify: bool,
        /// With --verify, how long to wait for proofs, in seconds (at most
        /// 60).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=60))]
        wait: u64,
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
    },
    /// Ban an IP address.
    Ban {
        /// The address.
        ip: IpAddr,
        /// For how long, in seconds (default: p2p.ban_secs).
        #[arg(long)]
        secs: Option<u64>,
    },
    /// Lift a ban.
    Unban {
        /// The address.
        ip: IpAddr,
    },
    /// Close the connection of a peer (its number, as `stratad peers`
    /// shows it); the node may dial it again: to keep it away, ban it.
    Disconnect {
        /// The peer's number.
        peer: u64,
    },
    /// Show the node's rate limits, or change them while it runs.
    Rate {
        /// Upload of all connections together, bytes per second (0: no
        /// limit).
        #[arg(long, value_name = "BYTES_PER_SEC")]
        upload: Option<u64>,
        /// Download of all connections together, bytes per second (0: no
        /// limit).
        #[arg(long, value_name = "BYTES_PER_SEC")]
        download: Option<u64>,
    },
    /// Print a one-time login link to the dashboard in a browser on this
    /// machine.
    Dashboard {
        /// Open the link with xdg-open.
        #[arg(long)]
        open: bool,
    },
    /// Print the node key (from the running daemon, else from the data
    /// directory).
    Id,
    /// Run a local network of daemons on loopback and report propagation.
    Devnet(crate::devnet::DevnetArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): stratad(1), or a command's.
    Man {
        /// The command whose page to print, as in `stratad-start(1)`.
        command: Option<String>,
    },
}

/// Gathers the configuration's sources from flags and the environment.
pub fn sources(cli_dir: Option<&PathBuf>, args: &ConfigArgs) -> Result<Sources, CliError> {
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with(config::ENV_PREFIX))
        .collect();
    let mut flags = Vec::new();
    let mut flag = |path: &str, value: toml::Value, name: &str| {
        flags.push((path.to_owned(), value, name.to_owned()));
    };
    if let Some(dir) = cli_dir {
        flag(
            "data_dir",
            toml::Value::String(dir.display().to_string()),
            "--data-dir",
        );
    }
    if let Some(n) = &args.network {
        flag("network", toml::Value::String(n.clone()), "--network");
    }
    let list = |items: &[String]| {
        toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
    };
    if !args.p2p_listen.is_empty() {
        flag("p2p.listen", list(&args.p2p_listen), "--p2p-listen");
    }
    if !args.peers.is_empty() {
        flag("p2p.peers", list(&args.peers), "--peer");
    }
    if !args.seeds.is_empty() {
        flag("p2p.seeds", list(&args.seeds), "--seed");
    }
    if let Some(a) = &args.api_listen {
        flag("api.listen", toml::Value::String(a.clone()), "--api-listen");
    }
    if args.local_network {
        flag(
            "p2p.local_network",
            toml::Value::Boolean(true),
            "--local-network",
        );
    }
    if let Some(f) = &args.log_filter {
        flag("log.filter", toml::Value::String(f.clone()), "--log-filter");
    }
    if let Some(f) = &args.log_format {
        flag("log.format", toml::Value::String(f.clone()), "--log-format");
    }
    for set in &args.set {
        let (path, value) = set
            .split_once('=')
            .ok_or_else(|| CliError::BadSet(set.clone()))?;
        let path = path.trim();
        flag(path, config::parse_value(path, value.trim()), "--set");
    }
    // The data directory decides where the default file is.
    let dir = cli_dir.cloned().unwrap_or_else(config::default_data_dir);
    let (file, file_required) = match &args.config {
        Some(file) => (Some(file.clone()), true),
        None => (Some(dir.join(config::CONFIG_FILE)), false),
    };
    Ok(Sources {
        file,
        file_required,
        env,
        flags,
    })
}

fn load_config(cli: &Cli, args: &ConfigArgs) -> Result<Config, CliError> {
    let sources = sources(cli.data_dir.as_ref(), args)?;
    Ok(config::load(&sources)?)
}

fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log.format == crate::config::LogFormat::Json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    crate::daemon::exit_on_panic();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stratad: {message}");
            ExitCode::FAILURE
        }
    }
}

fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir
        .clone()
        .unwrap_or_else(config::default_data_dir)
}

fn client(cli: &Cli) -> Result<Client, ClientError> {
    Client::locate(&data_dir(cli), cli.api, cli.token_file.as_ref())
}

fn block_on<T, E: Into<CliError>>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, CliError> {
    strata_io::runtime(None)
        .map_err(CliError::Runtime)?
        .block_on(work)
        .map_err(Into::into)
}

/// The roff manual page of stratad, or of one of its commands.
fn man_page(command: Option<&str>) -> Result<Vec<u8>, CliError> {
    let mut cli = Cli::command()
        .disable_help_subcommand(true)
        // Each page names the version it documents.
        .mut_subcommands(|c| c.version(VERSION).disable_version_flag(true));
    // Building names each command's page after its parent's:
    // `stratad-start`.
    cli.build();
    let page = match command {
        None => cli,
        Some(name) => cli
            .find_subcommand(name)
            .cloned()
            .ok_or_else(|| CliError::NoCommand(name.to_owned()))?,
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(CliError::Stdout)?;
    Ok(out)
}

/// Writes generated text to stdout; a closed pipe (`| head`) is an error,
/// not a panic.
fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn run(cli: &Cli) -> Result<(), CliError> {
    match &cli.command {
        Command::Start(args) => {
            let config = load_config(cli, args)?;
            init_logging(&config);
            Ok(crate::daemon::run(config)?)
        }
        Command::Config(args) => {
            let config = load_config(cli, args)?;
            print!("{}", config.to_commented_toml());
            Ok(())
        }
        Command::Devnet(args) => Ok(crate::devnet::run(args)?),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "stratad", &mut script);
            write_stdout(&script)
        }
        Command::Man { command } => write_stdout(&man_page(command.as_deref())?),
        Command::Ping {
            addr,
            count,
            timeout,
        } => block_on(async {
            let pongs = crate::ping::ping(*addr, *count, Duration::from_secs(*timeout)).await?;
            for (i, pong) in pongs.iter().enumerate() {
                println!(
                    "PING {addr}: seq={} status={} peer_id={:016x} rtt={:.3} ms",
                    i + 1,
                    pong.status,
                    pong.peer_id,
                    pong.rtt.as_secs_f64() * 1000.0
                );
            }
            Ok::<_, PingError>(())
        }),
        Command::Id => {
            let dir = data_dir(cli);
            if let Ok(c) = client(cli)
                && let Ok(v) = block_on(c.call(Method::GET, "/v1/id", None))
            {
                println!("{}", v["node_key"].as_str().unwrap_or(""));
                return Ok(());
            }
            match crate::datadir::read_node_key(&dir)? {
                Some(key) => {
                    println!("{}", key.public());
                    Ok(())
                }
                None => Err(CliError::NoKey(dir)),
            }
        }
        other => {
            let c = client(cli)?;
            block_on(remote(&c, other))
        }
    }
}

fn encode_query(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn remote(c: &Client, command: &Command) -> Result<(), ClientError> {
    match command {
        Command::Stop => {
            c.call(Method::POST, "/v1/stop", None).await?;
            println!("stopping");
        }
        Command::Status { json } => {
            let v = c.call(Method::GET, "/v1/status", None).await?;
            if *json {
                print_json(&v);
            } else {
                print_status(&v);
            }
        }
        Command::Peers { json } => {
            let v = c.call(Method::GET, "/v1/peers", None).await?;
            if *json {
                print_json(&v);
            } else {
                print_peers(&v);
            }
        }
        Command::Put {
            key,
            value,
            version,
            ttl,
            json,
        } => {
            let mut body = json!({ "key": key, "value": value });
            if let Some(v) = version {
                body["version"] = json!(v);
            }
            if let Some(t) = ttl {
                body["ttl_secs"] = json!(t);
            }
            let v = c.call(Method::POST, "/v1/records", Some(&body)).await?;
            if *json {
                print_json(&v);
            } else {
                println!(
                    "stored {key} version {} (id {}){}",
                    v["version"],
                    v["id"].as_str().unwrap_or(""),
                    if v["published"] == json!(true) {
                        ""
                    } else {
                        "; not published: no peers"
                    }
                );
            }
        }
        Command::Delete { key, json } => {
            let path = format!("/v1/record?key={}", encode_query(key));
            let v = c.call(Method::DELETE, &path, None).await?;
            if *json {
                print_json(&v);
            } else {
                println!(
                    "deleted {key} at version {}; the tombstone is collected at {}",
                    v["version"], v["expires"]
                );
            }
        }
        Command::Get { key, author, json } => {
            let mut path = format!("/v1/record?key={}", encode_query(key));
            if let Some(a) = author {
                path.push_str(&format!("&author={}", encode_query(a)));
            }
            let v = c.call(Method::GET, &path, None).await?;
            if *json {
                print_json(&v);
            } else if let Some(text) = v["value"].as_str() {
                println!("{text}");
            } else {
                println!("{}", v["value_hex"].as_str().unwrap_or(""));
            }
        }
        Command::List {
            prefix,
            author,
            limit,
            json,
        } => {
            let mut path = format!("/v1/records?prefix={}&limit={limit}", encode_query(prefix));
            if let Some(a) = author {
                path.push_str(&format!("&author={}", encode_query(a)));
            }
            let v = c.call(Method::GET, &path, None).await?;
            if *json {
                print_json(&v);
            } else {
                for r in v["records"].as_array().into_iter().flatten() {
                    println!(
                        "{}\tv{}\t{}",
                        r["key"]
                            .as_str()
                            .unwrap_or(r["key_hex"].as_str().unwrap_or("")),
                        r["version"],
                        r["value"]
                            .as_str()
                            .unwrap_or(r["value_hex"].as_str().unwrap_or(""))
                    );
                }
            }
        }
        Command::Publish { data, after } => {
            let v = c
                .call(
                    Method::POST,
                    "/v1/publish",
                    Some(&json!({ "data": data, "depends_on": after })),
                )
                .await?;
            println!("{}", v["id"].as_str().unwrap_or(""));
        }
        Command::Subscribe { count } => {
            let mut seen = 0usize;
            let want = *count;
            if want == Some(0) {
                return Ok(());
            }
            c.lines("/v1/subscribe", |line| {
                if line.get("subscribed").is_some() {
                    // Tell whoever reads us that the subscription is live.
                    eprintln!("subscribed");
                    return true;
                }
                println!("{line}");
                seen += 1;
                want.is_none_or(|n| seen < n)
            })
            .await?;
        }
        Command::Delivery {
            id,
            verify,
            wait,
            json,
        } => {
            let v = if *verify {
                let ms = wait.saturating_mul(1000);
                c.call(
                    Method::POST,
                    &format!("/v1/delivery/{}/verify?wait_ms={ms}", encode_query(id)),
                    None,
                )
                .await?
            } else {
                c.call(
                    Method::GET,
                    &format!("/v1/delivery/{}", encode_query(id)),
                    None,
                )
                .await?
            };
            if *json {
                print_json(&v);
            } else {
                println!(
                    "record {} ({} v{}): {} receipt(s)",
                    v["record"].as_str().unwrap_or(""),
                    v["key"].as_str().unwrap_or(""),
                    v["version"],
                    v["count"]
                );
                let proved: Vec<&str> = v["proved"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let challenged = v["challenged"].as_bool().unwrap_or(false);
                for r in v["receipts"].as_array().into_iter().flatten() {
                    let receiver = r["receiver"].as_str().unwrap_or("");
                    let mark = match (challenged, proved.contains(&receiver)) {
                        (false, _) => "",
                        (true, true) => "  proved",
                        (true, false) => "  not proved",
                    };
                    println!(
                        "  {receiver}  after {:.1} ms{mark}",
                        r["after_ms"].as_f64().unwrap_or(0.0)
                    );
                }
                if challenged {
                    println!("{} of them proved holding it", proved.len());
                }
            }
        }
        Command::Ban { ip, secs } => {
            let mut body = json!({ "ip": ip.to_string() });
            if let Some(s) = secs {
                body["secs"] = json!(s);
            }
            let v = c.call(Method::POST, "/v1/ban", Some(&body)).await?;
            println!("banned {} for {} s", ip, v["secs"]);
        }
        Command::Unban { ip } => {
            c.call(
                Method::POST,
                "/v1/unban",
                Some(&json!({ "ip": ip.to_string() })),
            )
            .await?;
            println!("unbanned {ip}");
        }
        Command::Disconnect { peer } => {
            c.call(
                Method::POST,
                "/v1/disconnect",
                Some(&json!({ "peer": peer })),
            )
            .await?;
            println!("disconnected peer {peer}");
        }
        Command::Rate { upload, download } => {
            let v = if upload.is_none() && download.is_none() {
                c.call(Method::GET, "/v1/rates", None).await?
            } else {
                let mut body = json!({});
                if let Some(rate) = upload {
                    body["upload_rate"] = json!(rate);
                }
                if let Some(rate) = download {
                    body["download_rate"] = json!(rate);
                }
                c.call(Method::POST, "/v1/rates", Some(&body)).await?
            };
            let show = |field: &str| match v[field].as_u64() {
                Some(0) | None => "no limit".to_owned(),
                Some(rate) => format!("{rate} bytes/s"),
            };
            println!("upload    {}", show("upload_rate"));
            println!("download  {}", show("download_rate"));
        }
        Command::Dashboard { open } => {
            let v = c.call(Method::POST, "/v1/dashboard/login", None).await?;
            let url = v["url"].as_str().unwrap_or("");
            println!("{url}");
            eprintln!(
                "a one-time link, valid {} s: open it in a browser on this machine",
                v["expires_in_secs"]
            );
            if *open {
                open_in_browser(url);
            }
        }
        Command::Start(_)
        | Command::Config(_)
        | Command::Devnet(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Ping { .. }
        | Command::Id => {}
    }
    Ok(())
}

/// Opens `url` with xdg-open when there is one; says so when not.
fn open_in_browser(url: &str) {
    let launched = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Err(e) = launched {
        eprintln!("cannot run xdg-open ({e}): open the link yourself");
    }
}

fn print_status(v: &Value) {
    let s = |p: &str| v.pointer(p).cloned().unwrap_or(Value::Null);
    let text = |p: &str| match s(p) {
        Value::String(t) => t,
        other => other.to_string(),
    };
    println!(
        "stratad {}, up {} s",
        text("/version"),
        text("/uptime_secs")
    );
    println!("network       {}", text("/network"));
    println!("node key      {}", text("/node_key"));
    let p2p: Vec<String> = s("/p2p")
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    println!("p2p           {}", p2p.join(", "));
    println!(
        "peers         {} in, {} out",
        text("/peers/inbound"),
        text("/peers/outbound")
    );
    println!(
        "address book  {} new, {} tried",
        text("/address_book/new"),
        text("/address_book/tried")
    );
    println!(
        "store         {} records ({} tombstones), {} bytes; collected: {} tombstones, {} expired",
        text("/store/records"),
        text("/store/tombstones"),
        text("/store/bytes"),
        text("/store/collected_tombstones"),
        text("/store/collected_expired")
    );
    println!(
        "sync          {} ({} records; stored from peers: {} by gossip, {} by reconciliation, {} by catch-up)",
        text("/sync/state"),
        text("/sync/records"),
        text("/sync/stored/gossip"),
        text("/sync/stored/reconciliation"),
        text("/sync/stored/catchup")
    );
    println!(
        "deliveries    {} records tracked, {} receipts",
        text("/deliveries/tracked"),
        text("/deliveries/receipts")
    );
}

fn print_peers(v: &Value) {
    println!(
        "{:>5} {:<22} {:<9} {:>9} {:>8} {:>5} {:>10} {:>10} {:>5}  KEY",
        "PEER", "ADDRESS", "DIRECTION", "RTT", "UPTIME", "UP %", "BYTES IN", "BYTES OUT", "SCORE"
    );
    for p in v["peers"].as_array().into_iter().flatten() {
        let rtt = p["rtt_ms"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}ms"));
        let observed = p["observed_uptime"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |u| format!("{:.0}%", u * 100.0));
        // Numbers as text, so that the widths apply.
        let n = |field: &str| p[field].to_string();
        println!(
            "{:>5} {:<22} {:<9} {:>9} {:>7}s {:>5} {:>10} {:>10} {:>5}  {}",
            n("peer"),
            p["address"].as_str().unwrap_or(""),
            p["direction"].as_str().unwrap_or(""),
            rtt,
            n("uptime_secs"),
            observed,
            n("bytes_in"),
            n("bytes_out"),
            n("score"),
            match (p["key"].as_str(), p["authenticated"].as_bool()) {
                (None, _) => "-".to_owned(),
                (Some(key), Some(true)) if p["pinned"] == true => format!("{key} (pinned)"),
                (Some(key), Some(true)) => key.to_owned(),
                // Claimed over plaintext: shown, but not proven.
                (Some(key), _) => format!("{key} (claimed, not authenticated)"),
            },
        );
    }
}
