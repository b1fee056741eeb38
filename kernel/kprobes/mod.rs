//! The kprobes engine: breakpoint probes, multiprobes, jprobes, kretprobes.
//!
//! Linux's semantics (see `Documentation/trace/kprobes.rst`), in Rust types.
//! This module and its files are architecture-neutral; everything that knows
//! opcodes or asm is behind `arch::x86::kprobes` (prepare, arm, disarm,
//! single-step set-up and fix-up, the return trampoline).
//!
//! - [`Kprobe`]: a breakpoint on one instruction with pre-, post- and
//!   fault-handlers. Several probes may share an address.
//! - [`Jprobe`]: a handler with the probed function's signature.
//! - [`Kretprobe`]: a handler when a function returns.
//!
//! Probes are `static`s (they must outlive their registration); every
//! registration checks the address and decodes the instruction once, so the
//! trap path only looks things up. Registration functions may not be called
//! from probe handlers ([`KprobeError::InProbeHandler`]).
mod blacklist;
mod control;
mod error;
mod handler;
mod instances;
mod jprobe;
pub mod kretprobe;
mod probe;
mod registry;

pub use blacklist::functions as blacklisted_functions;
pub use control::{TrapContext, in_probe_context, trap_path_active};
pub use error::KprobeError;
pub use handler::{
    FaultOutcome, FaultPlace, ProbeFault, ReportContext, begin_report, debug_handler, fault_handler, int3_handler,
};
pub use instances::{KretprobeInstance, arena_used as kretprobe_arena_used};
pub use jprobe::{Jprobe, jprobe_return, register_jprobe, unregister_jprobe};
pub use kretprobe::{
    DEFAULT_MAXACTIVE, EntryAction, EntryHandler, Kretprobe, MAX_DATA_SIZE, ReturnHandler, disable_kretprobe,
    enable_kretprobe, register_kretprobe, register_kretprobes, regs_return_value, unregister_kretprobe,
    unregister_kretprobes,
};
pub use probe::{
    CallingConvention, FaultAction, FaultHandler, Kprobe, KprobeFlags, PostHandler, PreAction, PreHandler, PtRegs,
    regs_get_kernel_argument,
};
pub use registry::{
    MAX_SITES, can_probe, disable_kprobe, enable_kprobe, original_bytes, register_kprobe, register_kprobes, site_count,
    site_index_occupancy, unregister_kprobe, unregister_kprobes,
};

/// Prepares the engine at boot: builds iced-x86's decoder tables and the
/// trap-path blacklist now, on the heap, so no registration is the first to
/// pay for them (and the heap in use stays flat from boot on).
pub fn init() {
    crate::arch::x86::kprobes::decode::warm_up();
    jprobe::check_layout();
    blacklist::init();
}

/// Called by the scheduler when task `id` exits (reclaims its kretprobe
/// instances). Engine bookkeeping: never probeable.
#[unsafe(link_section = ".kprobes.text")]
pub fn task_exited(id: usize) {
    kretprobe::task_exited(id);
}
