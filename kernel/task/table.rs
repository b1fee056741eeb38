//! The static task table: one slot per task, its state, and who runs where.
//!
//! Every CPU schedules from this one table, under one interrupt-safe spin
//! lock ([`with_tasks`]): interrupts stay off on the CPU holding it, so its
//! own timer can never find it held, and other CPUs wait their turn. The
//! running task of each CPU is kept in that CPU's per-CPU block
//! (`arch::x86::percpu`), so trap handlers read it with one GS-relative load
//! and never touch the table.
//!
//! Besides the [`MAX_TASKS`] slots that `spawn` hands out (slot 0 is the boot
//! task), the table has one *idle task* per CPU, at `MAX_TASKS + cpu`: what
//! a CPU runs when no task is runnable for it. Idle tasks are never listed.
use super::TaskId;
use crate::arch::x86::percpu::{self, MAX_CPUS};
use crate::sync::SpinLock;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Slots `spawn` can fill, including task 0 (the boot task).
pub const MAX_TASKS: usize = 16;
/// Every slot: the spawnable ones, then one idle task per CPU.
pub(super) const TABLE_SIZE: usize = MAX_TASKS + MAX_CPUS;

/// The idle task of CPU `cpu`.
pub(super) const fn idle_task(cpu: usize) -> TaskId {
    MAX_TASKS + cpu
}

/// Whether `id` is some CPU's idle task.
pub(super) const fn is_idle(id: TaskId) -> bool {
    id >= MAX_TASKS
}

/// What a task slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum State {
    /// Unused; `spawn` may take it.
    Free,
    /// Running or ready to run.
    Runnable,
    /// Blocked until the tick counter reaches `until`.
    Sleeping { until: u64 },
    /// Blocked until task `target` exits.
    Joining { target: TaskId },
    /// Finished with `value`; the slot is freed by `join`.
    Exited { value: usize },
}

/// One task slot.
pub(super) struct Task {
    /// Free, runnable, blocked or exited.
    pub state: State,
    /// The name given at spawn, for listings.
    pub name: &'static str,
    /// ESP saved by `switch_context` while the task is switched out (see the
    /// layout in `scheduler`); meaningless while it runs.
    pub saved_esp: usize,
    /// What the start routine calls, and with what.
    pub entry: Option<fn(usize) -> usize>,
    /// The argument passed to `entry`.
    pub arg: usize,
    /// Ticks left in the current time slice.
    pub slice_left: u32,
    /// The CPU running on this task's stack: set when a CPU picks it,
    /// cleared only once that CPU has switched away completely (its ESP
    /// saved). No other CPU may pick the task, nor `join` free its stack,
    /// while it is set.
    pub on_cpu: Option<usize>,
    /// The only CPU this task may run on, if it was spawned pinned.
    pub pinned: Option<usize>,
}

impl Task {
    /// An unused slot.
    pub const FREE: Task = Task {
        state: State::Free,
        name: "",
        saved_esp: 0,
        entry: None,
        arg: 0,
        slice_left: 0,
        on_cpu: None,
        pinned: None,
    };
}

static TABLE: SpinLock<[Task; TABLE_SIZE]> = SpinLock::new([const { Task::FREE }; TABLE_SIZE]);

/// Where each task was interrupted (its EIP) while an interrupt handler
/// runs for it or it is switched out from one, else 0. Written only by the
/// CPU running the task, read by anyone (`preempted_in`): atomics, no lock.
pub(super) static PREEMPTED_EIP: [AtomicUsize; TABLE_SIZE] = [const { AtomicUsize::new(0) }; TABLE_SIZE];

/// Runs `f` on the task table, holding its lock (interrupts off).
///
/// Panics on re-entry from the same CPU: `f` must not call back into the
/// task API, and the task table must not be used from a trap taken while
/// it is held. Always inlined, so it lands in the (unprobeable) section of
/// scheduler callers that live in `.kprobes.text`.
#[inline(always)]
pub(super) fn with_tasks<R>(f: impl FnOnce(&mut [Task; TABLE_SIZE]) -> R) -> R {
    let mut tasks = TABLE.lock_or("task table re-entered (task API called from a trap inside the scheduler?)");
    f(&mut tasks)
}

/// Where the context switch saves `id`'s ESP, as a raw pointer (no reference
/// to the table may be held across a switch).
pub(super) fn saved_esp_slot(id: TaskId) -> *mut usize {
    assert!(id < TABLE_SIZE);
    // SAFETY: in bounds (asserted); only a raw place projection, no
    // reference. The task being switched out is reserved by its `on_cpu`,
    // so nobody else reads or writes its `saved_esp` meanwhile.
    unsafe { &raw mut (*TABLE.as_ptr())[id].saved_esp }
}

/// The id of the task running now on this CPU; readable from any context
/// (one GS-relative load).
#[inline(always)]
pub fn current_id() -> TaskId {
    percpu::current_task()
}

/// Makes `id` the running task; called by the scheduler just before the switch.
pub(super) fn set_current(id: TaskId) {
    percpu::set_current_task(id);
}

