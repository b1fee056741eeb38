//! Frame-pointer backtraces that see through traps and kretprobes.
//!
//! The kernel keeps frame pointers (`frame-pointer: always` in the target),
//! so each frame is `[ebp] = caller's ebp, [ebp+4] = return address`. Two
//! kinds of return address need help to tell the truth:
//! - the return site of a trap entry's call into Rust (`trap_common`'s, or the
//!   dedicated `#BP` and `#DB` entries'): the frame
//!   above is a [`TrapFrame`]; the walk continues at the interrupted EIP/EBP
//!   (and, at a function's first instruction, the return address at ESP);
//! - the kretprobe trampoline: the walk asks the kretprobe engine for the
//!   real return address that the trampoline replaced.
//!
//! The API is Linux's: [`stack_trace_save`] and [`stack_trace_save_regs`]
//! fill a `&mut [usize]`; the fatal reports print from the same walk.
use crate::arch::TrapFrame;
use crate::println;

/// How many frames a backtrace shows at most.
pub const MAX_DEPTH: usize = 32;

/// One step of a walk: a code address and the frame pointer to go on with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// A code address: the faulting EIP for the first frame, then return addresses.
    pub address: usize,
    /// The frame pointer belonging to this frame's function.
    pub frame_pointer: usize,
    /// Whether `address` is a return address (the call is just before it)
    /// rather than the address of an interrupted instruction.
    pub is_return: bool,
}

impl Frame {
    /// An empty entry (for arrays of frames).
    pub const NONE: Frame = Frame { address: 0, frame_pointer: 0, is_return: false };

    /// The function this frame is in (return addresses looked up at `address - 1`).
    pub fn symbol(&self) -> Option<crate::symbols::Symbol> {
        if self.is_return {
            crate::symbols::lookup_return_address(self.address)
        } else {
            crate::symbols::lookup_address(self.address)
        }
    }
}

fn readable(address: usize) -> bool {
    address >= 0x1000 && address % 4 == 0 && crate::task::stack_of_address(address).is_some()
}

fn read(address: usize) -> usize {
    // SAFETY: callers check `readable(address)`: the word lies in a mapped
    // kernel stack.
    unsafe { core::ptr::read_volatile(address as *const usize) }
}

/// Walks the frame chain starting at `frame_pointer`, calling `visit` with
/// each return address (resolved through kretprobes), innermost first.
/// Stops after [`MAX_DEPTH`] frames, at EBP 0, or at anything not on a stack.
pub fn walk(mut frame_pointer: usize, mut visit: impl FnMut(Frame)) {
    let mut depth = 0;
    while depth < MAX_DEPTH && readable(frame_pointer) && readable(frame_pointer + 4) {
        let slot = frame_pointer + 4;
        let mut address = read(slot);
        if address == 0 {
            break;
        }
        address = crate::kprobes::kretprobe::resolve_return_address(slot, address);
        let next = read(frame_pointer);
        let lane = crate::kprobes::trap::lane_handler_frame(address);
        if lane.is_some()
            || crate::arch::x86::trap::is_dispatcher_return_site(address)
            || crate::kprobes::kretprobe::is_dispatcher_return_site(address)
            || crate::kprobes::optimize::is_dispatcher_return_site(address)
        {
            // A dispatcher's first argument is the trap frame; a lane's
            // handler call (fastcall) has the frame just above its stack
            // pointer at the call, the callee's frame pointer + 8.
            visit(Frame { address, frame_pointer: next, is_return: true });
            depth += 1;
            if !readable(frame_pointer + 8) {
                break;
            }
            let frame_address = match lane {
                Some(offset) => frame_pointer + 8 + offset,
                None => read(frame_pointer + 8),
            };
            let frame_end = frame_address + core::mem::size_of::<TrapFrame>() - 4;
            if !readable(frame_address) || !readable(frame_end) {
                break; // a corrupt chain must not fault the report that walks it
            }
            // SAFETY: the dispatcher's argument is a live `TrapFrame`, and
            // both its ends were checked to lie on a kernel stack.
            let frame = unsafe { &*(frame_address as *const TrapFrame) };
            depth += walk_trap_frame(frame, &mut visit);
            frame_pointer = frame.ebp as usize;
            continue;
        }
        visit(Frame { address, frame_pointer: next, is_return: true });
        depth += 1;
        if next <= frame_pointer {
            break; // stacks grow down: a caller's frame is always above
        }
        frame_pointer = next;
    }
}

