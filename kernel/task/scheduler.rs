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
//!   timer_tick, handle_apic_interrupt,  yield_now / sleep / join / exit,
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
//! Every CPU runs this scheduler on the one task table (`table`), under its
//! lock. A task switched out on one CPU may be picked by any other (unless
//! pinned), so it migrates; its `on_cpu` mark keeps every other CPU off its
//! stack until the switch that left it has saved its ESP, which the task
//! switched *to* acknowledges first thing ([`finish_switch`]). When no task
//! is runnable for a CPU it runs its idle task, which halts until the next
//! interrupt. Each CPU's local APIC timer ticks it at `pit::HZ`; CPU 0's tick
//! is also the kernel's clock ([`ticks`]) and wakes sleepers.
use super::TaskId;
use super::table::{
    MAX_TASKS, PREEMPTED_EIP, State, TABLE_SIZE, Task, current_id, idle_task, is_idle, saved_esp_slot, set_current,
    with_tasks,
};
use crate::arch::cpu;
use crate::arch::x86::context::switch_context;
use crate::arch::x86::percpu;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Timer ticks a task may run before the timer hands the CPU to the next
/// runnable task: 3 ticks = 12 ms at `pit::HZ` = 250.
pub const TIME_SLICE_TICKS: u32 = 3;

static TICKS: AtomicU64 = AtomicU64::new(0);

/// A function every timer tick calls (interrupt context, interrupts off).
static TICK_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Installs (or with `None`, removes) a function the timer interrupt calls
/// on every tick of CPU 0, before scheduling: ordinary, probeable code that
/// runs in interrupt context (the probe tests hit probes from there).
pub fn set_tick_hook(hook: Option<fn()>) {
    TICK_HOOK.store(hook.map_or(0, |f| f as usize), Ordering::SeqCst);
}

/// Timer ticks of CPU 0 since interrupts were enabled (`pit::HZ` per second).
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Timer interrupt of this CPU (called after EOI, interrupts off). On CPU 0:
/// counts the tick, runs the tick hook, wakes sleepers whose time has come.
/// On every CPU: preempts the running task if its time slice is used up and
/// another task is runnable here (an idle task at once). Returns when the
/// interrupted task is picked again (on this CPU or another).
#[unsafe(link_section = ".kprobes.text")]
pub fn timer_tick() {
    let cpu = percpu::cpu_id();
    let now = if cpu == 0 { TICKS.fetch_add(1, Ordering::Relaxed) + 1 } else { 0 };
    if cpu == 0 {
        let hook = TICK_HOOK.load(Ordering::SeqCst);
        if hook != 0 {
            // SAFETY: TICK_HOOK only ever holds 0 or an `fn()` from `set_tick_hook`.
            let hook: fn() = unsafe { core::mem::transmute::<usize, fn()>(hook) };
            hook();
        }
    }
    let current = current_id();
    let preempt = with_tasks(|tasks| {
        if cpu == 0 {
            for task in tasks.iter_mut() {
                if let State::Sleeping { until } = task.state
                    && until <= now
                {
                    task.state = State::Runnable;
                }
            }
        }
        if is_idle(current) {
            return pick_next(tasks, current, cpu).is_some();
        }
        let task = &mut tasks[current];
        task.slice_left = task.slice_left.saturating_sub(1);
        if task.slice_left > 0 {
            return false;
        }
        task.slice_left = TIME_SLICE_TICKS;
        pick_next(tasks, current, cpu).is_some_and(|next| next != current)
    });
    if preempt {
        schedule();
    }
}

/// Whether `task` may run on `cpu` now: runnable, not on another CPU's
/// stack, and pinned nowhere else.
#[inline(always)]
fn can_run(task: &Task, cpu: usize) -> bool {
    task.state == State::Runnable
        && task.on_cpu.is_none_or(|on| on == cpu)
        && task.pinned.is_none_or(|pinned| pinned == cpu)
}

/// The first task that can run on `cpu` after `current` in round-robin
/// order, `current` itself last; idle tasks are never picked here.
#[inline(always)]
fn pick_next(tasks: &[Task; TABLE_SIZE], current: TaskId, cpu: usize) -> Option<TaskId> {
    let start = if is_idle(current) { MAX_TASKS - 1 } else { current };
    (1..=MAX_TASKS).map(|step| (start + step) % MAX_TASKS).find(|&id| can_run(&tasks[id], cpu))
}

