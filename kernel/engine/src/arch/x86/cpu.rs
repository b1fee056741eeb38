//! The few CPU operations the engine needs: the interrupt flag, EFLAGS and
//! DR6 bits, and serializing after writing code.
//!
//! Thin wrappers over the `x86` crate and `core::arch`, so the engine's own
//! code states intent (`without_interrupts`) instead of repeating asm.

/// EFLAGS.TF: trap after the next instruction (single-step).
pub const EFLAGS_TF: u32 = 1 << 8;
/// EFLAGS.IF: maskable interrupts enabled.
pub const EFLAGS_IF: u32 = 1 << 9;
/// DR6.BS: the debug trap was a single-step.
pub const DR6_SINGLE_STEP: u32 = 1 << 14;

/// Whether maskable interrupts are enabled.
#[inline(always)]
pub fn interrupts_enabled() -> bool {
    // SAFETY: reading EFLAGS (pushfd; pop) has no side effects.
    unsafe { x86::bits32::eflags::read() }.contains(x86::bits32::eflags::EFlags::FLAGS_IF)
}

/// Disables maskable interrupts.
#[inline(always)]
pub fn disable_interrupts() {
    // SAFETY: clearing IF cannot break memory safety.
    unsafe { x86::irq::disable() };
}

/// Runs `f` with interrupts disabled, restoring the previous state after.
/// On one CPU that makes `f` atomic against every interrupt.
#[inline(always)]
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was_enabled = interrupts_enabled();
    disable_interrupts();
    let result = f();
    if was_enabled {
        // SAFETY: interrupts were enabled when we were called, so the host
        // had its IDT and interrupt controller ready; we only restore that.
        unsafe { x86::irq::enable() };
    }
    result
}

/// Serializes instruction fetch after code was written (CPUID).
#[inline(always)]
pub fn serialize() {
    let _ = core::arch::x86::__cpuid(0);
}
