//! COM1 16550 UART, polled: output usable from any context, line input.
//!
//! There is no lock: every byte is one port write after a status poll, so a
//! trap handler can print while the code it interrupted was printing (their
//! bytes interleave; nothing deadlocks).
//!
//! Input that arrived before boot must survive it: a byte typed or piped in
//! early already waits in the receiver when `init` runs, and switching the
//! FIFOs on or off (or clearing them) would throw it away.
use x86::io::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2; // write
const INTERRUPT_ID: u16 = COM1 + 2; // read
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;

const LSR_DATA_READY: u8 = 1 << 0;
const LSR_TRANSMIT_EMPTY: u8 = 1 << 5;
const MCR_LOOPBACK: u8 = 1 << 4;
const MCR_NORMAL: u8 = 0x0b; // DTR, RTS, OUT2
/// FCR: FIFOs on, receive trigger at 14 bytes; neither clear bit (1, 2).
const FCR_ENABLE: u8 = 0xc1;
/// IIR bits 7..6: both set while the FIFOs are on.
const IIR_FIFOS_ON: u8 = 0xc0;

/// Programs COM1 for 115200 baud, 8N1, interrupts off, FIFOs on unless that
/// would lose input: received bytes are never cleared. A 16550 (and QEMU's)
/// empties both FIFOs whenever the FIFO-enable bit changes, so if they are
/// off and a byte is already waiting, they stay off (polled input then
/// works byte by byte; QEMU holds back the rest until the byte is read).
pub fn init() {
    // SAFETY: COM1's registers exist on every PC and QEMU machine; this is
    // the standard 16550 initialisation sequence, without the FIFO reset.
    unsafe {
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x80); // DLAB on
        outb(DATA, 0x01); // divisor 1 = 115200 baud
        outb(INTERRUPT_ENABLE, 0x00);
        outb(LINE_CONTROL, 0x03); // 8N1, DLAB off
        let fifos_on = inb(INTERRUPT_ID) & IIR_FIFOS_ON == IIR_FIFOS_ON;
        let waiting = inb(LINE_STATUS) & LSR_DATA_READY != 0;
        if fifos_on || !waiting {
            outb(FIFO_CONTROL, FCR_ENABLE);
        }
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
