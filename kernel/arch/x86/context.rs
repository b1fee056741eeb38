//! Kernel-thread context switch and the initial stack of a new thread.
//!
//! A switched-out thread's stack holds, from its saved ESP upwards:
//!
//! ```text
//!   saved ESP ->  EFLAGS   (pushfd: IF as the thread had it)
//!                 EDI
//!                 ESI
//!                 EBX
//!                 EBP
//!                 return address into whoever called `switch_context`
//! ```
//!
//! A new thread's stack is laid out the same way with the return address
//! pointing at its start routine, so the first switch to it "returns" there.
use core::arch::naked_asm;

/// Saves the callee-saved state on the current stack, stores ESP into
/// `*save_esp`, loads `next_esp`, and resumes whatever was saved there.
///
/// # Safety
/// `next_esp` must be a stack prepared by [`prepare_stack`] or saved by an
/// earlier call; interrupts must be off (the scheduler's tables are updated
/// around the call).
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn switch_context(save_esp: *mut usize, next_esp: usize) {
    naked_asm!(
        "mov eax, [esp + 4]",  // save_esp
        "mov edx, [esp + 8]",  // next_esp
        "push ebp",
        "push ebx",
        "push esi",
        "push edi",
        "pushfd",
        "mov [eax], esp",
        "mov esp, edx",
        "popfd",
        "pop edi",
        "pop esi",
        "pop ebx",
        "pop ebp",
        "ret",
    );
}

/// Lays out a fresh stack so that switching to it calls `start` with
/// interrupts off, EBP 0 (the end of the frame chain). Returns the ESP to
/// switch to.
pub fn prepare_stack(stack: &mut [u8], start: extern "C" fn() -> !) -> usize {
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !0xf;
    let words: [usize; 8] = [
        0x2,                  // EFLAGS: IF clear
        0,                    // EDI
        0,                    // ESI
        0,                    // EBX
        0,                    // EBP
        start as usize,       // "return" address
        0,                    // fake return address of `start`
        0,                    // padding
    ];
    let esp = top - words.len() * 4;
    // SAFETY: [esp, top) lies inside `stack`, which we borrow mutably.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), esp as *mut usize, words.len()) };
    esp
}
