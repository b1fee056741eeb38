//! The two 8259 PICs, remapped to vectors 32–47, and IRQ dispatch.
//!
//! Every line is masked (the cascade aside): each CPU's tick comes from its
//! local APIC timer, and the PIT is only polled. IRQs that arrive anyway
//! are acknowledged. Spurious IRQs 7 and 15 are recognised and not acknowledged.
use super::trap::TrapFrame;
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

/// Handles IRQ `irq` (0–15) interrupted at `frame`.
#[unsafe(link_section = ".kprobes.text")]
pub fn handle_irq(irq: u8, frame: &mut TrapFrame) {
    let outer = crate::task::interrupt_enter(frame.eip as usize);
    match irq {
        7 if in_service(MASTER_COMMAND) & 0x80 == 0 => {} // spurious: no EOI
        15 if in_service(SLAVE_COMMAND) & 0x80 == 0 => end_of_interrupt(2),
        _ => end_of_interrupt(irq),
    }
    crate::task::interrupt_leave(outer);
}
