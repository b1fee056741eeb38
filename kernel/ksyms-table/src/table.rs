//! Reading a symbol table in place: header checks, full validation, lookups.
//!
//! The kernel looks symbols up from trap handlers and the panic path, so
//! nothing here allocates or takes a lock, and every read goes through a
//! bounds-checked accessor: a table whose header passed [`Table::parse`] but
//! whose body is garbage gives wrong answers, never a panic or an endless
//! loop. [`Table::validate`] is the full check, run once (at boot): after it,
//! the answers are the ones the writer meant.
use crate::adler32;
use crate::layout::{ENTRY_SIZE, Flags, HEADER_SIZE, INDEX_SIZE, MAGIC_EMPTY, MAGIC_FILLED, entry, header};
use core::fmt;

/// A function (or label) in the table, as a lookup reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    /// The demangled name without hash, e.g. `probe_kernel::demo::checksum`.
    pub name: &'a str,
    /// Its first byte.
    pub address: usize,
    /// Its length in bytes (never 0).
    pub size: usize,
    /// How far into it the looked-up address lies (0 for lookups by name).
    pub offset: usize,
}

/// Why a table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalid {
    /// The table as compiled: the post-link tool never filled it.
    Empty,
    /// Neither magic.
    BadMagic,
    /// The capacity field differs from the bytes the table occupies.
    CapacityMismatch,
    /// The header's offsets and lengths do not describe one table.
    InconsistentHeader,
    /// The reserved header bytes or the bytes after `used` are not zero.
    NonzeroPadding,
    /// The body does not match its checksum.
    ChecksumMismatch,
    /// Entries are not sorted by address.
    NotSortedByAddress,
    /// An entry's size is 0 or its end overflows.
    BadSize,
    /// An entry's name is empty, outside the strings or not UTF-8.
    BadName,
    /// The by-name index names an entry that does not exist.
    IndexOutOfRange,
    /// The by-name index is not sorted by (name, address).
    IndexNotSorted,
}

impl Invalid {
    /// A short description, for the kernel's boot message.
    pub const fn reason(self) -> &'static str {
        match self {
            Invalid::Empty => "not filled (the post-link step did not run)",
            Invalid::BadMagic => "bad magic",
            Invalid::CapacityMismatch => "capacity differs from this kernel's CAPACITY",
            Invalid::InconsistentHeader => "inconsistent header",
            Invalid::NonzeroPadding => "padding not zero",
            Invalid::ChecksumMismatch => "checksum mismatch",
            Invalid::NotSortedByAddress => "entries not sorted by address",
            Invalid::BadSize => "entry with a bad size",
            Invalid::BadName => "entry with a bad name",
            Invalid::IndexOutOfRange => "name index out of range",
            Invalid::IndexNotSorted => "name index not sorted",
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// One entry, decoded.
#[derive(Clone, Copy)]
struct Entry {
    address: u32,
    size: u32,
    name: u32,
    name_len: u16,
    flags: Flags,
}

impl Entry {
    fn contains(&self, address: usize) -> bool {
        address.checked_sub(self.address as usize).is_some_and(|offset| offset < self.size as usize)
    }
}

/// A filled table whose header passed the constant-time checks: every region
/// it names lies inside `bytes`.
#[derive(Clone, Copy)]
pub struct Table<'a> {
    bytes: &'a [u8],
    count: usize,
    by_name: usize,
    strings: usize,
    strings_len: usize,
    used: usize,
}

/// The little-endian u32 at `offset` of `bytes`, or 0 outside them.
fn word(bytes: &[u8], offset: usize) -> u32 {
    match offset.checked_add(4).and_then(|end| bytes.get(offset..end)) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    }
}

