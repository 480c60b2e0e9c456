//! The examples build and run: a chat with a handler of its own over the
//! node's driver, and the node over a transport of its own.

use std::process::Command;

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(strata_testkit::example(env!("CARGO_PKG_NAME"), name))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn the_chat_passes_valid_lines_on_and_stops_a_malformed_one() {
    let out = run("chat", &[]);
    for line in [
        "[carol] <alice> hello, everyone",
        "[bob] refused a message from 127.0.0.11:",
        "the text is not UTF-8",
        "alice's address 127.0.0.11 now has a misbehaviour score of 10",
        "[alice] <carol> hi alice",
        "done: every line reached everyone; the malformed one stopped at bob",
    ] {
        assert!(out.contains(line), "`{line}` missing:\n{out}");
    }
    // Only bob saw the malformed line.
    assert_eq!(out.matches("refused a message").count(), 1, "{out}");
}

#[test]
fn the_node_runs_over_a_pipe_and_a_unix_socket_pair() {
    for (args, transport) in [
        (&[][..], "tokio::io::duplex"),
        (&["--unix"][..], "a Unix socket pair"),
    ] {
        let out = run("duplex", args);
        for line in [
            transport,
            "left: handshake done",
            "right: handshake done",
            "right: heard \"hello from the left\"",
            "left: heard \"hello from the right\"",
            "left: round trip over the pipe",
            "right: the pipe closed",
            "done",
        ] {
            assert!(out.contains(line), "{args:?}: `{line}` missing:\n{out}");
        }
    }
}
