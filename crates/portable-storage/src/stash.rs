//! Hands a decoded [`Value`] from this crate's deserializer to the
//! `Deserialize` impls of this crate's own types.
//!
//! serde's data model cannot carry a typed array's element type, or a
//! [`bytes::Bytes`] view of the input, through a visitor. For the types that
//! need them (`Value`, `Section`, blobs as `Bytes`) the `Deserialize` impl asks
//! for a newtype struct with a reserved name; this crate's deserializer
//! recognises the name, decodes the value itself, leaves it here and calls
//! `visit_unit`, and the visitor takes it back out at once. Other
//! deserializers never see the reserved names answered this way.

use std::cell::Cell;

use crate::Value;

/// Newtype-struct name under which a `Value` is requested.
pub(crate) const VALUE_TOKEN: &str = "$strata_portable_storage::Value";
/// Newtype-struct name under which a blob is requested as a `Bytes` view.
pub(crate) const BYTES_TOKEN: &str = "$strata_portable_storage::Bytes";

thread_local! {
    static SLOT: Cell<Option<Value>> = const { Cell::new(None) };
}

pub(crate) fn put(value: Value) {
    SLOT.with(|slot| slot.set(Some(value)));
}

pub(crate) fn take() -> Option<Value> {
    SLOT.with(Cell::take)
}
