//! The systemd unit and the Debian package's pieces in `contrib/`.
//!
//! `systemd-analyze` (Debian package `systemd`, which `cargo xtask test`
//! installs) checks the unit; without it those tests fail, unless
//! `STRATA_SKIP_SYSTEMD=1`. The hardening keys are checked without it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::STRATAD;

/// Exposure `systemd-analyze security` may give the unit, in tenths, from
/// 0 (locked down) to 100 (none). systemd 252 scores it 11; without its
/// system call filter 15, without its empty capability set 28: either
/// fails. `systemd_unit_is_hardened` checks the keys one by one.
const MAX_EXPOSURE: u32 = 14;

fn contrib() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib")
}

fn unit_text() -> String {
    std::fs::read_to_string(contrib().join("stratad.service")).unwrap()
}

/// The unit's `[Service]` keys and their values (a key given twice keeps
/// every value).
fn service_keys(text: &str) -> HashMap<String, Vec<String>> {
    let mut keys: HashMap<String, Vec<String>> = HashMap::new();
    let mut section = "";
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name;
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
        if section == "Service" {
            keys.entry(key.trim().to_owned())
                .or_default()
                .push(value.trim().to_owned());
        }
    }
    keys
}

#[test]
fn systemd_unit_is_hardened() {
    let keys = service_keys(&unit_text());
    let expect = [
        ("User", "stratad"),
        ("Group", "stratad"),
        ("StateDirectory", "stratad"),
        ("StateDirectoryMode", "0700"),
        ("ReadWritePaths", "/var/lib/stratad"),
        ("Environment", "STRATA_DATA_DIR=/var/lib/stratad"),
        ("ExecStart", "stratad start"),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateUsers", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallFilter", "~@privileged @resources"),
        ("UMask", "0077"),
    ];
    for (key, value) in expect {
        let values = keys.get(key).map(Vec::as_slice).unwrap_or_default();
        assert!(
            values.iter().any(|v| v == value),
            "[Service] {key}={value} missing (found {values:?})"
        );
    }
    // One writable path: the data directory.
    assert_eq!(keys["ReadWritePaths"].len(), 1);
}

fn skip_systemd() -> bool {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return false;
    }
    assert!(
        std::env::var_os("STRATA_SKIP_SYSTEMD").is_some_and(|v| v == "1"),
        "systemd-analyze is not installed (Debian package `systemd`; \
         `cargo xtask test` installs it): set STRATA_SKIP_SYSTEMD=1 to skip"
    );
    true
}

/// The unit with its bare `ExecStart=stratad` pointed at the binary under
/// test (systemd-analyze checks that the command exists), in a folder of
/// its own.
fn unit_to_check() -> (tempfile::TempDir, PathBuf) {
    let text = unit_text();
    assert_eq!(text.matches("\nExecStart=stratad ").count(), 1);
    let text = text.replace("\nExecStart=stratad ", &format!("\nExecStart={STRATAD} "));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stratad.service");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn systemd_analyze_verifies_the_unit_without_a_warning() {
    if skip_systemd() {
        return;
    }
    let (_dir, unit) = unit_to_check();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // A key systemd does not know, or a value it cannot parse, is only a
    // warning: the unit must draw none.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("stratad.service"))
        .collect();
    assert!(about_unit.is_empty(), "{stderr}");
}

#[test]
fn systemd_analyze_security_scores_the_unit_low() {
    if skip_systemd() {
        return;
    }
    let (_dir, unit) = unit_to_check();
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(format!("--threshold={MAX_EXPOSURE}"))
        .arg(&unit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let overall = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score: {stdout}{}", String::from_utf8_lossy(&out.stderr)));
    println!("{overall}");
    assert!(
        out.status.success(),
        "exposure above {MAX_EXPOSURE}/100: {overall}\n{stdout}"
    );
}

#[test]
fn debian_package_ships_the_binary_the_unit_and_the_user() {
    let manifest: toml::Table =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    assert_eq!(deb["name"].as_str(), Some("stratad"));
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let assets = deb["assets"].as_array().unwrap();
    let mut targets = Vec::new();
    for asset in assets {
        let asset = asset.as_array().unwrap();
        let source = asset[0].as_str().unwrap();
        targets.push(asset[1].as_str().unwrap().to_owned());
        // Built files come from the target directory; the rest must be here.
        if !source.starts_with("target/") {
            assert!(crate_dir.join(source).is_file(), "asset {source} missing");
        }
    }
    assert!(targets.iter().any(|t| t == "usr/bin/"), "{targets:?}");

    // The unit comes from contrib/ by its package name.
    let units = &deb["systemd-units"];
    let unit_dir = crate_dir.join(units["unit-scripts"].as_str().unwrap());
    assert!(unit_dir.join("stratad.service").is_file());
    let scripts = crate_dir.join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(postinst.contains("#DEBHELPER#"));
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(
        postinst.contains("install -d -m 0700 -o stratad -g stratad /var/lib/stratad"),
        "{postinst}"
    );
    // dpkg runs it: it must be executable and parse as sh.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = scripts
            .join("postinst")
            .metadata()
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "postinst is not executable");
    }
    let parsed = Command::new("sh")
        .arg("-n")
        .arg(scripts.join("postinst"))
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
}

/// Runs the postinst as dpkg would (`postinst configure`) with the commands
/// it calls replaced by stand-ins that log their arguments, so that nothing
/// on this machine changes; `user_exists` is what `getent` answers.
fn run_postinst(user_exists: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    for (command, status) in [
        ("getent", if user_exists { 0 } else { 2 }),
        ("adduser", 0),
        ("install", 0),
    ] {
        let path = dir.path().join(command);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{command} $*\" >> '{}'\nexit {status}\n",
                log.display()
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let out = Command::new("/bin/sh")
        .arg(contrib().join("debian/postinst"))
        .arg("configure")
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "postinst configure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn postinst_creates_the_user_once_and_a_private_data_directory() {
    let first = run_postinst(false);
    assert_eq!(
        first,
        [
            "getent passwd stratad",
            "adduser --system --group --home /var/lib/stratad --no-create-home stratad",
            "install -d -m 0700 -o stratad -g stratad /var/lib/stratad",
        ]
    );
    // On an upgrade the user exists: it is left alone, the directory's
    // owner and mode are set again.
    let again = run_postinst(true);
    assert_eq!(
        again,
        [
            "getent passwd stratad",
            "install -d -m 0700 -o stratad -g stratad /var/lib/stratad",
        ]
    );
}
