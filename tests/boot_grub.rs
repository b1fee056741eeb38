//! Booting through GRUB from the ISO (Multiboot2) gives the kernel what it needs.
//!
//! Why: `make run` and real machines boot this way (the runner boots every
//! `boot_grub*` test kernel from the ISO); what the kernel learns from the
//! Multiboot2 information must be right.
// run.sh: --smp=1
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use probe_kernel::boot_info::{self, Protocol, RegionKind};

probe_kernel::test_kernel_main!();

#[test_case]
fn booted_by_grub_via_multiboot2() {
    let boot = boot_info::get().unwrap();
    assert_eq!(boot.protocol, Protocol::Multiboot2);
    assert!(boot.bootloader_name().starts_with("GRUB"), "loader: {}", boot.bootloader_name());
}

#[test_case]
fn memory_map_covers_the_kernel() {
    let boot = boot_info::get().unwrap();
    let image = probe_kernel::arch::x86::paging::kernel_image();
    let holds_kernel = boot.memory_map().iter().any(|r| {
        r.kind == RegionKind::Available && r.start <= image.start as u64 && image.end as u64 <= r.start + r.length
    });
    assert!(holds_kernel, "no available region holds the kernel image {image:x?}");
    // QEMU is started with -m 128M: between 126 and 128 MiB are usable.
    let available = boot.available_memory();
    assert!((126 << 20..=128 << 20).contains(&available), "{available} bytes available");
}

#[test_case]
fn info_structure_is_recorded_and_copied() {
    let boot = boot_info::get().unwrap();
    assert!(boot.info_range.end > boot.info_range.start);
    assert!(!boot.memory_map().is_empty());
}

#[test_case]
fn boot_information_is_not_in_the_heap() {
    let boot = boot_info::get().unwrap();
    let heap = probe_kernel::memory::heap_range();
    assert!(
        boot.info_range.end <= heap.start || boot.info_range.start >= heap.end,
        "info {:x?} overlaps heap {heap:x?}",
        boot.info_range
    );
}

#[test_case]
fn the_rsdp_comes_from_the_acpi_tag() {
    use probe_kernel::arch::x86::platform::{self, CpuEntry, Source};
    // QEMU's BIOS has an ACPI 1.0 RSDP (revision 0): GRUB passes the "old" tag.
    let rsdp = boot_info::get().unwrap().rsdp.expect("no ACPI tag from GRUB");
    assert_eq!((&rsdp.bytes[..8], rsdp.bytes[15], rsdp.from_new_tag), (&b"RSD PTR "[..], 0, false));
    assert_eq!(rsdp.bytes[20..], [0; 16]);
    let topology = platform::topology();
    assert_eq!(topology.source, Source::Acpi);
    assert_eq!(topology.cpus(), &[CpuEntry { apic_id: 0, enabled: true }]);
}
