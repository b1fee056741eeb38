//! COM1 16550 UART, polled: output usable from any context, line input.
//!
//! There is no lock: every byte is one port write after a status poll, so a
//! trap handler can print while the code it interrupted was printing (their
//! bytes interleave; nothing deadlocks).
use x86::io::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2;
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_TRANSMIT_EMPTY: u8 = 1 << 5;
const MCR_LOOPBACK: u8 = 1 << 4;
const MCR_NORMAL: u8 = 0x0b; // DTR, RTS, OUT2

/// Programs COM1 for 115200 baud, 8N1, FIFOs on, interrupts off.
pub fn init() {
    // SAFETY: COM1's registers exist on every PC and QEMU machine; this is
    // the standard 16550 initialisation sequence.
    unsafe {
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x80); // DLAB on
        outb(DATA, 0x01); // divisor 1 = 115200 baud
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x03); // 8N1, DLAB off
        outb(FIFO_CONTROL, 0xc7);
        outb(MODEM_CONTROL, MCR_NORMAL);
    }
}

/// Sends one byte, waiting for room in the transmitter.
#[inline]
pub fn write_byte(byte: u8) {
    // SAFETY: reading LSR and writing THR of COM1 have no memory effects.
    unsafe {
        while inb(LINE_STATUS) & LSR_TRANSMIT_EMPTY == 0 {
            core::hint::spin_loop();
        }
        outb(DATA, byte);
    }
}

/// Takes one received byte, if any.
pub fn try_read_byte() -> Option<u8> {
    // SAFETY: reading LSR and RBR of COM1 have no memory effects.
    unsafe { (inb(LINE_STATUS) & LSR_DATA_READY != 0).then(|| inb(DATA)) }
}

/// Switches the UART's internal loopback on or off (what is sent is received).
pub fn set_loopback(on: bool) {
    // SAFETY: MCR only selects the modem lines and loopback.
    unsafe { outb(MODEM_CONTROL, if on { MCR_NORMAL | MCR_LOOPBACK } else { MCR_NORMAL }) };
}
