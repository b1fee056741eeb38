//! Kernel symbols: name → address and address → name+offset/size, at run time.
//!
//! Backtraces name their frames and symbol-based probes (`symbol_name` +
//! `offset`, decoded from the function's first byte) need every function's
//! name, address and size, under every boot path. No loader hands the kernel
//! its own ELF symbols, so the table lives in the image: `TABLE` is a
//! fixed-size static in `.ksyms` that `tools/ksyms.py` fills after linking, in
//! place (boot/run.sh runs it on every kernel image). The layout is documented
//! in tools/ksyms.py; in short, a 48-byte header, 16-byte entries sorted by
//! address, an index sorted by name, then the names.
//!
//! Lookups are lock-free and allocation-free (trap handlers and the panic path
//! use them): a binary search by address, a binary search by name. The table
//! is read through volatile reads and a pointer the optimizer cannot trace
//! back to the static, because the compiler believes it knows the static's
//! (empty) content, which the post-link step replaced. An image nobody filled
//! simply has no symbols: lookups return `None`.
use crate::println;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

/// Bytes reserved for the table in every kernel image. tools/ksyms.py says
/// how much it needs when a table does not fit.
pub const CAPACITY: usize = 512 * 1024;

const HEADER_SIZE: usize = 48;
const ENTRY_SIZE: usize = 16;
const MAGIC_EMPTY: [u8; 8] = *b"KSYMNONE";
const MAGIC_FILLED: [u8; 8] = *b"KSYMTAB1";
/// Entry flag: a label inside another symbol's range (such as an asm label
/// in the middle of a naked function). Address lookups report the enclosing
/// function instead; name lookups still find the label.
const FLAG_NESTED: u32 = 4;

/// The table's storage as compiled: a header that says "empty" and zeros.
/// The non-zero magic keeps the section PROGBITS (file-backed), so the
/// post-link step has bytes to overwrite.
#[repr(C, align(16))]
struct Image {
    magic: [u8; 8],
    capacity: u32,
    rest: [u8; CAPACITY - 12],
}

/// The symbol table, filled after linking by tools/ksyms.py, which finds it
/// by this exported name.
#[used]
#[unsafe(export_name = "probe_kernel_ksyms")]
#[unsafe(link_section = ".ksyms")]
static TABLE: Image = Image { magic: MAGIC_EMPTY, capacity: CAPACITY as u32, rest: [0; CAPACITY - 12] };

/// Set by [`init`] when the table fails validation; lookups then give up.
static BROKEN: AtomicBool = AtomicBool::new(false);

/// A function in the kernel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: &'static str,
    pub address: usize,
    pub size: usize,
    pub offset: usize,
}

/// The table's base address, laundered so the optimizer cannot know what the
/// bytes behind it hold (it would assume the compiled, empty content).
fn base() -> *const u8 {
    core::hint::black_box(&raw const TABLE).cast::<u8>()
}

/// The little-endian word at `offset` in the table, or 0 outside it.
fn word(offset: usize) -> u32 {
    if offset % 4 != 0 || offset > CAPACITY - 4 {
        return 0;
    }
    // SAFETY: the word lies inside the 16-aligned, CAPACITY-byte static and
    // is 4-aligned; the static is never written at run time.
    unsafe { core::ptr::read_volatile(base().add(offset).cast::<u32>()) }
}

/// The table's first eight bytes.
fn magic() -> [u8; 8] {
    // SAFETY: the first 8 bytes of the static, 16-aligned; never written at run time.
    unsafe { core::ptr::read_volatile(base().cast::<[u8; 8]>()) }
}

/// `len` bytes of the table from `offset`, or `None` outside it.
fn bytes(offset: usize, len: usize) -> Option<&'static [u8]> {
    if offset.checked_add(len)? > CAPACITY {
        return None;
    }
    // SAFETY: the range lies inside the static, which lives forever and is
    // never written at run time; the pointer comes from `base`, so the
    // compiler cannot substitute the compiled content.
    Some(unsafe { core::slice::from_raw_parts(base().add(offset), len) })
}

