//! Reading a symbol table in place: header checks, full validation, lookups.
//!
//! The kernel looks symbols up from trap handlers and the panic path, so
//! nothing here allocates or takes a lock, and every read goes through a
//! bounds-checked accessor: a table whose header passed [`Table::parse`] but
//! whose body is garbage gives wrong answers, never a panic or an endless
//! loop. [`Table::validate`] is the full check, run once (at boot): after it,
//! the answers are the ones the writer meant.
//!
//! Lookups by name go through the name hash index (see `layout`): one hash
//! of the name and, on average, about one name comparison, rather than a
//! binary search comparing names at every step, since a probe's
//! registration looks its symbol up by name. A garbage index can only make
//! a lookup visit every bucket once, and validation checks that each name
//! has exactly one bucket, which holds its first entry.
use crate::adler32;
use crate::layout::{
    BUCKET_SIZE, ENTRY_SIZE, Flags, HEADER_SIZE, MAGIC_EMPTY, MAGIC_FILLED, bucket_count, entry, header, home_bucket,
    name_hash,
};
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
    /// A bucket of the name hash index names an entry that does not exist.
    BucketOutOfRange,
    /// The name hash index does not give every name exactly one bucket,
    /// holding the first entry of that name, on that name's probe sequence.
    HashIndexMismatch,
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
            Invalid::BucketOutOfRange => "name hash bucket out of range",
            Invalid::HashIndexMismatch => "name hash index does not match the names",
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
    /// The `count` entries, each one bounds check away.
    entries: &'a [[u8; ENTRY_SIZE]],
    count: usize,
    buckets: usize,
    /// The number of buckets less one (a power of two less one).
    mask: usize,
    strings: usize,
    strings_len: usize,
    used: usize,
    /// The strings as text, once [`Table::open`] has validated them: names
    /// are then slices of it (two char-boundary checks) rather than each
    /// checked as UTF-8 at every lookup. `None` after [`Table::parse`].
    text: Option<&'a str>,
}

