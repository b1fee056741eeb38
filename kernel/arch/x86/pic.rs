//! The two 8259 PICs, remapped to vectors 32–47.
//!
//! Every line starts masked (the cascade aside): each CPU's tick comes from
//! its local APIC timer, and the PIT is only polled. With an I/O APIC (the
//! usual case) the PIC stays fully masked; under `noapic`, or on a machine
//! without one, `irq` unmasks the lines it routes here, and they reach the
//! boot CPU through its local APIC's LINT0 (virtual-wire mode).
use x86::io::{inb, outb};

const MASTER_COMMAND: u16 = 0x20;
const MASTER_DATA: u16 = 0x21;
const SLAVE_COMMAND: u16 = 0xa0;
const SLAVE_DATA: u16 = 0xa1;
const END_OF_INTERRUPT: u8 = 0x20;
const READ_ISR: u8 = 0x0b;

/// Remaps both PICs to vectors 32–47 and masks everything but the cascade.
///
/// # Safety
/// Call once at boot with interrupts off, after the IDT has gates for 32–47.
pub unsafe fn init() {
    // SAFETY: the standard ICW1–ICW4 sequence on the PC's PIC ports.
    unsafe {
        outb(MASTER_COMMAND, 0x11);
        outb(SLAVE_COMMAND, 0x11);
        outb(MASTER_DATA, 32);
        outb(SLAVE_DATA, 40);
        outb(MASTER_DATA, 4); // slave on IRQ 2
        outb(SLAVE_DATA, 2);
        outb(MASTER_DATA, 0x01); // 8086 mode
        outb(SLAVE_DATA, 0x01);
        outb(MASTER_DATA, !0b0000_0100); // only the cascade unmasked
        outb(SLAVE_DATA, 0xff);
    }
}

fn in_service(command_port: u16) -> u8 {
    // SAFETY: OCW3 "read ISR" then a read of the same port; no memory effects.
    unsafe {
        outb(command_port, READ_ISR);
        inb(command_port)
    }
}

/// Acknowledges `irq` at the PIC(s).
pub fn end_of_interrupt(irq: u8) {
    // SAFETY: EOI writes to the PIC command ports.
    unsafe {
        if irq >= 8 {
            outb(SLAVE_COMMAND, END_OF_INTERRUPT);
        }
        outb(MASTER_COMMAND, END_OF_INTERRUPT);
    }
}

/// Whether IRQ `irq` is the PIC's spurious interrupt: IRQ 7 or 15 raised
/// while its in-service bit is clear (the request went away before the
/// CPU acknowledged it). A spurious IRQ 7 wants no EOI; a spurious 15
/// wants one at the master only (it did cascade through IRQ 2).
#[unsafe(link_section = ".kprobes.text")]
pub fn is_spurious(irq: u8) -> bool {
    match irq {
        7 => in_service(MASTER_COMMAND) & 0x80 == 0,
        15 => in_service(SLAVE_COMMAND) & 0x80 == 0,
        _ => false,
    }
}

/// Masks every line, the cascade too: the I/O APIC delivers device
/// interrupts instead.
pub fn mask_all() {
    // SAFETY: OCW1 writes to the mask registers only.
    unsafe {
        outb(MASTER_DATA, 0xff);
        outb(SLAVE_DATA, 0xff);
    }
}

/// Unmasks (`masked` false) or masks IRQ `irq` (0–15). Lines of the slave
/// PIC reach the CPU through the cascade, which [`init`] leaves unmasked.
pub fn set_masked(irq: u8, masked: bool) {
    let (port, bit) = if irq < 8 { (MASTER_DATA, irq) } else { (SLAVE_DATA, irq - 8) };
    // SAFETY: reading and writing the PIC's mask register (OCW1).
    unsafe {
        let current = inb(port);
        outb(port, if masked { current | 1 << bit } else { current & !(1 << bit) });
    }
}
