//! probe-engine: an embeddable kprobes engine for i386 — breakpoint probes,
//! multiprobes, jprobes and function-return probes (kretprobes).
//!
//! Linux's semantics (`Documentation/trace/kprobes.rst`), in Rust types, in
//! a `no_std` crate that knows nothing of the kernel embedding it:
//!
//! - [`Kprobe`]: a breakpoint on one instruction with pre-, post- and
//!   fault-handlers. Several probes may share an address.
//! - [`Jprobe`]: a handler with the probed function's signature.
//! - [`Kretprobe`]: a handler when a function returns, with instances from
//!   a pool sized by `maxactive`, misses counted in `nmissed`, and
//!   unregistration safe while calls are in flight.
//! - Jump optimization ([`set_optimization`], [`can_optimize`]): where it
//!   is safe, a probe's breakpoint becomes a `jmp` to a detour, so a hit
//!   takes no exception (Linux's optprobes); `KprobeFlags::OPTIMIZED` says
//!   which probes are.
//! - [`text_poke_bp`]: one instruction replaced by another of the same
//!   length while any CPU may be executing it (int3-guarded, as Linux's).
//!
//! # Embedding
//!
//! The engine reaches its host through two interfaces:
//! - **the architecture** ([`arch`]): decoding, classifying and relocating
//!   the probed instruction, arming and disarming, single-step and boost
//!   set-up and fix-up, the kretprobe return slot and trampoline, jprobe
//!   save and restore, and the register accessors of [`PtRegs`]; i386 is the
//!   one implementation;
//! - **the host kernel** ([`Host`], bound with [`host!`]): text patching,
//!   slot memory, the current task and CPU, the online CPUs and a sync of
//!   all of them (`Host::sync_cpus`), whether a task or CPU may resume
//!   inside an address range, stack bounds, symbols, a timestamp, yielding.
//!
//! A host then:
//! - wires its traps to the engine, as Linux's `do_int3` does: `#BP` to
//!   [`trap::int3_handler`], `#DB` to [`trap::debug_handler`] (with DR6),
//!   any other exception to [`trap::fault_handler`], each with a
//!   [`trap::TrapContext`] the entry creates; optionally, its `#BP` entry
//!   first calls the assembly fast lane [`trap::int3_fast`] with the frame
//!   built, which takes the common hit itself (see its contract) and
//!   returns for everything else, and its `#DB` entry [`trap::debug_fast`]
//!   likewise, before it reads DR6 (the second half of the single-steps
//!   `int3_fast` begins);
//! - keeps the engine's code and its own trap entry in one section
//!   (`.kprobes.text`, [`Host::engine_text`]);
//! - defines `probe_engine_trap_return` (see [`Host`]);
//! - has a global allocator (for registration-time work only);
//! - calls [`init`] once at boot and [`task_exited`] when a task exits.
//!
//! # Design
//!
//! - **Static configuration.** Every table the trap path touches (probe
//!   sites, instruction slots, kretprobe instances, per-task lists) has a
//!   size fixed at build time. Nothing on a trap path allocates, decodes or
//!   takes a lock that interrupted code may hold, and the engine checks it:
//!   the control block and instance lists need a [`trap::TrapContext`], the
//!   trap path is blacklisted from the image itself
//!   ([`blacklisted_functions`]), and a handler that allocates is stopped
//!   by the host's allocator when it checks [`trap_path_active`] and
//!   [`in_probe_context`].
//! - **Decide at registration.** Instructions are decoded and classified once
//!   (`probe_engine_core`), when a probe is registered; the trap path only
//!   follows the decision.
//! - **Typed state.** The trap path's state is an enum whose variants carry
//!   their data, changed only by transitions that refuse illegal moves.
//! - **SMP without locks on the trap path.** Trap-path state is per CPU,
//!   shared tables are read lock-free (instance pools are bitmaps of free
//!   instances, one atomic bit operation each way), and writers wait the
//!   trap path out instead of excluding it: unpublish, sync every CPU, then
//!   reuse (see the `quiesce` module).
//!
//! The crate root is the user API: [`Kprobe`], [`Kretprobe`], [`Jprobe`]
//! and their `register_*`, `unregister_*`, `enable_*`, `disable_*`
//! functions, [`KprobeError`]. What a host wires into its traps is in
//! [`trap`]; what it implements is [`Host`].
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

extern crate alloc;

pub mod arch;
mod blacklist;
mod control;
mod error;
mod handler;
mod host;
mod instances;
mod jprobe;
pub mod kretprobe;
pub mod optimize;
mod patch;
mod probe;
mod quiesce;
mod registry;
pub mod slots;

