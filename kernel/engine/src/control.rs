//! The probe control block: what the trap path is in the middle of, and the
//! token that proves a caller may touch it.
//!
//! One per CPU, as Linux's per-CPU `struct kprobe_ctlblk`, indexed by
//! `Host::current_cpu`, next to that CPU's count of live trap contexts.
//! Only code holding a [`TrapContext`] may borrow the block ([`with`]), and
//! only the trap entry points (and the few engine paths that run with
//! interrupts off on the engine's behalf) can create one. The borrows are
//! short and never span a call into a user handler — a handler may hit
//! another probe, and that nested trap borrows the block anew.
use super::probe::Kprobe;
use super::registry::Site;
use crate::arch::imp::StepState;
use crate::arch::imp::jprobe::JprobeStack;
use core::cell::UnsafeCell;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Proof that the holder runs on the trap path of this CPU with interrupts
/// off, so the control block and the kretprobe instance lists are its own.
///
/// Only the host's trap entry and the engine make one: the constructor is
/// `unsafe`, and the type is neither `Send` nor `Clone`. Functions that touch trap-path state take
/// `&mut TrapContext`, so the compiler refuses any caller that has not
/// come through a trap entry.
pub struct TrapContext {
    /// This CPU's trap-path state, found once when the token is made:
    /// interrupts stay off while it lives, so the CPU cannot change.
    cpu: &'static PerCpu,
    _not_send: PhantomData<*mut ()>,
}

impl TrapContext {
    /// Creates the token for one trap (or one engine operation).
    ///
    /// # Safety
    /// Interrupts must be off for as long as the token lives, and the caller
    /// must be the host's trap entry (for `#BP`, `#DB` and the other
    /// exceptions, one token per trap) or engine code, which no probe can
    /// hit (it lives in `.kprobes.text` or is reachable only from there; see
    /// `blacklist`).
    /// A nested trap creates its own token; that is sound because no borrow
    /// of the control block is ever live across a user handler or across
    /// code that can trap.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub unsafe fn enter() -> TrapContext {
        debug_assert!(!crate::arch::imp::cpu::interrupts_enabled(), "trap context with interrupts on");
        // Interrupts are off, and only this CPU writes its own count: a
        // plain read-modify-write cannot be torn, and the task cannot move
        // to another CPU before the token is dropped.
        let cpu = this_cpu();
        cpu.trap_depth.store(cpu.trap_depth.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        TrapContext { cpu, _not_send: PhantomData }
    }
}

