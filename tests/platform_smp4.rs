//! Platform discovery on a four-core machine (`-smp 4`): ACPI lists every CPU, the MP table one per package.
//!
//! Why: the other CPUs are started from this list; every one of them must
//! be there, with its own APIC id. QEMU 7.2's `-smp 4` is one socket of four
//! cores, and the BIOS's MP table (MPS 1.4 predates multi-core packages)
//! lists one processor per package: only ACPI sees the other three cores.
//! `platform_smp4_sockets` has four packages, which both tables list.
// run.sh: --smp=4
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

mod platform_common;

use platform_common::{QEMU_ACPI_OVERRIDES, QEMU_MP_OVERRIDES, assert_qemu_machine};
use probe_kernel::arch::x86::platform::{self, Source, mptable};
use probe_kernel::boot_info;

probe_kernel::test_kernel_main!();

#[test_case]
fn boot_found_four_cpus_through_acpi() {
    let topology = platform::topology();
    assert_eq!(topology.source, Source::Acpi);
    assert_qemu_machine(topology, 4);
    assert_eq!(topology.isa_overrides(), &QEMU_ACPI_OVERRIDES);
}

#[test_case]
fn the_mp_table_lists_one_cpu_per_package() {
    let boot = boot_info::get().unwrap();
    let topology = mptable::discover(&boot.bios_area, platform::current_apic_id()).unwrap();
    assert_eq!(topology.source, Source::MpTable);
    assert_qemu_machine(&topology, 1);
    assert_eq!(topology.isa_overrides(), &QEMU_MP_OVERRIDES);
    // CPUID agrees that the package has four logical processors.
    assert_eq!((core::arch::x86::__cpuid(1).ebx >> 16) & 0xff, 4);
}
