//! Prints a portable-storage body as a tree of typed values, with nothing
//! but this crate.
//!
//! ```text
//! cargo run -p strata-portable-storage --example dump
//! cargo run -p strata-portable-storage --example dump -- FILE
//! ```
//!
//! FILE holds hex: a body (it starts with the 9-byte portable-storage
//! header), or a whole Levin frame as captured from monerod (33 bytes of
//! Levin header, then the body), such as the files of
//! `shared/vectors/monerod`. Without FILE it prints a small body written
//! out by hand below. The body is decoded into a [`Section`], the dynamic
//! tree that keeps every type byte, then re-encoded to show that the bytes
//! come back unchanged.

use std::process::ExitCode;

use bytes::Bytes;
use strata_portable_storage::{Array, HEADER, Section, Value, from_bytes, to_vec};

/// A body written out by hand: `node_data` (a section holding `my_port`, a
/// u32, and `network_id`, a 16-byte string), `peer_id` (a u64) and `status`
/// (the string "OK").
const SAMPLE: &str = concat!(
    // The header: two signatures and the version.
    "011101010101020101",
    // Three entries: a varint, 3 << 2.
    "0c",
    // A name of 9 bytes, "node_data"; type 0x0c, a section; two entries.
    "096e6f64655f64617461",
    "0c",
    "08",
    // "my_port"; type 0x06, u32; 28080, little-endian.
    "076d795f706f7274",
    "06",
    "b06d0000",
    // "network_id"; type 0x0a, a string; 16 bytes (16 << 2); the bytes.
    "0a6e6574776f726b5f6964",
    "0a",
    "40",
    "1230f171610441611731008216a1a111",
    // "peer_id"; type 0x05, u64; 8 bytes, little-endian.
    "07706565725f6964",
    "05",
    "5354414154415257",
    // "status"; a string of 2 bytes, "OK".
    "06737461747573",
    "0a",
    "08",
    "4f4b",
);

/// Length of a Levin frame's header, which comes before its body.
const LEVIN_HEADER_LEN: usize = 33;

/// The largest file this example reads.
const MAX_FILE_LEN: u64 = 32 * 1024 * 1024;

fn main() -> ExitCode {
    match run(std::env::args().nth(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dump: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(path: Option<String>) -> Result<(), String> {
    let text = match &path {
        None => SAMPLE.to_owned(),
        Some(path) => {
            let len = std::fs::metadata(path)
                .map_err(|e| format!("{path}: {e}"))?
                .len();
            if len > MAX_FILE_LEN {
                return Err(format!("{path}: {len} bytes, more than {MAX_FILE_LEN}"));
            }
            std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?
        }
    };
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    let body = if bytes.starts_with(&HEADER) {
        bytes
    } else if bytes
        .get(LEVIN_HEADER_LEN..)
        .is_some_and(|b| b.starts_with(&HEADER))
    {
        println!("a Levin frame: skipping its {LEVIN_HEADER_LEN}-byte header");
        bytes[LEVIN_HEADER_LEN..].to_vec()
    } else {
        return Err("neither a portable-storage body nor a Levin frame holding one".into());
    };
    // Decoding from `Bytes`: the strings in the tree are views of `body`,
    // not copies.
    let body = Bytes::from(body);
    let root: Section = from_bytes(&body).map_err(|e| format!("cannot decode: {e}"))?;
    println!("{} bytes, {} entries", body.len(), root.len());
    print_section(&root, 1);
    let again = to_vec(&root).map_err(|e| format!("cannot encode: {e}"))?;
    println!(
        "re-encoded: {}",
        if again == body {
            "the same bytes"
        } else {
            "different bytes"
        }
    );
    Ok(())
}

fn indent(depth: usize) -> String {
    "  ".repeat(depth)
}

fn print_section(section: &Section, depth: usize) {
    for (name, value) in section.iter() {
        let name = String::from_utf8_lossy(name);
        match value {
            Value::Object(inner) => {
                println!("{}{name}: section of {}", indent(depth), inner.len());
                print_section(inner, depth + 1);
            }
            Value::Array(Array::Object(items)) => {
                println!("{}{name}: array of {} sections", indent(depth), items.len());
                for (i, item) in items.iter().enumerate() {
                    println!("{}[{i}]", indent(depth + 1));
                    print_section(item, depth + 2);
                }
            }
            other => println!("{}{name}: {}", indent(depth), scalar(other)),
        }
    }
}

/// A value other than a section, with its type.
fn scalar(value: &Value) -> String {
    match value {
        Value::I64(v) => format!("i64 {v}"),
        Value::I32(v) => format!("i32 {v}"),
        Value::I16(v) => format!("i16 {v}"),
        Value::I8(v) => format!("i8 {v}"),
        Value::U64(v) => format!("u64 {v}"),
        Value::U32(v) => format!("u32 {v}"),
        Value::U16(v) => format!("u16 {v}"),
        Value::U8(v) => format!("u8 {v}"),
        Value::F64(v) => format!("f64 {v}"),
        Value::Bool(v) => format!("bool {v}"),
        Value::String(s) => format!("string {}", text(s)),
        Value::Object(s) => format!("section of {}", s.len()),
        Value::Array(a) => format!("array of {} {}", a.len(), element_type(a)),
    }
}

/// A string as text when it is printable UTF-8, else as hex (Monero puts
/// hashes and ids in strings).
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) if !s.chars().any(char::is_control) => format!("{s:?}"),
        _ => format!("of {} bytes {}", bytes.len(), hex::encode(bytes)),
    }
}

fn element_type(array: &Array) -> &'static str {
    match array {
        Array::I64(_) => "i64",
        Array::I32(_) => "i32",
        Array::I16(_) => "i16",
        Array::I8(_) => "i8",
        Array::U64(_) => "u64",
        Array::U32(_) => "u32",
        Array::U16(_) => "u16",
        Array::U8(_) => "u8",
        Array::F64(_) => "f64",
        Array::String(_) => "strings",
        Array::Bool(_) => "bool",
        Array::Object(_) => "sections",
        Array::Arrays => "arrays",
    }
}
