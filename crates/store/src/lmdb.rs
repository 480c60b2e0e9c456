//! The LMDB backend: the only code that touches LMDB.
//!
//! One environment per store directory, one named database per [`Table`].
//! Beside LMDB's own `data.mdb` and `lock.mdb` the directory holds `LOCK`,
//! a file locked exclusively for as long as the store is open, so a second
//! open (from any process) is refused with [`Error::Locked`].
//!
//! The map starts at [`Config::initial_map_size`] and doubles whenever a
//! write transaction runs out of room (`MDB_MAP_FULL`): the transaction is
//! aborted, the map resized with `mdb_env_set_mapsize` while no transaction
//! of this process is open, and the transaction run again. Resizing unmaps
//! the file, so every transaction holds a read lock on the environment and
//! resizing takes the write lock.
//!
//! The environment is opened with `MDB_NOTLS` (reader slots belong to
//! transactions, not threads, so thread pools do not exhaust them) and, for
//! [`Durability::NoSync`], `MDB_NOSYNC`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use ::lmdb::{
    Cursor as _, Database, DatabaseFlags, Environment, EnvironmentFlags, RwTransaction,
    Transaction, WriteFlags,
};

use crate::MAX_MAP_SIZE;
use crate::backend::{Backend, ReadFn, ReadTxn, Table, WriteFn, WriteTxn};
use crate::config::{Config, Durability};
use crate::error::Error;

/// The name of the lock file in a store directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// Named databases the environment may hold (a few spare for later formats).
const MAX_DBS: u32 = 16;

/// Tables in LMDB files in one directory.
pub struct LmdbBackend {
    env: RwLock<Environment>,
    dbs: [Database; Table::ALL.len()],
    /// The current map size; held by the writer, so write transactions do
    /// not overlap and a resize never waits on another writer.
    writer: Mutex<usize>,
    durability: Durability,
    dir: PathBuf,
    /// Held while the store is open; dropped after the environment closes.
    _lock: File,
}

impl std::fmt::Debug for LmdbBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbBackend")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl LmdbBackend {
    /// Opens (creating it if needed) the store in `dir`, after locking its
    /// `LOCK` file.
    pub fn open(dir: &Path, config: &Config) -> Result<LmdbBackend, Error> {
        config.validate()?;
        fs::create_dir_all(dir).map_err(|source| Error::Io {
            op: "create the store directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let lock_path = dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|source| Error::Io {
                op: "open the lock file",
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(Error::Locked { path: lock_path }),
            Err(TryLockError::Error(source)) => {
                return Err(Error::Io {
                    op: "lock",
                    path: lock_path,
                    source,
                });
            }
        }

        let mut flags = EnvironmentFlags::NO_TLS;
        if config.durability == Durability::NoSync {
            flags |= EnvironmentFlags::NO_SYNC;
        }
        let env = Environment::new()
            .set_flags(flags)
            .set_max_dbs(MAX_DBS)
            .set_map_size(config.initial_map_size)
            .open(dir)
            .map_err(lmdb_error("open the environment"))?;
        let create = |table: Table| {
            env.create_db(Some(table.name()), DatabaseFlags::empty())
                .map_err(lmdb_error("open a database"))
        };
        let dbs = [
            create(Table::Records)?,
            create(Table::Digests)?,
            create(Table::Losers)?,
            create(Table::LoserOrder)?,
            create(Table::Meta)?,
            create(Table::Expiry)?,
        ];
        // LMDB raises the map to the data already in the file.
        let map_size = env
            .info()
            .map_err(lmdb_error("read the environment info"))?
            .map_size();
        tracing::debug!(dir = %dir.display(), map_size, "store opened");
        Ok(LmdbBackend {
            env: RwLock::new(env),
            dbs,
            writer: Mutex::new(map_size),
            durability: config.durability,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// The current map size, in bytes.
    pub fn map_size(&self) -> usize {
        *self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One try at a write transaction: `Ok(false)` when the map is full.
    fn attempt(&self, f: &mut WriteFn<'_>) -> Result<bool, Error> {
        let env = self.env.read().unwrap_or_else(PoisonError::into_inner);
        let txn = env
            .begin_rw_txn()
            .map_err(lmdb_error("begin a write transaction"))?;
        let mut txn = Txn {
            txn,
            dbs: &self.dbs,
            full: false,
        };
        let result = f(&mut txn);
        if txn.full {
            return Ok(false);
        }
        result?;
        match txn.txn.commit() {
            Ok(()) => Ok(true),
            Err(::lmdb::Error::MapFull) => Ok(false),
            Err(e) => Err(lmdb_error("commit")(e)),
        }
    }

    /// Doubles the map, up to [`MAX_MAP_SIZE`].
    fn grow(&self, map_size: &mut usize) -> Result<(), Error> {
        let max = usize::try_from(MAX_MAP_SIZE).unwrap_or(usize::MAX / 2);
        if *map_size >= max {
            return Err(Error::Full { max: MAX_MAP_SIZE });
        }
        let wanted = map_size.saturating_mul(2).min(max);
        let env = self.env.write().unwrap_or_else(PoisonError::into_inner);
        env.set_map_size(wanted)
            .map_err(lmdb_error("grow the map"))?;
        let now = env
            .info()
            .map_err(lmdb_error("read the environment info"))?
            .map_size();
        tracing::info!(dir = %self.dir.display(), from = *map_size, to = now, "store map grown");
        *map_size = now.max(wanted);
        Ok(())
    }
}

impl Backend for LmdbBackend {
    fn read(&self, f: &mut ReadFn<'_>) -> Result<(), Error> {
        let env = self.env.read().unwrap_or_else(PoisonError::into_inner);
        let txn = env
            .begin_ro_txn()
            .map_err(lmdb_error("begin a read transaction"))?;
        let txn = Txn {
            txn,
            dbs: &self.dbs,
            full: false,
        };
        f(&txn)
    }

    fn write(&self, f: &mut WriteFn<'_>) -> Result<(), Error> {
        let mut map_size = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.attempt(f)? {
                return Ok(());
            }
            self.grow(&mut map_size)?;
        }
    }

    fn size_bytes(&self) -> Result<u64, Error> {
        let env = self.env.read().unwrap_or_else(PoisonError::into_inner);
        let info = env
            .info()
            .map_err(lmdb_error("read the environment info"))?;
        let stat = env
            .stat()
            .map_err(lmdb_error("read the environment stats"))?;
        let pages = u64::try_from(info.last_pgno()).unwrap_or(u64::MAX);
        Ok(pages
            .saturating_add(1)
            .saturating_mul(u64::from(stat.page_size())))
    }

    fn flush(&self) -> Result<(), Error> {
        let env = self.env.read().unwrap_or_else(PoisonError::into_inner);
        env.sync(true).map_err(lmdb_error("flush to disk"))
    }
}

impl Drop for LmdbBackend {
    fn drop(&mut self) {
        if self.durability == Durability::NoSync
            && let Err(e) = self.flush()
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "store not flushed on close");
        }
    }
}

/// A read or write transaction over the tables.
struct Txn<'a, T> {
    txn: T,
    dbs: &'a [Database; Table::ALL.len()],
    /// Set when a write ran out of map: the transaction must be retried.
    full: bool,
}