impl Drop for TrapContext {
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    fn drop(&mut self) {
        // Still the CPU that made the token: interrupts stayed off.
        let depth = &self.cpu.trap_depth;
        depth.store(depth.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
    }
}

/// Whether the trap path is running right now on the calling CPU, before
/// or after any probe's handlers (for the allocator's check). Read with
/// interrupts off, so the answer is the CPU's the caller runs on; nothing
/// on the trap path context-switches, so the count is the CPU's alone.
#[unsafe(link_section = ".kprobes.text")]
pub fn trap_path_active() -> bool {
    crate::arch::imp::cpu::without_interrupts(|| this_cpu().trap_depth.load(Ordering::Relaxed) != 0)
}

/// What the trap path of this CPU is in the middle of. Each variant
/// carries what that stage needs; the block changes only through the
/// transition methods of [`ControlBlock`], which refuse illegal moves.
///
/// The tag of every state but `Idle` is odd: the assembly lanes take an
/// idle block with one `bts` of the tag's bit 0, which makes `Idle` into
/// `Handlers` and, on a busy block, sets a bit already set (see
/// `arch::imp::lane::take_idle_block_or`).
#[derive(Clone, Copy)]
#[repr(u8)] // a plain tag byte: every transition's check is one compare
pub(crate) enum State {
    /// No probe is being handled.
    Idle = 0,
    /// Handlers are running: the pre or post handlers of `site`'s probes, a
    /// jprobe handler, fault handlers, or (`site` None) kretprobe return
    /// handlers. `running` is the probe whose handler runs now.
    Handlers { site: Option<&'static Site>, running: Option<&'static Kprobe> } = 1,
    /// `site`'s instruction is being single-stepped in its slot; `step`
    /// holds what to restore after it.
    SingleStep { site: &'static Site, step: StepState } = 3,
    /// A probe hit inside handlers or a step: `site`'s instruction is
    /// stepped without handlers, then `outer` is restored.
    Reenter { site: &'static Site, step: StepState, outer: Outer } = 5,
    /// A fatal report is being printed: every hit runs its instruction
    /// without handlers, as a reentry would.
    Reporting = 7,
}

/// What a breakpoint hit means in the current state.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hit {
    /// Nothing in progress: run the handlers.
    Fresh,
    /// Handlers, a step or a report in progress: a miss, stepped without handlers.
    Reentry,
    /// Inside the one instruction of a reentered step: an engine bug.
    InsideReentry,
}

/// A state a reentry can interrupt (a reentry itself cannot be: a probe
/// inside the one instruction it steps is an engine bug).
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum Outer {
    Handlers { site: Option<&'static Site>, running: Option<&'static Kprobe> },
    SingleStep { site: &'static Site, step: StepState },
    Reporting,
}

impl Outer {
    fn state(self) -> State {
        match self {
            Outer::Handlers { site, running } => State::Handlers { site, running },
            Outer::SingleStep { site, step } => State::SingleStep { site, step },
            Outer::Reporting => State::Reporting,
        }
    }
}

/// A transition the state machine does not allow: an engine bug.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IllegalTransition {
    /// What was asked for.
    pub transition: &'static str,
    /// The stage the engine was in.
    pub from: &'static str,
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Handlers { .. } => "running handlers",
            State::SingleStep { .. } => "single-stepping",
            State::Reenter { .. } => "stepping a reentered probe",
            State::Reporting => "reporting",
        }
    }
}

/// The jprobe save area: what the architecture saved at a jprobe's hit
/// ([`JprobeStack`]), and whether it holds a save.
#[derive(Clone, Copy)]
pub(crate) struct JprobeSave {
    /// Set and cleared only by [`ControlBlock::save_jprobe`] and
    /// [`ControlBlock::take_jprobe`].
    saved: bool,
    stack: JprobeStack,
}

/// The control block: the state, and the jprobe save area (which lives
/// from a jprobe's hit to its `jprobe_return`).
pub(crate) struct ControlBlock {
    state: State,
    jprobe: JprobeSave,
}

type Transition = Result<(), IllegalTransition>;

impl ControlBlock {
    fn illegal(&self, transition: &'static str) -> IllegalTransition {
        IllegalTransition { transition, from: self.state.name() }
    }