impl<'a> Table<'a> {
    /// The table in `bytes` (all of its capacity), if it has been filled and
    /// its header is consistent. Constant time: cheap enough before every
    /// lookup. Does not look at the body; see [`Table::validate`].
    pub fn parse(bytes: &'a [u8]) -> Result<Table<'a>, Invalid> {
        let magic = bytes.get(header::MAGIC..header::MAGIC + 8);
        if magic == Some(&MAGIC_EMPTY[..]) {
            return Err(Invalid::Empty);
        }
        if magic != Some(&MAGIC_FILLED[..]) || bytes.len() < HEADER_SIZE {
            return Err(Invalid::BadMagic);
        }
        if word(bytes, header::CAPACITY) as usize != bytes.len() {
            return Err(Invalid::CapacityMismatch);
        }
        let field = |offset| word(bytes, offset) as usize;
        let count = field(header::COUNT);
        let (entries, by_name, strings) = (field(header::ENTRIES), field(header::BY_NAME), field(header::STRINGS));
        let (strings_len, used) = (field(header::STRINGS_LEN), field(header::USED));
        // `count` is bounded first, so the products below cannot overflow.
        let layout_ok = count <= bytes.len() / (ENTRY_SIZE + INDEX_SIZE)
            && entries == HEADER_SIZE
            && by_name == entries + count * ENTRY_SIZE
            && strings == by_name + count * INDEX_SIZE
            && strings_len <= bytes.len()
            && strings + strings_len == used
            && used <= bytes.len();
        if !layout_ok {
            return Err(Invalid::InconsistentHeader);
        }
        Ok(Table { bytes, count, by_name, strings, strings_len, used })
    }

    /// [`Table::parse`] and [`Table::validate`]: a table whose every answer
    /// is the one its writer meant.
    pub fn open(bytes: &'a [u8]) -> Result<Table<'a>, Invalid> {
        let table = Table::parse(bytes)?;
        table.validate()?;
        Ok(table)
    }

    /// The full check, linear in the table's size: zero padding, checksum,
    /// address order, sizes, names and the by-name index. Any changed byte
    /// of a table the writer built makes it fail.
    pub fn validate(&self) -> Result<(), Invalid> {
        let reserved = &self.bytes[header::RESERVED..HEADER_SIZE];
        let tail = &self.bytes[self.used..];
        if reserved.iter().chain(tail).any(|&byte| byte != 0) {
            return Err(Invalid::NonzeroPadding);
        }
        if adler32(&self.bytes[HEADER_SIZE..self.used]) != word(self.bytes, header::CHECKSUM) {
            return Err(Invalid::ChecksumMismatch);
        }
        let mut previous = 0;
        for index in 0..self.count {
            let entry = self.entry(index);
            if entry.address < previous {
                return Err(Invalid::NotSortedByAddress);
            }
            previous = entry.address;
            if entry.size == 0 || entry.address.checked_add(entry.size).is_none() {
                return Err(Invalid::BadSize);
            }
            let name = self.name_bytes(&entry).ok_or(Invalid::BadName)?;
            if name.is_empty() || core::str::from_utf8(name).is_err() {
                return Err(Invalid::BadName);
            }
        }
        let mut previous: (&[u8], u32) = (&[], 0);
        for rank in 0..self.count {
            let index = self.by_name(rank);
            if index >= self.count {
                return Err(Invalid::IndexOutOfRange);
            }
            let entry = self.entry(index);
            let key = (self.name_bytes(&entry).unwrap_or(&[]), entry.address);
            if key < previous {
                return Err(Invalid::IndexNotSorted);
            }
            previous = key;
        }
        Ok(())
    }

    /// How many symbols the table holds.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Entry `index`; zeros outside the table.
    fn entry(&self, index: usize) -> Entry {
        let at = HEADER_SIZE.saturating_add(index.saturating_mul(ENTRY_SIZE));
        let packed = word(self.bytes, at.saturating_add(entry::NAME_LEN));
        const _: () = assert!(entry::FLAGS == entry::NAME_LEN + 2);
        Entry {
            address: word(self.bytes, at.saturating_add(entry::ADDRESS)),
            size: word(self.bytes, at.saturating_add(entry::SIZE)),
            name: word(self.bytes, at.saturating_add(entry::NAME)),
            name_len: packed as u16,
            flags: Flags((packed >> 16) as u16),
        }
    }

    fn address(&self, index: usize) -> usize {
        self.entry(index).address as usize
    }

    /// The name bytes of `entry`, if they lie inside the strings.
    fn name_bytes(&self, entry: &Entry) -> Option<&'a [u8]> {
        let (start, len) = (entry.name as usize, entry.name_len as usize);
        let end = start.checked_add(len).filter(|&end| end <= self.strings_len)?;
        self.bytes.get(self.strings + start..self.strings + end)
    }

    /// The entry index at position `rank` of the by-name index.
    fn by_name(&self, rank: usize) -> usize {
        word(self.bytes, self.by_name.saturating_add(rank.saturating_mul(INDEX_SIZE))) as usize
    }

    /// Entry `index` as a symbol, `offset` bytes in; `None` if its name is
    /// not text (only in a table that failed validation).
    pub fn symbol(&self, index: usize, offset: usize) -> Option<Symbol<'a>> {
        if index >= self.count {
            return None;
        }
        let entry = self.entry(index);
        let name = core::str::from_utf8(self.name_bytes(&entry)?).ok()?;
        Some(Symbol { name, address: entry.address as usize, size: entry.size as usize, offset })
    }

    /// Every symbol in address order (offset 0), labels nested in functions
    /// included.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'a>> + use<'a> {
        let table = *self;
        (0..self.count).filter_map(move |index| table.symbol(index, 0))
    }

    /// The symbol called `name` (offset 0); of several with that name, the
    /// one at the lowest address.
    pub fn lookup_name(&self, name: &str) -> Option<Symbol<'a>> {
        let wanted = name.as_bytes();
        let name_at = |rank| self.name_bytes(&self.entry(self.by_name(rank))).unwrap_or(&[]);
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if name_at(middle) < wanted {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        if low == self.count || name_at(low) != wanted {
            return None;
        }
        self.symbol(self.by_name(low), 0)
    }

    /// Index of the first entry whose address is above `address`.
    fn partition(&self, address: usize) -> usize {
        let (mut low, mut high) = (0, self.count);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.address(middle) <= address {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        low
    }

    /// The function containing `address`, with `offset = address - start`;
    /// `None` if `address` lies in no function (padding, data, beyond the
    /// end). A label nested in a function does not count as its own function
    /// here: the enclosing function is reported.
    pub fn lookup_address(&self, address: usize) -> Option<Symbol<'a>> {
        let mut index = self.partition(address);
        // Walk back over labels nested in the function that contains them.
        while index > 0 && self.entry(index - 1).flags.contains(Flags::NESTED) {
            index -= 1;
        }
        if index == 0 {
            return None;
        }
        // Entries sharing a start address are ordered most-preferred first.
        let start = self.address(index - 1);
        let mut first = index - 1;
        while first > 0 && self.address(first - 1) == start {
            first -= 1;
        }
        (first..index)
            .map(|candidate| (candidate, self.entry(candidate)))
            .find(|(_, entry)| !entry.flags.contains(Flags::NESTED) && entry.contains(address))
            .and_then(|(candidate, entry)| self.symbol(candidate, address - entry.address as usize))
    }

    /// The function that contains the call returning to `address` (looked
    /// up at `address - 1`, since a call that is a function's last
    /// instruction returns to the first byte after it); the offset is that
    /// of `address` itself.
    pub fn lookup_return_address(&self, address: usize) -> Option<Symbol<'a>> {
        let mut symbol = self.lookup_address(address.checked_sub(1)?)?;
        symbol.offset += 1;
        Some(symbol)
    }
}
