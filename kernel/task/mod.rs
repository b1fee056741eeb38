//! Kernel threads: a static task table and a preemptive round-robin scheduler.
//!
//! The probe engine has to be exercised by code that is interrupted at
//! arbitrary instructions, and has to know when no preempted thread is still
//! inside an instruction slot; that needs real threads that the timer can
//! switch between. Everything is static (no heap): [`MAX_TASKS`] slots, one of
//! them the boot task that runs the kernel's main on the boot stack, plus an
//! idle task per CPU. Tasks run on every CPU and migrate between them.
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

pub use lifecycle::{SpawnError, exit, join, run_idle, spawn, spawn_named, spawn_on};
pub use scheduler::{
    TIME_SLICE_TICKS, interrupt_enter, interrupt_leave, preempted_in, reschedule_idle, set_affinity, set_affinity_of,
    set_tick_hook, sleep, ticks, timer_tick, yield_now,
};
pub use stacks::{GUARD_SIZE, STACK_SIZE, guard_pages, stack_of_address, task_stack};
pub use table::{MAX_TASKS, TaskInfo, TaskState, current_id, for_each_task, saved_name, state, task_name};

/// Slots of the task table, idle tasks included: every task id is below it.
pub const TASK_SLOTS: usize = table::TABLE_SIZE;

/// A task's index in the static task table (0 is the boot task).
pub type TaskId = usize;

/// Sets up the task table: the code running now becomes task 0, "boot",
/// on CPU 0, and CPU 0 gets its idle task. Called once by boot, before
/// interrupts are enabled.
pub fn init() {
    table::init_boot_task();
    lifecycle::prepare_idle(0);
}

/// The top of CPU `cpu`'s idle-task stack, where an application processor
/// starts (see `arch::x86::smp`).
pub fn idle_stack_top(cpu: usize) -> usize {
    stacks::task_stack(table::idle_task(cpu)).end
}

/// The idle task of CPU `cpu` (its per-CPU block names it as current at start).
pub fn idle_task_id(cpu: usize) -> TaskId {
    table::idle_task(cpu)
}
