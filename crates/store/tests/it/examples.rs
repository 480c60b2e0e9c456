//! The `records` example, run as a program on a store in a temporary
//! directory.

use std::process::Command;

#[test]
fn records_example_stores_lists_and_checks_signed_records() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(strata_testkit::example(env!("CARGO_PKG_NAME"), "records"))
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "/greeting v1: inserted",
        "/motto v1: inserted",
        "/greeting v2: replaced the older version",
        "/greeting v1: stale: a higher version is stored",
        "/greeting v3 (altered after signing): refused: signature does not verify",
        "/greeting v2: replaced the older version",
        "/greeting v2 = \"hello again\"",
        "/motto v1 = \"correct first\"",
        "put_own 8139770e/greeting v2: replaced the older version",
        "reopened: 3 records, integrity checked, every signature verified",
    ] {
        assert!(stdout.contains(expected), "no `{expected}` in:\n{stdout}");
    }
    // The store is really on disk, in the directory given.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_some());
}
