//! Where every field of a symbol table lies: the one description of the bytes.
//!
//! The writer and the reader both take their offsets from here, so a change
//! to the format is one edit. All integers are little-endian; offsets are
//! from the table's first byte.
//!
//! ```text
//! header, 48 bytes:
//!   0  magic[8]       MAGIC_EMPTY as compiled, MAGIC_FILLED once written
//!   8  capacity u32   total table bytes (set by the compiler)
//!  12  count u32      number of symbols
//!  16  entries u32    offset of `count` entries, sorted by address (always 48)
//!  20  buckets u32    offset of the name hash index (= entries + 16 * count)
//!  24  bucket_count u32  its slots: bucket_count(count), a power of two
//!  28  strings u32    offset of the name bytes (= buckets + 4 * bucket_count)
//!  32  strings_len u32
//!  36  used u32       bytes in use, header included (= strings + strings_len)
//!  40  checksum u32   Adler-32 of bytes [48, used)
//!  44  reserved[4]    zero
//! entry, 16 bytes:
//!   0  address u32    first byte of the function
//!   4  size u32       bytes (never 0)
//!   8  name u32       offset of the name within the strings
//!  12  name_len u16   bytes (UTF-8, no terminator needed)
//!  14  flags u16      see `Flags`
//! bucket, 4 bytes:
//!   0  slot u32       0 = empty, else 1 + the index of an entry
//! names follow each other, each followed by a NUL (for debuggers; not
//! counted in name_len). Bytes from `used` to `capacity` are zero.
//! ```
//!
//! Entries with the same address are ordered most-preferred first (see
//! `preference_order`).
//!
//! The buckets are an open-addressing hash index by name, so that a lookup
//! by name costs one hash of the name and, on average, about one name
//! comparison: probe registration looks its symbol up by name, and the
//! binary search over a sorted name index that this replaced (format 1)
//! compared names some 10 times per lookup, which made it the largest part
//! of a registration. Each distinct name has exactly one bucket, holding
//! the first entry of that name in table order (so the lowest address, and
//! of several there, the most preferred): the answer `lookup_name`
//! documents. A name's probe sequence starts at bucket
//! `home_bucket(name_hash(name), bucket_count)` and moves on one bucket at a
//! time (wrapping around) until a bucket names an entry with that name, or
//! is empty. With at least twice as many buckets as entries, over half of them
//! are empty, so sequences are short and always end. The price is 8 to 16
//! bytes per entry (the sorted index it replaced took 4): some 8 KiB for
//! the kernel's 800-odd symbols.

/// The magic of a table nobody filled (the image as compiled).
pub const MAGIC_EMPTY: [u8; 8] = *b"KSYMNONE";
/// The magic of a table the post-link tool wrote.
pub const MAGIC_FILLED: [u8; 8] = *b"KSYMTAB2";
/// The magic of a table in format 1 (a binary-searched, sorted name index
/// instead of buckets). Only the post-link tool knows it, to rewrite such a
/// table; readers refuse it as a bad magic.
pub const MAGIC_FORMAT1: [u8; 8] = *b"KSYMTAB1";
/// The exported name of the kernel's table static; the tool finds the table
/// by it when the image has no section of its own for it.
pub const TABLE_SYMBOL: &str = "probe_kernel_ksyms";
/// The section the kernel places its table in.
pub const TABLE_SECTION: &str = ".ksyms";

/// Bytes of the header.
pub const HEADER_SIZE: usize = 48;
/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 16;
/// Bytes of one hash bucket (a u32: 0, or 1 + an entry index).
pub const BUCKET_SIZE: usize = 4;
/// The longest name an entry can describe (its length is a u16).
pub const MAX_NAME_LEN: usize = 0xffff;

