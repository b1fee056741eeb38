//! The one audited way to write into kernel text.
//!
//! Kernel text is mapped read-only and CR0.WP makes ring 0 honour that, so a
//! stray write to code faults. [`text_poke`] is the exception: with interrupts
//! off it clears CR0.WP, copies the bytes, sets WP again and serializes, so the
//! next fetch of those bytes sees the new code.
use super::cpu;
use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

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
    record(address, bytes.len());
    Ok(())
}

/// Ranges written by [`text_poke`] since the last cross-CPU synchronisation,
/// for [`retouch_after_sync`]: up to [`PENDING_MAX`] of them, a write that
/// continues the last one extending it (a batch of probes on consecutive
/// instructions is one range); past that, one span from the lowest to the
/// highest address written. Writers are serialized by the engine's
/// registration lock (the only caller), so the updates need no atomicity
/// beyond each word's.
const PENDING_MAX: usize = 64;
static PENDING_START: [AtomicUsize; PENDING_MAX] = [const { AtomicUsize::new(0) }; PENDING_MAX];
static PENDING_LEN: [AtomicUsize; PENDING_MAX] = [const { AtomicUsize::new(0) }; PENDING_MAX];
static PENDING_COUNT: AtomicUsize = AtomicUsize::new(0);
/// The span of the writes that did not fit, empty (start > end) if none.
static OVERFLOW_START: AtomicUsize = AtomicUsize::new(usize::MAX);
static OVERFLOW_END: AtomicUsize = AtomicUsize::new(0);

fn record(address: usize, len: usize) {
    let count = PENDING_COUNT.load(Ordering::Acquire);
    if let Some(last) = count.checked_sub(1)
        && PENDING_START[last].load(Ordering::Acquire) + PENDING_LEN[last].load(Ordering::Acquire) == address
    {
        PENDING_LEN[last].fetch_add(len, Ordering::AcqRel);
    } else if count < PENDING_MAX {
        PENDING_START[count].store(address, Ordering::Release);
        PENDING_LEN[count].store(len, Ordering::Release);
        PENDING_COUNT.store(count + 1, Ordering::Release);
    } else {
        OVERFLOW_START.fetch_min(address, Ordering::AcqRel);
        OVERFLOW_END.fetch_max(address + len, Ordering::AcqRel);
    }
}

/// Rewrites `range` with its own bytes (with interrupts off and CR0.WP
/// clear, as [`text_poke`] writes).
///
/// # Safety
/// `range` must be mapped, and nobody may change its bytes meanwhile (the
/// caller holds the registration lock that serializes every writer).
unsafe fn rewrite_in_place(range: core::ops::Range<usize>) {
    cpu::without_interrupts(|| {
        // SAFETY: as in `text_poke`; each byte is written back with the
        // value just read, so no instruction changes.
        unsafe {
            let cr0: u32;
            asm!("mov {}, cr0", out(reg) cr0, options(nomem, nostack, preserves_flags));
            asm!("mov cr0, {}", in(reg) cr0 & !CR0_WP, options(nostack, preserves_flags));
            // Byte by byte, as `text_poke` writes. Rewriting by whole words
            // made QEMU (7.2, multi-threaded TCG, 4 CPUs) spin for good in
            // text_poke_bp's toggling test: a word store to text that CPUs
            // are executing, though the bytes are unchanged.
            for address in range {
                let byte = core::ptr::read_volatile(address as *const u8);
                core::ptr::write_volatile(address as *mut u8, byte);
            }
            asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
        }
    });
}

/// After a synchronisation round with other CPUs online: writes every range
/// patched since the last round, and the instruction slots written since,
/// again with the same bytes, then forgets the ranges.
///
/// Why: QEMU's multi-threaded TCG can keep a translation of code that
/// another CPU was translating at the moment it was patched, even after
/// that CPU serialized (it read the old bytes before it marked the page as
/// holding code, so the patching store did not invalidate anything). Once
/// every CPU has acknowledged the round, no translation that started before
/// the patch is still in progress, so a second store now takes QEMU's
/// code-write path and drops any such stale translation. The bytes do not
/// change, so on hardware this is only a few redundant stores.
pub fn retouch_after_sync() {
    let count = PENDING_COUNT.swap(0, Ordering::AcqRel);
    for index in 0..count {
        let start = PENDING_START[index].load(Ordering::Acquire);
        let len = PENDING_LEN[index].load(Ordering::Acquire);
        // SAFETY: recorded by `text_poke`, which checked the range (a range
        // extended by a write that continued it is still text: the
        // extension was checked too); the registration lock serializes writers.
        unsafe { rewrite_in_place(start..start + len) };
    }
    let overflow = OVERFLOW_START.swap(usize::MAX, Ordering::AcqRel)..OVERFLOW_END.swap(0, Ordering::AcqRel);
    if !overflow.is_empty() {
        // SAFETY: between two ranges `text_poke` checked, so inside text.
        unsafe { rewrite_in_place(overflow) };
    }
    // Slots are written by the engine directly, before they are published;
    // it keeps the list of those written since the last round.
    // SAFETY: slot ranges lie in the slot region, mapped writable; only
    // registration writes it, and it holds the lock that serializes writers.
    probe_engine::slots::take_written(|range| unsafe { rewrite_in_place(range) });
}

/// Forgets the recorded ranges (one CPU online: nothing can be stale).
pub fn forget_pending() {
    PENDING_COUNT.store(0, Ordering::Release);
    OVERFLOW_START.store(usize::MAX, Ordering::Release);
    OVERFLOW_END.store(0, Ordering::Release);
    probe_engine::slots::take_written(|_| {});
}
