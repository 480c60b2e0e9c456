//! The data directory: its lock, the node key, the admin token, and the
//! file that says where a running daemon listens.
//!
//! ```text
//! <data_dir>/
//!   stratad.lock   held (flock) while a daemon runs; holds its pid
//!   stratad.json   the running daemon's addresses (removed at exit), 0600
//!   admin.sock     the admin API for local clients (removed at exit), 0600
//!   node.key       the node's Ed25519 key, PKCS#8 DER, 0600
//!   admin.token    the admin API's bearer token, 0600
//!   store/         the record store (LMDB)
//!   peers.dat      the address book
//!   anchors.dat    the last outbound peers, written at shutdown
//! ```
#![deny(clippy::arithmetic_side_effects)]

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_tls::NodeKey;

/// The lock file.
pub const LOCK_FILE: &str = "stratad.lock";
/// The running daemon's addresses.
pub const RUNTIME_FILE: &str = "stratad.json";
/// The node key.
pub const KEY_FILE: &str = "node.key";
/// The admin token.
pub const TOKEN_FILE: &str = "admin.token";
/// The admin API's Unix socket.
pub const SOCKET_FILE: &str = "admin.sock";
/// The store's directory.
pub const STORE_DIR: &str = "store";
/// Shortest admin token accepted, in characters (a generated one has 64).
pub const MIN_TOKEN_LEN: usize = 16;

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// Another daemon holds the lock.
    #[error(
        "the data directory {dir} is in use by another stratad{pid} (its lock file {lock} is held); \
         stop that daemon first (`stratad stop --data-dir {dir}`) or choose another --data-dir"
    )]
    InUse {
        /// The directory.
        dir: String,
        /// The holder's pid, as " (pid N)", when known.
        pid: String,
        /// The lock file.
        lock: String,
    },
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The admin token file holds a token too short to resist guessing.
    #[error(
        "the admin token in {} has {len} characters; at least {MIN_TOKEN_LEN} are needed \
         (delete the file and a new one is generated at start)",
        path.display()
    )]
    WeakToken {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
    /// The key file does not hold a key.
    #[error("the node key {} is not an Ed25519 PKCS#8 key: {reason}", path.display())]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DirError + 'a {
    move |source| DirError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The held lock on a data directory; released when dropped (and by the
/// kernel when the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Creates the data directory (0700) if needed, tightens it to 0700 if
/// others can enter it, and takes its lock.
pub fn lock(dir: &Path) -> Result<Lock, DirError> {
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("cannot create the data directory", dir))?;
    }
    let meta = std::fs::metadata(dir).map_err(io_err("cannot read", dir))?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "the data directory {} was open to others (mode {:o}); setting its mode to 0700",
            dir.display(),
            meta.permissions().mode() & 0o777
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot set the mode of", dir))?;
    }
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("cannot open the lock file", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(DirError::InUse {
                dir: dir.display().to_string(),
                pid: if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                },
                lock: path.display().to_string(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(io_err("cannot lock", &path)(e));
        }
    }
    file.set_len(0).map_err(io_err("cannot write", &path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_err("cannot write", &path))?;
    Ok(Lock { _file: file })
}

/// Writes a file readable by its owner only, whatever the umask, in
/// place of the old one at once.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    let tmp = path.with_extension("tmp");
    // A left-over file keeps its mode: start afresh.
    let _ = std::fs::remove_file(&tmp);
    {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err("cannot create", &tmp))?;
        file.write_all(bytes)
            .map_err(io_err("cannot write", &tmp))?;
        file.sync_all().map_err(io_err("cannot write", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err("cannot rename into place", path))
}

/// Reads a secret file, tightening its mode to 0600 when others can read it.
fn read_secret(path: &Path) -> Result<Option<Vec<u8>>, DirError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    "{} was readable by others; setting its mode to 0600",
                    path.display()
                );
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("cannot read", path)(e)),
    }
}

