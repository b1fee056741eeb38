//! Kernel threads: a static task table and a preemptive round-robin scheduler.
//!
//! The probe engine has to be exercised by code that is interrupted at
//! arbitrary instructions, and has to know when no preempted thread is still
//! inside an instruction slot; that needs real threads that the timer can
//! switch between. Everything is static (no heap): [`MAX_TASKS`] slots, one of
//! them the boot task that runs the kernel's main on the boot stack.
//!
//! Routing only; each concern lives in its own file:
//! - `stacks`: the stack memory, its guard pages and "which stack is this";
//! - `table`: the task table, its states and introspection;
//! - `scheduler`: the tick, time slices, the context switch, sleeping;
//! - `lifecycle`: spawn, exit and join.
mod lifecycle;
mod scheduler;
mod stacks;
mod table;

pub use lifecycle::{SpawnError, exit, join, spawn, spawn_named};
pub use scheduler::{
    TIME_SLICE_TICKS, interrupt_enter, interrupt_leave, preempted_in, set_tick_hook, sleep, ticks, timer_tick,
    yield_now,
};
pub use stacks::{GUARD_SIZE, STACK_SIZE, guard_pages, stack_of_address, task_stack};
pub use table::{MAX_TASKS, TaskInfo, TaskState, current_id, for_each_task, state, task_name};

/// A task's index in the static task table (0 is the boot task).
pub type TaskId = usize;

/// Sets up the task table: the code running now becomes task 0, "boot".
/// Called once by boot, before interrupts are enabled.
pub fn init() {
    table::init_boot_task();
}
