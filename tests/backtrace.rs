//! Test kernel: frame-pointer backtraces resolve to the right function names.
//!
//! A backtrace is only as useful as its names: this walks the frame chain
//! from three nested, never-inlined functions (kernel/unwind.rs) and resolves
//! each return address through the symbol table (kernel/symbols.rs), so a
//! wrong frame, an off-by-one return address or a wrong size shows up here.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use core::hint::black_box;
use probe_kernel::symbols;
use probe_kernel::testing::name_of;
use probe_kernel::unwind;

probe_kernel::test_kernel_main!();

/// What `inner` saw of its callers.
#[derive(Default)]
struct Trace {
    frames: [usize; 16],
    len: usize,
    level0: Option<usize>,
    level1: Option<usize>,
}

#[inline(never)]
fn inner(trace: &mut Trace) -> u32 {
    unwind::walk(probe_kernel::arch::cpu::frame_pointer(), |frame| {
        if trace.len < trace.frames.len() {
            trace.frames[trace.len] = frame.address;
            trace.len += 1;
        }
    });
    trace.level0 = unwind::return_address(0);
    trace.level1 = unwind::return_address(1);
    black_box(1)
}

// Each caller uses the result after the call, so no call becomes a tail jump.
#[inline(never)]
fn middle(trace: &mut Trace) -> u32 {
    black_box(inner(black_box(trace))) + 1
}

#[inline(never)]
fn outer(trace: &mut Trace) -> u32 {
    black_box(middle(black_box(trace))) + 1
}

#[inline(never)]
#[test_case]
fn walk_names_the_callers() {
    let mut trace = Trace::default();
    assert_eq!(black_box(outer(black_box(&mut trace))), 3);
    assert!(trace.len >= 3, "only {} frames", trace.len);
    let names = [name_of(trace.frames[0]), name_of(trace.frames[1]), name_of(trace.frames[2])];
    assert_eq!(names, ["backtrace::middle", "backtrace::outer", "backtrace::walk_names_the_callers"]);
    // Return addresses point past a call, strictly inside the caller.
    for &address in &trace.frames[..3] {
        let symbol = symbols::lookup_address(address).unwrap();
        assert!(symbol.offset > 0 && symbol.offset < symbol.size, "{}", symbols::Describe(address));
    }
    // The walk goes on through the harness and the boot path down to
    // `_start` (whose EBP 0 ends the chain). Deeper calls may be a function's
    // last instruction (calls that never return), so their return address
    // can be the first byte after it: the call itself is at `address - 1`.
    assert!(trace.len < trace.frames.len(), "the walk did not end");
    let callers = trace.frames[3..trace.len].iter().map(|&address| name_of(address - 1));
    let mut seen_boot_entry = false;
    for (depth, name) in callers.enumerate() {
        assert_ne!(name, "?", "frame {} ({:#x}) has no symbol", depth + 3, trace.frames[depth + 3]);
        seen_boot_entry |= name == "kernel_boot_entry";
    }
    assert!(seen_boot_entry, "kernel_boot_entry is not on the chain");
    assert_eq!(name_of(trace.frames[trace.len - 1] - 1), "_start");
}

#[inline(never)]
#[test_case]
fn return_address_levels() {
    let mut trace = Trace::default();
    assert_eq!(black_box(outer(black_box(&mut trace))), 3);
    let level0 = trace.level0.expect("return_address(0)");
    let level1 = trace.level1.expect("return_address(1)");
    assert_eq!(name_of(level0), "backtrace::middle");
    assert_eq!(name_of(level1), "backtrace::outer");
    // The same addresses the walk saw.
    assert_eq!((level0, level1), (trace.frames[0], trace.frames[1]));
    let described = format!("{}", symbols::Describe(level0));
    assert!(described.starts_with("backtrace::middle+0x"), "{described}");
}

// ------------------------------------------- stack_trace_save and _regs

use probe_kernel::kprobes::{
    Kprobe, KprobeFlags, Kretprobe, KretprobeInstance, PreAction, PtRegs, register_kprobe, register_kretprobe,
    set_optimization, unregister_kprobe, unregister_kretprobe,
};

static SAVED: spin::Mutex<([usize; 16], usize)> = spin::Mutex::new(([0; 16], 0));

#[inline(never)]
fn saving_inner() -> u32 {
    let mut store = [0; 16];
    let count = unwind::stack_trace_save(&mut store);
    *SAVED.lock() = (store, count);
    black_box(5)
}

#[inline(never)]
fn saving_middle() -> u32 {
    black_box(saving_inner()) + 1
}

#[inline(never)]
fn saving_outer() -> u32 {
    black_box(saving_middle()) + 1
}

