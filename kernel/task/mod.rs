//! Kernel threads. STUB: replaced by the scheduler.
use crate::arch::TrapFrame;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

/// A task's index in the static task table.
pub type TaskId = usize;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// Sets up the task table. Called once by boot.
pub fn init() {}

/// Guard pages below every task stack (unmapped by paging).
pub fn guard_pages() -> impl Iterator<Item = usize> {
    core::iter::empty()
}

/// Timer IRQ: counts a tick.
pub fn timer_tick(_frame: &mut TrapFrame) {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// Timer ticks since boot.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// The running task.
pub fn current_id() -> TaskId {
    0
}

/// Lets other tasks run.
pub fn yield_now() {}

/// The stack holding `address`, if it is on a kernel stack.
pub fn stack_of_address(address: usize) -> Option<Range<usize>> {
    unsafe extern "C" {
        static boot_stack_bottom: u8;
        static boot_stack_top: u8;
    }
    let boot = (&raw const boot_stack_bottom as usize)..(&raw const boot_stack_top as usize);
    boot.contains(&address).then_some(boot)
}
