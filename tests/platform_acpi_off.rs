//! `acpi=off` on the command line: discovery at boot reads the MP table instead.
//!
//! Why: the MP table is the fallback when ACPI is broken, and `acpi=off` is
//! how to reach it on a machine whose ACPI works; the switch must hold.
// run.sh: --smp=1 acpi=off
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

mod platform_common;

use platform_common::{QEMU_MP_OVERRIDES, assert_qemu_machine};
use probe_kernel::arch::x86::platform::{self, Source};
use probe_kernel::boot_info;

probe_kernel::test_kernel_main!();

#[test_case]
fn the_command_line_says_acpi_off() {
    let line = probe_kernel::cmdline::parse(boot_info::get().unwrap().command_line(), |_| {});
    assert!(line.acpi_off);
}

#[test_case]
fn boot_found_one_cpu_through_the_mp_table() {
    let topology = platform::topology();
    assert_eq!(topology.source, Source::MpTable);
    assert_qemu_machine(topology, 1);
    assert_eq!(topology.isa_overrides(), &QEMU_MP_OVERRIDES);
}