fn returned(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {}

static MIDDLE_RETURNS: Kretprobe = Kretprobe::new().symbol("backtrace::saving_middle").handler(returned);
static OUTER_RETURNS: Kretprobe = Kretprobe::new().symbol("backtrace::saving_outer").handler(returned);

#[inline(never)]
#[test_case]
fn stack_trace_save_sees_the_real_callers_through_kretprobes() {
    register_kretprobe(&MIDDLE_RETURNS).unwrap();
    register_kretprobe(&OUTER_RETURNS).unwrap();
    assert_eq!(black_box(saving_outer()), 7);
    unregister_kretprobe(&OUTER_RETURNS).unwrap();
    unregister_kretprobe(&MIDDLE_RETURNS).unwrap();
    let (store, count) = *SAVED.lock();
    assert!(count >= 3, "only {count} entries");
    let names = [name_of(store[0]), name_of(store[1]), name_of(store[2])];
    assert_eq!(
        names,
        [
            "backtrace::saving_middle",
            "backtrace::saving_outer",
            "backtrace::stack_trace_save_sees_the_real_callers_through_kretprobes"
        ]
    );
    let trampoline = probe_kernel::arch::x86::kprobes::trampoline::address();
    assert!(!store[..count].contains(&trampoline), "no trampoline in the trace");
    // A short store is filled to its end and no further.
    let mut short = [0; 2];
    assert_eq!(unwind::stack_trace_save(&mut short), 2);
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn traced_leaf(x: u32) -> u32 {
    black_box(x) * 2
}

#[inline(never)]
fn traced_caller() -> u32 {
    black_box(traced_leaf(black_box(4))) + 1
}

fn save_from_regs(_probe: &Kprobe, regs: &mut PtRegs) -> PreAction {
    let mut store = [0; 16];
    let count = unwind::stack_trace_save_regs(regs, &mut store);
    *SAVED.lock() = (store, count);
    PreAction::Continue
}

static LEAF_PROBE: Kprobe = Kprobe::new().symbol("traced_leaf", 0).pre_handler(save_from_regs);

#[inline(never)]
#[test_case]
fn stack_trace_save_regs_starts_at_the_probed_instruction() {
    register_kprobe(&LEAF_PROBE).unwrap();
    assert_eq!(black_box(traced_caller()), 9);
    unregister_kprobe(&LEAF_PROBE).unwrap();
    let (store, count) = *SAVED.lock();
    assert!(count >= 3, "only {count} entries");
    assert_eq!(store[0], traced_leaf as *const () as usize, "the interrupted EIP comes first");
    let names = [name_of(store[1]), name_of(store[2])];
    assert_eq!(
        names,
        ["backtrace::traced_caller", "backtrace::stack_trace_save_regs_starts_at_the_probed_instruction"]
    );
}

fn save_from_handler(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
    let mut store = [0; 16];
    let count = unwind::stack_trace_save(&mut store);
    *SAVED.lock() = (store, count);
    PreAction::Continue
}

static LEAF_WALK_PROBE: Kprobe = Kprobe::new().symbol("traced_leaf", 0).pre_handler(save_from_handler);

/// From inside a handler, the walk passes through the `#BP` entry's trap
/// frame and goes on with the probed function's callers.
#[inline(never)]
#[test_case]
fn stack_trace_save_in_a_handler_sees_through_the_breakpoint_trap() {
    // Through the jump-optimized detour's lane, then through the `#BP` lane.
    for optimized in [true, false] {
        set_optimization(optimized).unwrap();
        register_kprobe(&LEAF_WALK_PROBE).unwrap();
        assert_eq!(LEAF_WALK_PROBE.flags().contains(KprobeFlags::OPTIMIZED), optimized);
        assert_eq!(black_box(traced_caller()), 9);
        unregister_kprobe(&LEAF_WALK_PROBE).unwrap();
        set_optimization(true).unwrap();
        let (store, count) = *SAVED.lock();
        let names: alloc::vec::Vec<&str> = store[..count].iter().map(|&a| name_of(a)).collect();
        assert!(names.contains(&"traced_leaf"), "optimized {optimized}: the trap frame's EIP is missing: {names:?}");
        let caller = names.iter().position(|&n| n == "backtrace::traced_caller");
        assert!(caller.is_some(), "optimized {optimized}: the probed function's caller is missing: {names:?}");
        assert_eq!(
            names.get(caller.unwrap() + 1).copied(),
            Some("backtrace::stack_trace_save_in_a_handler_sees_through_the_breakpoint_trap")
        );
    }
}

static STEP_SAVED: spin::Mutex<([usize; 16], usize)> = spin::Mutex::new(([0; 16], 0));

fn save_after_step(_probe: &Kprobe, _regs: &mut PtRegs) {
    let mut store = [0; 16];
    let count = unwind::stack_trace_save(&mut store);
    *STEP_SAVED.lock() = (store, count);
}

/// With a post handler the probe single-steps: the pre handler runs from
/// the `#BP` half and the post handler from the `#DB` half (both through
/// the single-step lanes), and a walk from either passes through its trap
/// frame to the test that made the call.
static LEAF_STEP_PROBE: Kprobe =
    Kprobe::new().symbol("traced_leaf", 0).pre_handler(save_from_handler).post_handler(save_after_step);

#[inline(never)]
#[test_case]
fn stack_trace_save_in_single_step_handlers_sees_through_both_traps() {
    register_kprobe(&LEAF_STEP_PROBE).unwrap();
    assert_eq!(black_box(traced_caller()), 9);
    unregister_kprobe(&LEAF_STEP_PROBE).unwrap();
    let test = "backtrace::stack_trace_save_in_single_step_handlers_sees_through_both_traps";
    for (half, (store, count)) in [("pre", *SAVED.lock()), ("post", *STEP_SAVED.lock())] {
        let names: alloc::vec::Vec<&str> = store[..count].iter().map(|&a| name_of(a)).collect();
        assert!(names.contains(&"traced_leaf"), "{half}: the probed function is missing: {names:?}");
        assert!(names.contains(&test), "{half}: the test is missing: {names:?}");
    }
}
