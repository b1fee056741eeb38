//! A task's life: spawn into a free slot, run, exit with a value, be joined.
//!
//! Kernel threads are plain functions `fn(usize) -> usize`; the slot and its
//! stack are reused once the exit value has been collected by [`join`], so a
//! fixed table serves any number of short-lived threads.
use super::TaskId;
use super::scheduler::{TIME_SLICE_TICKS, finish_switch, idle_loop, schedule};
use super::stacks::task_stack_memory;
use super::table::{MAX_TASKS, State, Task, current_id, idle_task, with_tasks};
use crate::arch::cpu;
use crate::arch::x86::context::prepare_stack;
use core::fmt;

/// Why [`spawn`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpawnError {
    /// All [`MAX_TASKS`] slots are in use (exited tasks keep theirs until joined).
    TableFull,
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SpawnError::TableFull => write!(f, "task table full ({MAX_TASKS} tasks)"),
        }
    }
}

/// Starts a kernel thread running `entry(arg)`, named "task"; see [`spawn_named`].
pub fn spawn(entry: fn(usize) -> usize, arg: usize) -> Result<TaskId, SpawnError> {
    spawn_named("task", entry, arg)
}

/// Starts a kernel thread called `name` running `entry(arg)` with interrupts
/// enabled; returning from `entry` is [`exit`] with the returned value. The
/// new task is runnable at once and first runs when the scheduler of some
/// CPU picks it.
pub fn spawn_named(name: &'static str, entry: fn(usize) -> usize, arg: usize) -> Result<TaskId, SpawnError> {
    spawn_task(name, entry, arg, None)
}

/// Like [`spawn_named`], but the task only ever runs on CPU `cpu` (which
/// need not be online yet: the task waits until it is).
pub fn spawn_on(cpu: usize, name: &'static str, entry: fn(usize) -> usize, arg: usize) -> Result<TaskId, SpawnError> {
    assert!(cpu < crate::arch::x86::percpu::MAX_CPUS, "spawn_on: no CPU {cpu}");
    spawn_task(name, entry, arg, Some(cpu))
}

fn spawn_task(
    name: &'static str,
    entry: fn(usize) -> usize,
    arg: usize,
    pinned: Option<usize>,
) -> Result<TaskId, SpawnError> {
    let spawned = with_tasks(|tasks| {
        let id = (1..MAX_TASKS).find(|&id| tasks[id].state == State::Free).ok_or(SpawnError::TableFull)?;
        // SAFETY: the slot is free, so no task runs on (or will, until we mark
        // it runnable below) its stack.
        let stack = unsafe { task_stack_memory(id) };
        let saved_esp = prepare_stack(stack, task_start);
        super::table::save_name(id, name);
        tasks[id] = Task {
            state: State::Runnable,
            name,
            saved_esp,
            entry: Some(entry),
            arg,
            slice_left: TIME_SLICE_TICKS,
            on_cpu: None,
            pinned,
        };
        Ok(id)
    });
    if spawned.is_ok() {
        crate::arch::x86::smp::wake_idle_cpus();
    }
    spawned
}

/// Lays out CPU `cpu`'s idle task so that a switch to it runs the idle
/// loop (CPU 0's, at boot); an application processor instead starts on its
/// idle task's stack directly ([`run_idle`]).
pub(super) fn prepare_idle(cpu: usize) {
    let id = idle_task(cpu);
    // SAFETY: an idle task's slot is used by nothing before its CPU starts.
    let stack = unsafe { task_stack_memory(id) };
    let saved_esp = prepare_stack(stack, idle_start);
    with_tasks(|tasks| {
        tasks[id] = Task { state: State::Runnable, name: "idle", saved_esp, pinned: Some(cpu), ..Task::FREE };
    });
}

extern "C" fn idle_start() -> ! {
    finish_switch();
    idle_loop()
}

/// An application processor's last step of start-up, on its idle task's
/// stack with interrupts off: becomes that idle task and runs it forever.
pub fn run_idle(cpu: usize) -> ! {
    let id = idle_task(cpu);
    with_tasks(|tasks| {
        tasks[id] = Task { state: State::Runnable, name: "idle", on_cpu: Some(cpu), pinned: Some(cpu), ..Task::FREE };
    });
    crate::arch::x86::percpu::set_current_task(id);
    idle_loop()
}

/// Where every spawned task begins (switched to with interrupts off, see
/// `context::prepare_stack`): enables interrupts, runs the entry function,
/// and exits with its result.
extern "C" fn task_start() -> ! {
    finish_switch();
    let current = current_id();
    let (entry, arg) = with_tasks(|tasks| (tasks[current].entry, tasks[current].arg));
    let entry = entry.expect("task started without an entry function");
    cpu::enable_interrupts();
    exit(entry(arg))
}

/// Ends the calling task with `value`, which [`join`] returns; wakes the
/// joiner. The boot task (0) cannot exit. Task context only.
pub fn exit(value: usize) -> ! {
    let current = current_id();
    assert!(current != 0, "the boot task cannot exit");
    // Its stack is about to die: the probe engine drops its kretprobe instances.
    crate::kprobes::task_exited(current);
    cpu::disable_interrupts();
    with_tasks(|tasks| {
        tasks[current].state = State::Exited { value };
        tasks[current].entry = None;
    });
    // Never picked again: the slot is not runnable until `join` frees it and
    // `spawn` reuses it with a fresh stack. The task switched to wakes our
    // joiner once we are off this stack (`finish_switch`).
    schedule();
    unreachable!("exited task {current} was scheduled again")
}

/// Waits for task `id` to exit, frees its slot for reuse, and returns its
/// exit value. Each spawned task must be joined exactly once (or its slot
/// stays taken). Panics on joining oneself, the boot task, or a free slot.
/// Task context only.
pub fn join(id: TaskId) -> usize {
    let current = current_id();
    assert!((1..MAX_TASKS).contains(&id), "join: no task {id} to join");
    assert!(id != current, "join: task {id} cannot join itself");
    cpu::without_interrupts(|| {
        loop {
            let outcome = with_tasks(|tasks| match tasks[id].state {
                State::Free => Err(()),
                // Exited and off its CPU's stack: the slot can go.
                State::Exited { value } if tasks[id].on_cpu.is_none() => {
                    tasks[id] = Task::FREE;
                    Ok(Some(value))
                }
                // Still running (or still switching away after its exit):
                // the switch's `finish_switch` wakes us.
                _ => {
                    tasks[current].state = State::Joining { target: id };
                    Ok(None)
                }
            });
            match outcome {
                Err(()) => panic!("join: task {id} does not exist (never spawned or already joined)"),
                Ok(Some(value)) => return value,
                Ok(None) => schedule(),
            }
        }
    })
}