/// Each task slot's last name (Linux's `saved_cmdlines`): set when a task
/// is made, kept after it exits (until the slot is reused), and readable
/// from trap context without the table's lock, for the trace's task
/// column and `$comm`. A name's address and length are packed into one
/// 64-bit atomic so a reader never sees half of an old name and half of a
/// new one.
static SAVED_NAMES: [AtomicU64; TABLE_SIZE] = [const { AtomicU64::new(0) }; TABLE_SIZE];

/// Records `name` as task `id`'s (its slot is being filled).
pub(super) fn save_name(id: TaskId, name: &'static str) {
    let packed = (name.len() as u64) << 32 | name.as_ptr() as usize as u64;
    if let Some(slot) = SAVED_NAMES.get(id) {
        slot.store(packed, Ordering::Release);
    }
}

/// The last name task slot `id` had, even if the task has exited; `None`
/// if the slot was never used. Lock-free (trap context may call it).
pub fn saved_name(id: TaskId) -> Option<&'static str> {
    let packed = SAVED_NAMES.get(id)?.load(Ordering::Acquire);
    if packed == 0 {
        return None;
    }
    let (address, len) = (packed as u32 as usize, (packed >> 32) as usize);
    // SAFETY: only `save_name` stores here, and it packs a `&'static str`'s
    // address and length; the 64-bit atomic keeps the pair whole.
    Some(unsafe { core::str::from_utf8_unchecked(core::slice::from_raw_parts(address as *const u8, len)) })
}

/// Registers the code running at boot as task 0, pinned to CPU 0.
pub(super) fn init_boot_task() {
    with_tasks(|tasks| {
        save_name(0, "boot");
        tasks[0] = Task {
            state: State::Runnable,
            name: "boot",
            slice_left: super::scheduler::TIME_SLICE_TICKS,
            on_cpu: Some(0),
            // The kernel's main thread stays on the boot CPU (move it with
            // `set_affinity`): what it starts, and when, stays predictable.
            pinned: Some(0),
            ..Task::FREE
        };
    });
    set_current(0);
}

/// A task's state as seen from outside the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// Running on a CPU now (the one asking, or another).
    Running,
    /// Waiting for a CPU (possibly preempted).
    Ready,
    /// Sleeping until the tick counter reaches `until`.
    Sleeping {
        /// The tick at which it becomes ready again.
        until: u64,
    },
    /// Waiting for task `target` to exit.
    Joining {
        /// The task being joined.
        target: TaskId,
    },
    /// Exited with `value`, not yet joined.
    Exited {
        /// The exit value `join` will return.
        value: usize,
    },
}

/// A snapshot of one live task, for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Its slot in the table.
    pub id: TaskId,
    /// The name given at spawn ("boot" for task 0).
    pub name: &'static str,
    /// What it is doing.
    pub state: TaskState,
    /// The EIP where an interrupt found it, if it is switched out from one
    /// (or an interrupt handler runs for it now).
    pub preempted_eip: Option<usize>,
    /// The CPU it runs on now, if any.
    pub cpu: Option<usize>,
    /// The CPU it is pinned to, if any.
    pub pinned: Option<usize>,
}

fn public_state(task: &Task) -> Option<TaskState> {
    Some(match task.state {
        State::Free => return None,
        State::Runnable if task.on_cpu.is_some() => TaskState::Running,
        State::Runnable => TaskState::Ready,
        State::Sleeping { until } => TaskState::Sleeping { until },
        State::Joining { target } => TaskState::Joining { target },
        State::Exited { value } => TaskState::Exited { value },
    })
}

fn info(tasks: &[Task; TABLE_SIZE], id: TaskId) -> Option<TaskInfo> {
    if is_idle(id) {
        return None;
    }
    let task = tasks.get(id)?;
    let state = public_state(task)?;
    let eip = PREEMPTED_EIP[id].load(Ordering::Relaxed);
    Some(TaskInfo {
        id,
        name: task.name,
        state,
        preempted_eip: (eip != 0).then_some(eip),
        cpu: task.on_cpu,
        pinned: task.pinned,
    })
}

/// Calls `f` with a snapshot of every live task (idle tasks excluded), in id
/// order. The snapshot is taken first, so `f` may use the task API (and the
/// tasks may change).
pub fn for_each_task(mut f: impl FnMut(TaskInfo)) {
    let snapshot: [Option<TaskInfo>; MAX_TASKS] = with_tasks(|tasks| core::array::from_fn(|id| info(tasks, id)));
    snapshot.into_iter().flatten().for_each(&mut f);
}

/// The name of task `id`, if the slot is in use.
pub fn task_name(id: TaskId) -> Option<&'static str> {
    with_tasks(|tasks| info(tasks, id)).map(|info| info.name)
}

/// The state of task `id`, if the slot is in use.
pub fn state(id: TaskId) -> Option<TaskState> {
    with_tasks(|tasks| info(tasks, id)).map(|info| info.state)
}
