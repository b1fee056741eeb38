//! The scheduler: timer ticks, time slices, round-robin switching, sleeping.
//!
//! The timer interrupt is the only source of preemption. IRQ 0 arrives
//! through an interrupt gate (IF = 0) and calls [`timer_tick`], which counts
//! the tick, wakes sleepers, and — once the running task has used its
//! [`TIME_SLICE_TICKS`] — switches to the next runnable task *from inside the
//! interrupt handler*. The preempted task's interrupt frame stays on its own
//! stack; when it is picked again, `switch_context` returns into the handler,
//! which unwinds normally and `iretd`s back to the interrupted instruction.
//! Voluntary switches (yield, sleep, join, exit) go through the same
//! `schedule`, just without an interrupt frame underneath.
//!
//! Stack of a switched-out task, from its saved ESP upwards (higher addresses
//! further down this picture):
//!
//! ```text
//!  saved ESP -> EFLAGS (IF = 0)   \
//!               EDI, ESI, EBX      } pushed by `switch_context`
//!               EBP               /
//!               return address into `schedule`
//!               frames of `schedule` and of its caller:
//!
//!   preempted by the timer              gave up the CPU itself
//!   ----------------------              ----------------------
//!   timer_tick, pic::handle_irq,        yield_now / sleep / join / exit,
//!   trap_dispatch frames                then the task's own frames
//!   &TrapFrame (dispatcher argument)
//!   TrapFrame: EDI..EAX (pushad),
//!     vector, error code 0,
//!     EIP, CS, EFLAGS (IF = 1)  <- pushed by the CPU; `preempted_eip` = EIP
//!   the task's own frames at the
//!   interrupted instruction
//! ```
//!
//! A task that has never run instead holds the first frame laid out by
//! `context::prepare_stack`, which "returns" into `task_start`.
//!
//! Every state change happens with interrupts off (one CPU: that excludes the
//! timer, hence any other task). When no task is runnable, the task that
//! found so waits for interrupts inside the scheduler loop, on its own stack;
//! `timer_tick` then only wakes sleepers and leaves the switching to that loop.
use super::TaskId;
use super::table::{MAX_TASKS, State, Task, current_id, saved_esp_slot, set_current, with_tasks};
use crate::arch::cpu;
use crate::arch::x86::context::switch_context;
use core::ops::Range;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Timer ticks a task may run before the timer hands the CPU to the next
/// runnable task: 3 ticks = 12 ms at `pit::HZ` = 250.
pub const TIME_SLICE_TICKS: u32 = 3;

static TICKS: AtomicU64 = AtomicU64::new(0);
/// Set while some task waits for an interrupt in the scheduler loop because
/// nothing is runnable; the timer must not switch away from under it then.
static IDLE: AtomicBool = AtomicBool::new(false);

