//! The Python step of `cargo xtask test`: a virtual environment under the
//! target directory with maturin, pytest, numpy, matplotlib and the
//! notebook runner; the `strata` module built as a wheel and installed in
//! it; its pytest suite, which also executes the notebooks at small sizes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::{self, workspace_root};

/// What the environment needs, from PyPI.
const REQUIREMENTS: &[&str] = &[
    "maturin>=1.7,<2",
    "pytest>=7",
    "numpy>=1.21",
    "matplotlib>=3.5",
    "nbclient>=0.7",
    "nbformat>=5",
    "ipykernel>=6",
];

/// The Python module's crate, relative to the workspace root.
const CRATE: &str = "crates/python";

/// The target directory cargo builds into.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The environment's directory.
fn venv() -> PathBuf {
    target_dir().join("python-venv")
}

fn venv_python() -> PathBuf {
    venv().join("bin").join("python")
}

/// Creates the environment unless it is there with the same requirements.
fn ensure_venv() -> Result<(), String> {
    let marker = venv().join("strata-requirements.txt");
    let wanted = REQUIREMENTS.join("\n");
    if venv_python().exists() && std::fs::read_to_string(&marker).ok().as_deref() == Some(&wanted) {
        println!("python environment: {} (up to date)", venv().display());
        return Ok(());
    }
    process::run(Command::new("python3").arg("-m").arg("venv").arg(venv()))?;
    process::run(
        Command::new(venv_python())
            .args(["-m", "pip", "install", "--quiet", "--upgrade", "pip"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )?;
    process::run(
        Command::new(venv_python())
            .args(["-m", "pip", "install", "--quiet"])
            .args(REQUIREMENTS)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )?;
    std::fs::write(&marker, wanted).map_err(|e| format!("writing {}: {e}", marker.display()))
}

/// Builds the wheel (release profile, sharing cargo's cache) and installs
/// it in the environment.
fn build_and_install() -> Result<(), String> {
    let wheels = target_dir().join("wheels");
    if wheels.exists() {
        std::fs::remove_dir_all(&wheels)
            .map_err(|e| format!("clearing {}: {e}", wheels.display()))?;
    }
    let root = workspace_root();
    process::run(
        Command::new(venv_python())
            .args([
                "-m",
                "maturin",
                "build",
                "--release",
                "--locked",
                "--manifest-path",
            ])
            .arg(root.join(CRATE).join("Cargo.toml"))
            .arg("--out")
            .arg(&wheels)
            .current_dir(&root),
    )?;
    let wheel = newest_wheel(&wheels)?;
    process::run(
        Command::new(venv_python())
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&wheel)
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1"),
    )
}

fn newest_wheel(dir: &Path) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "whl"))
        .max()
        .ok_or_else(|| format!("maturin left no wheel in {}", dir.display()))
}

/// The whole step.
pub(crate) fn test() -> Result<(), String> {
    ensure_venv()?;
    build_and_install()?;
    let root = workspace_root();
    process::run(
        Command::new(venv_python())
            .args(["-m", "pytest", "-q"])
            .arg(root.join(CRATE).join("tests"))
            .env("MPLBACKEND", "Agg")
            .env("STRATA_NOTEBOOK_SIZE", "small")
            .current_dir(&root),
    )
}