/// One entry, decoded.
#[derive(Clone, Copy)]
struct Entry {
    address: usize,
    size: usize,
    name: u32,
    name_len: u32,
    flags: u32,
}

/// A filled table whose header passed the (constant-time) checks: every
/// region it names lies inside the static.
#[derive(Clone, Copy)]
struct Table {
    count: usize,
    by_name: usize,
    strings: usize,
    strings_len: usize,
}

impl Table {
    /// The table, if it has been filled and looks sound.
    fn get() -> Option<Table> {
        if BROKEN.load(Ordering::Relaxed) {
            return None;
        }
        Table::check_header().ok()
    }

    fn check_header() -> Result<Table, &'static str> {
        if magic() != MAGIC_FILLED {
            return Err("bad magic");
        }
        if word(8) as usize != CAPACITY {
            return Err("capacity differs from this kernel's CAPACITY");
        }
        let count = word(12) as usize;
        let (entries, by_name, strings) = (word(16) as usize, word(20) as usize, word(24) as usize);
        let (strings_len, used) = (word(28) as usize, word(32) as usize);
        let layout_ok = count <= CAPACITY / (ENTRY_SIZE + 4)
            && entries == HEADER_SIZE
            && by_name == entries + count * ENTRY_SIZE
            && strings == by_name + count * 4
            && strings_len <= CAPACITY
            && strings + strings_len <= used
            && used <= CAPACITY;
        if !layout_ok {
            return Err("inconsistent header");
        }
        Ok(Table { count, by_name, strings, strings_len })
    }

    /// Entry `index` (< count).
    fn entry(&self, index: usize) -> Entry {
        let at = HEADER_SIZE + index * ENTRY_SIZE;
        let packed = word(at + 12);
        Entry {
            address: word(at) as usize,
            size: word(at + 4) as usize,
            name: word(at + 8),
            name_len: packed & 0xffff,
            flags: packed >> 16,
        }
    }

    fn address(&self, index: usize) -> usize {
        word(HEADER_SIZE + index * ENTRY_SIZE) as usize
    }

    /// The raw name bytes of `entry`; empty if they stray outside the strings.
    fn name_bytes(&self, entry: &Entry) -> &'static [u8] {
        let (start, len) = (entry.name as usize, entry.name_len as usize);
        if start.checked_add(len).is_none_or(|end| end > self.strings_len) {
            return &[];
        }
        bytes(self.strings + start, len).unwrap_or(&[])
    }

    fn symbol(&self, index: usize, offset: usize) -> Option<Symbol> {
        let entry = self.entry(index);
        let name = core::str::from_utf8(self.name_bytes(&entry)).ok()?;
        Some(Symbol { name, address: entry.address, size: entry.size, offset })
    }

    /// The entry index stored at position `rank` of the by-name index.
    fn by_name(&self, rank: usize) -> usize {
        word(self.by_name + rank * 4) as usize
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

    /// The full check [`init`] runs once: checksum, order, names, index.
    fn validate(&self) -> Result<(), &'static str> {
        let used = word(32) as usize;
        let body = bytes(HEADER_SIZE, used - HEADER_SIZE).ok_or("used beyond capacity")?;
        if adler32(body) != word(36) {
            return Err("checksum mismatch");
        }
        let mut previous = 0;
        for index in 0..self.count {
            let entry = self.entry(index);
            if entry.address < previous {
                return Err("entries not sorted by address");
            }
            previous = entry.address;
            if entry.size == 0 || entry.address.checked_add(entry.size).is_none() {
                return Err("entry with a bad size");
            }
            let name = self.name_bytes(&entry);
            if name.is_empty() || core::str::from_utf8(name).is_err() {
                return Err("entry with a bad name");
            }
        }
        let mut previous: &[u8] = &[];
        for rank in 0..self.count {
            let index = self.by_name(rank);
            if index >= self.count {
                return Err("name index out of range");
            }
            let name = self.name_bytes(&self.entry(index));
            if name < previous {
                return Err("name index not sorted");
            }
            previous = name;
        }
        Ok(())
    }
}

