//! The i386 half of jprobes: sending a hit to the handler with the probed
//! function's stack, and `jprobe_return`.
//!
//! At the hit the registers and the top of the stack (the arguments) are
//! saved, and EIP goes to the handler with interrupts off: its `extern "C"`
//! parameters *are* the probed function's arguments. `jprobe_return` puts
//! ESP back and executes `int3`; the engine restores the saved stack and
//! registers there. The ESP to put back is the CPU's own (several CPUs may
//! be inside jprobe handlers at once): one saved stack pointer per CPU,
//! which the handler cannot leave (interrupts stay off in it).
use super::BREAKPOINT_INSTRUCTION;
use super::cpu::EFLAGS_IF;
use super::regs::PtRegs;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of the stack copy a jprobe saves (Linux's MAX_STACK_SIZE).
pub const JPROBE_STACK_COPY: usize = 64;
/// The copy in stack words (the stack is word-aligned).
const STACK_WORDS: usize = JPROBE_STACK_COPY / 4;

/// Copies `words` stack words one by one. A `memcpy` call here would be a
/// byte-count loop with set-up on every jprobe hit, twice; the words are
/// few and aligned, so plain loads and stores are the short path.
///
/// # Safety
/// `from` and `to` must be valid, aligned and non-overlapping for `words`
/// words.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
unsafe fn copy_words(from: *const u32, to: *mut u32, words: usize) {
    for i in 0..words {
        // SAFETY: in bounds for `words` words (the caller's contract);
        // volatile so the loop stays loads and stores, not a memcpy call.
        unsafe { to.add(i).write_volatile(from.add(i).read_volatile()) };
    }
}

/// What a jprobe saves at its breakpoint.
#[derive(Clone, Copy)]
pub struct JprobeStack {
    /// The registers at the hit.
    pub regs: PtRegs,
    /// The top of the probed function's stack.
    pub stack: [u32; STACK_WORDS],
    /// How many words of `stack` hold it.
    pub stack_words: usize,
}

impl JprobeStack {
    /// Nothing saved.
    pub const EMPTY: JprobeStack = JprobeStack {
        regs: PtRegs {
            edi: 0,
            esi: 0,
            ebp: 0,
            esp: 0,
            ebx: 0,
            edx: 0,
            ecx: 0,
            eax: 0,
            vector: 0,
            error_code: 0,
            eip: 0,
            cs: 0,
            eflags: 0,
        },
        stack: [0; STACK_WORDS],
        stack_words: 0,
    };
}

/// The stack pointer `jprobe_return` restores (the probed function's ESP),
/// per CPU: written at the hit and read at `jprobe_return` by the same CPU,
/// with interrupts off throughout.
static SAVED_ESP: [AtomicUsize; crate::MAX_CPUS] = [const { AtomicUsize::new(0) }; crate::MAX_CPUS];

/// The calling CPU's saved stack pointer, for [`jprobe_return`] (a plain
/// `extern "C"` call from its asm: the result comes back in EAX).
#[unsafe(link_section = ".kprobes.text")]
extern "C" fn saved_stack_pointer() -> usize {
    SAVED_ESP[crate::host::current_cpu()].load(Ordering::Relaxed)
}

/// Ends a jprobe handler: never returns to it; execution continues with the
/// probed function as if the handler had not run.
///
/// The call below may clobber EAX, ECX, EDX and EFLAGS: the `int3` restores
/// every register from the save made at the hit anyway.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub extern "C" fn jprobe_return() -> ! {
    naked_asm!(
        "call {saved}",  // 5 bytes: E8 rel32
        "mov esp, eax",  // 2 bytes: 89 C4
        "int3",
        "ud2",
        saved = sym saved_stack_pointer,
    );
}

/// Offset of the `int3` in [`jprobe_return`] (checked at boot by [`check_layout`]).
const RETURN_BREAKPOINT_OFFSET: usize = 7;

#[unsafe(link_section = ".kprobes.text")]
fn return_breakpoint() -> usize {
    jprobe_return as *const () as usize + RETURN_BREAKPOINT_OFFSET
}

/// Checks that [`jprobe_return`]'s `int3` is where the trap path expects it.
pub fn check_layout() {
    // SAFETY: reads one byte of kernel text.
    let byte = unsafe { core::ptr::read_volatile(return_breakpoint() as *const u8) };
    assert_eq!(byte, BREAKPOINT_INSTRUCTION, "jprobe_return's int3 moved");
}

/// Whether a breakpoint at `address` is `jprobe_return`'s.
#[unsafe(link_section = ".kprobes.text")]
pub fn is_return_breakpoint(address: usize) -> bool {
    address == return_breakpoint()
}

/// Saves `regs` and the top of the probed stack into `save` (up to the end
/// of the stack `stack_end` gives, if known) and sends `regs` to `entry`
/// with interrupts off.
#[unsafe(link_section = ".kprobes.text")]
pub fn enter_handler(regs: &mut PtRegs, entry: usize, save: &mut JprobeStack, stack_end: Option<usize>) {
    let esp = regs.esp as usize;
    let words = STACK_WORDS.min((stack_end.unwrap_or(esp + JPROBE_STACK_COPY) - esp) / 4);
    save.regs = *regs;
    save.stack_words = words;
    // SAFETY: [esp, esp + 4 * words) is the live, word-aligned stack of the
    // probed code, below the end of its stack; the save area is ours.
    unsafe { copy_words(esp as *const u32, save.stack.as_mut_ptr(), words) };
    SAVED_ESP[crate::host::current_cpu()].store(esp, Ordering::Relaxed);
    regs.eip = entry as u32;
    regs.eflags &= !EFLAGS_IF;
}

/// At `jprobe_return`'s breakpoint: puts back the stack bytes and the
/// registers `save` holds.
#[unsafe(link_section = ".kprobes.text")]
pub fn leave_handler(regs: &mut PtRegs, save: &JprobeStack) {
    // SAFETY: restores the stack words saved at the hit, where they were;
    // the current trap frame lies below them (jprobe_return reset ESP first).
    unsafe { copy_words(save.stack.as_ptr(), save.regs.esp as *mut u32, save.stack_words) };
    *regs = save.regs;
}
