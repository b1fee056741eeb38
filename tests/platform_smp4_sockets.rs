//! Platform discovery on four single-core packages with `acpi=off`: the MP table at boot, and ACPI.
//!
//! Why: with one CPU per package the BIOS's MP table lists every CPU, so
//! the fallback path must find all four, with their own APIC ids, as ACPI
//! does.
// run.sh: --smp=4,sockets=4 acpi=off
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

mod platform_common;

use platform_common::{QEMU_ACPI_OVERRIDES, QEMU_MP_OVERRIDES, assert_qemu_machine};
use probe_kernel::arch::x86::platform::{self, Source, acpi};
use probe_kernel::boot_info;

probe_kernel::test_kernel_main!();

#[test_case]
fn boot_found_four_cpus_through_the_mp_table() {
    let topology = platform::topology();
    assert_eq!(topology.source, Source::MpTable);
    assert_qemu_machine(topology, 4);
    assert_eq!(topology.isa_overrides(), &QEMU_MP_OVERRIDES);
}

#[test_case]
fn acpi_lists_the_same_four_cpus() {
    let topology = acpi::discover(boot_info::get().unwrap(), platform::current_apic_id()).unwrap();
    assert_eq!(topology.source, Source::Acpi);
    assert_qemu_machine(&topology, 4);
    assert_eq!(topology.isa_overrides(), &QEMU_ACPI_OVERRIDES);
}
