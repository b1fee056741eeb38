//! The i386 half of jprobes: sending a hit to the handler with the probed
//! function's stack, and `jprobe_return`.
//!
//! At the hit the registers and the top of the stack (the arguments) are
//! saved, and EIP goes to the handler with interrupts off: its `extern "C"`
//! parameters *are* the probed function's arguments. `jprobe_return` puts
//! ESP back and builds there the frame an `int3` would have pushed, without
//! taking one (Linux's i386 `jprobe_return` traps; the frame costs a few
//! pushes and no exception, no failed site lookup); the engine restores
//! the saved stack and registers into it. The ESP to put back is the CPU's
//! own (several CPUs may be inside jprobe handlers at once): one saved
//! stack pointer per CPU, which the handler cannot leave (interrupts stay
//! off in it).
use super::cpu::EFLAGS_IF;
use super::regs::PtRegs;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Size of the stack copy a jprobe saves (Linux's MAX_STACK_SIZE).
pub const JPROBE_STACK_COPY: usize = 64;
/// The copy in stack words (the stack is word-aligned).
const STACK_WORDS: usize = JPROBE_STACK_COPY / 4;

/// Copies `words` stack words with one `rep movsd`. A `memcpy` call here
/// would be a byte-count loop with set-up on every jprobe hit, twice, and a
/// loop of loads and stores costs five instructions a word; the string
/// instruction is one per word.
///
/// # Safety
/// `from` and `to` must be valid, aligned and non-overlapping for `words`
/// words.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
unsafe fn copy_words(from: *const u32, to: *mut u32, words: usize) {
    // SAFETY: the caller's contract covers every word `rep movsd` reads and
    // writes; the direction flag is clear at every Rust instruction
    // boundary (the ABI), so the copy runs upwards from both pointers. ESI
    // is LLVM's (it may hold a base pointer), so it is swapped in and
    // restored around the copy.
    unsafe {
        core::arch::asm!(
            "xchg esi, {from}",
            "rep movsd",
            "mov esi, {from}",
            from = inout(reg) from => _,
            inout("ecx") words => _,
            inout("edi") to => _,
            options(nostack, preserves_flags),
        );
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
/// with interrupts off throughout; 0 when no jprobe hit is in progress (set
/// back when its save is restored), so a stray `jprobe_return` keeps its
/// own stack and reaches the dispatcher's report.
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
/// The call below may clobber EAX, ECX, EDX and EFLAGS: the frame built
/// next is overwritten with every register saved at the hit anyway.
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub extern "C" fn jprobe_return() -> ! {
    naked_asm!(
        "call {saved}",
        "test eax, eax", // 0: no jprobe hit in progress (the dispatcher says so)
        "jz 2f",
        "mov esp, eax",
        "2:",
        "jmp {entry}",
        saved = sym saved_stack_pointer,
        entry = sym jprobe_return_entry,
    );
}

/// The vector a `jprobe_return` frame carries until the save replaces it
/// (no real vector has it).
pub const JPROBE_RETURN_VECTOR: u32 = 0xffff_fffe;
const _: () = assert!(JPROBE_RETURN_VECTOR == -2i32 as u32);

super::regs::frame_entry!(
    /// [`jprobe_return`]'s second half, on the probed function's stack:
    /// the frame an `int3` there would push (EFLAGS, CS, a placeholder EIP,
    /// error code, vector), then the registers, then the engine's
    /// `longjmp_dispatch`, which fills the frame from the save.
    ///
    /// # Safety
    /// Never called: only reached by `jprobe_return`'s `jmp`, with ESP back
    /// at the probed function's.
    jprobe_return_entry,
    prefix: [
        "pushfd",
        "cli",        // after pushfd (the save's EFLAGS replaces it anyway)
        ".byte 0x0e", // push cs, 32-bit
        "push 0",     // EIP, from the save
        "push 0",
        "push -2"     // JPROBE_RETURN_VECTOR
    ],
    return_site: "jprobe_dispatch_return_site",
    dispatch: crate::jprobe::longjmp_dispatch
);

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

/// At `jprobe_return`: puts back the stack bytes and the registers `save`
/// holds.
#[unsafe(link_section = ".kprobes.text")]
pub fn leave_handler(regs: &mut PtRegs, save: &JprobeStack) {
    // SAFETY: restores the stack words saved at the hit, where they were;
    // the current frame lies below them (jprobe_return reset ESP first).
    unsafe { copy_words(save.stack.as_ptr(), save.regs.esp as *mut u32, save.stack_words) };
    *regs = save.regs;
    SAVED_ESP[crate::host::current_cpu()].store(0, Ordering::Relaxed);
}
