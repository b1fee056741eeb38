//! The one audited way to write into kernel text.
//!
//! Kernel text is mapped read-only and CR0.WP makes ring 0 honour that, so a
//! stray write to code faults. [`text_poke`] is the exception: with interrupts
//! off it clears CR0.WP, copies the bytes, sets WP again and serializes, so the
//! next fetch of those bytes sees the new code.
use super::cpu;
use core::arch::asm;

const CR0_WP: u32 = 1 << 16;

/// Why a patch was refused (the engine's type: this is its host's patcher).
pub use probe_engine::PatchError;

/// Writes `bytes` at `address` inside kernel text.
///
/// Refuses any range not wholly inside `[__text_start, __text_end)`.
///
/// # Safety
/// The caller decides what code means: the bytes must leave every instruction
/// that can be executed (by any task, including ones preempted mid-function)
/// well formed — for example one byte replacing the first byte of an
/// instruction with `int3`, or restoring it.
pub unsafe fn text_poke(address: usize, bytes: &[u8]) -> Result<(), PatchError> {
    let text = super::paging::kernel_text();
    if address < text.start || address.checked_add(bytes.len()).is_none_or(|end| end > text.end) {
        return Err(PatchError::OutsideText);
    }
    cpu::without_interrupts(|| {
        // SAFETY: interrupts are off, so nothing runs while WP is clear; the
        // range is inside mapped kernel text (checked above); the caller
        // vouches for the content.
        unsafe {
            let cr0: u32;
            asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
            asm!("mov cr0, {}", in(reg) cr0 & !CR0_WP, options(nostack, preserves_flags));
            core::ptr::copy_nonoverlapping(bytes.as_ptr(), address as *mut u8, bytes.len());
            asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        }
        cpu::serialize();
    });
    Ok(())
}
