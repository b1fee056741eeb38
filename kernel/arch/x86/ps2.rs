//! The PS/2 keyboard behind the 8042 controller: its interrupt (IRQ 1,
//! CPU 0) decodes each scancode (`crate::keyboard`) and queues the bytes a
//! terminal would send for the key into the console's input queue
//! (`serial::queue_input`), so the keyboard types into the same line
//! editor as the serial port.
//!
//! Set-up leaves the keyboard as the firmware left it (scancode set 2,
//! which the controller translates to set 1 when asked to) and only
//! programs the controller: translation on, the first port's clock and
//! interrupt on. Sending the keyboard commands (reset, set selection)
//! would need their acknowledgements waited for and filtered, for nothing
//! the console needs. Every wait for the controller is bounded, so a
//! machine whose controller does not answer boots without a keyboard.
//!
//! Bytes of the second port (a mouse) that show up here are dropped; so
//! is a key whose bytes do not fit in the input queue (the only input
//! ever lost, when 256 bytes already wait to be read).
use super::irq::{self, IrqError};
use super::serial;
use crate::keyboard::KeyDecoder;
use crate::sync::SpinLock;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use x86::io::{inb, outb};

/// The keyboard's ISA IRQ.
pub const IRQ: u8 = 1;

const DATA: u16 = 0x60;
/// Read: the status register; write: a controller command.
const STATUS_COMMAND: u16 = 0x64;

const STATUS_OUTPUT_FULL: u8 = 1 << 0;
const STATUS_INPUT_FULL: u8 = 1 << 1;
/// The byte waiting in the output buffer came from the second port.
const STATUS_SECOND_PORT: u8 = 1 << 5;

const READ_CONFIGURATION: u8 = 0x20;
const WRITE_CONFIGURATION: u8 = 0x60;
const ENABLE_FIRST_PORT: u8 = 0xae;
const CONFIGURATION_FIRST_INTERRUPT: u8 = 1 << 0;
const CONFIGURATION_FIRST_CLOCK_OFF: u8 = 1 << 4;
const CONFIGURATION_TRANSLATE: u8 = 1 << 6;

/// Status polls before the controller counts as not answering.
const WAIT_LIMIT: usize = 100_000;
/// Bytes one interrupt takes at most (the output buffer holds one; more
/// may follow while it runs).
const BYTES_PER_INTERRUPT: usize = 16;

/// The decoder's state (modifiers, a prefix byte seen); its lock also
/// makes the interrupt the controller's only reader at a time.
static DECODER: SpinLock<KeyDecoder> = SpinLock::new(KeyDecoder::new());
static READY: AtomicBool = AtomicBool::new(false);
/// Keys queued as input since boot.
static KEYS: AtomicU32 = AtomicU32::new(0);
/// Keys dropped because the input queue was full.
static DROPPED: AtomicU32 = AtomicU32::new(0);

/// Why there is no keyboard input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyboardError {
    /// Nothing answers at the controller's ports (they read 0xFF).
    NoController,
    /// The controller did not take a command or answer one in time.
    ControllerSilent,
    /// IRQ 1 could not be routed.
    Irq(IrqError),
}

fn status() -> u8 {
    // SAFETY: reading the 8042's status register has no effects.
    unsafe { inb(STATUS_COMMAND) }
}

/// Waits until `ready` holds for the status register, at most WAIT_LIMIT polls.
fn wait(ready: impl Fn(u8) -> bool) -> Result<(), KeyboardError> {
    (0..WAIT_LIMIT).find(|_| ready(status())).map(|_| ()).ok_or(KeyboardError::ControllerSilent)
}

fn command(byte: u8) -> Result<(), KeyboardError> {
    wait(|status| status & STATUS_INPUT_FULL == 0)?;
    // SAFETY: a controller command, written once the controller's input
    // buffer is empty; the commands used only read or write its
    // configuration byte and enable the keyboard's port.
    unsafe { outb(STATUS_COMMAND, byte) };
    Ok(())
}

/// Programs the controller (translation to set 1, the keyboard's clock and
/// interrupt on), installs the IRQ 1 handler on CPU 0 and takes any byte
/// already waiting. Boot calls this once, after the device interrupts are
/// set up and before interrupts are enabled.
pub fn init() -> Result<(), KeyboardError> {
    if status() == 0xff {
        return Err(KeyboardError::NoController);
    }
    // Whatever the firmware left in the output buffer is stale.
    for _ in 0..BYTES_PER_INTERRUPT {
        if status() & STATUS_OUTPUT_FULL == 0 {
            break;
        }
        // SAFETY: reading the data port only takes the waiting byte.
        unsafe { inb(DATA) };
    }
    command(READ_CONFIGURATION)?;
    wait(|status| status & STATUS_OUTPUT_FULL != 0)?;
    // SAFETY: the answer to READ_CONFIGURATION waits in the output buffer.
    let configuration = unsafe { inb(DATA) };
    let configuration =
        (configuration | CONFIGURATION_FIRST_INTERRUPT | CONFIGURATION_TRANSLATE) & !CONFIGURATION_FIRST_CLOCK_OFF;
    command(WRITE_CONFIGURATION)?;
    wait(|status| status & STATUS_INPUT_FULL == 0)?;
    // SAFETY: the configuration byte that WRITE_CONFIGURATION asks for.
    unsafe { outb(DATA, configuration) };
    command(ENABLE_FIRST_PORT)?;
    irq::set_handler(IRQ, on_interrupt).and_then(|()| irq::enable(IRQ, 0)).map_err(KeyboardError::Irq)?;
    READY.store(true, Ordering::Release);
    // A key that came before the line was unmasked raised an edge the I/O
    // APIC did not see, and the controller raises no other until its byte
    // is read: read it now.
    on_interrupt(IRQ);
    Ok(())
}

/// Whether [`init`] set the keyboard up.
pub fn is_ready() -> bool {
    READY.load(Ordering::Acquire)
}

/// Keys the keyboard has queued as console input since boot.
pub fn keys_queued() -> u32 {
    KEYS.load(Ordering::Relaxed)
}

/// Keys dropped since boot because the input queue was full.
pub fn keys_dropped() -> u32 {
    DROPPED.load(Ordering::Relaxed)
}

/// IRQ 1: decodes the waiting bytes and queues what the keys send.
fn on_interrupt(_irq: u8) {
    let mut decoder = DECODER.lock();
    for _ in 0..BYTES_PER_INTERRUPT {
        let status = status();
        if status & STATUS_OUTPUT_FULL == 0 {
            break;
        }
        // SAFETY: reading the data port takes the byte the status announced;
        // the decoder's lock makes this the only reader.
        let byte = unsafe { inb(DATA) };
        if status & STATUS_SECOND_PORT != 0 {
            continue;
        }
        let sequence = decoder.feed(byte);
        if sequence.as_bytes().is_empty() {
            continue;
        }
        if serial::queue_input(sequence.as_bytes()) {
            KEYS.fetch_add(1, Ordering::Relaxed);
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}
