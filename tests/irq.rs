//! Device interrupts through the I/O APIC on four CPUs: COM1's receive
//! interrupt routed to CPU 0 at boot, moved to another CPU and back, and
//! the typed errors of a bad request, which change nothing.
//!
//! Why: the I/O APIC is what lets device interrupts reach any CPU; the
//! serial console's input depends on its routing being right (vector,
//! destination, unmasked), and a mistake shows here as bytes that arrive
//! only by polling, or on the wrong CPU.
// run.sh: --smp=4
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

mod irq_common;

use alloc::vec;
use irq_common::loopback_round;
use probe_kernel::arch::x86::irq::{self, Controller, IrqError};
use probe_kernel::arch::x86::{ioapic, platform, serial, smp};

probe_kernel::test_kernel_main!();

/// Vector 36 (32 + IRQ 4), unmasked, edge, active high, fixed, physical.
const SERIAL_ENTRY_LOW: u32 = 36;

fn serial_entry() -> (u32, u32) {
    ioapic::isa_irq_entry(platform::topology(), serial::IRQ).expect("the I/O APIC has a pin for IRQ 4")
}

#[test_case]
fn boot_chose_the_io_apic_and_routed_serial_input_to_cpu_0() {
    assert_eq!(smp::online_cpus(), 4);
    assert_eq!(irq::controller(), Some(Controller::IoApic));
    assert_eq!(serial_entry(), (SERIAL_ENTRY_LOW, u32::from(smp::apic_id_of(0)) << 24));
}

#[test_case]
fn serial_input_arrives_by_its_interrupt_on_cpu_0() {
    let round = loopback_round(b"io-apic!");
    assert_eq!(round.bytes, b"io-apic!");
    assert_eq!(round.by_interrupt, 8, "every byte taken by IRQ 4, none left to polling");
    assert!(round.interrupts[0] >= 1, "IRQ 4 counts per CPU: {:?}", round.interrupts);
    assert_eq!(&round.interrupts[1..], &[0, 0, 0]);
}

#[test_case]
fn the_line_moves_to_another_cpu_and_back() {
    irq::enable(serial::IRQ, 2).unwrap();
    assert_eq!(serial_entry(), (SERIAL_ENTRY_LOW, u32::from(smp::apic_id_of(2)) << 24));
    let round = loopback_round(b"to cpu 2");
    irq::enable(serial::IRQ, 0).unwrap();
    assert_eq!(round.bytes, b"to cpu 2");
    assert_eq!(round.by_interrupt, 8);
    assert!(round.interrupts[2] >= 1, "IRQ 4 counts per CPU: {:?}", round.interrupts);
    assert_eq!((round.interrupts[0], round.interrupts[1], round.interrupts[3]), (0, 0, 0));
    let back = loopback_round(b"back");
    assert_eq!((back.bytes.as_slice(), back.by_interrupt), (&b"back"[..], 4));
    assert_eq!(&back.interrupts[1..], &[0, 0, 0]);
}

#[test_case]
fn a_masked_line_delivers_nothing_and_input_is_polled() {
    irq::disable(serial::IRQ).unwrap();
    assert_eq!(serial_entry().0, SERIAL_ENTRY_LOW | 1 << 16);
    let round = loopback_round(b"polled");
    irq::enable(serial::IRQ, 0).unwrap();
    assert_eq!(round.bytes, b"polled");
    assert_eq!((round.by_interrupt, round.interrupts), (0, vec![0, 0, 0, 0]));
}

fn no_handler(_irq: u8) {}

#[test_case]
fn bad_requests_are_typed_errors_that_change_nothing() {
    let before = serial_entry();
    assert_eq!(irq::set_handler(serial::IRQ, no_handler), Err(IrqError::Taken(4)));
    assert_eq!(irq::enable(2, 0), Err(IrqError::NoSuchLine(2)));
    assert_eq!(irq::enable(16, 0), Err(IrqError::NoSuchLine(16)));
    assert_eq!(irq::enable(serial::IRQ, 4), Err(IrqError::NoSuchCpu(4)));
    assert_eq!(irq::enable(5, 0), Err(IrqError::NoHandler(5)));
    assert_eq!(serial_entry(), before);
    let round = loopback_round(b"intact");
    assert_eq!((round.bytes.as_slice(), round.by_interrupt), (&b"intact"[..], 6));
}
