//! `docs/tutorial.md`, run: the commands of its steps 2 to 5 as the page
//! writes them (a free port in place of each fixed one, a scratch directory
//! in place of its folder), by `sh`, with the `stratad` this build made
//! first on the `PATH` (step 1 builds it); what the page says they print is
//! checked. A command the page no longer has fails the test, so the page
//! and this test change together.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use strata_testkit::free_port;

use crate::common::{CONVERGE_TIMEOUT, START_TIMEOUT, STRATAD, Scope, bounded, cli, http, poll};

const TUTORIAL: &str = include_str!("../../../../docs/tutorial.md");

/// The page's folder.
const FOLDER: &str = "/tmp/strata-tutorial";

/// The commands of the page's code blocks, a line ending in `\` joined to
/// the next.
fn documented_commands() -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut pending = String::new();
    for line in TUTORIAL.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if !in_block {
            continue;
        }
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head.trim_end());
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                commands.push(std::mem::take(&mut pending));
            }
        }
    }
    commands
}

/// The page's fixed addresses and the free ones used instead.
struct Ports(Vec<(String, String)>);

impl Ports {
    fn new() -> Ports {
        let mut pairs = Vec::new();
        for last in 2..=4u8 {
            let ip = Ipv4Addr::new(127, 0, 0, last);
            pairs.push((format!("{ip}:7710"), format!("{ip}:{}", free_port(ip))));
        }
        for port in 7721..=7723 {
            pairs.push((
                format!("127.0.0.1:{port}"),
                format!("127.0.0.1:{}", free_port(Ipv4Addr::LOCALHOST)),
            ));
        }
        Ports(pairs)
    }

    /// `command` with the free addresses in place of the page's.
    fn apply(&self, command: &str) -> String {
        self.0
            .iter()
            .fold(command.to_owned(), |c, (page, free)| c.replace(page, free))
    }

    /// The free address in place of the page's `page`.
    fn of(&self, page: &str) -> SocketAddr {
        let (_, free) = self.0.iter().find(|(p, _)| p == page).unwrap();
        free.parse().unwrap()
    }
}

/// Kills, when dropped (a failed check), the daemons of these data
/// directories that still run: those whose `stratad.json` is still there.
struct Leftovers(Vec<(std::path::PathBuf, u32)>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for (info, pid) in &self.0 {
            if info.exists() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
    }
}

/// A child process, killed if still running when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The tutorial's shell: its folder, `stratad` first on the `PATH`.
struct Shell<'a> {
    dir: &'a Path,
    ports: &'a Ports,
    documented: Vec<String>,
}

