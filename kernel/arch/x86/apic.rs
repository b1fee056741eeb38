//! The local APIC (xAPIC, memory-mapped at its architectural base): this
//! CPU's interrupt controller, its timer, and inter-processor interrupts.
//!
//! Every CPU enables its own local APIC when it starts ([`init_this_cpu`]),
//! then runs its preemption timer from it ([`start_timer`], periodic at
//! [`HZ`](super::pit::HZ), calibrated once against the PIT by the boot CPU).
//! IPIs carry cross-CPU work: starting application processors
//! (INIT-SIPI-SIPI), the synchronisation round of text patching and slot
//! reuse, rescheduling and stopping CPUs for a fatal report (see `smp`).
//! Device interrupts come from the I/O APIC (see `irq`); under `noapic` the
//! 8259 PIC stays in virtual-wire mode behind the boot CPU's LINT0.
//!
//! Register offsets and ICR encodings: Intel SDM vol. 3, chapter 11.
use core::sync::atomic::{AtomicU32, Ordering};

/// The local APIC's physical (and, identity-mapped, virtual) base.
pub const BASE: usize = 0xfee0_0000;

const ID: usize = 0x020;
const TASK_PRIORITY: usize = 0x080;
const EOI: usize = 0x0b0;
const SPURIOUS: usize = 0x0f0;
const ERROR_STATUS: usize = 0x280;
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
const LVT_TIMER: usize = 0x320;
const LVT_LINT0: usize = 0x350;
const LVT_LINT1: usize = 0x360;
const LVT_ERROR: usize = 0x370;
const TIMER_INITIAL: usize = 0x380;
const TIMER_CURRENT: usize = 0x390;
const TIMER_DIVIDE: usize = 0x3e0;

const SVR_ENABLE: u32 = 1 << 8;
const LVT_MASKED: u32 = 1 << 16;
const LVT_PERIODIC: u32 = 1 << 17;
const DELIVERY_NMI: u32 = 0b100 << 8;
const ICR_PENDING: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_LEVEL: u32 = 1 << 15;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
const ICR_ALL_BUT_SELF: u32 = 0b11 << 18;
const DIVIDE_BY_16: u32 = 0b0011;
const IA32_APIC_BASE: u32 = 0x1b;
const APIC_GLOBAL_ENABLE: u64 = 1 << 11;

/// Vectors of the local APIC's own interrupts (above the PIC's 32–47).
pub mod vector {
    /// This CPU's periodic timer: the tick and preemption.
    pub const TIMER: u8 = 48;
    /// Cross-CPU synchronisation: serialize, record where we were, acknowledge.
    pub const SYNC: u8 = 49;
    /// Something became runnable: look for work (idle CPUs wake on it).
    pub const RESCHEDULE: u8 = 50;
    /// Stop: another CPU is printing a fatal report.
    pub const STOP: u8 = 51;
    /// Spurious interrupts (the low four bits must be set on P6-era APICs).
    pub const SPURIOUS: u8 = 63;
}

/// Timer counts (at divide-by-16) per tick, measured by [`calibrate_timer`].
static TIMER_COUNT_PER_TICK: AtomicU32 = AtomicU32::new(0);

#[inline(always)]
fn read(register: usize) -> u32 {
    // SAFETY: the APIC page is identity-mapped uncached by paging (see
    // `paging::init`); registers are aligned 32-bit MMIO words.
    unsafe { core::ptr::read_volatile((BASE + register) as *const u32) }
}

#[inline(always)]
fn write(register: usize, value: u32) {
    // SAFETY: as in `read`; writing these registers affects only this
    // CPU's APIC (or, for the ICR, sends the IPI the caller asked for).
    unsafe { core::ptr::write_volatile((BASE + register) as *mut u32, value) }
}

/// This CPU's local APIC id.
pub fn id() -> u8 {
    (read(ID) >> 24) as u8
}

/// Enables this CPU's local APIC: software-enabled with the spurious
/// vector, every priority accepted, errors masked, LINT1 as NMI, and LINT0
/// masked except on the boot CPU (whose LINT0 carries the 8259 PIC in
/// virtual-wire mode, as the firmware set it up).
///
/// # Safety
/// Call once per CPU with interrupts off, after the IDT has gates for the
/// APIC vectors ([`vector`]) and paging maps the APIC page.
pub unsafe fn init_this_cpu(boot_cpu: bool) {
    // SAFETY: IA32_APIC_BASE exists on every CPU with a local APIC (P6 on);
    // setting the global enable bit keeps the architectural base.
    unsafe {
        let base = x86::msr::rdmsr(IA32_APIC_BASE);
        x86::msr::wrmsr(IA32_APIC_BASE, base | APIC_GLOBAL_ENABLE);
    }
    write(SPURIOUS, SVR_ENABLE | vector::SPURIOUS as u32);
    write(TASK_PRIORITY, 0);
    write(LVT_ERROR, LVT_MASKED);
    write(LVT_LINT1, DELIVERY_NMI);
    if !boot_cpu {
        write(LVT_LINT0, LVT_MASKED);
    }
    write(LVT_TIMER, LVT_MASKED);
    write(ERROR_STATUS, 0);
    eoi();
}

