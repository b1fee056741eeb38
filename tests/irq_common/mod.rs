//! What the IRQ test kernels share: bytes sent through the UART's loopback
//! and received by its interrupt, with the interrupt counts around it.
//!
//! In loopback the 16550 receives what it transmits, so a test can raise
//! COM1's receive interrupt (IRQ 4) at will. Nothing may print while the
//! loopback is on: the test's own output would be received too.
use alloc::vec::Vec;
use probe_kernel::arch::x86::{irq, serial, smp};
use probe_kernel::task;

/// What one loopback round saw.
pub struct Received {
    /// The bytes read back, in order, until the receiver was empty.
    pub bytes: Vec<u8>,
    /// How many of them the receive interrupt took (the rest were polled).
    pub by_interrupt: u32,
    /// IRQ 4 interrupts taken during the round, per online CPU.
    pub interrupts: Vec<u32>,
}

/// Sends `bytes` through the loopback with interrupts on, waits (up to 50
/// ticks, 200 ms) for the receive interrupt to have taken all of them,
/// then reads back everything the port holds.
pub fn loopback_round(bytes: &[u8]) -> Received {
    let cpus = smp::online_cpus();
    let counts = || (0..cpus).map(|cpu| irq::count(serial::IRQ, cpu)).collect::<Vec<_>>();
    let interrupts_before = counts();
    let taken_before = serial::bytes_taken_by_interrupt();
    serial::set_loopback(true);
    for &byte in bytes {
        serial::write_byte(byte);
    }
    let deadline = task::ticks() + 50;
    while serial::bytes_taken_by_interrupt() - taken_before < bytes.len() as u32 && task::ticks() < deadline {
        core::hint::spin_loop();
    }
    let by_interrupt = serial::bytes_taken_by_interrupt() - taken_before;
    let mut received = Vec::new();
    while let Some(byte) = serial::try_read_byte() {
        received.push(byte);
    }
    serial::set_loopback(false);
    let interrupts = counts().iter().zip(&interrupts_before).map(|(after, before)| after - before).collect();
    Received { bytes: received, by_interrupt, interrupts }
}
