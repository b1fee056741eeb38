//! `noapic`: device interrupts through the 8259 PIC to the boot CPU, on a
//! two-CPU machine whose I/O APIC stays masked.
//!
//! Why: the PIC is the path for machines without a usable I/O APIC, and
//! Linux's `noapic` is how to reach it on one that has one; serial input
//! must still arrive by interrupt, and only on CPU 0.
// run.sh: --smp=2 noapic
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

mod irq_common;

use irq_common::loopback_round;
use probe_kernel::arch::x86::irq::{self, Controller, IrqError};
use probe_kernel::arch::x86::{ioapic, platform, serial, smp};

probe_kernel::test_kernel_main!();

#[test_case]
fn noapic_chose_the_pic_and_left_the_io_apic_unprogrammed() {
    assert_eq!(smp::online_cpus(), 2);
    assert_eq!(irq::controller(), Some(Controller::Pic));
    assert_eq!(ioapic::isa_irq_entry(platform::topology(), serial::IRQ), None);
}

#[test_case]
fn serial_input_arrives_by_its_interrupt_on_the_boot_cpu() {
    let round = loopback_round(b"8259 pic");
    assert_eq!(round.bytes, b"8259 pic");
    assert_eq!(round.by_interrupt, 8);
    assert!(round.interrupts[0] >= 1, "IRQ 4 counts per CPU: {:?}", round.interrupts);
    assert_eq!(round.interrupts[1], 0);
}

#[test_case]
fn the_pic_cannot_send_a_line_to_another_cpu() {
    assert_eq!(irq::enable(serial::IRQ, 1), Err(IrqError::PicReachesBootCpuOnly));
    let round = loopback_round(b"still 0");
    assert_eq!((round.bytes.as_slice(), round.by_interrupt), (&b"still 0"[..], 7));
    assert_eq!(round.interrupts[1], 0);
}
