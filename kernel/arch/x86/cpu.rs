//! Small CPU primitives: interrupt flag, halting, control and debug registers.
//!
//! Thin wrappers so the rest of the kernel states intent (`without_interrupts`)
//! instead of repeating inline asm. The ones the probe engine needs too
//! (the interrupt flag, the EFLAGS and DR6 bits) are the engine's, written
//! once there.
use core::arch::asm;

pub use probe_engine::arch::x86::cpu::{
    DR6_SINGLE_STEP, EFLAGS_IF, EFLAGS_TF, disable_interrupts, interrupts_enabled, without_interrupts,
};

/// Current EFLAGS.
#[inline(always)]
pub fn eflags() -> u32 {
    let flags: u32;
    // SAFETY: pushfd/pop only reads EFLAGS through the stack.
    unsafe { asm!("pushfd", "pop {}", out(reg) flags, options(preserves_flags)) };
    flags
}

/// Enables maskable interrupts.
#[inline(always)]
pub fn enable_interrupts() {
    // SAFETY: the IDT and PIC are set up before anyone enables interrupts
    // (boot does so only after `idt::init` and `irq::init`).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Waits for the next interrupt (enabling interrupts for the wait).
#[inline(always)]
pub fn wait_for_interrupt() {
    // SAFETY: `sti; hlt` atomically enables interrupts and halts, so a
    // pending interrupt cannot slip in between; the handler returns here.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Halts forever with interrupts off.
pub fn halt_forever() -> ! {
    loop {
        disable_interrupts();
        // SAFETY: halting with IF clear only stops this CPU.
        unsafe { asm!("hlt", options(nomem, nostack)) };
    }
}

/// CR2: the linear address of the last page fault.
#[inline(always)]
pub fn cr2() -> u32 {
    let value: u32;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// DR6: the debug status register (BS = bit 14 after a single-step).
#[inline(always)]
pub fn dr6() -> u32 {
    let value: u32;
    // SAFETY: reading DR6 has no side effects.
    unsafe { asm!("mov {}, dr6", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Clears DR6: the CPU never clears it itself.
#[inline(always)]
pub fn clear_dr6() {
    // SAFETY: writing 0 to DR6 only resets the sticky status bits.
    unsafe { asm!("mov dr6, {}", in(reg) 0u32, options(nomem, nostack, preserves_flags)) };
}

/// Reads the time-stamp counter (one tick per guest instruction under `-icount`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc is always available on i686 and only reads the counter.
    unsafe { core::arch::x86::_rdtsc() }
}

/// Serializes instruction execution, so freshly written code is fetched anew.
#[inline(always)]
pub fn serialize() {
    // SAFETY: cpuid is serializing and only clobbers the four registers named.
    unsafe {
        asm!("push ebx", "cpuid", "pop ebx", inout("eax") 0 => _, out("ecx") _, out("edx") _,
             options(nostack, preserves_flags))
    };
}

/// The current frame pointer (EBP); frame pointers are always kept.
#[inline(always)]
pub fn frame_pointer() -> usize {
    let ebp: usize;
    // SAFETY: reading EBP has no side effects.
    unsafe { asm!("mov {}, ebp", out(reg) ebp, options(nomem, nostack, preserves_flags)) };
    ebp
}