impl<T: Transaction> ReadTxn for Txn<'_, T> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        match self.txn.get(self.dbs[table.index()], &key) {
            Ok(value) => Ok(Some(value)),
            Err(::lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(lmdb_error("read")(e)),
        }
    }

    fn range(
        &self,
        table: Table,
        start: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Error> {
        let mut cursor = self
            .txn
            .open_ro_cursor(self.dbs[table.index()])
            .map_err(lmdb_error("open a cursor"))?;
        // LMDB refuses empty keys to position on; the empty key is the
        // smallest anyway.
        let iter = match start {
            Bound::Included(k) | Bound::Excluded(k) if !k.is_empty() => cursor.iter_from(k),
            _ => cursor.iter_start(),
        };
        for item in iter {
            let (k, v) = item.map_err(lmdb_error("walk a table"))?;
            if let Bound::Excluded(s) = start
                && k == s
            {
                continue;
            }
            if !visit(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn count(&self, table: Table) -> Result<u64, Error> {
        let stat = self
            .txn
            .stat(self.dbs[table.index()])
            .map_err(lmdb_error("count a table"))?;
        Ok(u64::try_from(stat.entries()).unwrap_or(u64::MAX))
    }
}

impl WriteTxn for Txn<'_, RwTransaction<'_>> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let db = self.dbs[table.index()];
        match self.txn.put(db, &key, &value, WriteFlags::empty()) {
            Ok(()) => Ok(()),
            Err(e) => {
                if e == ::lmdb::Error::MapFull {
                    self.full = true;
                }
                Err(lmdb_error("write")(e))
            }
        }
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, Error> {
        let db = self.dbs[table.index()];
        match self.txn.del(db, &key, None) {
            Ok(()) => Ok(true),
            Err(::lmdb::Error::NotFound) => Ok(false),
            Err(e) => {
                if e == ::lmdb::Error::MapFull {
                    self.full = true;
                }
                Err(lmdb_error("delete")(e))
            }
        }
    }
}

/// Maps an LMDB error to the store's: damaged files are [`Error::Corrupt`].
fn lmdb_error(op: &'static str) -> impl Fn(::lmdb::Error) -> Error {
    move |e| match e {
        ::lmdb::Error::Corrupted | ::lmdb::Error::PageNotFound | ::lmdb::Error::Invalid => {
            Error::Corrupt(format!("LMDB failed to {op}: {e}"))
        }
        e => Error::Backend {
            op,
            message: e.to_string(),
        },
    }
}
