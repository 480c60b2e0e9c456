//! The in-memory backend: one ordered map per table.
//!
//! Used by tests and by network simulations that run many stores in one
//! process. A write transaction changes the maps in place under a write lock
//! and keeps an undo log; when the transaction fails (or panics) the log is
//! replayed backwards, so a failed write leaves nothing behind.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{PoisonError, RwLock};

use crate::backend::{Backend, ReadFn, ReadTxn, Table, WriteFn, WriteTxn};
use crate::error::Error;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Debug, Default)]
struct Tables {
    maps: [Map; Table::ALL.len()],
}

impl Tables {
    fn map(&self, table: Table) -> &Map {
        &self.maps[table.index()]
    }

    fn map_mut(&mut self, table: Table) -> &mut Map {
        &mut self.maps[table.index()]
    }
}

/// Tables in ordered maps, gone when dropped.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    tables: RwLock<Tables>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }
}

struct Read<'a> {
    tables: &'a Tables,
}

fn get<'a>(tables: &'a Tables, table: Table, key: &[u8]) -> Option<&'a [u8]> {
    tables.map(table).get(key).map(Vec::as_slice)
}

fn range(
    tables: &Tables,
    table: Table,
    start: Bound<&[u8]>,
    visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) {
    for (k, v) in tables
        .map(table)
        .range::<[u8], _>((start, Bound::Unbounded))
    {
        if !visit(k, v) {
            break;
        }
    }
}

fn count(tables: &Tables, table: Table) -> u64 {
    u64::try_from(tables.map(table).len()).unwrap_or(u64::MAX)
}

impl ReadTxn for Read<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        Ok(get(self.tables, table, key))
    }

    fn range(
        &self,
        table: Table,
        start: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Error> {
        range(self.tables, table, start, visit);
        Ok(())
    }

    fn count(&self, table: Table) -> Result<u64, Error> {
        Ok(count(self.tables, table))
    }
}

/// A write transaction: changes in place, undone on drop unless committed.
struct Write<'a> {
    tables: &'a mut Tables,
    undo: Vec<(Table, Vec<u8>, Option<Vec<u8>>)>,
    committed: bool,
}

impl ReadTxn for Write<'_> {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<&[u8]>, Error> {
        Ok(get(self.tables, table, key))
    }

    fn range(
        &self,
        table: Table,
        start: Bound<&[u8]>,
        visit: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), Error> {
        range(self.tables, table, start, visit);
        Ok(())
    }

    fn count(&self, table: Table) -> Result<u64, Error> {
        Ok(count(self.tables, table))
    }
}

impl WriteTxn for Write<'_> {
    fn put(&mut self, table: Table, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let old = self
            .tables
            .map_mut(table)
            .insert(key.to_vec(), value.to_vec());
        self.undo.push((table, key.to_vec(), old));
        Ok(())
    }

    fn delete(&mut self, table: Table, key: &[u8]) -> Result<bool, Error> {
        let old = self.tables.map_mut(table).remove(key);
        let existed = old.is_some();
        if existed {
            self.undo.push((table, key.to_vec(), old));
        }
        Ok(existed)
    }
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        while let Some((table, key, old)) = self.undo.pop() {
            let map = self.tables.map_mut(table);
            match old {
                Some(value) => map.insert(key, value),
                None => map.remove(&key),
            };
        }
    }
}

impl Backend for MemoryBackend {
    fn read(&self, f: &mut ReadFn<'_>) -> Result<(), Error> {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        f(&Read { tables: &tables })
    }

    fn write(&self, f: &mut WriteFn<'_>) -> Result<(), Error> {
        let mut tables = self.tables.write().unwrap_or_else(PoisonError::into_inner);
        let mut txn = Write {
            tables: &mut tables,
            undo: Vec::new(),
            committed: false,
        };
        f(&mut txn)?;
        txn.committed = true;
        Ok(())
    }

    fn size_bytes(&self) -> Result<u64, Error> {
        let tables = self.tables.read().unwrap_or_else(PoisonError::into_inner);
        let bytes: usize = tables
            .maps
            .iter()
            .flat_map(|m| m.iter())
            .map(|(k, v)| k.len().saturating_add(v.len()))
            .fold(0, usize::saturating_add);
        Ok(u64::try_from(bytes).unwrap_or(u64::MAX))
    }

    fn flush(&self) -> Result<(), Error> {
        Ok(())
    }
}