    /// The current state.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn state(&self) -> &State {
        &self.state
    }

    /// What a breakpoint hit means now.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn hit(&self) -> Hit {
        match self.state {
            State::Idle => Hit::Fresh,
            State::Handlers { .. } | State::SingleStep { .. } | State::Reporting => Hit::Reentry,
            State::Reenter { .. } => Hit::InsideReentry,
        }
    }

    /// The step in progress: its site, what to restore, and whether it is
    /// a reentered one.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn step(&self) -> Option<(&'static Site, StepState, bool)> {
        match self.state {
            State::SingleStep { site, step } => Some((site, step, false)),
            State::Reenter { site, step, .. } => Some((site, step, true)),
            _ => None,
        }
    }

    /// A hit at `site`: idle → its handlers (a fresh hit), with one check
    /// of the state, already running `lone` if the site has one probe to
    /// run ([`Site::lone`]); otherwise nothing changes and the answer says
    /// what kind of hit this is ([`hit`](Self::hit)).
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn begin_hit(&mut self, site: &'static Site, lone: Option<&'static Kprobe>) -> Hit {
        if let State::Idle = self.state {
            self.state = State::Handlers { site: Some(site), running: lone };
            return Hit::Fresh;
        }
        self.hit()
    }

    /// Idle → the handlers of `site` (a fault in its copy).
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn begin_handlers(&mut self, site: &'static Site) -> Transition {
        match self.state {
            State::Idle => {
                let _: () = self.state = State::Handlers { site: Some(site), running: None };
                Ok(())
            }
            _ => Err(self.illegal("begin handlers")),
        }
    }

    /// Handlers → the same, now running `probe`'s handler.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn run(&mut self, probe: &'static Kprobe) -> Transition {
        match &mut self.state {
            State::Handlers { running, .. } => {
                *running = Some(probe);
                Ok(())
            }
            _ => Err(self.illegal("run a handler")),
        }
    }

    /// Handlers → idle (the hit is over: redirected, boosted, post handlers
    /// or fault handlers done).
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn finish(&mut self) -> Transition {
        match self.state {
            State::Handlers { .. } => {
                self.state = State::Idle;
                Ok(())
            }
            _ => Err(self.illegal("finish")),
        }
    }

    /// Handlers of a site → single-stepping its instruction.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn begin_step(&mut self, step: StepState) -> Transition {
        match self.state {
            State::Handlers { site: Some(site), .. } => {
                let _: () = self.state = State::SingleStep { site, step };
                Ok(())
            }
            _ => Err(self.illegal("begin a single-step")),
        }
    }

    /// Single-stepping → the post handlers of the same site.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn end_step(&mut self) -> Transition {
        match self.state {
            State::SingleStep { site, .. } => {
                let _: () = self.state = State::Handlers { site: Some(site), running: None };
                Ok(())
            }
            _ => Err(self.illegal("end a single-step")),
        }
    }

    /// Handlers, a step or a report → stepping `site` without handlers.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn reenter(&mut self, site: &'static Site, step: StepState) -> Transition {
        let outer = match self.state {
            State::Handlers { site, running } => Outer::Handlers { site, running },
            State::SingleStep { site, step } => Outer::SingleStep { site, step },
            State::Reporting => Outer::Reporting,
            State::Idle | State::Reenter { .. } => return Err(self.illegal("reenter")),
        };
        self.state = State::Reenter { site, step, outer };
        Ok(())
    }

    /// A reentered step is over (or faulted) → the state it interrupted.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn end_reentry(&mut self) -> Transition {
        match self.state {
            State::Reenter { outer, .. } => {
                self.state = outer.state();
                Ok(())
            }
            _ => Err(self.illegal("end a reentry")),
        }
    }

    /// A step faulted: single-stepping → idle, a reentered step → its outer state.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn abandon_step(&mut self) -> Transition {
        match self.state {
            State::SingleStep { .. } => {
                self.state = State::Idle;
                Ok(())
            }
            State::Reenter { outer, .. } => {
                self.state = outer.state();
                Ok(())
            }
            _ => Err(self.illegal("abandon a single-step")),
        }
    }

    /// Idle → running kretprobe return handlers. A return reaches the
    /// trampoline only in task or interrupt context: calls made while
    /// handlers, a step or a report are in progress are misses and never
    /// swap their return address.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn begin_return_handlers(&mut self) -> Transition {
        match self.state {
            State::Idle => {
                let _: () = self.state = State::Handlers { site: None, running: None };
                Ok(())
            }
            _ => Err(self.illegal("begin return handlers")),
        }
    }

    /// Return handlers → idle.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn end_return_handlers(&mut self) -> Transition {
        match self.state {
            State::Handlers { site: None, .. } => {
                self.state = State::Idle;
                Ok(())
            }
            _ => Err(self.illegal("end return handlers")),
        }
    }

    /// Any state → reporting; returns the state the report is about.
    #[unsafe(link_section = ".kprobes.text")]
    pub fn report(&mut self) -> State {
        core::mem::replace(&mut self.state, State::Reporting)
    }

    /// The jprobe save area, to fill at a jprobe's hit (in place: it is
    /// large). Refused unless a site's handlers run and nothing is saved.
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn save_jprobe(&mut self) -> Result<&mut JprobeStack, IllegalTransition> {
        match (&self.state, self.jprobe.saved) {
            (State::Handlers { site: Some(_), .. }, false) => {
                self.jprobe.saved = true;
                Ok(&mut self.jprobe.stack)
            }
            _ => Err(self.illegal("save a jprobe")),
        }
    }

    /// What a jprobe saved, with the site it hit, emptying the save area
    /// (`None` if nothing is saved: this `jprobe_return` is not ours).
    #[unsafe(link_section = ".kprobes.text")]
    #[inline(always)]
    pub fn take_jprobe(&mut self) -> Option<(&JprobeStack, &'static Site)> {
        match self.state {
            State::Handlers { site: Some(site), .. } if self.jprobe.saved => {
                self.jprobe.saved = false;
                Some((&self.jprobe.stack, site))
            }
            _ => None,
        }
    }
}

