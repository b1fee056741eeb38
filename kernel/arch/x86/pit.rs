//! The 8253/8254 PIT, channel 0, as the periodic timer.

/// Timer interrupts per second.
pub const HZ: u32 = 250;
const PIT_FREQUENCY: u32 = 1_193_182;
const CHANNEL0: u16 = 0x40;
const COMMAND: u16 = 0x43;

/// Programs channel 0 as a rate generator at [`HZ`].
///
/// # Safety
/// Call once at boot; IRQ 0 must have a handler before interrupts are enabled.
pub unsafe fn init() {
    let divisor = (PIT_FREQUENCY + HZ / 2) / HZ;
    // SAFETY: channel 0, lobyte/hibyte, mode 2 — the standard PIT setup.
    unsafe {
        x86::io::outb(COMMAND, 0x34);
        x86::io::outb(CHANNEL0, (divisor & 0xff) as u8);
        x86::io::outb(CHANNEL0, (divisor >> 8) as u8);
    }
}
