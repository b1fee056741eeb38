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
        "mov eax, [esp + 4]", // save_esp
        "mov edx, [esp + 8]", // next_esp
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
///
/// The i386 System V ABI wants ESP 16-byte aligned at every `call`, i.e.
/// `ESP + 4` aligned on a function's first instruction (our code generation
/// only relies on 4-byte alignment today, but a first frame laid out by the
/// ABI costs nothing). The "return" into `start` therefore leaves ESP at
/// `top - 4`, pointing at `start`'s fake return address:
///
/// ```text
///   top      ->  (16-byte aligned, nothing stored here)
///   top - 4      0          fake return address of `start` (ends backtraces)
///   top - 8      start      "return" address popped by `switch_context`
///   top - 12     0          EBP
///   top - 16     0          EBX
///   top - 20     0          ESI
///   top - 24     0          EDI
///   top - 28     0x2        EFLAGS (IF clear)   <- returned ESP
/// ```
pub fn prepare_stack(stack: &mut [u8], start: extern "C" fn() -> !) -> usize {
    let top = (stack.as_mut_ptr() as usize + stack.len()) & !0xf;
    let words: [usize; 7] = [
        0x2,            // EFLAGS: IF clear
        0,              // EDI
        0,              // ESI
        0,              // EBX
        0,              // EBP
        start as usize, // "return" address
        0,              // fake return address of `start`
    ];
    let esp = top - words.len() * 4;
    assert!(esp >= stack.as_mut_ptr() as usize, "stack too small for a first frame");
    // SAFETY: [esp, top) lies inside `stack` (checked above), which we borrow
    // mutably; `esp` is 4-byte aligned because `top` is 16-byte aligned.
    unsafe { core::ptr::copy_nonoverlapping(words.as_ptr(), esp as *mut usize, words.len()) };
    esp
}