/// One CPU's trap-path state: its control block and its count of live
/// [`TrapContext`]s. Aligned to a cache line so CPUs never share one.
#[repr(align(64))]
pub(crate) struct PerCpu {
    block: UnsafeCell<ControlBlock>,
    /// Live [`TrapContext`]s on this CPU: non-zero while its trap path (or
    /// an engine operation on its state) runs.
    trap_depth: AtomicUsize,
}

// SAFETY: each CPU touches only its own entry (indexed by the host's
// current CPU, read with interrupts off so the caller cannot move to
// another CPU meanwhile); mutable access to the block only through `with`,
// which needs a `TrapContext` (interrupts off) and whose borrows never
// overlap (see the module comment); the depth is atomic.
unsafe impl Sync for PerCpu {}

/// Where the assembly fast lane (`arch::imp::fastpath`) finds a CPU's
/// state. `State` is `repr(u8)`: each variant is laid out as a `repr(C)`
/// struct of the tag byte then its fields (RFC 2195), with the explicit
/// discriminants as tags.
pub(crate) mod layout {
    use super::{ControlBlock, PerCpu, State};
    use crate::arch::imp::StepState;
    use crate::probe::Kprobe;
    use crate::registry::Site;
    use core::mem::{align_of, offset_of, size_of};
    /// The state's tag byte inside a CPU's entry.
    pub const STATE: usize = offset_of!(PerCpu, block) + offset_of!(ControlBlock, state);
    /// The tag of `State::Idle`.
    pub const IDLE: u8 = 0;
    /// The tag of `State::Handlers`.
    pub const HANDLERS: u8 = 1;
    /// `State::Handlers::site`, from the tag.
    pub const HANDLERS_SITE: usize = size_of::<u8>().next_multiple_of(align_of::<Option<&Site>>());
    /// `State::Handlers::running`, from the tag.
    pub const HANDLERS_RUNNING: usize =
        (HANDLERS_SITE + size_of::<Option<&Site>>()).next_multiple_of(align_of::<Option<&Kprobe>>());
    const _: () = assert!(size_of::<Option<&Site>>() == 4 && size_of::<Option<&Kprobe>>() == 4);
    const _: () = assert!(size_of::<State>() >= HANDLERS_RUNNING + 4);
    /// The tag of `State::SingleStep`.
    pub const SINGLE_STEP: u8 = 3;
    /// `State::SingleStep::site`, from the tag: where `Handlers` keeps its
    /// site too, so the step keeps the site the hit set.
    pub const STEP_SITE: usize = size_of::<u8>().next_multiple_of(align_of::<&Site>());
    /// `State::SingleStep::step`, from the tag (a `StepState`, which on
    /// x86 is the saved TF and IF, one word).
    pub const STEP_FLAGS: usize = (STEP_SITE + size_of::<&Site>()).next_multiple_of(align_of::<StepState>());
    const _: () = assert!(STEP_SITE == HANDLERS_SITE && size_of::<StepState>() == 4);
    const _: () = assert!(size_of::<State>() >= STEP_FLAGS + 4);
    /// The tag byte of `state` (a `repr(u8)` enum starts with it).
    const fn tag(state: &State) -> u8 {
        // SAFETY: `State` is `repr(u8)`: its first byte is the tag.
        unsafe { *(state as *const State as *const u8) }
    }
    const _: () = assert!(tag(&State::Idle) == IDLE && IDLE == 0);
    const _: () = assert!(tag(&State::Handlers { site: None, running: None }) == HANDLERS && HANDLERS == IDLE | 1);
    // Every other state's tag is odd, so the lanes' `bts` finds it busy.
    const _: () = assert!(tag(&State::Reporting) % 2 == 1);
}

