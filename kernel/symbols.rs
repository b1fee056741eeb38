//! Kernel symbols: name → address and address → name+offset/size, at run time.
//!
//! Backtraces name their frames and symbol-based probes (`symbol_name` +
//! `offset`, decoded from the function's first byte) need every function's
//! name, address and size, under every boot path. No loader hands the kernel
//! its own ELF symbols, so the table lives in the image: `TABLE` is a
//! fixed-size static in `.ksyms` that the post-link tool (kernel/ksyms-tool)
//! fills after linking, in place (boot/run.sh runs it on every kernel image).
//! The layout, the checks and the lookups are the `ksyms-table` crate's,
//! shared with the tool and tested on the host; in short, a 48-byte header,
//! 16-byte entries sorted by address, a hash index by name, then the names.
//!
//! Lookups are lock-free and allocation-free (trap handlers and the panic path
//! use them): a binary search by address, and by name a hash of the name and
//! about one name comparison (the hash index replaced a binary search by name
//! that compared names at every step and dominated a probe's registration).
//! After [`init`], lookups use the table it validated, without parsing the
//! header again. The table is read through a pointer the optimizer cannot
//! trace back to the static, because the compiler believes it knows the
//! static's (empty) content, which the post-link step replaced. An image nobody filled simply has no symbols:
//! lookups return `None`.
use crate::println;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use ksyms_table::layout::MAGIC_EMPTY;
use ksyms_table::params::{PARAMS_EMPTY, ParamTable, Params, ParamsInvalid};
use ksyms_table::{Invalid, Table};

/// Bytes reserved for the table in every kernel image. The post-link tool
/// says how much it needs when a table does not fit.
pub const CAPACITY: usize = 512 * 1024;

/// The table's storage as compiled: a header that says "empty" and zeros.
/// The non-zero magic keeps the section PROGBITS (file-backed), so the
/// post-link step has bytes to overwrite.
#[repr(C, align(16))]
struct Image {
    magic: [u8; 8],
    capacity: u32,
    rest: [u8; CAPACITY - 12],
}

const _: () = assert!(core::mem::size_of::<Image>() == CAPACITY);
const _: () = assert!(core::mem::offset_of!(Image, capacity) == ksyms_table::layout::header::CAPACITY);

/// The symbol table, filled after linking by the post-link tool, which
/// finds it by this exported name (`ksyms_table::layout::TABLE_SYMBOL`).
#[used]
#[unsafe(export_name = "probe_kernel_ksyms")]
#[unsafe(link_section = ".ksyms")]
static TABLE: Image = Image { magic: MAGIC_EMPTY, capacity: CAPACITY as u32, rest: [0; CAPACITY - 12] };

/// Bytes reserved for the parameter table (each function's parameters and
/// where they are at its entry, from DWARF; `ksyms_table::params`). The
/// kernel's takes a few hundred KiB; a table that does not fit is left
/// marked so by the post-link tool, which says how much it needs.
pub const PARAMS_CAPACITY: usize = 1024 * 1024;

/// The parameter table's storage as compiled: "empty" and zeros, filled
/// after linking like [`TABLE`].
#[repr(C, align(16))]
struct ParamsImage {
    magic: [u8; 8],
    capacity: u32,
    rest: [u8; PARAMS_CAPACITY - 12],
}

const _: () = assert!(core::mem::size_of::<ParamsImage>() == PARAMS_CAPACITY);
const _: () = assert!(core::mem::offset_of!(ParamsImage, capacity) == ksyms_table::params::header::CAPACITY);

/// The parameter table, filled after linking by the post-link tool, which
/// finds it by this exported name (`ksyms_table::params::PARAMS_SYMBOL`).
#[used]
#[unsafe(export_name = "probe_kernel_params")]
#[unsafe(link_section = ".kparams")]
static PARAMS: ParamsImage =
    ParamsImage { magic: PARAMS_EMPTY, capacity: PARAMS_CAPACITY as u32, rest: [0; PARAMS_CAPACITY - 12] };

/// The parameter table [`init`] validated, or why there is none.
static PARAMS_OPENED: spin::Once<Result<ParamTable<'static>, ParamsInvalid>> = spin::Once::new();

/// Set by [`init`] when the table fails validation; lookups then give up.
static BROKEN: AtomicBool = AtomicBool::new(false);

/// The table [`init`] validated. Lookups take it from here rather than parse
/// the header each time, and, opened, it gives names without checking them
/// as UTF-8 again: together most of a lookup by name, which every
/// symbol-based probe registration does.
static OPENED: spin::Once<Table<'static>> = spin::Once::new();

