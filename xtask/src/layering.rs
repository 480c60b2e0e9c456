//! The layering rules of the workspace, checked against `cargo metadata` by the tests below
//! (so they run with `cargo test`).
//!
//! The stack has two columns that meet in `strata-node`:
//!
//! ```text
//!                  strata-python        7   (the simulator's Python module)
//!   strata-daemon  6   strata-sim       6
//!                  strata-sync          5   (+ strata-store)
//!                  strata-node          4
//!   wire column                 I/O column
//!                               strata-conn     3
//!                               strata-tls      2
//!   strata-levin            1   strata-socket   1
//!   strata-portable-storage 0   strata-io       0
//! ```
//!
//! `strata-store` stands alone: it uses no strata crate.

use std::collections::{HashMap, HashSet, VecDeque};

use serde_json::Value;

/// A workspace crate and the strata crates its normal dependencies may name.
struct Layer {
    krate: &'static str,
    /// Where the crate sits in the stack, for messages.
    position: &'static str,
    may_use: &'static [&'static str],
}

const LAYERS: &[Layer] = &[
    Layer {
        krate: "strata-portable-storage-derive",
        position: "wire column, layer 0 (the derives of strata-portable-storage)",
        may_use: &[],
    },
    Layer {
        krate: "strata-portable-storage",
        position: "wire column, layer 0",
        may_use: &["strata-portable-storage-derive"],
    },
    Layer {
        krate: "strata-levin",
        position: "wire column, layer 1",
        may_use: &["strata-portable-storage-derive", "strata-portable-storage"],
    },
    Layer {
        krate: "strata-io",
        position: "I/O column, layer 0",
        may_use: &[],
    },
    Layer {
        krate: "strata-socket",
        position: "I/O column, layer 1",
        may_use: &["strata-io"],
    },
    Layer {
        krate: "strata-tls",
        position: "I/O column, layer 2",
        may_use: &["strata-io", "strata-socket"],
    },
    Layer {
        krate: "strata-conn",
        position: "I/O column, layer 3",
        may_use: &["strata-io", "strata-socket", "strata-tls"],
    },
    Layer {
        krate: "strata-node",
        position: "layer 4, on both columns",
        may_use: &[
            "strata-portable-storage-derive",
            "strata-portable-storage",
            "strata-levin",
            "strata-io",
            "strata-socket",
            "strata-tls",
            "strata-conn",
        ],
    },
    Layer {
        krate: "strata-store",
        position: "its own column, layer 0",
        may_use: &[],
    },
    Layer {
        krate: "strata-sync",
        position: "layer 5, above node and store",
        may_use: &[
            "strata-portable-storage-derive",
            "strata-portable-storage",
            "strata-levin",
            "strata-io",
            "strata-socket",
            "strata-tls",
            "strata-conn",
            "strata-node",
            "strata-store",
        ],
    },
    Layer {
        krate: "strata-daemon",
        position: "layer 6, the top",
        may_use: &[
            "strata-portable-storage-derive",
            "strata-portable-storage",
            "strata-levin",
            "strata-io",
            "strata-socket",
            "strata-tls",
            "strata-conn",
            "strata-node",
            "strata-store",
            "strata-sync",
        ],
    },
    Layer {
        krate: "strata-sim",
        position: "layer 6, beside the daemon",
        may_use: &[
            "strata-portable-storage-derive",
            "strata-portable-storage",
            "strata-levin",
            "strata-io",
            "strata-socket",
            "strata-tls",
            "strata-conn",
            "strata-node",
            "strata-store",
            "strata-sync",
        ],
    },
    Layer {
        krate: "strata-python",
        position: "layer 7, the simulator's Python module",
        may_use: &[
            "strata-portable-storage-derive",
            "strata-portable-storage",
            "strata-levin",
            "strata-io",
            "strata-socket",
            "strata-tls",
            "strata-conn",
            "strata-node",
            "strata-store",
            "strata-sync",
            "strata-sim",
        ],
    },
];

/// Workspace crates that are tooling, not part of the stack: exempt from the layer table.
const TOOLING: &[&str] = &["xtask", "strata-benches", "strata-testkit"];

/// Crates that do no I/O: their normal dependency tree must not contain [`ASYNC_RUNTIME`].
const SANS_IO: &[&str] = &[
    "strata-portable-storage-derive",
    "strata-portable-storage",
    "strata-levin",
];

