//! The `dump` example, run as a program: its own sample and a frame
//! captured from monerod, printed as trees of typed values.

use std::process::{Command, Output};

use crate::vectors_dir;

fn dump(args: &[&str]) -> Output {
    Command::new(strata_testkit::example(env!("CARGO_PKG_NAME"), "dump"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = dump(args);
    assert!(
        out.status.success(),
        "dump {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dump_example_prints_its_sample_as_a_tree() {
    let out = stdout_of(&[]);
    for line in [
        "92 bytes, 3 entries",
        "  node_data: section of 2",
        "    my_port: u32 28080",
        "    network_id: string of 16 bytes 1230f171610441611731008216a1a111",
        "  peer_id: u64 6292163459517862995",
        "  status: string \"OK\"",
        "re-encoded: the same bytes",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
}

#[test]
fn dump_example_prints_a_handshake_monerod_sent() {
    let frame = vectors_dir().join("testnet/handshake_response.hex");
    let out = stdout_of(&[frame.to_str().unwrap()]);
    for line in [
        "a Levin frame: skipping its 33-byte header",
        "  local_peerlist_new: array of 2 sections",
        "          m_ip: u32 16908480",
        "      id: u64 11828940163297039520",
        "    network_id: string of 16 bytes 1230f171610441611731008216a1a111",
        "    top_version: u8 1",
        "re-encoded: the same bytes",
    ] {
        assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
    }
}

#[test]
fn dump_example_refuses_what_is_not_hex() {
    let readme = vectors_dir().join("README.md");
    let out = dump(&[readme.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("dump: not hex"), "{stderr}");
}