/// The node key in `dir`, generated on first use.
pub fn node_key(dir: &Path) -> Result<NodeKey, DirError> {
    let path = dir.join(KEY_FILE);
    if let Some(der) = read_secret(&path)? {
        return NodeKey::from_pkcs8(&der).map_err(|e| DirError::BadKey {
            path,
            reason: e.to_string(),
        });
    }
    let key = NodeKey::generate().map_err(|e| DirError::BadKey {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_private(&path, key.pkcs8())?;
    tracing::info!("generated node key {} in {}", key.public(), path.display());
    Ok(key)
}

/// Reads the node key without creating one.
pub fn read_node_key(dir: &Path) -> Result<Option<NodeKey>, DirError> {
    let path = dir.join(KEY_FILE);
    match read_secret(&path)? {
        None => Ok(None),
        Some(der) => NodeKey::from_pkcs8(&der)
            .map(Some)
            .map_err(|e| DirError::BadKey {
                path,
                reason: e.to_string(),
            }),
    }
}

/// The ed25519-dalek signing key of a node key, for signing records.
pub fn signing_key(key: &NodeKey) -> Result<ed25519_dalek::SigningKey, DirError> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    ed25519_dalek::SigningKey::from_pkcs8_der(key.pkcs8()).map_err(|e| DirError::BadKey {
        path: PathBuf::from(KEY_FILE),
        reason: e.to_string(),
    })
}

/// The admin token in `dir`, generated on first use.
pub fn admin_token(dir: &Path) -> Result<String, DirError> {
    let path = dir.join(TOKEN_FILE);
    if let Some(bytes) = read_secret(&path)? {
        let token = String::from_utf8_lossy(&bytes).trim().to_owned();
        if !token.is_empty() {
            let len = token.chars().count();
            if len < MIN_TOKEN_LEN {
                return Err(DirError::WeakToken { path, len });
            }
            return Ok(token);
        }
    }
    let token = hex::encode(
        random_bytes::<32>().map_err(io_err("cannot read", Path::new("/dev/urandom")))?,
    );
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Reads the admin token without creating one.
pub fn read_admin_token(dir: &Path) -> Result<Option<String>, DirError> {
    Ok(read_secret(&dir.join(TOKEN_FILE))?
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned()))
}

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut out = [0u8; N];
    File::open("/dev/urandom")?.read_exact(&mut out)?;
    Ok(out)
}

/// What a running daemon writes to `stratad.json` once it listens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The daemon's process id.
    pub pid: u32,
    /// The network's name.
    pub network: String,
    /// The node key, hex.
    pub node_key: String,
    /// The admin API's address.
    pub api: SocketAddr,
    /// The admin API's Unix socket, when it could be made.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// The p2p addresses listened on.
    pub p2p: Vec<SocketAddr>,
}

/// Writes `stratad.json` (0600: whoever could rewrite it could point the
/// command line at a listener of their own and take the token).
pub fn write_runtime(dir: &Path, info: &RuntimeInfo) -> Result<(), DirError> {
    let text = serde_json::to_vec_pretty(info).unwrap_or_default();
    write_private(&dir.join(RUNTIME_FILE), &text)
}

/// Reads `stratad.json`, if a daemon wrote one.
pub fn read_runtime(dir: &Path) -> Option<RuntimeInfo> {
    let bytes = std::fs::read(dir.join(RUNTIME_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Removes `stratad.json`.
pub fn remove_runtime(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(RUNTIME_FILE));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_and_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("in use by another stratad"), "{text}");
        assert!(text.contains(&std::process::id().to_string()), "{text}");
        drop(held);
        lock(dir.path()).unwrap();
    }

    #[test]
    fn secrets_are_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let key = node_key(dir.path()).unwrap();
        assert_eq!(node_key(dir.path()).unwrap().public(), key.public());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let token = admin_token(dir.path()).unwrap();
        assert_eq!(admin_token(dir.path()).unwrap(), token);
        let signing = signing_key(&key).unwrap();
        assert_eq!(signing.verifying_key().to_bytes(), key.public().0);
    }
}
