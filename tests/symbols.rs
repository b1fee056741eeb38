//! Test kernel: the run-time symbol table (kernel/symbols.rs, filled by kernel/ksyms-tool).
//!
//! Backtraces and symbol-based probes trust these answers to the byte: a
//! probe at `symbol_name + offset` decodes from the function's start and
//! checks `offset < size`, so names, addresses and sizes must be exact, and
//! lookups must see the table written after linking, not the empty one the
//! compiler built.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use core::hint::black_box;
use probe_kernel::symbols::{self, Describe, Symbol};

probe_kernel::test_kernel_main!();

/// A function with a known name, big enough that offset 3 lies inside it.
#[inline(never)]
fn that_fn(x: u32) -> u32 {
    black_box(x).wrapping_mul(2_654_435_761).rotate_left(7) ^ black_box(0x5a5a_5a5a)
}

/// A C-named function: found by its plain name.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn symbols_test_c_function(x: u32) -> u32 {
    black_box(x).wrapping_add(0x1234_5678).rotate_right(3)
}

fn that_fn_address() -> usize {
    that_fn as fn(u32) -> u32 as usize
}

fn c_function_address() -> usize {
    symbols_test_c_function as extern "C" fn(u32) -> u32 as usize
}

/// Data, not code: no function contains it.
static DATA: [u32; 4] = [1, 2, 3, 4];

fn that_fn_symbol() -> Symbol {
    symbols::lookup_name("symbols::that_fn").expect("symbols::that_fn is in the table")
}

#[test_case]
fn table_is_filled_and_sorted() {
    let count = symbols::count();
    assert!(count > 100, "only {count} symbols");
    assert_eq!(symbols::iter().count(), count);
    let mut previous = 0;
    for symbol in symbols::iter() {
        assert!(symbol.address >= previous, "{} at {:#x} is out of order", symbol.name, symbol.address);
        assert!(symbol.size > 0, "{} has size 0", symbol.name);
        assert_eq!(symbol.offset, 0);
        assert!(!symbol.name.is_empty());
        previous = symbol.address;
    }
}

#[test_case]
fn name_gives_exact_address() {
    let symbol = that_fn_symbol();
    assert_eq!(symbol.name, "symbols::that_fn");
    assert_eq!(symbol.address, that_fn_address());
    assert_eq!(symbol.offset, 0);
    assert!(symbol.size > 3, "size {:#x}", symbol.size);
    assert_eq!(black_box(that_fn)(1), that_fn(1)); // keep it called
}

#[test_case]
fn address_gives_name_offset_and_size() {
    let symbol = that_fn_symbol();
    let inside = symbols::lookup_address(that_fn_address() + 3).expect("an address inside that_fn");
    assert_eq!(inside, Symbol { name: "symbols::that_fn", address: that_fn_address(), size: symbol.size, offset: 3 });
    let start = symbols::lookup_address(that_fn_address()).unwrap();
    assert_eq!((start.name, start.offset), ("symbols::that_fn", 0));
    let last = symbols::lookup_address(that_fn_address() + symbol.size - 1).unwrap();
    assert_eq!((last.name, last.offset), ("symbols::that_fn", symbol.size - 1));
}

#[test_case]
fn size_ends_before_the_next_symbol() {
    let symbol = that_fn_symbol();
    let next = symbols::iter().find(|s| s.address > symbol.address).expect("a symbol after that_fn");
    assert!(next.address >= symbol.address + symbol.size, "{} at {:#x} overlaps", next.name, next.address);
    // Whatever lies at the end is not that_fn any more.
    let after = symbols::lookup_address(symbol.address + symbol.size);
    assert!(after.is_none_or(|s| s.name != "symbols::that_fn"));
}

