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
//!  20  by_name u32    offset of `count` u32 entry indices, sorted by name
//!  24  strings u32    offset of the name bytes
//!  28  strings_len u32
//!  32  used u32       bytes in use, header included (= strings + strings_len)
//!  36  checksum u32   Adler-32 of bytes [48, used)
//!  40  reserved[8]    zero
//! entry, 16 bytes:
//!   0  address u32    first byte of the function
//!   4  size u32       bytes (never 0)
//!   8  name u32       offset of the name within the strings
//!  12  name_len u16   bytes (UTF-8, no terminator needed)
//!  14  flags u16      see `Flags`
//! names follow each other, each followed by a NUL (for debuggers; not
//! counted in name_len). Bytes from `used` to `capacity` are zero.
//! ```
//!
//! Entries with the same address are ordered most-preferred first (see
//! `preference_order`); the by-name index is ordered by (name bytes,
//! address), so the first match of a name is its lowest address.

/// The magic of a table nobody filled (the image as compiled).
pub const MAGIC_EMPTY: [u8; 8] = *b"KSYMNONE";
/// The magic of a table the post-link tool wrote.
pub const MAGIC_FILLED: [u8; 8] = *b"KSYMTAB1";
/// The exported name of the kernel's table static; the tool finds the table
/// by it when the image has no section of its own for it.
pub const TABLE_SYMBOL: &str = "probe_kernel_ksyms";
/// The section the kernel places its table in.
pub const TABLE_SECTION: &str = ".ksyms";

/// Bytes of the header.
pub const HEADER_SIZE: usize = 48;
/// Bytes of one entry.
pub const ENTRY_SIZE: usize = 16;
/// Bytes of one by-name index slot (a u32 entry index).
pub const INDEX_SIZE: usize = 4;
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
    /// by_name u32.
    pub const BY_NAME: usize = 20;
    /// strings u32.
    pub const STRINGS: usize = 24;
    /// strings_len u32.
    pub const STRINGS_LEN: usize = 28;
    /// used u32.
    pub const USED: usize = 32;
    /// checksum u32.
    pub const CHECKSUM: usize = 36;
    /// reserved[8], zero.
    pub const RESERVED: usize = 40;
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

const _: () = assert!(header::RESERVED + 8 == HEADER_SIZE);
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