/// One entry per CPU, as Linux's per-CPU `kprobe_ctlblk`.
pub(crate) static CPUS: [PerCpu; crate::MAX_CPUS] = [const {
    PerCpu {
        block: UnsafeCell::new(ControlBlock {
            state: State::Idle,
            jprobe: JprobeSave { saved: false, stack: JprobeStack::EMPTY },
        }),
        trap_depth: AtomicUsize::new(0),
    }
}; crate::MAX_CPUS];

/// The address of each CPU's state tag byte (`CPUS[cpu]` at
/// [`layout::STATE`]), by CPU number: the lanes find their CPU's block with
/// one load from here, where indexing `CPUS` took a multiply and an add.
#[repr(transparent)]
pub(crate) struct StateBytes([*const u8; crate::MAX_CPUS]);

// SAFETY: a table of addresses, fixed at build time and never written;
// sharing it shares only the addresses (the bytes they name are reached
// under `PerCpu`'s own rules).
unsafe impl Sync for StateBytes {}

pub(crate) static STATE_BYTES: StateBytes = {
    let mut table = [core::ptr::null(); crate::MAX_CPUS];
    let mut cpu = 0;
    while cpu < crate::MAX_CPUS {
        table[cpu] = (&raw const CPUS[cpu]).cast::<u8>().wrapping_add(layout::STATE);
        cpu += 1;
    }
    StateBytes(table)
};

/// This CPU's trap-path state. Call with interrupts off (or the answer may
/// be a CPU the caller has already left).
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
fn this_cpu() -> &'static PerCpu {
    &CPUS[crate::host::current_cpu()]
}

/// Stops the run: the engine asked for a transition its state machine
/// does not allow (a bug in the engine, never in a user's probes).
#[cold]
#[inline(never)]
#[unsafe(link_section = ".kprobes.text")]
fn illegal(error: IllegalTransition) -> ! {
    panic!("kprobes: illegal transition \"{}\" while {}", error.transition, error.from)
}

/// Applies a transition of the control block; an illegal one is an engine
/// bug and ends the run with a report.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn transition(
    cx: &mut TrapContext,
    change: impl FnOnce(&mut ControlBlock) -> Result<(), IllegalTransition>,
) {
    if let Err(error) = with(cx, change) {
        illegal(error);
    }
}

/// Runs `f` on the control block. Never call a user handler inside `f`.
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub(crate) fn with<R>(context: &mut TrapContext, f: impl FnOnce(&mut ControlBlock) -> R) -> R {
    // SAFETY: the token proves interrupts are off on the trap path (so its
    // CPU is the caller's), and the `&mut` borrow of it is held for the
    // whole of `f`, so no second borrow can be made from this activation; a
    // nested trap cannot arise inside `f` (engine code is not probeable and
    // `f` calls no handler).
    f(unsafe { &mut *context.cpu.block.get() })
}

/// Whether probe handling of any kind is in progress (handlers, a step, a
/// report), from any context: a snapshot read with interrupts off.
#[unsafe(link_section = ".kprobes.text")]
pub fn in_probe_context() -> bool {
    crate::arch::imp::cpu::without_interrupts(|| {
        // SAFETY: interrupts are off, so no trap-path borrow can be live
        // while this is read (traps do not nest into this function, which
        // is engine code).
        !matches!(unsafe { &(*this_cpu().block.get()).state }, State::Idle)
    })
}