#[test_case]
fn address_in_no_function_is_none() {
    assert_eq!(symbols::lookup_address(0), None);
    assert_eq!(symbols::lookup_address(0x1000), None);
    assert_eq!(symbols::lookup_address(usize::MAX), None);
    assert_eq!(symbols::lookup_address(&raw const DATA as usize), None);
    assert_eq!(black_box(&DATA)[3], 4);
    // Padding between two functions belongs to neither.
    let all = || symbols::iter();
    let gap = all()
        .zip(all().skip(1))
        .find(|(a, b)| a.address + a.size < b.address)
        .map(|(a, _)| a.address + a.size)
        .expect("some padding between functions");
    assert_eq!(symbols::lookup_address(gap), None);
    assert_eq!(format!("{}", Describe(gap)), "?");
}

#[test_case]
fn describe_formats_name_offset_size() {
    let symbol = that_fn_symbol();
    let text = format!("{}", Describe(that_fn_address() + 3));
    assert_eq!(text, format!("symbols::that_fn+0x3/{:#x}", symbol.size));
    assert_eq!(format!("{}", Describe(0)), "?");
}

#[test_case]
fn c_function_by_plain_name() {
    let symbol = symbols::lookup_name("symbols_test_c_function").expect("the no_mangle function");
    assert_eq!(symbol.address, c_function_address());
    assert_eq!(symbol.offset, 0);
    assert!(symbol.size > 0);
    let inside = symbols::lookup_address(c_function_address() + 1).unwrap();
    assert_eq!((inside.name, inside.offset), ("symbols_test_c_function", 1));
    assert_eq!(black_box(symbols_test_c_function)(1), symbols_test_c_function(1));
}

#[test_case]
fn unknown_names_are_none() {
    assert_eq!(symbols::lookup_name("symbols::that"), None);
    assert_eq!(symbols::lookup_name("symbols::that_fn2"), None);
    assert_eq!(symbols::lookup_name(""), None);
    assert_eq!(symbols::lookup_name("no::such::function"), None);
}

#[test_case]
fn library_functions_are_found() {
    let dispatch = symbols::lookup_name("probe_kernel::arch::x86::trap::trap_dispatch").expect("trap_dispatch");
    let inside = symbols::lookup_address(dispatch.address + 1).unwrap();
    assert_eq!((inside.name, inside.address, inside.offset), (dispatch.name, dispatch.address, 1));

    let common = probe_kernel::arch::x86::trap::trap_common as unsafe extern "C" fn() as usize;
    let symbol = symbols::lookup_name("probe_kernel::arch::x86::trap::trap_common").expect("trap_common");
    assert_eq!(symbol.address, common);
    // An asm label in the middle of a function: found by name, but an
    // address after it still belongs to the enclosing function.
    let site = probe_kernel::arch::x86::trap::dispatcher_return_site();
    assert_eq!(symbols::lookup_name("trap_common_return_site").map(|s| s.address), Some(site));
    let described = symbols::lookup_address(site).unwrap();
    assert_eq!((described.name, described.offset), (symbol.name, site - common));
    assert_eq!(described.size, symbol.size);

    // The entry point, an asm label with no ELF size.
    let start = symbols::lookup_name("_start").expect("_start");
    assert!(start.size > 0);
}

#[test_case]
fn every_symbol_round_trips() {
    for symbol in symbols::iter() {
        let by_name = symbols::lookup_name(symbol.name).expect("every name is found");
        assert_eq!(by_name.name, symbol.name);
        // Duplicated names (local copies in two codegen units): the lowest address.
        assert!(by_name.address <= symbol.address);
        // The last byte belongs to it or to a function enclosing it.
        let last = symbol.address + symbol.size - 1;
        let owner = symbols::lookup_address(last).expect("the last byte of a symbol is in a function");
        assert!(
            owner.address <= symbol.address && owner.address + owner.size >= symbol.address + symbol.size,
            "{} is not inside {}",
            symbol.name,
            owner.name
        );
        assert_eq!(owner.offset, last - owner.address);
    }
}