/// Gives the CPU to the next task that can run here (round robin) and
/// returns once the caller is picked again, on this CPU or another; returns
/// at once if the caller is the only one. If none can (the caller has just
/// blocked or exited), the CPU's idle task runs until one can.
///
/// Must be called with interrupts disabled, never with the task table held.
#[unsafe(link_section = ".kprobes.text")]
pub(super) fn schedule() {
    assert!(!cpu::interrupts_enabled(), "schedule with interrupts enabled");
    assert!(
        !crate::kprobes::trap_path_active() && !crate::kprobes::in_probe_context(),
        "schedule in probe context: probe handlers must not sleep, yield or block"
    );
    let cpu = percpu::cpu_id();
    let current = current_id();
    let choice = with_tasks(|tasks| {
        let next = pick_next(tasks, current, cpu).unwrap_or(idle_task(cpu));
        if next == current {
            return None;
        }
        tasks[next].slice_left = TIME_SLICE_TICKS;
        tasks[next].on_cpu = Some(cpu);
        Some((next, tasks[next].saved_esp))
    });
    let Some((next, next_esp)) = choice else { return };
    percpu::this_cpu().previous_task.store(current, Ordering::Relaxed);
    set_current(next);
    // SAFETY: interrupts are off; `next_esp` was saved by an earlier
    // `switch_context` of task `next` (its `on_cpu` was clear, so that
    // switch completed) or laid out by `prepare_stack`, and `next` is now
    // marked as ours, so no other CPU touches its stack. Our own `on_cpu`
    // stays set until the task we switch to clears it in `finish_switch`,
    // so nobody picks us before our ESP is saved. The slot pointer is valid
    // for the whole run (static table). We continue here when some CPU
    // switches back to us.
    unsafe { switch_context(saved_esp_slot(current), next_esp) };
    finish_switch();
}

/// The second half of every switch, run by the task switched to, on the
/// CPU that switched: the previous task's ESP is saved now, so it may run
/// elsewhere (or, exited, be joined: its joiner is woken here).
#[unsafe(link_section = ".kprobes.text")]
pub(super) fn finish_switch() {
    let previous = percpu::this_cpu().previous_task.load(Ordering::Relaxed);
    if previous == current_id() {
        return; // a CPU's first task: nothing was switched out
    }
    with_tasks(|tasks| {
        tasks[previous].on_cpu = None;
        if let State::Exited { .. } = tasks[previous].state {
            for task in tasks.iter_mut() {
                if task.state == (State::Joining { target: previous }) {
                    task.state = State::Runnable;
                }
            }
        }
    });
}

/// The body of every CPU's idle task: look for work, halt until an
/// interrupt that may have made some (a sync round's cannot: the CPU halts
/// again at once, instead of scanning the task table under its lock while
/// the CPU that asked for the round waits; under `-icount` those scans were
/// most of what a text change costs on four CPUs), repeat. The count is
/// read and compared with interrupts off, so an interrupt between the look
/// and the halt is seen.
pub(super) fn idle_loop() -> ! {
    loop {
        cpu::disable_interrupts();
        schedule();
        let seen = percpu::this_cpu().wakeups.load(Ordering::Relaxed);
        while percpu::this_cpu().wakeups.load(Ordering::Relaxed) == seen {
            percpu::idle_halt(); // a sync round skips this CPU meanwhile
        }
    }
}

/// A reschedule request (interrupt context): an idle CPU looks for work at
/// once instead of at its next tick.
#[unsafe(link_section = ".kprobes.text")]
pub fn reschedule_idle() {
    if is_idle(current_id()) {
        schedule();
    }
}

/// Pins the calling task to CPU `cpu` (or with `None`, lets it run
/// anywhere again), moving it there at once if it runs elsewhere: on
/// return it runs on `cpu`. Task context only.
pub fn set_affinity(cpu: Option<usize>) {
    if let Some(cpu) = cpu {
        assert!(cpu < crate::arch::x86::smp::online_cpus(), "set_affinity: CPU {cpu} is not online");
    }
    cpu::without_interrupts(|| {
        let current = current_id();
        with_tasks(|tasks| tasks[current].pinned = cpu);
        if cpu.is_some_and(|cpu| cpu != percpu::cpu_id()) {
            crate::arch::x86::smp::wake_idle_cpus();
            schedule();
        }
    });
}

/// Pins task `id` to CPU `cpu` (or with `None`, unpins it); it takes effect
/// at the task's next switch (a running task stays where it is until then).
pub fn set_affinity_of(id: TaskId, cpu: Option<usize>) {
    with_tasks(|tasks| tasks[id].pinned = cpu);
    crate::arch::x86::smp::wake_idle_cpus();
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
#[inline(always)]
pub fn interrupt_enter(eip: usize) -> usize {
    PREEMPTED_EIP[current_id()].swap(eip, Ordering::AcqRel)
}

/// IRQ exit: the running task resumes at its interrupted EIP now. (The
/// task may have migrated meanwhile: the record is the task's, not the CPU's.)
#[unsafe(link_section = ".kprobes.text")]
#[inline(always)]
pub fn interrupt_leave(previous: usize) {
    PREEMPTED_EIP[current_id()].store(previous, Ordering::Release);
}

/// Whether any task — the caller included, if it is inside an interrupt
/// handler — was interrupted with its EIP inside `range`, i.e. will resume
/// executing there, or a CPU was found executing there by the last
/// cross-CPU synchronisation (`smp::sync_cpus`). The probe engine asks this
/// before reusing an instruction slot.
pub fn preempted_in(range: Range<usize>) -> bool {
    PREEMPTED_EIP.iter().any(|eip| range.contains(&eip.load(Ordering::Acquire)))
        || crate::arch::x86::smp::sync_found_in(&range)
}