/// Crates whose protocol state machine is sans-io while a driver behind their default
/// `runtime` feature is not: built with `--no-default-features`, their normal dependency tree
/// must not contain [`ASYNC_RUNTIME`].
const SANS_IO_WITHOUT_RUNTIME: &[&str] = &["strata-node", "strata-sync"];

/// The package sans-io crates must not depend on, directly or transitively.
const ASYNC_RUNTIME: &str = "tokio";

/// The source of the sans-io state machines: every file of these crates'
/// `src/` but their drivers (behind the `runtime` feature) and test files.
const MACHINE_SOURCES: &[(&str, &[&str])] = &[
    ("crates/node/src", &["driver.rs"]),
    ("crates/sync/src", &["runtime.rs"]),
];

/// What a state machine must never name: clocks, threads, files, sockets,
/// processes, the environment, the async runtime. Each is matched as a
/// whole word of the code (comments aside), so `use std::{fs, thread}` is
/// caught as well as `std::fs::read`.
const NOT_IN_MACHINES: &[&str] = &[
    "SystemTime",
    "thread",
    "fs",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "UnixStream",
    "UnixListener",
    "UnixDatagram",
    "process",
    "env",
    "tokio",
];

/// Reading the clock: `Instant::now`, matched as written.
const CLOCK_READ: &str = "Instant::now";

/// Where the architecture document lists each crate's strata dependencies.
const ARCHITECTURE: &str = "ARCHITECTURE.md";
const DEPS_BEGIN: &str = "<!-- dependencies: begin -->";
const DEPS_END: &str = "<!-- dependencies: end -->";

/// The table of each stack crate's normal strata dependencies, as the
/// architecture document shows it.
fn dependency_table(metadata: &Value) -> Result<String, String> {
    let packages = array(&metadata["packages"], "packages")?;
    let members: HashSet<&str> = array(&metadata["workspace_members"], "workspace_members")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut rows = Vec::new();
    for package in packages {
        let name = str_field(package, "name")?;
        if !members.contains(str_field(package, "id")?) || TOOLING.contains(&name) {
            continue;
        }
        let mut deps: Vec<&str> = array(&package["dependencies"], "dependencies")?
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("strata-") && !TOOLING.contains(d))
            .collect();
        deps.sort_unstable();
        deps.dedup();
        let position = LAYERS
            .iter()
            .position(|l| l.krate == name)
            .unwrap_or(usize::MAX);
        let uses = if deps.is_empty() {
            "(no strata crate)".to_owned()
        } else {
            deps.iter()
                .map(|d| format!("`{d}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push((position, format!("| `{name}` | {uses} |")));
    }
    rows.sort();
    let mut table = String::from("| crate | depends on |\n|---|---|\n");
    for (_, row) in rows {
        table.push_str(&row);
        table.push('\n');
    }
    Ok(table)
}

/// A source without its inline test module, which closes the file: the
/// text before the `#[cfg(test)]` whose item, after any attributes, is
/// `mod tests`.
fn without_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|rest| rest.find("#[cfg(test)]")) {
        let start = from + at;
        if skip_attributes(&text[start..]).starts_with("mod tests") {
            return &text[..start];
        }
        from = start + 1;
    }
    text
}