/// Whether `a` and `b` hold the same bytes, compared a word at a time (the
/// compiler's `==` calls the byte-at-a-time `memcmp` of compiler_builtins).
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let ((a_words, a_tail), (b_words, b_tail)) = (a.as_chunks::<4>(), b.as_chunks::<4>());
    let tails_equal = a_tail.iter().eq(b_tail);
    a_words.iter().zip(b_words).all(|(x, y)| u32::from_ne_bytes(*x) == u32::from_ne_bytes(*y)) && tails_equal
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
        // As u64s: one comparison each, rather than a call to memcmp.
        let magic = bytes.first_chunk().map(|magic| u64::from_le_bytes(*magic));
        if magic == Some(u64::from_le_bytes(MAGIC_EMPTY)) {
            return Err(Invalid::Empty);
        }
        if magic != Some(u64::from_le_bytes(MAGIC_FILLED)) || bytes.len() < HEADER_SIZE {
            return Err(Invalid::BadMagic);
        }
        if word(bytes, header::CAPACITY) as usize != bytes.len() {
            return Err(Invalid::CapacityMismatch);
        }
        let field = |offset| word(bytes, offset) as usize;
        let count = field(header::COUNT);
        let (entries, buckets, slots) = (field(header::ENTRIES), field(header::BUCKETS), field(header::BUCKET_COUNT));
        let (strings, strings_len, used) = (field(header::STRINGS), field(header::STRINGS_LEN), field(header::USED));
        // Checked arithmetic: the fields are anything a u32 can hold.
        let after = |start: usize, items: usize, size: usize| items.checked_mul(size)?.checked_add(start);
        let layout_ok = entries == HEADER_SIZE
            && after(entries, count, ENTRY_SIZE) == Some(buckets)
            && bucket_count(count) == Some(slots)
            && after(buckets, slots, BUCKET_SIZE) == Some(strings)
            && strings.checked_add(strings_len) == Some(used)
            && used <= bytes.len();
        if !layout_ok {
            return Err(Invalid::InconsistentHeader);
        }
        // In range, as `HEADER_SIZE <= buckets <= used <= bytes.len()`.
        let (entries, _) = bytes.get(HEADER_SIZE..buckets).unwrap_or(&[]).as_chunks();
        Ok(Table { bytes, entries, count, buckets, mask: slots - 1, strings, strings_len, used, text: None })
    }

    /// [`Table::parse`] and [`Table::validate`]: a table whose every answer
    /// is the one its writer meant. Keep it rather than parse again: its
    /// lookups skip the UTF-8 check of the name they answer with.
    pub fn open(bytes: &'a [u8]) -> Result<Table<'a>, Invalid> {
        let table = Table::parse(bytes)?;
        table.validate()?;
        // Names and their NULs, so text (a table with other bytes between
        // its names is not the writer's, and its checksum says so).
        let text = core::str::from_utf8(&bytes[table.strings..table.used]).ok();
        Ok(Table { text, ..table })
    }

    /// The full check, linear in the table's size: zero padding, checksum,
    /// address order, sizes, names and the name hash index. Any changed byte
    /// of a table the writer built makes it fail.
    ///
    /// The hash index is checked through the lookup itself: every bucket is
    /// empty or names an entry; every entry's name, looked up, gives an entry
    /// with that name and not after it (so, for the first entry of a name,
    /// that entry itself); and there are no other filled buckets than those
    /// the distinct names found. Linear in the size for the writer's tables
    /// (short probe sequences); a table crafted to pass the checksum with
    /// long ones costs at most one probe sequence per entry.
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
        let mut filled = 0;
        for slot in 0..=self.mask {
            match self.bucket(slot) {
                0 => {}
                value if value - 1 < self.count => filled += 1,
                _ => return Err(Invalid::BucketOutOfRange),
            }
        }
        // Names were all checked above: they are inside the strings.
        let mut distinct = 0;
        for index in 0..self.count {
            let name = self.name_bytes(&self.entry(index)).unwrap_or(&[]);
            match self.find(name).map(|(first, _)| first) {
                Some(first) if first < index => {}
                Some(first) if first == index => distinct += 1,
                _ => return Err(Invalid::HashIndexMismatch),
            }
        }
        if filled != distinct {
            return Err(Invalid::HashIndexMismatch);
        }
        Ok(())
    }

    /// How many symbols the table holds.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Entry `index`; zeros outside the table.
    fn entry(&self, index: usize) -> Entry {
        // One bounds check for the entry, not one per field.
        let bytes = self.entries.get(index).unwrap_or(&[0; ENTRY_SIZE]);
        let packed = word(bytes, entry::NAME_LEN);
        const _: () = assert!(entry::FLAGS == entry::NAME_LEN + 2);
        Entry {
            address: word(bytes, entry::ADDRESS),
            size: word(bytes, entry::SIZE),
            name: word(bytes, entry::NAME),
            name_len: packed as u16,
            flags: Flags((packed >> 16) as u16),
        }
    }

    fn address(&self, index: usize) -> usize {
        self.entries.get(index).map_or(0, |entry| word(entry, entry::ADDRESS)) as usize
    }

    /// The name bytes of `entry`, if they lie inside the strings.
    fn name_bytes(&self, entry: &Entry) -> Option<&'a [u8]> {
        let (start, len) = (entry.name as usize, entry.name_len as usize);
        let end = start.checked_add(len).filter(|&end| end <= self.strings_len)?;
        self.bytes.get(self.strings + start..self.strings + end)
    }

    /// Bucket `slot` of the name hash index: 0 (empty) or 1 + an entry index.
    fn bucket(&self, slot: usize) -> usize {
        word(self.bytes, self.buckets.saturating_add(slot.saturating_mul(BUCKET_SIZE))) as usize
    }

    /// The entry the hash index gives for `name`, and its index: that of the
    /// first bucket of its probe sequence that names an entry called `name`,
    /// if one comes before an empty bucket. Visits each bucket at most once.
    fn find(&self, name: &[u8]) -> Option<(usize, Entry)> {
        let mut slot = home_bucket(name_hash(name), self.mask + 1);
        for _ in 0..=self.mask {
            let index = self.bucket(slot).checked_sub(1)?;
            let entry = self.entry(index);
            match self.name_bytes(&entry) {
                Some(found) if same_bytes(found, name) => return Some((index, entry)),
                _ => {}
            }
            slot = (slot + 1) & self.mask;
        }
        None
    }

    /// Entry `index` as a symbol, `offset` bytes in; `None` if its name is
    /// not text (only in a table that failed validation).
    pub fn symbol(&self, index: usize, offset: usize) -> Option<Symbol<'a>> {
        if index >= self.count {
            return None;
        }
        let entry = self.entry(index);
        self.symbol_of(&entry, offset)
    }

    /// `entry` as a symbol `offset` bytes in; `None` if its name is not text.
    fn symbol_of(&self, entry: &Entry, offset: usize) -> Option<Symbol<'a>> {
        // A name that is text on its own and lies in text starts and ends on
        // character boundaries of it, so `get` fails only for a bad name.
        let start = entry.name as usize;
        let end = start.checked_add(entry.name_len as usize)?;
        let name = match self.text {
            Some(text) => text.get(start..end)?,
            None => core::str::from_utf8(self.name_bytes(entry)?).ok()?,
        };
        Some(Symbol { name, address: entry.address as usize, size: entry.size as usize, offset })
    }

    /// Every symbol in address order (offset 0), labels nested in functions
    /// included.
    pub fn iter(&self) -> impl Iterator<Item = Symbol<'a>> + use<'a> {
        let table = *self;
        (0..self.count).filter_map(move |index| table.symbol(index, 0))
    }

    /// The symbol called `name` (offset 0); of several with that name, the
    /// one at the lowest address. Through the hash index: the cost is a hash
    /// of `name` and about one name comparison, whatever the table's size.
    pub fn lookup_name(&self, name: &str) -> Option<Symbol<'a>> {
        let (index, entry) = self.find(name.as_bytes())?;
        // Only a bucket out of range in an unvalidated table gets this far
        // with an index that is no entry.
        if index >= self.count {
            return None;
        }
        self.symbol_of(&entry, 0)
    }

    /// Index of the first entry whose address is above `address`.
    fn partition(&self, address: usize) -> usize {
        self.entries.partition_point(|entry| word(entry, entry::ADDRESS) as usize <= address)
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
            .map(|candidate| self.entry(candidate))
            .find(|entry| !entry.flags.contains(Flags::NESTED) && entry.contains(address))
            .and_then(|entry| self.symbol_of(&entry, address - entry.address as usize))
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
