//! A spawned task's stack overflow becomes a reported double fault.
//!
//! A task that recurses without bound runs into the guard page below its
//! stack; that must end in the double-fault report, not a triple fault or a
//! corrupted neighbouring stack. Success *is* the fault, so this kernel has
//! no test harness: a fatal hook checks the double-fault report (EIP inside
//! the recursing function, ESP at the bottom of the task's stack, right above
//! its guard page) and ends the run with the verdict.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::ops::Range;
use core::sync::atomic::{AtomicUsize, Ordering};
use probe_kernel::arch::cpu;
use probe_kernel::fatal::{self, Fatal};
use probe_kernel::task;
use probe_kernel::testing;

probe_kernel::entry_point!(main);

const NAME: &str = "stack_overflow::double_fault_reported";

/// The overflowing task's id, for the hook.
static TASK: AtomicUsize = AtomicUsize::new(0);
/// The deepest recursion level reached.
static DEPTH: AtomicUsize = AtomicUsize::new(0);
/// Recursion stops at this depth, which is never reached (the stack is far
/// too small) — but it gives `recurse` a reachable return, so the compiler
/// cannot treat the recursion as endless (`noreturn`) and turn the call into
/// a jump.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Unbounded recursion: the recursive call is not in tail position (its
/// result is used after it returns), so every level needs a new frame. Its
/// frame is built by pushes only (20 bytes: argument, return address, EBP,
/// ESI, one slot), so the first write into the guard page is a push with ESP
/// exactly at the stack's bottom.
#[inline(never)]
fn recurse(depth: usize) -> usize {
    DEPTH.store(depth, Ordering::Relaxed);
    if depth == LIMIT.load(Ordering::Relaxed) {
        return 0;
    }
    black_box(recurse(depth + 1)) ^ depth
}

fn overflow(_: usize) -> usize {
    // Deterministic fault site: no timer interrupt may land while the stack
    // is nearly exhausted (its frame would be what overflows, in trap code).
    cpu::disable_interrupts();
    recurse(0)
}

/// `recurse`'s code: exact with symbols; otherwise its entry plus a bound
/// well above its size (a few dozen bytes).
fn recurse_range() -> Range<usize> {
    let start = recurse as *const () as usize;
    match probe_kernel::symbols::lookup_address(start) {
        Some(symbol) => symbol.address..symbol.address + symbol.size,
        None => start..start + 64,
    }
}

fn fail(reason: core::fmt::Arguments) -> ! {
    testing::single_verdict(NAME, false, reason)
}

fn hook(event: &Fatal) -> ! {
    let Fatal::DoubleFault { state, .. } = event else {
        fail(format_args!("expected a double fault, got {event:?}"));
    };
    let (eip, esp) = (state.eip as usize, state.esp as usize);
    let code = recurse_range();
    if !code.contains(&eip) {
        fail(format_args!("EIP {eip:#x} is not in recurse {code:#x?}"));
    }
    let stack = task::task_stack(TASK.load(Ordering::SeqCst));
    let guard = stack.start - task::GUARD_SIZE..stack.start;
    // The faulting push/call had ESP at (or a frame above) the stack's
    // bottom; the write below it hit the guard page.
    if !(stack.start..stack.start + 64).contains(&esp) {
        fail(format_args!("ESP {esp:#x} is not just above the guard page {guard:#x?}"));
    }
    if task::stack_of_address(esp) != Some(stack.clone()) {
        fail(format_args!("stack_of_address({esp:#x}) is not the task's stack {stack:#x?}"));
    }
    let depth = DEPTH.load(Ordering::Relaxed);
    if depth < task::STACK_SIZE / 64 {
        fail(format_args!("only {depth} levels deep: the stack cannot be exhausted"));
    }
    testing::single_verdict(
        NAME,
        true,
        format_args!("double fault at depth {depth}: eip={eip:#x} in recurse, esp={esp:#x}, guard page {guard:#x?}"),
    )
}

fn main(_boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    fatal::set_hook(Some(hook));
    // On the boot CPU, so it runs only once we block in `join` (after the store).
    let id = task::spawn_on(0, "overflow", overflow, 0).expect("spawn");
    TASK.store(id, Ordering::SeqCst);
    let value = task::join(id);
    fail(format_args!("the recursion returned {value} instead of overflowing"))
}