/// Visits the interrupted EIP of a trap frame, and at a function's first
/// instruction (before `push ebp`) also the return address at its ESP, which
/// the frame chain would otherwise skip. Returns how many frames it visited.
fn walk_trap_frame(frame: &TrapFrame, visit: &mut impl FnMut(Frame)) -> usize {
    let frame_at = frame as *const TrapFrame as usize;
    if let Some(real) =
        crate::kprobes::kretprobe::resolve_trampoline_trap(frame.eip as usize, frame.esp as usize, frame_at)
    {
        // Caught inside the kretprobe trampoline before it ran: the call
        // has returned, so the code is logically at its real return address
        // (and EBP is already the caller's).
        visit(Frame { address: real, frame_pointer: frame.ebp as usize, is_return: true });
        return 1;
    }
    visit(Frame { address: frame.eip as usize, frame_pointer: frame.ebp as usize, is_return: false });
    let at_entry = crate::symbols::lookup_address(frame.eip as usize).is_some_and(|s| s.offset == 0);
    if at_entry && readable(frame.esp as usize) {
        let slot = frame.esp as usize;
        let address = crate::kprobes::kretprobe::resolve_return_address(slot, read(slot));
        visit(Frame { address, frame_pointer: frame.ebp as usize, is_return: true });
        return 2;
    }
    1
}

fn print_frame(index: usize, frame: Frame) {
    if frame.is_return {
        println!("  #{index:<2} {:#010x} {}", frame.address, crate::symbols::DescribeReturn(frame.address));
    } else {
        println!("  #{index:<2} {:#010x} {}", frame.address, crate::symbols::Describe(frame.address));
    }
}

/// Saves the call stack of the code a trap interrupted (Linux's
/// `stack_trace_save_regs`): the interrupted EIP first, then the return
/// addresses of its callers, innermost first, through nested trap frames,
/// with every kretprobe trampoline replaced by the real return address.
/// Returns how many entries were stored (at most `store.len()`).
pub fn stack_trace_save_regs(regs: &TrapFrame, store: &mut [usize]) -> usize {
    save_addresses(store, |frames| stack_trace_frames_regs(regs, frames))
}

/// Saves the call stack of the caller (Linux's `stack_trace_save`): the
/// return address into the caller's caller first, then further callers,
/// seen through trap frames and kretprobe trampolines as
/// [`stack_trace_save_regs`] does. Returns how many entries were stored.
#[inline(never)]
pub fn stack_trace_save(store: &mut [usize]) -> usize {
    // Our own frame's saved EBP is the caller's frame pointer.
    let own = crate::arch::cpu::frame_pointer();
    if !readable(own) {
        return 0;
    }
    let caller = read(own);
    save_addresses(store, |frames| stack_trace_frames(caller, frames))
}

/// As [`stack_trace_save_regs`], keeping each entry's kind (an interrupted
/// instruction or a return address: they name their function differently).
pub fn stack_trace_frames_regs(regs: &TrapFrame, store: &mut [Frame]) -> usize {
    let mut count = 0;
    let mut visit = |frame: Frame| {
        if let Some(slot) = store.get_mut(count) {
            *slot = frame;
            count += 1;
        }
    };
    walk_trap_frame(regs, &mut visit);
    walk(regs.ebp as usize, visit);
    count
}

/// The frames of the chain starting at `frame_pointer`, innermost first.
pub fn stack_trace_frames(frame_pointer: usize, store: &mut [Frame]) -> usize {
    let mut count = 0;
    walk(frame_pointer, |frame| {
        if let Some(slot) = store.get_mut(count) {
            *slot = frame;
            count += 1;
        }
    });
    count
}

fn save_addresses(store: &mut [usize], frames_of: impl FnOnce(&mut [Frame]) -> usize) -> usize {
    let mut frames = [Frame::NONE; MAX_DEPTH];
    let count = frames_of(&mut frames).min(store.len());
    for (slot, frame) in store.iter_mut().zip(&frames[..count]) {
        *slot = frame.address;
    }
    count
}

fn print_frames(frames: &[Frame]) {
    println!("backtrace:");
    for (index, frame) in frames.iter().enumerate() {
        print_frame(index, *frame);
    }
}

/// Prints a backtrace: `first` (if non-zero) and then the chain from `frame_pointer`.
pub fn print_backtrace(first: usize, frame_pointer: usize) {
    let mut frames = [Frame::NONE; MAX_DEPTH + 1];
    let skip = if first != 0 {
        frames[0] = Frame { address: first, frame_pointer, is_return: false };
        1
    } else {
        0
    };
    let count = skip + stack_trace_frames(frame_pointer, &mut frames[skip..]);
    print_frames(&frames[..count]);
}

/// Prints a backtrace of the code a trap interrupted.
pub fn print_backtrace_from_frame(frame: &TrapFrame) {
    let mut frames = [Frame::NONE; MAX_DEPTH];
    let count = stack_trace_frames_regs(frame, &mut frames);
    print_frames(&frames[..count]);
}

/// The return address `level` frames up from the caller of this function,
/// with kretprobe trampolines resolved to the real return address: level 0 is
/// what `__builtin_return_address(0)` gives in the calling function.
#[inline(never)]
pub fn return_address(level: usize) -> Option<usize> {
    // Our own frame's saved EBP is the caller's frame pointer.
    let own = crate::arch::cpu::frame_pointer();
    if !readable(own) {
        return None;
    }
    let mut result = None;
    let mut seen = 0;
    walk(read(own), |frame| {
        if seen == level {
            result = Some(frame.address);
        }
        seen += 1;
    });
    result
}
