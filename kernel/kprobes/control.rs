//! The probe control block: what the trap path is in the middle of.
//!
//! Linux keeps one per CPU (`struct kprobe_ctlblk`); this kernel has one CPU.
//! It is touched only by trap-path code running with interrupts off, so no
//! lock is needed, and only through short borrows ([`with`]) that never span
//! a call into a user handler — a handler may hit another probe, and that
//! nested trap borrows the block anew.
use super::probe::Kprobe;
use super::registry::Site;
use crate::arch::x86::kprobes::StepState;
use crate::arch::TrapFrame;
use core::cell::UnsafeCell;
use core::ptr;

/// Where the engine is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// No probe is being handled.
    Idle,
    /// A probe's handlers are running (pre, post, jprobe, kretprobe).
    Handlers,
    /// A probed instruction is being single-stepped in its slot.
    SingleStep,
    /// A probe hit inside handlers or a step is single-stepping its
    /// instruction without handlers; `previous` holds the outer state.
    Reenter,
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

// SAFETY: one CPU; accessed only with interrupts off through `with`, whose
// borrows never overlap (see the module comment).
unsafe impl Sync for Cell {}

static BLOCK: Cell = Cell(UnsafeCell::new(ControlBlock {
    current: Active::IDLE,
    previous: Active::IDLE,
    jprobe: JprobeSave { active: false, regs: TrapFrame { edi: 0, esi: 0, ebp: 0, esp: 0, ebx: 0, edx: 0, ecx: 0, eax: 0, vector: 0, error_code: 0, eip: 0, cs: 0, eflags: 0 }, stack: [0; JPROBE_STACK_COPY], stack_len: 0 },
}));

/// Runs `f` on the control block. Trap path only: interrupts must be off
/// (they always are there, and re-checking them on every access costs the
/// hot path). Never call a user handler inside `f`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&mut ControlBlock) -> R) -> R {
    debug_assert!(!crate::arch::cpu::interrupts_enabled(), "probe control block touched with interrupts on");
    // SAFETY: interrupts are off and no other borrow is live: borrows are
    // confined to `f`, which by contract calls no handler, and a trap cannot
    // nest inside engine code (it is not probeable).
    f(unsafe { &mut *BLOCK.0.get() })
}

/// The current status (from any context).
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn status() -> Status {
    crate::arch::cpu::without_interrupts(|| with(|kcb| kcb.current.status))
}

/// Whether probe handling of any kind is in progress (handlers or a step).
pub fn in_probe_context() -> bool {
    status() != Status::Idle
}