/// `text` after the attributes it starts with (`#[...]`, brackets
/// balanced, across lines).
fn skip_attributes(mut text: &str) -> &str {
    while let Some(rest) = text.trim_start().strip_prefix("#[") {
        let mut depth = 1usize;
        let end = rest.char_indices().find_map(|(i, c)| {
            match c {
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
            (depth == 0).then_some(i + 1)
        });
        let Some(end) = end else { return "" };
        text = &rest[end..];
    }
    text.trim_start()
}

/// The lines of a state machine's source that name what it must not.
fn machine_violations(root: &std::path::Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (dir, drivers) in MACHINE_SOURCES {
        let mut files = Vec::new();
        collect_rs(&root.join(dir), &mut files);
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if drivers.contains(&name) || name == "tests.rs" {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&file) else {
                problems.push(format!("[sans-io] cannot read {}", file.display()));
                continue;
            };
            let code = without_tests(&text);
            for (n, line) in code.lines().enumerate() {
                let code_part = line.split("//").next().unwrap_or("");
                let words: Vec<&str> = code_part
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .collect();
                let named = NOT_IN_MACHINES
                    .iter()
                    .filter(|banned| words.contains(banned))
                    .chain(code_part.contains(CLOCK_READ).then_some(&CLOCK_READ));
                for banned in named {
                    problems.push(format!(
                        "[sans-io] {}:{}: a state machine names `{banned}`",
                        file.strip_prefix(root).unwrap_or(&file).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    problems
}

fn collect_rs(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Checks the layering rules; returns one message per problem, each naming the check.
///
/// Errors are for metadata that does not have the expected shape.
fn check(metadata: &Value) -> Result<Vec<String>, String> {
    let packages: HashMap<&str, &Value> = array(&metadata["packages"], "packages")?
        .iter()
        .map(|package| Ok((str_field(package, "id")?, package)))
        .collect::<Result<_, String>>()?;
    let mut workspace: Vec<(&str, &Value)> =
        array(&metadata["workspace_members"], "workspace_members")?
            .iter()
            .map(|id| {
                let id = id.as_str().ok_or("a workspace member id is not a string")?;
                let package = packages
                    .get(id)
                    .ok_or_else(|| format!("workspace member `{id}` is not in `packages`"))?;
                Ok((str_field(package, "name")?, *package))
            })
            .collect::<Result<_, String>>()?;
    workspace.sort_by_key(|(name, _)| *name);
    let workspace_names: HashSet<&str> = workspace.iter().map(|(name, _)| *name).collect();

    let mut problems = Vec::new();
    for (name, package) in &workspace {
        if TOOLING.contains(name) {
            continue;
        }
        let Some(layer) = LAYERS.iter().find(|layer| layer.krate == *name) else {
            problems.push(format!(
                "[layer table] workspace crate `{name}` is not in the layer table: add it to the \
                 layer table (`LAYERS` in xtask/src/layering.rs) with the strata crates it may \
                 depend on"
            ));
            continue;
        };
        for dep in array(&package["dependencies"], "dependencies")? {
            let dep_name = str_field(dep, "name")?;
            if dep["kind"].is_null()
                && workspace_names.contains(dep_name)
                && !layer.may_use.contains(&dep_name)
            {
                let allowed = if layer.may_use.is_empty() {
                    "no strata crate".to_owned()
                } else {
                    layer.may_use.join(", ")
                };
                problems.push(format!(
                    "[layering] `{name}` ({}) depends on `{dep_name}`, which is not below it; \
                     it may depend on: {allowed}",
                    layer.position
                ));
            }
        }
    }

    for (name, package) in &workspace {
        if !SANS_IO.contains(name) {
            continue;
        }
        let id = str_field(package, "id")?;
        if let Some(path) = normal_path_to(metadata, &packages, id, ASYNC_RUNTIME)? {
            problems.push(format!(
                "[sans-io] `{name}` must not depend on {ASYNC_RUNTIME}, but its normal \
                 dependencies reach it: {}",
                path.join(" -> ")
            ));
        }
    }
    Ok(problems)
}

/// The shortest chain of package names from `root` to a package called `target`, following only
/// normal (not dev, not build) dependencies in the resolved graph.
fn normal_path_to<'a>(
    metadata: &'a Value,
    packages: &HashMap<&'a str, &'a Value>,
    root: &'a str,
    target: &str,
) -> Result<Option<Vec<&'a str>>, String> {
    let nodes: HashMap<&str, &Value> = array(&metadata["resolve"]["nodes"], "resolve.nodes")?
        .iter()
        .map(|node| Ok((str_field(node, "id")?, node)))
        .collect::<Result<_, String>>()?;
    let name_of = |id: &'a str| -> Result<&'a str, String> {
        let package = packages
            .get(id)
            .ok_or_else(|| format!("resolved package `{id}` is not in `packages`"))?;
        str_field(package, "name")
    };

    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([root]);
    while let Some(id) = queue.pop_front() {
        if id != root && name_of(id)? == target {
            let mut path = vec![name_of(id)?];
            let mut current = id;
            while let Some(&previous) = parent.get(current) {
                path.push(name_of(previous)?);
                current = previous;
            }
            path.reverse();
            return Ok(Some(path));
        }
        let node = nodes
            .get(id)
            .ok_or_else(|| format!("package `{id}` is not in `resolve.nodes`"))?;
        for dep in array(&node["deps"], "deps")? {
            let normal = array(&dep["dep_kinds"], "dep_kinds")?
                .iter()
                .any(|kind| kind["kind"].is_null());
            let dep_id = str_field(dep, "pkg")?;
            if normal && dep_id != root && !parent.contains_key(dep_id) {
                parent.insert(dep_id, id);
                queue.push_back(dep_id);
            }
        }
    }
    Ok(None)
}

fn array<'a>(value: &'a Value, what: &str) -> Result<&'a Vec<Value>, String> {
    value
        .as_array()
        .ok_or_else(|| format!("`{what}` is missing from the metadata or is not a list"))
}

fn str_field<'a>(value: &'a Value, key: &str) -> Result<&'a str, String> {
    value[key]
        .as_str()
        .ok_or_else(|| format!("`{key}` is missing from the metadata or is not a string"))
}

mod tests {
    use super::{
        ARCHITECTURE, ASYNC_RUNTIME, DEPS_BEGIN, DEPS_END, LAYERS, SANS_IO_WITHOUT_RUNTIME, check,
        dependency_table, machine_violations,
    };
    use serde_json::{Value, json};
    use std::path::Path;
    use std::process::Command;

    /// `cargo metadata` of this workspace, with the resolved dependency graph.
    fn workspace_metadata() -> Value {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let output = Command::new(cargo)
            .args([
                "metadata",
                "--format-version",
                "1",
                "--locked",
                "--manifest-path",
            ])
            .arg(&manifest)
            .output()
            .expect("run `cargo metadata`");
        assert!(
            output.status.success(),
            "`cargo metadata` failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("`cargo metadata` prints JSON")
    }

    #[test]
    fn workspace_follows_the_layering() {
        let problems = check(&workspace_metadata()).unwrap_or_else(|err| panic!("{err}"));
        assert!(
            problems.is_empty(),
            "{} layering problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        );
    }

    #[test]
    fn state_machines_build_without_the_async_runtime() {
        for krate in SANS_IO_WITHOUT_RUNTIME {
            let output = std::process::Command::new(env!("CARGO"))
                .args(["tree", "--locked", "--no-default-features", "-e", "normal"])
                .args(["--prefix", "none", "-p", krate])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .output()
                .expect("run `cargo tree`");
            assert!(
                output.status.success(),
                "`cargo tree -p {krate}` failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let tree = String::from_utf8_lossy(&output.stdout);
            let runtime = format!("{ASYNC_RUNTIME} v");
            assert!(
                !tree.lines().any(|line| line.starts_with(&runtime)),
                "[sans-io] `{krate}` built with --no-default-features depends on \
                 {ASYNC_RUNTIME}:\n{tree}"
            );
        }
    }

    #[test]
    fn state_machines_read_no_clock_and_touch_no_thread_file_or_socket() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let problems = machine_violations(&root);
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_sans_io_check_sees_grouped_imports_and_clock_reads_but_not_test_modules() {
        let root = std::env::temp_dir().join(format!("strata-layering-{}", std::process::id()));
        let src = root.join("crates/node/src");
        std::fs::create_dir_all(&src).expect("make a scratch crate");
        std::fs::create_dir_all(root.join("crates/sync/src")).expect("make a scratch crate");
        std::fs::write(
            src.join("machine.rs"),
            "use std::{fs, thread};\n// a comment may say tokio\nfn f() { let _t = Instant::now(); }\n\
             #[cfg(test)]\nuse std::fs as _;\nfn g() { let _t = Instant::now(); }\n\
             #[cfg(test)]\n#[allow(\n    clippy::unwrap_used,\n)]\nmod tests {\n    fn t() { Instant::now(); }\n}\n",
        )
        .expect("write a scratch source");
        let problems = machine_violations(&root);
        std::fs::remove_dir_all(&root).expect("remove the scratch crate");
        let named: Vec<&str> = problems
            .iter()
            .filter_map(|p| p.split('`').nth(1))
            .collect();
        // A test-only import does not hide the code after it; the test
        // module, attributes and all, is skipped.
        assert_eq!(
            named,
            ["thread", "fs", "Instant::now", "fs", "Instant::now"],
            "{problems:?}"
        );
    }

    #[test]
    fn the_architecture_document_shows_the_real_dependencies() {
        let table = dependency_table(&workspace_metadata()).unwrap_or_else(|e| panic!("{e}"));
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join(ARCHITECTURE);
        let doc = std::fs::read_to_string(&path).expect("read ARCHITECTURE.md");
        let shown = doc
            .split(DEPS_BEGIN)
            .nth(1)
            .and_then(|rest| rest.split(DEPS_END).next())
            .map(str::trim)
            .unwrap_or_default();
        assert_eq!(
            shown,
            table.trim(),
            "{ARCHITECTURE} lists other dependencies than cargo metadata; put this table \
             between `{DEPS_BEGIN}` and `{DEPS_END}`:\n\n{table}"
        );
    }

    #[test]
    fn layer_table_is_a_stack() {
        for layer in LAYERS {
            for dep in layer.may_use {
                let Some(below) = LAYERS.iter().find(|other| other.krate == *dep) else {
                    panic!(
                        "`{}` may use `{dep}`, which is not in the table",
                        layer.krate
                    );
                };
                assert_ne!(below.krate, layer.krate, "`{}` may use itself", layer.krate);
                // Whatever is below a crate's dependency is below the crate too.
                for transitive in below.may_use {
                    assert!(
                        layer.may_use.contains(transitive),
                        "`{}` may use `{dep}`, which may use `{transitive}`, so `{}` should \
                         list `{transitive}` too",
                        layer.krate,
                        layer.krate
                    );
                }
            }
        }
    }

    fn package(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        let dependencies: Vec<Value> = deps
            .iter()
            .map(|(dep, kind)| json!({"name": dep, "kind": kind}))
            .collect();
        json!({"id": format!("{name}@0.1.0"), "name": name, "dependencies": dependencies})
    }

    fn node(name: &str, deps: &[(&str, Option<&str>)]) -> Value {
        let deps: Vec<Value> = deps
            .iter()
            .map(|(dep, kind)| {
                json!({
                    "name": dep.replace('-', "_"),
                    "pkg": format!("{dep}@0.1.0"),
                    "dep_kinds": [{"kind": kind, "target": null}],
                })
            })
            .collect();
        json!({"id": format!("{name}@0.1.0"), "deps": deps})
    }

    /// A workspace that breaks every rule once, and follows it once.
    fn bad_metadata() -> Value {
        let levin_deps = [
            ("strata-portable-storage", None),
            ("strata-conn", None),
            ("strata-node", Some("dev")),
            ("mio", None),
        ];
        let storage_deps = [("tokio", Some("dev"))];
        let xtask_deps = [("strata-daemon", None)];
        json!({
            "packages": [
                package("strata-levin", &levin_deps),
                package("strata-portable-storage", &storage_deps),
                package("strata-conn", &[]),
                package("strata-node", &[]),
                package("strata-frobnicator", &[]),
                package("xtask", &xtask_deps),
                package("mio", &[("tokio", None)]),
                package("tokio", &[]),
            ],
            "workspace_members": [
                "strata-levin@0.1.0",
                "strata-portable-storage@0.1.0",
                "strata-conn@0.1.0",
                "strata-node@0.1.0",
                "strata-frobnicator@0.1.0",
                "xtask@0.1.0",
            ],
            "resolve": {"nodes": [
                node("strata-levin", &levin_deps),
                node("strata-portable-storage", &storage_deps),
                node("strata-conn", &[]),
                node("strata-node", &[]),
                node("strata-frobnicator", &[]),
                node("xtask", &[]),
                node("mio", &[("tokio", None)]),
                node("tokio", &[]),
            ]},
        })
    }

    #[test]
    fn catches_violations() {
        let problems = check(&bad_metadata()).unwrap_or_else(|err| panic!("{err}"));
        let report = problems.join("\n");
        assert_eq!(problems.len(), 3, "{report}");
        assert!(
            problems.iter().any(|p| p.starts_with("[layer table]")
                && p.contains("`strata-frobnicator`")
                && p.contains("add it to the layer table")),
            "{report}"
        );
        assert!(
            problems.iter().any(|p| p.starts_with("[layering]")
                && p.contains("`strata-levin`")
                && p.contains("`strata-conn`")),
            "{report}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("[sans-io]") && p.contains("strata-levin -> mio -> tokio")),
            "{report}"
        );
    }

    #[test]
    fn malformed_metadata_is_an_error() {
        assert!(check(&json!({"packages": []})).is_err());
    }
}
