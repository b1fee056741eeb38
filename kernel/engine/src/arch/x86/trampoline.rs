//! The kretprobe return trampoline.
//!
//! A kretprobe's entry handler replaces the probed function's stacked return
//! address with [`kretprobe_trampoline`]'s. The function's `ret` lands here
//! with ESP just above that slot. The trampoline builds the same
//! [`PtRegs`](super::regs::PtRegs) a trap would (so handlers get an ordinary `PtRegs`), calls
//! the generic dispatcher with interrupts off, and leaves through the host's
//! trap exit (`probe_engine_trap_return`): `iretd` to the EIP the dispatcher
//! wrote (the real return address), with every register and EFLAGS as the
//! function left them.
//!
//! ```text
//!   slot + 4 ->  (caller's stack)          = frame.esp
//!                EFLAGS   pushfd           (then cli: the frame keeps the function's IF)
//!                CS
//!                EIP      0, then the real return address (dispatcher)
//!                error    0
//!                vector   KRETPROBE_VECTOR
//!                pushad   EAX..EDI
//!        ESP ->  &PtRegs argument
//! ```
use super::regs::FRAME_SIZE;

/// The vector number a trampoline frame carries (no real vector has it).
pub const KRETPROBE_VECTOR: u32 = 0xffff_ffff;

super::regs::frame_entry!(
    /// Where probed functions return to while a kretprobe instance is active.
    ///
    /// # Safety
    /// Never called: only reached by a `ret` whose stacked return address the
    /// engine replaced, with ESP just above that slot.
    kretprobe_trampoline,
    prefix: [
        "pushfd",
        "cli",        // after pushfd: the frame keeps the function's IF
        ".byte 0x0e", // push cs, 32-bit (the assembler's `push cs` is 16-bit)
        "push 0",
        "push 0",
        "push -1"     // KRETPROBE_VECTOR
    ],
    return_site: "kretprobe_dispatch_return_site",
    dispatch: crate::kretprobe::trampoline_dispatch
);
const _: () = assert!(KRETPROBE_VECTOR == -1i32 as u32);

/// The highest address the trampoline can have pushed to by its call to the
/// dispatcher, when a trap interrupted it with stack pointer `sp`: a frame
/// and its address.
pub fn pushed_before_dispatch(sp: usize) -> usize {
    sp + FRAME_SIZE + 4
}

/// The trampoline's address (what replaced return addresses hold).
pub fn address() -> usize {
    kretprobe_trampoline as *const () as usize
}

/// The return address of the trampoline's call to the dispatcher; the
/// unwinder continues through the trampoline's frame from there.
pub fn dispatch_return_site() -> usize {
    unsafe extern "C" {
        static kretprobe_dispatch_return_site: u8;
    }
    &raw const kretprobe_dispatch_return_site as usize
}
