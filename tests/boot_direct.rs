//! Booting with QEMU's `-kernel` (Multiboot1) gives the kernel what it needs.
//!
//! Why: it is the fast path every other test kernel uses, so what the kernel
//! learns from it (protocol, loader name, memory map, where the boot
//! information lies) must be right.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use probe_kernel::boot_info::{self, Protocol, RegionKind};

probe_kernel::test_kernel_main!();

#[test_case]
fn booted_by_qemu_via_multiboot1() {
    let boot = boot_info::get().unwrap();
    assert_eq!(boot.protocol, Protocol::Multiboot1);
    assert_eq!(boot.bootloader_name(), "qemu");
}

#[test_case]
fn memory_map_has_low_and_high_memory() {
    let boot = boot_info::get().unwrap();
    let map = boot.memory_map();
    assert!(map.iter().any(|r| r.kind == RegionKind::Available && r.start == 0));
    assert!(map.iter().any(|r| r.kind == RegionKind::Available && r.start == 0x10_0000));
    let available = boot.available_memory();
    assert!((126 << 20..=128 << 20).contains(&available), "{available} bytes available");
}

#[test_case]
fn heap_is_outside_the_boot_information() {
    let boot = boot_info::get().unwrap();
    let heap = probe_kernel::memory::heap_range();
    assert!(boot.info_range.end <= heap.start || boot.info_range.start >= heap.end);
    let v = alloc::vec![7u8; 1000];
    assert_eq!(v.iter().map(|&b| b as u32).sum::<u32>(), 7000);
}

extern crate alloc;