/// Masks this CPU's LINT0: the boot CPU's, once the I/O APIC delivers
/// device interrupts and the PIC behind LINT0 is masked anyway (Linux's
/// "symmetric I/O mode").
pub fn mask_lint0() {
    write(LVT_LINT0, LVT_MASKED);
}

/// Signals the end of the interrupt being handled.
#[inline(always)]
#[unsafe(link_section = ".kprobes.text")]
pub fn eoi() {
    write(EOI, 0);
}

fn wait_for_delivery() {
    while read(ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// Sends `vector` to the CPU whose APIC id is `apic_id` (fixed delivery).
#[unsafe(link_section = ".kprobes.text")]
pub fn send_ipi(apic_id: u8, vector: u8) {
    super::cpu::without_interrupts(|| {
        write(ICR_HIGH, (apic_id as u32) << 24);
        write(ICR_LOW, vector as u32 | ICR_ASSERT);
        wait_for_delivery();
    });
}

/// Sends `vector` to every CPU but this one.
pub fn send_ipi_all_but_self(vector: u8) {
    super::cpu::without_interrupts(|| {
        write(ICR_HIGH, 0);
        write(ICR_LOW, vector as u32 | ICR_ASSERT | ICR_ALL_BUT_SELF);
        wait_for_delivery();
    });
}

/// The INIT IPI (assert, then the level-triggered de-assert older CPUs need).
pub fn send_init(apic_id: u8) {
    write(ICR_HIGH, (apic_id as u32) << 24);
    write(ICR_LOW, ICR_INIT | ICR_LEVEL | ICR_ASSERT);
    wait_for_delivery();
    write(ICR_HIGH, (apic_id as u32) << 24);
    write(ICR_LOW, ICR_INIT | ICR_LEVEL);
    wait_for_delivery();
}

/// The start-up IPI: the CPU starts in real mode at `page << 12`.
pub fn send_startup(apic_id: u8, page: u8) {
    write(ICR_HIGH, (apic_id as u32) << 24);
    write(ICR_LOW, ICR_STARTUP | ICR_ASSERT | page as u32);
    wait_for_delivery();
}

/// Measures the timer's rate against the PIT: how many counts (divide by
/// 16) make one tick at `pit::HZ`. Boot CPU, interrupts off, once.
pub fn calibrate_timer() {
    const SAMPLE_TICKS: u32 = 4; // 16 ms at 250 Hz
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, LVT_MASKED);
    write(TIMER_INITIAL, u32::MAX);
    let tsc_start = super::cpu::rdtsc();
    let elapsed_pit = super::pit::wait_counts(super::pit::counts_per_tick() * SAMPLE_TICKS);
    let tsc_elapsed = super::cpu::rdtsc() - tsc_start;
    let counted = u32::MAX - read(TIMER_CURRENT);
    write(TIMER_INITIAL, 0);
    // Scale what was counted to exactly one tick's worth of PIT counts.
    let per_tick = (counted as u64 * super::pit::counts_per_tick() as u64 / elapsed_pit as u64) as u32;
    TIMER_COUNT_PER_TICK.store(per_tick.max(1), Ordering::Relaxed);
    let tsc_per_tick = tsc_elapsed * super::pit::counts_per_tick() as u64 / elapsed_pit as u64;
    TSC_PER_SECOND.store((tsc_per_tick * super::pit::HZ as u64).max(1), Ordering::Relaxed);
}

/// TSC ticks per second, measured against the PIT with the timer (under
/// `-icount shift=0` a guest instruction is a nanosecond: 10⁹).
static TSC_PER_SECOND: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Nanoseconds since boot for a TSC reading (the trace clock). Before
/// calibration, the reading itself.
pub fn tsc_to_ns(tsc: u64) -> u64 {
    match TSC_PER_SECOND.load(Ordering::Relaxed) {
        0 => tsc,
        rate => (tsc as u128 * 1_000_000_000 / rate as u128) as u64,
    }
}

/// Starts this CPU's periodic timer at `pit::HZ` on [`vector::TIMER`].
pub fn start_timer() {
    let count = TIMER_COUNT_PER_TICK.load(Ordering::Relaxed);
    assert!(count != 0, "APIC timer started before calibration");
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, vector::TIMER as u32 | LVT_PERIODIC);
    write(TIMER_INITIAL, count);
}

/// Timer counts per tick (for the boot banner).
pub fn timer_count_per_tick() -> u32 {
    TIMER_COUNT_PER_TICK.load(Ordering::Relaxed)
}
