//! COM1 16550 UART: output usable from any context; input taken by its
//! receive interrupt (IRQ 4) into a buffer, or polled.
//!
//! Output has no lock: every byte is one port write after a status poll, so
//! a trap handler can print while the code it interrupted was printing
//! (their bytes interleave; nothing deadlocks).
//!
//! Input: once [`enable_receive_interrupt`] has run, the IRQ handler moves
//! received bytes into a 256-byte buffer, and [`try_read_byte`] takes from
//! it, or from the UART itself when the buffer is empty (so input works
//! with interrupts off too). One lock covers the buffer and every read of
//! the receiver, so no byte is read twice or by two CPUs at once. When the
//! buffer is full the handler leaves the rest in the UART, which holds the
//! sender back: nothing is dropped.
//!
//! The buffer is the console's one input queue: the keyboard's keys are
//! queued into it too ([`queue_input`]), as the bytes a terminal would send.
//!
//! Input that arrived before boot must survive it: a byte typed or piped in
//! early already waits in the receiver when `init` runs, and switching the
//! FIFOs on or off (or clearing them) would throw it away.
use crate::sync::SpinLock;
use core::sync::atomic::{AtomicU32, Ordering};
use x86::io::{inb, outb};

const COM1: u16 = 0x3f8;
const DATA: u16 = COM1;
const INTERRUPT_ENABLE: u16 = COM1 + 1;
const FIFO_CONTROL: u16 = COM1 + 2; // write
const INTERRUPT_ID: u16 = COM1 + 2; // read
const LINE_CONTROL: u16 = COM1 + 3;
const MODEM_CONTROL: u16 = COM1 + 4;
const LINE_STATUS: u16 = COM1 + 5;

/// COM1's ISA IRQ.
pub const IRQ: u8 = 4;

const IER_RECEIVED_DATA: u8 = 1 << 0;
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

/// Bytes the receive interrupt has taken, oldest first.
struct Received {
    bytes: [u8; RECEIVE_BUFFER],
    first: usize,
    len: usize,
}

/// Bytes buffered between the receive interrupt and the reader.
pub const RECEIVE_BUFFER: usize = 256;

static RECEIVED: SpinLock<Received> = SpinLock::new(Received { bytes: [0; RECEIVE_BUFFER], first: 0, len: 0 });
/// Bytes the receive interrupt has moved into the buffer, ever.
static TAKEN_BY_INTERRUPT: AtomicU32 = AtomicU32::new(0);

/// One byte from the receiver, if it holds one. Caller holds `RECEIVED`.
fn receive() -> Option<u8> {
    // SAFETY: reading LSR and RBR of COM1 have no memory effects beyond
    // taking the byte, and the caller's lock makes this the only reader.
    unsafe { (inb(LINE_STATUS) & LSR_DATA_READY != 0).then(|| inb(DATA)) }
}

/// Takes one received byte, if any: the oldest buffered one, else one
/// still in the UART.
pub fn try_read_byte() -> Option<u8> {
    let mut received = RECEIVED.lock();
    if received.len == 0 {
        return receive();
    }
    let byte = received.bytes[received.first];
    received.first = (received.first + 1) % RECEIVE_BUFFER;
    received.len -= 1;
    Some(byte)
}

/// Queues `bytes` behind what was received so far, as if they had come in
/// on the line: another input device (the PS/2 keyboard) joins the
/// console's one input queue this way. All or nothing: a key's escape
/// sequence is never cut; returns false (and queues nothing) when the
/// buffer has no room for all of them.
pub fn queue_input(bytes: &[u8]) -> bool {
    let mut received = RECEIVED.lock();
    if received.len + bytes.len() > RECEIVE_BUFFER {
        return false;
    }
    for &byte in bytes {
        let slot = (received.first + received.len) % RECEIVE_BUFFER;
        received.bytes[slot] = byte;
        received.len += 1;
    }
    true
}

/// The receive interrupt: moves what the UART holds into the buffer.
fn on_receive_interrupt(_irq: u8) {
    let mut received = RECEIVED.lock();
    let mut taken = 0;
    while received.len < RECEIVE_BUFFER {
        let Some(byte) = receive() else { break };
        let slot = (received.first + received.len) % RECEIVE_BUFFER;
        received.bytes[slot] = byte;
        received.len += 1;
        taken += 1;
    }
    TAKEN_BY_INTERRUPT.fetch_add(taken, Ordering::Relaxed);
}

/// Bytes the receive interrupt has taken from the UART since boot (the
/// rest were polled).
pub fn bytes_taken_by_interrupt() -> u32 {
    TAKEN_BY_INTERRUPT.load(Ordering::Relaxed)
}

/// Installs the receive interrupt on IRQ 4, delivered to CPU 0, and turns
/// it on in the UART. A byte already waiting raises it at once. Boot calls
/// this once; with the IRQ unavailable, input stays polled (and says so).
pub fn enable_receive_interrupt() {
    let routed = super::irq::set_handler(IRQ, on_receive_interrupt).and_then(|()| super::irq::enable(IRQ, 0));
    match routed {
        // SAFETY: IER bit 0 only asks the UART to raise IRQ 4 while it
        // holds received data; the handler for it is installed.
        Ok(()) => unsafe { outb(INTERRUPT_ENABLE, IER_RECEIVED_DATA) },
        Err(error) => crate::println!("serial: input stays polled: IRQ {IRQ} unavailable ({error:?})"),
    }
}

/// Switches the UART's internal loopback on or off (what is sent is received).
pub fn set_loopback(on: bool) {
    // SAFETY: MCR only selects the modem lines and loopback.
    unsafe { outb(MODEM_CONTROL, if on { MCR_NORMAL | MCR_LOOPBACK } else { MCR_NORMAL }) };
}
