//! The probe control block: what the trap path is in the middle of, and the
//! token that proves a caller may touch it.
//!
//! Linux keeps one per CPU (`struct kprobe_ctlblk`); this kernel has one CPU.
//! Only code holding a [`TrapContext`] may borrow the block ([`with`]), and
//! only the trap entry points (and the few engine paths that run with
//! interrupts off on the engine's behalf) can create one. The borrows are
//! short and never span a call into a user handler — a handler may hit
//! another probe, and that nested trap borrows the block anew.
use super::probe::Kprobe;
use super::registry::Site;
use crate::arch::x86::kprobes::StepState;
use crate::arch::TrapFrame;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Proof that the holder runs on the trap path of this CPU with interrupts
/// off, so the control block and the kretprobe instance lists are its own.
///
/// It cannot be built outside the engine and the trap entry: the
/// constructor is `unsafe` and crate-private, and the type is neither
/// `Send` nor `Clone`. Functions that touch trap-path state take
/// `&mut TrapContext`, so the compiler refuses any caller that has not
/// come through a trap entry.
pub struct TrapContext {
    _not_send: PhantomData<*mut ()>,
}

impl TrapContext {
    /// Creates the token for one trap (or one engine operation).
    ///
    /// # Safety
    /// Interrupts must be off for as long as the token lives, and the caller
    /// must be engine or trap-entry code that no probe can hit (it lives in
    /// `.kprobes.text` or is reachable only from there; see `blacklist`).
    /// A nested trap creates its own token; that is sound because no borrow
    /// of the control block is ever live across a user handler or across
    /// code that can trap.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub(crate) unsafe fn enter() -> TrapContext {
        debug_assert!(!crate::arch::cpu::interrupts_enabled(), "trap context with interrupts on");
        // Interrupts are off: a plain read-modify-write cannot be torn.
        TRAP_DEPTH.store(TRAP_DEPTH.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        TrapContext { _not_send: PhantomData }
    }
}

impl Drop for TrapContext {
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    fn drop(&mut self) {
        TRAP_DEPTH.store(TRAP_DEPTH.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }
}

/// Live [`TrapContext`]s: non-zero while the trap path (or an engine
/// operation on its state) runs. Nothing there may context-switch, so one
/// count serves every task.
static TRAP_DEPTH: AtomicUsize = AtomicUsize::new(0);

/// Whether the trap path is running right now, before or after any probe's
/// handlers (for the allocator's check).
pub fn trap_path_active() -> bool {
    TRAP_DEPTH.load(Ordering::Relaxed) != 0
}

/// Where the engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// No probe is being handled.
    Idle,
    /// A probe's handlers are running (pre, post, fault, jprobe, kretprobe).
    Handlers,
    /// A probed instruction is being single-stepped in its slot.
    SingleStep,
    /// A probe hit inside handlers or a step is single-stepping its
    /// instruction without handlers; `previous` holds the outer state.
    Reenter,
    /// A fatal report is being printed: every hit from now on runs its
    /// instruction without handlers, as a reentry would.
    Reporting,
}

/// The state of one level of probe handling.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Active {
    pub status: Status,
    /// The site being handled (null for kretprobe returns).
    pub site: *const Site,
    /// The probe whose handler runs (for its fault handler and reports).
    pub running: *const Kprobe,
    /// Flags to restore after a single-step.
    pub step: StepState,
}

impl Active {
    pub const IDLE: Active = Active { status: Status::Idle, site: ptr::null(), running: ptr::null(), step: StepState { saved_flags: 0 } };

    /// Handlers are running for `site` (null for a kretprobe return).
    #[unsafe(link_section = ".kprobes.text")]
    pub fn handlers(site: *const Site) -> Active {
        Active { status: Status::Handlers, site, ..Active::IDLE }
    }
}

/// Size of the stack copy a jprobe saves (Linux's MAX_STACK_SIZE).
pub(crate) const JPROBE_STACK_COPY: usize = 64;

/// What a jprobe saved at its breakpoint, restored by `jprobe_return`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct JprobeSave {
    pub active: bool,
    pub regs: TrapFrame,
    pub stack: [u8; JPROBE_STACK_COPY],
    pub stack_len: usize,
}

/// The control block.
pub(crate) struct ControlBlock {
    pub current: Active,
    pub previous: Active,
    pub jprobe: JprobeSave,
}

struct Cell(UnsafeCell<ControlBlock>);

// SAFETY: one CPU; mutable access only through `with`, which needs a
// `TrapContext` (interrupts off) and whose borrows never overlap (see the
// module comment).
unsafe impl Sync for Cell {}

static BLOCK: Cell = Cell(UnsafeCell::new(ControlBlock {
    current: Active::IDLE,
    previous: Active::IDLE,
    jprobe: JprobeSave {
        active: false,
        regs: TrapFrame { edi: 0, esi: 0, ebp: 0, esp: 0, ebx: 0, edx: 0, ecx: 0, eax: 0, vector: 0, error_code: 0, eip: 0, cs: 0, eflags: 0 },
        stack: [0; JPROBE_STACK_COPY],
        stack_len: 0,
    },
}));

/// Runs `f` on the control block. Never call a user handler inside `f`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn with<R>(_context: &mut TrapContext, f: impl FnOnce(&mut ControlBlock) -> R) -> R {
    // SAFETY: the token proves interrupts are off on the trap path, and the
    // `&mut` borrow of it is held for the whole of `f`, so no second borrow
    // can be made from this activation; a nested trap cannot arise inside
    // `f` (engine code is not probeable and `f` calls no handler).
    f(unsafe { &mut *BLOCK.0.get() })
}

/// The current status (from any context): a snapshot read with interrupts off.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn status() -> Status {
    crate::arch::cpu::without_interrupts(|| {
        // SAFETY: interrupts are off, so no trap-path borrow can be live
        // while this copy is read (traps do not nest into this function,
        // which is engine code).
        unsafe { (*BLOCK.0.get()).current.status }
    })
}

/// Whether probe handling of any kind is in progress (handlers, a step, a report).
pub fn in_probe_context() -> bool {
    status() != Status::Idle
}
