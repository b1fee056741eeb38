//! Choosing the target functions: name patterns, size budget, and an entry-probe census.
//!
//! Why: the targets are real kernel functions the workload calls, picked
//! deterministically from the symbol table, and their calls must be known
//! exactly to check the hits.
use super::*;

/// Name fragments that pick candidate functions: formatting, allocation and
/// collections, strings, sorting, the decoder, the kernel's symbol table,
/// line editor, command line and task table, and compiler builtins. None of
/// these is on the trap or timer path, so only the workload calls them while
/// probes are armed. Which candidates become targets is decided by the
/// census: the ones the workload calls.
pub(crate) const PATTERNS: &[&str] = &[
    "core::fmt::",
    "alloc::raw_vec::",
    "alloc::vec::",
    "alloc::string::",
    "alloc::collections::",
    "alloc::fmt::",
    "alloc::str::",
    "<str>::",
    "core::str::",
    "core::slice::sort::",
    "core::num::",
    "iced_x86::decoder::",
    "probe_kernel::symbols::",
    "<probe_kernel::symbols::",
    "<probe_kernel::console::LineEditor>::",
    "probe_kernel::cmdline::parse",
    "probe_kernel::task::table::task_name",
    "probe_kernel::task::table::state",
    "probe_kernel::task::table::for_each_task",
    "probe_kernel::task::table::public_state",
    "probe_kernel::task::stacks::",
    "__udivdi3",
    "__umoddi3",
    "__divdi3",
    "__moddi3",
    "__udivmoddi4",
    "compiler_builtins::int::",
];

/// Name fragments never targeted: the kernel's Debug impls for engine
/// types, and functions of this test's own harness code.
pub(crate) const EXCLUDE: &[&str] = &["kprobes::", "probe_everywhere::", "testing::"];

/// Functions at most this big become targets (bigger ones make every
/// registration decode far, and the run slow).
pub(crate) const MAX_TARGET_SIZE: usize = 0x800;
/// Instruction boundaries probed in all, at most (keeps the kernel well under a minute).
pub(crate) const BOUNDARY_BUDGET: usize = 6000;
/// The least number of target functions the campaign accepts.
pub(crate) const MIN_TARGETS: usize = 50;

/// The first pattern that picked `name`.
pub(crate) fn pattern_of(name: &str) -> &'static str {
    PATTERNS.iter().find(|p| name.contains(**p)).copied().unwrap_or("")
}

pub(crate) fn is_candidate(name: &str) -> bool {
    PATTERNS.iter().any(|p| name.contains(p)) && !EXCLUDE.iter().any(|e| name.contains(e))
}

/// A tally of refusal reasons.
pub(crate) fn tally(refusals: &mut Vec<(String, usize)>, reason: String) {
    match refusals.iter_mut().find(|(r, _)| *r == reason) {
        Some((_, n)) => *n += 1,
        None => refusals.push((reason, 1)),
    }
}

pub(crate) struct Target {
    pub(crate) function: Symbol,
    pub(crate) calls: usize,
    /// The function's bytes before any probe (to check they come back).
    pub(crate) bytes: Vec<u8>,
}

/// Entry hits of every candidate, from batches of entry probes (pre only).
pub(crate) fn census(candidates: &[Symbol], baseline: u64) -> Vec<usize> {
    census_of(candidates, baseline, workload)
}

/// [`census`] with another workload.
pub(crate) fn census_of(candidates: &[Symbol], baseline: u64, workload: fn() -> u64) -> Vec<usize> {
    let probes: Vec<&'static Counted> = candidates.iter().map(|f| Counted::leak(f.address, false)).collect();
    for chunk in probes.chunks(MAX_SITES) {
        let run = probed_run_of(chunk, workload);
        assert_eq!(run.hash, baseline, "entry probes changed the workload's result");
        assert_eq!(run.missed, 0, "entry probes missed hits");
    }
    probes.iter().map(|c| c.pre()).collect()
}

pub(crate) fn reset_direct() {
    for counter in &DIRECT_CALLS {
        counter.store(0, Ordering::Relaxed);
    }
}