/// A function in the kernel image: its name, first byte and size, and the
/// offset into it of the address looked up (0 for lookups by name).
pub type Symbol = ksyms_table::Symbol<'static>;

/// The table's bytes, through a pointer laundered so the optimizer cannot
/// know what they hold (it would assume the compiled, empty content).
fn bytes() -> &'static [u8] {
    let base = core::hint::black_box(&raw const TABLE).cast::<u8>();
    // SAFETY: `base` points to the CAPACITY-byte static, which lives forever
    // and is never written at run time (only the post-link tool writes it, in
    // the file), so a shared slice over it is valid for 'static. The pointer
    // went through `black_box`, so the compiler cannot substitute the
    // compiled content for the bytes actually loaded.
    unsafe { core::slice::from_raw_parts(base, CAPACITY) }
}

/// The table, if it has been filled and looks sound: the one [`init`]
/// validated, or before that, one whose header passed a constant-time check.
fn table() -> Option<Table<'static>> {
    if let Some(table) = OPENED.get() {
        return Some(*table);
    }
    unopened()
}

/// `query` on the table, if there is one as [`table`] says; on the validated
/// one in place, without copying it.
fn with_table<R>(query: impl Fn(&Table<'static>) -> Option<R>) -> Option<R> {
    match OPENED.get() {
        Some(table) => query(table),
        None => query(&unopened()?),
    }
}

/// The table before [`init`] validated it: one whose header passed a
/// constant-time check, unless [`init`] found it broken.
fn unopened() -> Option<Table<'static>> {
    if BROKEN.load(Ordering::Relaxed) {
        return None;
    }
    Table::parse(bytes()).ok()
}

/// The parameter table's bytes, laundered as [`bytes`] is.
fn params_bytes() -> &'static [u8] {
    let base = core::hint::black_box(&raw const PARAMS).cast::<u8>();
    // SAFETY: as in `bytes`: `base` points to the PARAMS_CAPACITY-byte
    // static, which lives forever and is never written at run time.
    unsafe { core::slice::from_raw_parts(base, PARAMS_CAPACITY) }
}

/// The parameter table, validated once (by [`init`], or by the first
/// lookup before it), or why there is none.
pub fn params_table() -> Result<ParamTable<'static>, ParamsInvalid> {
    *PARAMS_OPENED.call_once(|| ParamTable::open(params_bytes()))
}

/// The parameters of the function that starts at `address`, in
/// declaration order, with where each one is at the function's first
/// instruction: `None` if the debug information does not describe a
/// function there (or the image has no parameter table). Binary search in
/// place; no allocation, no lock after the first call.
pub fn params_of(address: usize) -> Option<Params<'static>> {
    params_table().ok()?.params_of(address)
}

/// Validates the table. Called once at boot; prints one line if the image
/// has no usable table (lookups then return `None`).
pub fn init() {
    match params_table() {
        Ok(_) | Err(ParamsInvalid::Empty) => {}
        Err(ParamsInvalid::TooSmall(needed)) => println!(
            "symbols: no parameter table: it needs {needed} bytes, more than PARAMS_CAPACITY ({PARAMS_CAPACITY}); \
             probes cannot name parameters"
        ),
        Err(reason) => println!("symbols: ignoring the parameter table: {reason}; probes cannot name parameters"),
    }
    match Table::open(bytes()) {
        Ok(table) => {
            OPENED.call_once(|| table);
        }
        Err(Invalid::Empty) => {
            println!("symbols: no symbol table in this image (the post-link tool did not run); addresses stay bare");
        }
        Err(reason) => {
            BROKEN.store(true, Ordering::Relaxed);
            println!("symbols: ignoring the symbol table: {reason}; addresses stay bare");
        }
    }
}

/// How many symbols the table holds (0 without a table).
pub fn count() -> usize {
    table().map_or(0, |table| table.count())
}

/// Every symbol, in address order (offset 0). Labels inside functions
/// (see [`lookup_address`]) are included.
pub fn iter() -> impl Iterator<Item = Symbol> {
    table().into_iter().flat_map(|table| table.iter())
}

/// The function called `name` (offset 0). Names are demangled paths without
/// hashes, e.g. `probe_kernel::arch::x86::trap::trap_dispatch`, or plain C
/// names. If several functions share a name, the lowest address wins.
pub fn lookup_name(name: &str) -> Option<Symbol> {
    with_table(|table| table.lookup_name(name))
}

/// The function containing `address`, with `offset = address - start`;
/// `None` if `address` lies in no function (padding, data, beyond the end).
/// An asm label inside a function does not count as its own function here.
pub fn lookup_address(address: usize) -> Option<Symbol> {
    with_table(|table| table.lookup_address(address))
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
    with_table(|table| table.lookup_return_address(address))
}
