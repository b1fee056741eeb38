//! The static task table: one slot per task, its state, and who is running.
//!
//! There is one CPU, so the table needs no lock: every access happens with
//! interrupts disabled (inside [`with_tasks`]), which makes it atomic with
//! respect to the timer and thus to preemption. A spin lock would be wrong
//! here — the timer handler could spin forever on a lock held by the task it
//! interrupted. The running task's id is kept separately in an atomic so trap
//! handlers can read it without touching the table.
use super::TaskId;
use crate::arch::cpu;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Slots in the task table, including task 0 (the boot task).
pub const MAX_TASKS: usize = 16;

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
    /// The interrupted EIP if the timer preempted the task and it has not
    /// run since; `None` if it runs, gave up the CPU itself, or never ran.
    pub preempted_eip: Option<usize>,
}

impl Task {
    /// An unused slot.
    pub const FREE: Task =
        Task { state: State::Free, name: "", saved_esp: 0, entry: None, arg: 0, slice_left: 0, preempted_eip: None };
}

struct Table(UnsafeCell<[Task; MAX_TASKS]>);

// SAFETY: the table is only touched through `with_tasks` (interrupts off on
// the only CPU, plus a re-entry check) or through raw pointers to one task's
// `saved_esp` by the context switch, also with interrupts off.
unsafe impl Sync for Table {}

static TABLE: Table = Table(UnsafeCell::new([const { Task::FREE }; MAX_TASKS]));
/// Set while `with_tasks` holds the table, to catch re-entry (e.g. a probe
/// handler on scheduler code calling back into the task API).
static TABLE_BUSY: AtomicBool = AtomicBool::new(false);
/// The running task. Written only with interrupts off, right before a switch.
static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on the task table with interrupts disabled.
///
/// Panics on re-entry: `f` must not call back into the task API, and the
/// task table must not be used from a trap taken while it is held.
/// Always inlined, so it lands in the (unprobeable) section of scheduler
/// callers that live in `.kprobes.text`.
#[inline(always)]
pub(super) fn with_tasks<R>(f: impl FnOnce(&mut [Task; MAX_TASKS]) -> R) -> R {
    cpu::without_interrupts(|| {
        assert!(
            !TABLE_BUSY.swap(true, Ordering::Acquire),
            "task table re-entered (task API called from a trap inside the scheduler?)"
        );
        // SAFETY: interrupts are off on the only CPU and TABLE_BUSY was clear,
        // so no other reference to the table exists until we clear it again.
        let result = f(unsafe { &mut *TABLE.0.get() });
        TABLE_BUSY.store(false, Ordering::Release);
        result
    })
}

/// Where the context switch saves `id`'s ESP, as a raw pointer (no reference
/// to the table may be held across a switch).
pub(super) fn saved_esp_slot(id: TaskId) -> *mut usize {
    assert!(id < MAX_TASKS);
    // SAFETY: in bounds (asserted); only a raw place projection, no reference.
    unsafe { &raw mut (*TABLE.0.get())[id].saved_esp }
}

/// The id of the task running now; readable from any context (an atomic).
pub fn current_id() -> TaskId {
    CURRENT.load(Ordering::Relaxed)
}

/// Makes `id` the running task; called by the scheduler just before the switch.
pub(super) fn set_current(id: TaskId) {
    CURRENT.store(id, Ordering::Relaxed);
}

/// Registers the code running at boot as task 0.
pub(super) fn init_boot_task() {
    with_tasks(|tasks| {
        tasks[0] =
            Task { state: State::Runnable, name: "boot", slice_left: super::scheduler::TIME_SLICE_TICKS, ..Task::FREE };
    });
    set_current(0);
}

/// A task's state as seen from outside the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// It is the task asking.
    Running,
    /// Waiting for the CPU (possibly preempted).
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
    /// The EIP where the timer preempted it, if it is switched out that way.
    pub preempted_eip: Option<usize>,
}

fn public_state(id: TaskId, state: State) -> Option<TaskState> {
    Some(match state {
        State::Free => return None,
        State::Runnable if id == current_id() => TaskState::Running,
        State::Runnable => TaskState::Ready,
        State::Sleeping { until } => TaskState::Sleeping { until },
        State::Joining { target } => TaskState::Joining { target },
        State::Exited { value } => TaskState::Exited { value },
    })
}

fn info(tasks: &[Task; MAX_TASKS], id: TaskId) -> Option<TaskInfo> {
    let task = tasks.get(id)?;
    let state = public_state(id, task.state)?;
    Some(TaskInfo { id, name: task.name, state, preempted_eip: task.preempted_eip })
}

/// Calls `f` with a snapshot of every live task, in id order. The snapshot
/// is taken first, so `f` may use the task API (and the tasks may change).
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