impl Shell<'_> {
    /// `command` as the page writes it, ready for `sh -c`: it must be on the
    /// page.
    fn command(&self, command: &str) -> Command {
        self.command_with(command, "", "")
    }

    /// As [`Shell::command`], with `word` (a placeholder of the page)
    /// replaced by `value`.
    fn command_with(&self, command: &str, word: &str, value: &str) -> Command {
        assert!(
            self.documented.iter().any(|c| c == command),
            "docs/tutorial.md no longer has `{command}`"
        );
        let bin = Path::new(STRATAD).parent().unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![bin.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        let mut text = self.ports.apply(command);
        if !word.is_empty() {
            text = text.replace(word, value);
        }
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(text)
            .current_dir(self.dir)
            .env("PATH", std::env::join_paths(paths).unwrap())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        sh
    }

    /// Runs `command` to its end.
    fn run(&self, command: &str) -> Output {
        self.command(command).output().unwrap()
    }

    /// Runs `command` to its end; its standard output, which must be a
    /// success.
    fn ok(&self, command: &str) -> String {
        let out = self.run(command);
        assert!(
            out.status.success(),
            "`{command}`: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `command` until its output contains `want`.
    fn until(&self, command: &str, want: &str) -> String {
        poll(
            CONVERGE_TIMEOUT,
            &format!("`{want}` from `{command}`"),
            || {
                let out = self.run(command);
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                stdout.contains(want).then_some(stdout)
            },
        )
    }

    /// Runs a `stratad start … &` of the page; returns once the daemon of
    /// data directory `name` runs, its process noted in `scope` and in
    /// `leftovers`.
    fn start(&self, scope: &Scope, leftovers: &mut Leftovers, name: &str, command: &str) {
        let status = self
            .command(command)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "`{command}`: {status}");
        let info = self.dir.join(name).join("stratad.json");
        let pid = poll(START_TIMEOUT, &format!("{name} to start"), || {
            let text = std::fs::read_to_string(&info).ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json["pid"].as_u64()
        });
        let pid = u32::try_from(pid).unwrap();
        scope.register_pid(pid);
        leftovers.0.push((info, pid));
    }
}

#[test]
fn the_tutorial_runs_as_written() {
    bounded(Duration::from_secs(240), |scope| {
        let root = tempfile::tempdir().unwrap();
        let ports = Ports::new();
        let sh = Shell {
            dir: root.path(),
            ports: &ports,
            documented: documented_commands(),
        };
        // The page's own folder stands for the scratch directory.
        let mkdir = format!("mkdir -p {FOLDER} && cd {FOLDER}");
        assert!(sh.documented.contains(&mkdir), "no `{mkdir}`");

        // 2. Three nodes.
        let mut leftovers = Leftovers(Vec::new());
        sh.start(
            &scope,
            &mut leftovers,
            "alice",
            "stratad --data-dir alice start --local-network --p2p-listen 127.0.0.2:7710 \
             --set p2p.dial_from=127.0.0.2 --api-listen 127.0.0.1:7721 2> alice.log &",
        );
        sh.start(
            &scope,
            &mut leftovers,
            "bob",
            "stratad --data-dir bob start --local-network --p2p-listen 127.0.0.3:7710 \
             --set p2p.dial_from=127.0.0.3 --api-listen 127.0.0.1:7722 \
             --peer 127.0.0.2:7710 2> bob.log &",
        );
        sh.start(
            &scope,
            &mut leftovers,
            "carol",
            "stratad --data-dir carol start --local-network --p2p-listen 127.0.0.4:7710 \
             --set p2p.dial_from=127.0.0.4 --api-listen 127.0.0.1:7723 \
             --peer 127.0.0.2:7710 --peer 127.0.0.3:7710 2> carol.log &",
        );
        sh.until("stratad --data-dir carol status", "0 in, 2 out");
        let status = sh.ok("stratad --data-dir carol status");
        assert!(status.contains("in sync"), "{status}");
        let peers = poll(CONVERGE_TIMEOUT, "alice to list bob and carol", || {
            let peers = sh.ok("stratad --data-dir alice peers");
            (peers.contains("127.0.0.3:") && peers.contains("127.0.0.4:")).then_some(peers)
        });
        for ip in ["127.0.0.3:", "127.0.0.4:"] {
            let line = peers
                .lines()
                .find(|l| l.contains(ip))
                .unwrap_or_else(|| panic!("no {ip} in:\n{peers}"));
            assert!(line.contains("inbound"), "{line}");
        }
        assert!(!peers.contains("not authenticated"), "{peers}");

        // 3. A message carol watches for, and a record.
        let mut subscribe = sh
            .command("stratad --data-dir carol subscribe")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        scope.register_pid(subscribe.id());
        let (lines_tx, lines) = mpsc::channel();
        let stdout = subscribe.stdout.take().unwrap();
        let stderr = subscribe.stderr.take().unwrap();
        // Ends with carol: its daemons stopped or killed, it ends too.
        let mut subscribe = KillOnDrop(subscribe);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        // It prints `subscribed` once it is.
        let mut first = String::new();
        BufReader::new(stderr).read_line(&mut first).unwrap();
        assert_eq!(first.trim(), "subscribed");

        let put = sh.ok("stratad --data-dir alice put greeting \"hello from alice\"");
        assert!(put.starts_with("stored greeting version 1 (id "), "{put}");
        assert!(!put.contains("not published"), "{put}");
        let id = put
            .split("(id ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap()
            .to_owned();
        sh.ok("stratad --data-dir alice publish \"hi everyone\"");
        // The node keys, for the checks (not a step of the page).
        let key = |node: &str| {
            let out = cli(&root.path().join(node), &["id"]);
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let alice = key("alice");
        let line = lines.recv_timeout(CONVERGE_TIMEOUT).unwrap();
        let message: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(message["data"], "hi everyone", "{line}");
        assert_eq!(message["author"], alice.as_str(), "{line}");
        assert!(message["sent_at_us"].as_u64().is_some(), "{line}");
        assert!(message["received_at_us"].as_u64().is_some(), "{line}");

        let get = sh.until(
            "stratad --data-dir carol get greeting --author \"$(stratad --data-dir alice id)\"",
            "hello from alice",
        );
        assert_eq!(get.trim(), "hello from alice");
        sh.until(
            "stratad --data-dir bob list --author \"$(stratad --data-dir alice id)\"",
            "greeting\tv1\thello from alice",
        );
        let delivery = "stratad --data-dir alice delivery ID";
        let receipts = poll(CONVERGE_TIMEOUT, "two receipts", || {
            let out = sh
                .command_with(delivery, " ID", &format!(" {id}"))
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("2 receipt(s)").then_some(text)
        });
        for node in ["bob", "carol"] {
            assert!(receipts.contains(&key(node)), "{node}:\n{receipts}");
        }

        // 4. The dashboard's link logs in.
        let link = sh.ok("stratad --data-dir bob dashboard");
        let api = ports.of("127.0.0.1:7722");
        let path = link
            .trim()
            .strip_prefix(&format!("http://{api}"))
            .unwrap_or_else(|| panic!("{link}"));
        assert!(path.starts_with("/dashboard/login?code="), "{link}");
        let (status, _) = http(api, "GET", path, None, None);
        assert_eq!(status, 303, "the link opens a session");

        // 5. Stop.
        for node in ["alice", "bob", "carol"] {
            let out = sh.ok(&format!("stratad --data-dir {node} stop"));
            assert_eq!(out.trim(), "stopping");
        }
        for node in ["alice", "bob", "carol"] {
            let info = root.path().join(node).join("stratad.json");
            poll(START_TIMEOUT, &format!("{node} to stop"), || {
                (!info.exists()).then_some(())
            });
        }
        // The subscription ends with carol.
        let status = subscribe.0.wait().unwrap();
        assert!(status.success(), "{status}");
    });
}