/// The trap-path entry points, for the host's trap handlers and fatal
/// reports (probe users need none of them): the handlers of `#BP`, `#DB`
/// and the other exceptions, the token they take, and the start of a fatal
/// report.
pub mod trap {
    pub use crate::arch::imp::fastpath::{debug_fast, int3_fast, lane_handler_frame};
    pub use crate::control::TrapContext;
    pub use crate::handler::{
        FaultOutcome, FaultPlace, ProbeFault, ReportContext, begin_report, debug_handler, fault_handler, int3_handler,
    };
}

pub use arch::imp::lane::{inlined_queries, inlined_timestamps};
pub use arch::imp::{CallingConvention, FRAME_SIZE, PtRegs, TrapOutcome, regs_get_kernel_argument};
pub use blacklist::functions as blacklisted_functions;
pub use control::{in_probe_context, trap_path_active};
pub use error::{KprobeError, TextPokeError};
pub use host::{Host, PatchError, PerCpuGs, Symbol};
pub use instances::{KretprobeInstance, arena_used as kretprobe_arena_used};
pub use jprobe::{Jprobe, jprobe_return, register_jprobe, unregister_jprobe};
pub use kretprobe::{
    DEFAULT_MAXACTIVE, EntryAction, EntryHandler, Kretprobe, MAX_DATA_SIZE, ReturnHandler, default_maxactive,
    disable_kretprobe, enable_kretprobe, register_kretprobe, register_kretprobes, regs_return_value,
    unregister_kretprobe, unregister_kretprobes,
};
pub use optimize::{OptimizeRefusal, can_optimize, optimization_enabled, set_optimization};
pub use patch::{TextPokeStage, text_poke_bp, text_poke_bp_guard_hits, text_poke_bp_observed};
pub use probe::{FaultAction, FaultHandler, Kprobe, KprobeFlags, PostHandler, PreAction, PreHandler};
pub use registry::{
    MAX_SITES, ProbeType, can_probe, disable_kprobe, enable_kprobe, for_each_probe, kprobes_armed, original_bytes,
    register_kprobe, register_kprobes, set_kprobes_armed, site_count, site_index_occupancy, static_memory_bytes,
    unregister_kprobe, unregister_kprobes,
};

/// Prepares the engine at boot: builds iced-x86's decoder tables and the
/// trap-path blacklist now, on the heap, so no registration is the first to
/// pay for them (and the heap in use stays flat from boot on). Call it
/// before starting other CPUs: on a `per_cpu_gs` host (see
/// [`host!`](crate::host)) it then also makes the fast lanes' queries of
/// the CPU and task single GS loads ([`inlined_queries`]), and on a host
/// whose timestamp is the time-stamp counter (`Host::TIMESTAMP_IS_RDTSC`)
/// their timestamp calls `rdtsc` ([`inlined_timestamps`]).
pub fn init() {
    probe_engine_core::decode::warm_up();
    slots::check_memory();
    blacklist::init();
    check_lane_queries();
    arch::imp::lane::inline_queries();
    arch::imp::lane::inline_timestamps();
}

/// The fast lanes' way of asking for the current CPU and task (the
/// `host!` macro's C-ABI symbols, single GS loads for a `per_cpu_gs`
/// host) must answer what the host's methods do: a wrong offset would
/// have the lanes use another CPU's control block.
fn check_lane_queries() {
    arch::imp::cpu::without_interrupts(|| {
        // SAFETY: `host!` defines both symbols, C-ABI leaves with no
        // arguments and no contract.
        let (cpu, task) =
            unsafe { (host::__probe_engine_lane_current_cpu(), host::__probe_engine_lane_current_task()) };
        assert_eq!(cpu, host::current_cpu(), "host!: the lanes' current CPU is not Host::current_cpu()");
        assert_eq!(task, host::current_task(), "host!: the lanes' current task is not Host::current_task()");
    });
}

/// Task ids the host may hand out (the per-task kretprobe lists).
pub const MAX_TASKS: usize = 64;

/// CPUs the engine keeps trap-path state for (one control block each;
/// [`Host::current_cpu`] must stay below it).
pub const MAX_CPUS: usize = 8;

/// Called by the host's scheduler when task `id` exits (reclaims its kretprobe
/// instances). Engine bookkeeping: never probeable.
#[unsafe(link_section = ".kprobes.text")]
pub fn task_exited(id: usize) {
    kretprobe::task_exited(id);
}
