//! Platform discovery on QEMU's default machine (`-smp 1`): ACPI, and the MP table beside it.
//!
//! Why: the code that starts other CPUs and routes interrupts trusts this
//! topology; each firmware source must describe the machine exactly, and
//! device memory near 4 GiB must be reachable through `map_mmio`.
// run.sh: --smp=1
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

mod platform_common;

use platform_common::{QEMU_ACPI_OVERRIDES, QEMU_MP_OVERRIDES, assert_qemu_machine, lapic_id_register};
use probe_kernel::arch::x86::paging;
use probe_kernel::arch::x86::platform::{self, Source, acpi, mptable};
use probe_kernel::boot_info;

probe_kernel::test_kernel_main!();

#[test_case]
fn boot_found_one_cpu_through_acpi() {
    let topology = platform::topology();
    assert_eq!(topology.source, Source::Acpi);
    assert_qemu_machine(topology, 1);
    assert_eq!(topology.isa_overrides(), &QEMU_ACPI_OVERRIDES);
    assert_eq!(topology.isa_irq_to_gsi(0), 2);
    assert_eq!(topology.isa_irq_to_gsi(1), 1);
}

#[test_case]
fn the_mp_table_describes_the_same_machine() {
    let boot = boot_info::get().unwrap();
    let topology = mptable::discover(&boot.bios_area, platform::current_apic_id()).unwrap();
    assert_eq!(topology.source, Source::MpTable);
    assert_qemu_machine(&topology, 1);
    assert_eq!(topology.isa_overrides(), &QEMU_MP_OVERRIDES);
}

#[test_case]
fn multiboot1_gives_no_rsdp_so_the_bios_area_is_searched() {
    let boot = boot_info::get().unwrap();
    assert_eq!(boot.rsdp, None);
    let rsdp = acpi::find_rsdp(boot).unwrap();
    assert!((0xe_0000..0x10_0000).contains(&rsdp), "RSDP at {rsdp:#x}");
    assert_eq!(rsdp % 16, 0);
    assert_eq!(acpi::discover(boot, 0).unwrap(), *platform::topology());
}

#[test_case]
fn the_bios_data_area_was_read_before_paging() {
    // SeaBIOS with -m 128M: 639 KiB of base memory, the EBDA in the last KiB.
    let bios = boot_info::get().unwrap().bios_area;
    assert_eq!(bios.ebda_start, Some(0x9_fc00));
    assert_eq!(bios.base_memory_end, Some(0x9_fc00));
}

#[test_case]
fn local_apic_and_ioapic_pages_are_mapped_uncached_and_idempotently() {
    assert!(paging::is_mapped(0xfee0_0000) && paging::is_mapped(0xfec0_0000));
    paging::map_mmio(0xfec0_0000..0xfec0_1000);
    paging::map_mmio(0xfee0_0000..0xfee0_1000);
    assert_eq!(lapic_id_register(), platform::current_apic_id());
    // Below 128 MiB nothing changes: page 0 stays absent.
    paging::map_mmio(0..0x1000);
    assert!(!paging::is_mapped(0));
}

#[test_case]
fn a_range_across_two_large_pages_maps_both() {
    assert!(!paging::is_mapped(0xffbf_f000) && !paging::is_mapped(0xffc0_0000));
    paging::map_mmio(0xffbf_f000..0xffc0_1000);
    assert!(paging::is_mapped(0xff80_0000) && paging::is_mapped(0xffff_fff0));
    assert!(!paging::is_mapped(0xff7f_ffff));
    // The top of 4 GiB is the BIOS ROM: its reset vector is the far jump
    // (EA) that the low copy at 0xFFFF0 holds too.
    // SAFETY: both addresses are mapped (checked above; the low one is in
    // the identity map) and hold ROM or its read-only shadow.
    let (high, low) = unsafe {
        (core::ptr::read_volatile(0xffff_fff0 as *const [u8; 5]), core::ptr::read_volatile(0xf_fff0 as *const [u8; 5]))
    };
    assert_eq!(high[0], 0xea);
    assert_eq!(high, low);
}