/// A function every timer tick calls (interrupt context, interrupts off).
static TICK_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs (or with `None`, removes) a function the timer interrupt calls
/// on every tick, before scheduling: ordinary, probeable code that runs in
/// interrupt context (the probe tests hit probes from there).
pub fn set_tick_hook(hook: Option<fn()>) {
    TICK_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

/// Timer ticks since interrupts were enabled (`pit::HZ` per second).
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Timer IRQ (called after EOI, interrupts off): counts the tick, wakes
/// sleepers whose time has come, and preempts the running task if its time
/// slice is used up and another task is runnable. Returns when the
/// interrupted task is picked again.
#[unsafe(link_section = ".kprobes.text")]
pub fn timer_tick() {
    let now = TICKS.fetch_add(1, Ordering::Relaxed) + 1;
    let hook = TICK_HOOK.load(Ordering::SeqCst);
    if hook != 0 {
        // SAFETY: TICK_HOOK only ever holds 0 or an `fn()` from `set_tick_hook`.
        let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
        hook();
    }
    let current = current_id();
    let idle = IDLE.load(Ordering::Relaxed);
    let preempt = with_tasks(|tasks| {
        for task in tasks.iter_mut() {
            if let State::Sleeping { until } = task.state
                && until <= now
            {
                task.state = State::Runnable;
            }
        }
        if idle {
            return false; // the idle loop picks the woken task itself
        }
        let task = &mut tasks[current];
        task.slice_left = task.slice_left.saturating_sub(1);
        if task.slice_left > 0 {
            return false;
        }
        task.slice_left = TIME_SLICE_TICKS;
        pick_next(tasks, current).is_some_and(|next| next != current)
    });
    if preempt {
        schedule();
    }
}

/// The first runnable task after `current` in round-robin order, `current`
/// itself last.
#[inline(always)]
fn pick_next(tasks: &[Task; MAX_TASKS], current: TaskId) -> Option<TaskId> {
    (1..=MAX_TASKS).map(|step| (current + step) % MAX_TASKS).find(|&id| tasks[id].state == State::Runnable)
}

/// Gives the CPU to the next runnable task (round robin) and returns once the
/// caller is picked again; returns at once if the caller is the only
/// runnable task. If nothing at all is runnable (the caller has just blocked
/// or exited), waits for interrupts until something is.
///
/// Must be called with interrupts disabled, never with the task table held.
#[unsafe(link_section = ".kprobes.text")]
pub(super) fn schedule() {
    assert!(!cpu::interrupts_enabled(), "schedule with interrupts enabled");
    assert!(
        !crate::kprobes::trap_path_active() && !crate::kprobes::in_probe_context(),
        "schedule in probe context: probe handlers must not sleep, yield or block"
    );
    let current = current_id();
    loop {
        let choice = with_tasks(|tasks| {
            let next = pick_next(tasks, current)?;
            if next != current {
                tasks[next].slice_left = TIME_SLICE_TICKS;
            }
            Some((next, tasks[next].saved_esp))
        });
        match choice {
            Some((next, _)) if next == current => return,
            Some((next, next_esp)) => {
                set_current(next);
                // SAFETY: interrupts are off; `next_esp` was saved by an
                // earlier `switch_context` of task `next` or laid out by
                // `prepare_stack` at spawn, and `next` is runnable, so nothing
                // runs on its stack now. The slot pointer is valid for the
                // whole run (static table) and no reference to the table is
                // live. We continue here when someone switches back to us.
                unsafe { switch_context(saved_esp_slot(current), next_esp) };
                return;
            }
            None => {
                IDLE.store(true, Ordering::Relaxed);
                cpu::wait_for_interrupt();
                IDLE.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// Lets the other runnable tasks run; returns at once if there are none.
pub fn yield_now() {
    cpu::without_interrupts(schedule);
}

/// Blocks the calling task for at least `ticks` timer ticks (so `ticks()`
/// has advanced by at least `ticks` on return); `sleep(0)` just yields.
/// Task context only (not from trap handlers).
pub fn sleep(ticks: u64) {
    if ticks == 0 {
        return yield_now();
    }
    cpu::without_interrupts(|| {
        let until = TICKS.load(Ordering::Relaxed) + ticks;
        let current = current_id();
        with_tasks(|tasks| tasks[current].state = State::Sleeping { until });
        schedule();
    });
}

/// IRQ entry (interrupts off): records where the running task was
/// interrupted, so [`preempted_in`] sees it for as long as the IRQ runs —
/// whether the timer then switches to other tasks or the IRQ's own code
/// (a tick hook) asks. Returns what [`interrupt_leave`] restores.
#[unsafe(link_section = ".kprobes.text")]
pub fn interrupt_enter(eip: usize) -> Option<usize> {
    let current = current_id();
    with_tasks(|tasks| tasks[current].preempted_eip.replace(eip))
}

/// IRQ exit: the running task resumes at its interrupted EIP now.
#[unsafe(link_section = ".kprobes.text")]
pub fn interrupt_leave(previous: Option<usize>) {
    let current = current_id();
    with_tasks(|tasks| tasks[current].preempted_eip = previous);
}

/// Whether any task — the caller included, if it is inside an interrupt
/// handler — was interrupted with its EIP inside `range`, i.e. will resume
/// executing there. The probe engine asks this before reusing an
/// instruction slot.
pub fn preempted_in(range: Range<usize>) -> bool {
    cpu::without_interrupts(|| {
        with_tasks(|tasks| tasks.iter().any(|task| task.preempted_eip.is_some_and(|eip| range.contains(&eip))))
    })
}