/// Byte offsets of the header's fields.
pub mod header {
    /// magic[8].
    pub const MAGIC: usize = 0;
    /// capacity u32.
    pub const CAPACITY: usize = 8;
    /// count u32.
    pub const COUNT: usize = 12;
    /// entries u32.
    pub const ENTRIES: usize = 16;
    /// buckets u32.
    pub const BUCKETS: usize = 20;
    /// bucket_count u32.
    pub const BUCKET_COUNT: usize = 24;
    /// strings u32.
    pub const STRINGS: usize = 28;
    /// strings_len u32.
    pub const STRINGS_LEN: usize = 32;
    /// used u32.
    pub const USED: usize = 36;
    /// checksum u32.
    pub const CHECKSUM: usize = 40;
    /// reserved[4], zero.
    pub const RESERVED: usize = 44;
}

/// Byte offsets of an entry's fields, from the entry's first byte.
pub mod entry {
    /// address u32.
    pub const ADDRESS: usize = 0;
    /// size u32.
    pub const SIZE: usize = 4;
    /// name u32 (offset within the strings).
    pub const NAME: usize = 8;
    /// name_len u16.
    pub const NAME_LEN: usize = 12;
    /// flags u16.
    pub const FLAGS: usize = 14;
}

const _: () = assert!(header::RESERVED + 4 == HEADER_SIZE);

/// The number of buckets of a table of `count` entries: the smallest power
/// of two that is at least `2 * count` (1 for an empty table), so at least
/// half of them are always empty. `None` if that overflows.
pub const fn bucket_count(count: usize) -> Option<usize> {
    match count.checked_mul(2) {
        Some(twice) => twice.checked_next_power_of_two(),
        None => None,
    }
}

/// The hash of a name for the bucket index: FNV-1a's scheme (combine, then
/// multiply) over little-endian 4-byte words rather than bytes, as FxHash
/// does (rotate, xor, multiply by 2^32 / φ), with the length as the seed and
/// the last 1 to 3 bytes zero-extended into a final word. A word per step
/// makes hashing a name about a quarter of the byte-wise cost, which is the
/// point of the index; the multiplications carry every input bit upwards,
/// so [`home_bucket`] takes the top bits.
pub fn name_hash(name: &[u8]) -> u32 {
    const K: u32 = 0x9e37_79b9;
    let step = |hash: u32, word: u32| (hash.rotate_left(5) ^ word).wrapping_mul(K);
    let (words, tail) = name.as_chunks::<4>();
    let mut hash = (name.len() as u32).wrapping_mul(K);
    for &word in words {
        hash = step(hash, u32::from_le_bytes(word));
    }
    if !tail.is_empty() {
        let last = tail.iter().rev().fold(0u32, |word, &byte| (word << 8) | u32::from(byte));
        hash = step(hash, last);
    }
    hash
}

/// The first bucket of the probe sequence of a name with hash `hash`, in a
/// table of `bucket_count` buckets (a power of two): the hash's top bits.
pub const fn home_bucket(hash: u32, bucket_count: usize) -> usize {
    ((hash as u64 * bucket_count as u64) >> 32) as usize
}
const _: () = assert!(entry::FLAGS + 2 == ENTRY_SIZE);

/// What kind of symbol an entry is (the entry's u16 flags).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u16);

impl Flags {
    /// A global (or weak) symbol, rather than a local one.
    pub const GLOBAL: Flags = Flags(1);
    /// Typed STT_FUNC; without it, an asm label (STT_NOTYPE).
    pub const FUNC: Flags = Flags(2);
    /// A label inside another symbol's range (such as an asm label in the
    /// middle of a naked function). Address lookups report the enclosing
    /// function instead; name lookups still find the label.
    pub const NESTED: Flags = Flags(4);

    /// No flags: a local asm label that nests in nothing.
    pub const fn empty() -> Flags {
        Flags(0)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// These flags and `other`'s.
    pub const fn union(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// These flags without `other`'s.
    pub const fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, other: Flags) -> Flags {
        self.union(other)
    }
}
