//! The 8253/8254 PIT, channel 0: the time base the local APIC timers are
//! calibrated against, and short busy-waits at boot (AP start-up delays).
//!
//! After calibration IRQ 0 stays masked: every CPU's tick comes from its
//! local APIC timer. Channel 0 keeps running as a rate generator at [`HZ`],
//! so its counter can still be polled for delays.

/// Timer interrupts per second (each CPU's local APIC timer runs at this rate).
pub const HZ: u32 = 250;
const PIT_FREQUENCY: u32 = 1_193_182;
const CHANNEL0: u16 = 0x40;
const COMMAND: u16 = 0x43;
const DIVISOR: u32 = (PIT_FREQUENCY + HZ / 2) / HZ;

/// Programs channel 0 as a rate generator at [`HZ`].
///
/// # Safety
/// Call once at boot.
pub unsafe fn init() {
    // SAFETY: channel 0, lobyte/hibyte, mode 2: the standard PIT setup.
    unsafe {
        x86::io::outb(COMMAND, 0x34);
        x86::io::outb(CHANNEL0, (DIVISOR & 0xff) as u8);
        x86::io::outb(CHANNEL0, (DIVISOR >> 8) as u8);
    }
}

/// PIT input clock counts per tick.
pub const fn counts_per_tick() -> u32 {
    DIVISOR
}

fn read_counter() -> u32 {
    // SAFETY: the latch command for channel 0, then its two counter bytes;
    // only the boot CPU polls the PIT (boot and AP start-up).
    unsafe {
        x86::io::outb(COMMAND, 0x00);
        let low = x86::io::inb(CHANNEL0) as u32;
        let high = x86::io::inb(CHANNEL0) as u32;
        low | high << 8
    }
}

/// Busy-waits until at least `counts` PIT counts (1/1,193,182 s each) have
/// passed; returns how many did. Channel 0 counts down from the divisor and
/// reloads, so the elapsed time is summed modulo the divisor.
pub fn wait_counts(counts: u32) -> u32 {
    let mut last = read_counter();
    let mut elapsed = 0;
    while elapsed < counts {
        let now = read_counter();
        elapsed += (last + DIVISOR - now) % DIVISOR;
        last = now;
    }
    elapsed
}

/// Busy-waits at least `microseconds`.
pub fn delay_us(microseconds: u32) {
    wait_counts(((microseconds as u64 * PIT_FREQUENCY as u64).div_ceil(1_000_000)) as u32);
}
