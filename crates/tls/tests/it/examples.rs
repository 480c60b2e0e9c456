//! The `echo` example, run as a program: its server and its client
//! authenticate each other by key on loopback.

use std::process::Command;

#[test]
fn echo_example_authenticates_both_sides_and_refuses_a_wrong_pin() {
    let out = Command::new(strata_testkit::example(env!("CARGO_PKG_NAME"), "echo"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_of = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in:\n{stdout}"))
            .to_owned()
    };
    let server = key_of("server key ");
    let client = key_of("client key ");
    assert_eq!(server.len(), 64);
    assert_ne!(server, client);
    // Each side saw the other's key, proven in the handshake.
    assert!(
        stdout.contains(&format!("the server proved key {server}")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("proved key {client}")), "{stdout}");
    for line in ["hello", "from a pinned client", "bye"] {
        assert!(
            stdout.contains(&format!("sent {line:?}, got back {line:?}")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("refused (the peer proved another key than the one expected)"),
        "{stdout}"
    );
}
