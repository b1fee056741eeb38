//! Instruction slots: small pieces of executable memory for probed
//! instructions run out of line.
//!
//! A fixed pool in memory the host provides (`Host::slot_memory`, writable
//! and executable), handed out at registration. A freed slot is not reused
//! while any task or CPU could still be executing in it (a boosted slot runs
//! with interrupts on, so a task can be preempted inside one, and another
//! CPU can be running it): a slot is freed only after a sync of every CPU
//! (`Host::sync_cpus`), when the predicate the caller passes
//! (`Host::task_may_resume_in`, which counts the tasks preempted inside and
//! the CPUs that sync found inside) says no one may resume there. Slots it
//! holds back wait as garbage and are looked at again, after another sync,
//! on a later allocation, as Linux's `collect_garbage_slots` does after
//! `synchronize_rcu_tasks`.
use spin::Mutex;

/// Bytes per slot: room for two copies of a probed instruction, one for
/// single-stepping (up to 15 bytes) and one relocated for boosting with its
/// jump back (up to 15 + 5 bytes); see `arch::x86::slot`.
pub const SLOT_SIZE: usize = 48;
/// Number of slots.
pub const SLOT_COUNT: usize = 256;

/// Bytes of slot memory the host must provide.
pub const SLOT_MEMORY_SIZE: usize = SLOT_SIZE * SLOT_COUNT;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Used,
    Garbage,
}

static STATE: Mutex<[State; SLOT_COUNT]> = Mutex::new([State::Free; SLOT_COUNT]);

/// A slot's address.
pub fn slot_address(index: usize) -> usize {
    crate::host::slot_memory().start + index * SLOT_SIZE
}

/// The whole slot region (for "is this EIP inside a slot?").
pub fn region() -> core::ops::Range<usize> {
    let start = crate::host::slot_memory().start;
    start..start + SLOT_MEMORY_SIZE
}

/// Checks the host's slot memory at boot.
pub(crate) fn check_memory() {
    let memory = crate::host::slot_memory();
    assert!(memory.len() >= SLOT_MEMORY_SIZE, "the host's slot memory holds fewer than {SLOT_COUNT} slots");
}

/// Takes a free slot, first collecting garbage slots that `in_use` clears
/// after a sync of every CPU (only if there is garbage to collect).
/// Returns the slot's address. Registration time only (takes a lock; task
/// context with interrupts on, for the sync).
pub fn allocate(in_use: impl Fn(core::ops::Range<usize>) -> bool) -> Option<usize> {
    if STATE.lock().contains(&State::Garbage) {
        // Where every other CPU is now: `in_use` counts those inside a slot.
        crate::quiesce::text_poke_sync();
    }
    let mut state = STATE.lock();
    for index in 0..SLOT_COUNT {
        if state[index] == State::Garbage && !in_use(slot_address(index)..slot_address(index) + SLOT_SIZE) {
            state[index] = State::Free;
        }
    }
    let index = state.iter().position(|s| *s == State::Free)?;
    state[index] = State::Used;
    Some(slot_address(index))
}

/// Gives a slot back; it becomes free once `in_use` says nobody runs in it.
/// Call only after a sync of every CPU that followed the last moment a trap
/// could send code into the slot (the engine's unregistration does).
pub fn free(address: usize, in_use: impl Fn(core::ops::Range<usize>) -> bool) {
    let index = (address - slot_address(0)) / SLOT_SIZE;
    let mut state = STATE.lock();
    state[index] = if in_use(address..address + SLOT_SIZE) { State::Garbage } else { State::Free };
}

/// Number of slots currently handed out (used or awaiting collection).
pub fn in_use_count() -> usize {
    STATE.lock().iter().filter(|s| **s != State::Free).count()
}

/// Writes code into a slot the caller owns.
///
/// # Safety
/// `address` must be a slot returned by [`allocate`] and not yet freed, and no
/// task may be executing in it.
pub unsafe fn write(address: usize, code: &[u8]) {
    assert!(code.len() <= SLOT_SIZE);
    // SAFETY: the slot is ours (caller's contract) and lies in the writable
    // slot region.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), address as *mut u8, code.len()) };
    crate::arch::imp::cpu::serialize();
}
