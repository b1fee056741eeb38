//! Building a symbol table's bytes from a list of symbols.
//!
//! The one producer of tables (the post-link tool uses it; the host tests
//! check its output against a reference model). It sorts the symbols itself
//! and fills the name hash index, so the order and the buckets lookups rely
//! on are established here and nowhere else.
use crate::adler32;
use crate::layout::{
    BUCKET_SIZE, ENTRY_SIZE, Flags, HEADER_SIZE, MAGIC_FILLED, MAX_NAME_LEN, bucket_count, header, home_bucket,
    name_hash,
};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

/// One symbol to put in a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    /// Its first byte.
    pub address: u32,
    /// Its length in bytes (not 0).
    pub size: u32,
    /// Its name as lookups will report it (not empty; cut to
    /// [`MAX_NAME_LEN`] bytes on a character boundary).
    pub name: String,
    /// What kind of symbol it is.
    pub flags: Flags,
}

/// Why [`build`] could not build a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The table needs `needed` bytes for `count` symbols, more than the
    /// capacity it was given.
    TooSmall {
        /// Bytes the table needs, header included.
        needed: usize,
        /// Symbols in it.
        count: usize,
    },
    /// The symbol at this position of the input has size 0, an end beyond
    /// 4 GiB or an empty name.
    BadSymbol(usize),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            BuildError::TooSmall { needed, count } => {
                write!(f, "the symbol table needs {needed} bytes ({count} symbols)")
            }
            BuildError::BadSymbol(index) => write!(f, "symbol {index} has size 0, an end beyond 4 GiB or no name"),
        }
    }
}

/// The order of entries in a table: by address, and at one address the one
/// address lookups should report first: not nested, functions before
/// labels, globals before locals, then by name.
pub fn preference_order(a: &Input, b: &Input) -> Ordering {
    let key = |s: &Input| {
        (s.address, s.flags.contains(Flags::NESTED), !s.flags.contains(Flags::FUNC), !s.flags.contains(Flags::GLOBAL))
    };
    key(a).cmp(&key(b)).then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
}

/// `name` cut to at most [`MAX_NAME_LEN`] bytes, on a character boundary.
fn stored_name(name: &str) -> &[u8] {
    let mut end = name.len().min(MAX_NAME_LEN);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name.as_bytes()[..end]
}

/// The table holding `symbols`, as exactly `capacity` bytes (zero-padded).
/// The input's order does not matter, except between symbols that compare
/// equal in [`preference_order`], which keep it.
pub fn build(symbols: &[Input], capacity: usize) -> Result<Vec<u8>, BuildError> {
    if let Some(bad) =
        symbols.iter().position(|s| s.size == 0 || s.address.checked_add(s.size).is_none() || s.name.is_empty())
    {
        return Err(BuildError::BadSymbol(bad));
    }
    let mut sorted: Vec<&Input> = symbols.iter().collect();
    sorted.sort_by(|a, b| preference_order(a, b));
    let names: Vec<&[u8]> = sorted.iter().map(|s| stored_name(&s.name)).collect();

    let count = sorted.len();
    let entries = HEADER_SIZE;
    let buckets = entries + count * ENTRY_SIZE;
    let slots = bucket_count(count).ok_or(BuildError::TooSmall { needed: usize::MAX, count })?;
    let strings = buckets + slots * BUCKET_SIZE;
    let strings_len: usize = names.iter().map(|name| name.len() + 1).sum();
    let used = strings + strings_len;
    if used > capacity || capacity > u32::MAX as usize {
        return Err(BuildError::TooSmall { needed: used, count });
    }

    let mut table = vec![0u8; capacity];
    let mut name_offset = 0;
    for (index, (symbol, name)) in sorted.iter().zip(&names).enumerate() {
        let at = entries + index * ENTRY_SIZE;
        table[at..at + 4].copy_from_slice(&symbol.address.to_le_bytes());
        table[at + 4..at + 8].copy_from_slice(&symbol.size.to_le_bytes());
        table[at + 8..at + 12].copy_from_slice(&(name_offset as u32).to_le_bytes());
        table[at + 12..at + 14].copy_from_slice(&(name.len() as u16).to_le_bytes());
        table[at + 14..at + 16].copy_from_slice(&symbol.flags.0.to_le_bytes());
        let start = strings + name_offset;
        table[start..start + name.len()].copy_from_slice(name);
        name_offset += name.len() + 1; // and a NUL, already zero
    }
    // Each distinct name gets the bucket of its first entry in table order
    // (entries are visited in that order, and a later one with a name
    // already present is skipped); linear probing from the name's hash.
    let mut bucket_values: Vec<u32> = vec![0; slots];
    for (index, name) in names.iter().enumerate() {
        let mut slot = home_bucket(name_hash(name), slots);
        loop {
            match bucket_values[slot] {
                0 => {
                    bucket_values[slot] = index as u32 + 1;
                    break;
                }
                taken if names[taken as usize - 1] == *name => break,
                _ => slot = (slot + 1) & (slots - 1),
            }
        }
    }
    for (slot, value) in bucket_values.into_iter().enumerate() {
        let at = buckets + slot * BUCKET_SIZE;
        table[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    let checksum = adler32(&table[HEADER_SIZE..used]);
    table[header::MAGIC..header::MAGIC + 8].copy_from_slice(&MAGIC_FILLED);
    let fields = [
        (header::CAPACITY, capacity),
        (header::COUNT, count),
        (header::ENTRIES, entries),
        (header::BUCKETS, buckets),
        (header::BUCKET_COUNT, slots),
        (header::STRINGS, strings),
        (header::STRINGS_LEN, strings_len),
        (header::USED, used),
        (header::CHECKSUM, checksum as usize),
    ];
    for (offset, value) in fields {
        table[offset..offset + 4].copy_from_slice(&(value as u32).to_le_bytes());
    }
    Ok(table)
}
