//! What the daemon refuses to do: share a data directory, or start with a
//! bad configuration.

use std::time::Duration;

use crate::common::{Daemon, bounded, cli, local_flags};

#[test]
fn a_second_daemon_on_one_data_directory_is_refused() {
    bounded(Duration::from_secs(120), |scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shared");
        let first = Daemon::start(&scope, "first", &dir, "127.0.0.1:0", &[]);
        let mut args = vec!["start", "--p2p-listen", "127.0.0.1:0"];
        let flags = local_flags();
        args.extend(flags.iter().map(String::as_str));
        let second = cli(&dir, &args);
        assert!(!second.status.success());
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(
            stderr.contains("in use by another stratad"),
            "unclear refusal: {stderr}"
        );
        assert!(
            stderr.contains(&first.child.as_ref().unwrap().id().to_string()),
            "{stderr}"
        );
        // The first daemon is untouched.
        let status = first.get_json("/v1/status");
        assert_eq!(status["node_key"], first.key.as_str());
    });
}

#[test]
fn a_bad_configuration_is_refused_naming_the_field() {
    bounded(Duration::from_secs(60), |_scope| {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        std::fs::write(dir.join("stratad.toml"), "[p2p]\noutbound = 1000\n").unwrap();
        let out = cli(dir, &["start", "--api-listen", "127.0.0.1:0"]);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("`p2p.outbound`"), "{stderr}");
        assert!(stderr.contains("stratad.toml"), "{stderr}");
        assert!(!dir.join("stratad.json").exists(), "the daemon started");
        assert!(
            !dir.join("node.key").exists(),
            "the daemon touched the directory"
        );

        std::fs::write(dir.join("stratad.toml"), "[p2p]\noutbound = \"eight\"\n").unwrap();
        let out = cli(dir, &["config"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("`p2p.outbound`"),
            "{stderr}"
        );

        std::fs::write(dir.join("stratad.toml"), "[p2p]\noutbund = 8\n").unwrap();
        let out = cli(dir, &["config"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("outbund"),
            "{stderr}"
        );

        std::fs::remove_file(dir.join("stratad.toml")).unwrap();
        let out = cli(dir, &["config", "--network", "moneroo"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("`network`"),
            "{stderr}"
        );

        let out = std::process::Command::new(crate::common::STRATAD)
            .arg("--data-dir")
            .arg(dir)
            .arg("config")
            .env("STRATA_LOG_FORMAT", "xml")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("`log.format`") && stderr.contains("STRATA_LOG_FORMAT"),
            "{stderr}"
        );

        let out = cli(dir, &["config", "--api-listen", "0.0.0.0:7711"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("`api.listen`"),
            "{stderr}"
        );

        // A good one prints every field.
        let out = cli(
            dir,
            &[
                "config",
                "--set",
                "p2p.outbound=4",
                "--network",
                "monero-testnet",
            ],
        );
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("outbound = 4"), "{text}");
        assert!(text.contains("listen = [\"0.0.0.0:28080\"]"), "{text}");
        assert!(text.contains("network = \"monero-testnet\""), "{text}");
    });
}