/// Adler-32, as Python's `zlib.adler32` computes it.
fn adler32(data: &[u8]) -> u32 {
    const MOD: u32 = 65521;
    let (mut a, mut b) = (1u32, 0u32);
    // 5552 bytes is the most that cannot overflow `b` before reducing.
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += byte as u32;
            b += a;
        }
        a %= MOD;
        b %= MOD;
    }
    (b << 16) | a
}

/// Validates the table. Called once at boot; prints one line if the image
/// has no usable table (lookups then return `None`).
pub fn init() {
    if magic() == MAGIC_EMPTY {
        println!("symbols: no symbol table in this image (tools/ksyms.py did not run); addresses stay bare");
        return;
    }
    let result = Table::check_header().and_then(|table| table.validate());
    if let Err(reason) = result {
        BROKEN.store(true, Ordering::Relaxed);
        println!("symbols: ignoring the symbol table: {reason}; addresses stay bare");
    }
}

/// How many symbols the table holds (0 without a table).
pub fn count() -> usize {
    Table::get().map_or(0, |table| table.count)
}

/// Every symbol, in address order (offset 0). Labels inside functions
/// (see [`lookup_address`]) are included.
pub fn iter() -> impl Iterator<Item = Symbol> {
    let table = Table::get();
    let count = table.map_or(0, |table| table.count);
    (0..count).filter_map(move |index| table?.symbol(index, 0))
}

/// The function called `name` (offset 0). Names are demangled paths without
/// hashes, e.g. `probe_kernel::arch::x86::trap::trap_dispatch`, or plain C
/// names. If several functions share a name, the lowest address wins.
pub fn lookup_name(name: &str) -> Option<Symbol> {
    let table = Table::get()?;
    let wanted = name.as_bytes();
    let (mut low, mut high) = (0, table.count);
    while low < high {
        let middle = low + (high - low) / 2;
        let index = table.by_name(middle);
        if table.name_bytes(&table.entry(index)) < wanted {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    if low == table.count {
        return None;
    }
    let index = table.by_name(low);
    (table.name_bytes(&table.entry(index)) == wanted).then(|| table.symbol(index, 0)).flatten()
}

/// The function containing `address`, with `offset = address - start`;
/// `None` if `address` lies in no function (padding, data, beyond the end).
/// An asm label inside a function does not count as its own function here.
pub fn lookup_address(address: usize) -> Option<Symbol> {
    let table = Table::get()?;
    let mut index = table.partition(address);
    // Walk back over labels nested in the function that contains them.
    while index > 0 && table.entry(index - 1).flags & FLAG_NESTED != 0 {
        index -= 1;
    }
    if index == 0 {
        return None;
    }
    // Entries sharing a start address are ordered most-preferred first.
    let start = table.address(index - 1);
    let mut first = index - 1;
    while first > 0 && table.address(first - 1) == start {
        first -= 1;
    }
    (first..index)
        .map(|candidate| (candidate, table.entry(candidate)))
        .find(|(_, entry)| entry.flags & FLAG_NESTED == 0 && address - entry.address < entry.size)
        .and_then(|(candidate, entry)| table.symbol(candidate, address - entry.address))
}

/// Formats an address as `name+0xoff/0xsize`.
pub struct Describe(pub usize);

fn write_symbol(f: &mut fmt::Formatter, symbol: Option<Symbol>) -> fmt::Result {
    match symbol {
        Some(s) => write!(f, "{}+{:#x}/{:#x}", s.name, s.offset, s.size),
        None => write!(f, "?"),
    }
}

impl fmt::Display for Describe {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_symbol(f, lookup_address(self.0))
    }
}

/// Formats a return address as `name+0xoff/0xsize`, naming the function
/// that made the call: the lookup uses `address - 1`, since a call that is
/// a function's last instruction returns to the first byte after it.
pub struct DescribeReturn(pub usize);

impl fmt::Display for DescribeReturn {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_symbol(f, lookup_return_address(self.0))
    }
}

/// The function that contains the call returning to `address` (looked up at
/// `address - 1`); the offset is that of `address` itself.
pub fn lookup_return_address(address: usize) -> Option<Symbol> {
    let mut symbol = lookup_address(address.checked_sub(1)?)?;
    symbol.offset += 1;
    Some(symbol)
}
