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
/// Number of slots: one per probe site ([`MAX_SITES`](crate::MAX_SITES)),
/// one more per site for the detours of jump-optimized probes, and 256 more
/// for `text_poke_bp` and for slots held back as garbage. (The host's slot
/// memory need not take room in the image: it can be uninitialized.)
pub const SLOT_COUNT: usize = 2 * crate::registry::MAX_SITES + 256;
const _: () = assert!(SLOT_COUNT <= u16::MAX as usize);

/// Bytes of slot memory the host must provide.
pub const SLOT_MEMORY_SIZE: usize = SLOT_SIZE * SLOT_COUNT;

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Used,
    Garbage,
}

/// Every slot's state, with the free and the garbage slots on stacks of
/// their own, so allocation and freeing are O(1) however many slots exist;
/// only a collection looks at every garbage slot (and there are few).
struct Pool {
    state: [State; SLOT_COUNT],
    free: [u16; SLOT_COUNT],
    free_len: usize,
    garbage: [u16; SLOT_COUNT],
    garbage_len: usize,
}

impl Pool {
    const fn new() -> Self {
        // Popped from the top: the lowest slot first.
        let mut free = [0u16; SLOT_COUNT];
        let mut i = 0;
        while i < SLOT_COUNT {
            free[i] = (SLOT_COUNT - 1 - i) as u16;
            i += 1;
        }
        Pool { state: [State::Free; SLOT_COUNT], free, free_len: SLOT_COUNT, garbage: [0; SLOT_COUNT], garbage_len: 0 }
    }

    fn push_free(&mut self, index: usize) {
        self.state[index] = State::Free;
        self.free[self.free_len] = index as u16;
        self.free_len += 1;
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

/// Slot ranges written since the host last asked ([`take_written`]); past
/// [`WRITTEN_MAX`] of them, the whole region counts as written.
const WRITTEN_MAX: usize = 64;
struct Written {
    slots: [u16; WRITTEN_MAX],
    count: usize,
}
static WRITTEN: Mutex<Written> = Mutex::new(Written { slots: [0; WRITTEN_MAX], count: 0 });

/// A slot's address.
pub fn slot_address(index: usize) -> usize {
    crate::host::slot_memory().start + index * SLOT_SIZE
}

/// The index of the slot at `address`.
pub fn slot_index(address: usize) -> usize {
    (address - slot_address(0)) / SLOT_SIZE
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
/// Returns the slot's address. O(1) but for that collection. Registration
/// time only (takes a lock; task context with interrupts on, for the sync).
pub fn allocate(in_use: impl Fn(core::ops::Range<usize>) -> bool) -> Option<usize> {
    if POOL.lock().garbage_len > 0 {
        // Where every other CPU is now: `in_use` counts those inside a slot.
        crate::quiesce::text_poke_sync();
    }
    let mut pool = POOL.lock();
    let mut kept = 0;
    for i in 0..pool.garbage_len {
        let index = pool.garbage[i] as usize;
        if in_use(slot_address(index)..slot_address(index) + SLOT_SIZE) {
            pool.garbage[kept] = index as u16;
            kept += 1;
        } else {
            pool.push_free(index);
        }
    }
    pool.garbage_len = kept;
    if pool.free_len == 0 {
        return None;
    }
    pool.free_len -= 1;
    let index = pool.free[pool.free_len] as usize;
    pool.state[index] = State::Used;
    Some(slot_address(index))
}

/// Gives a slot back; it becomes free once `in_use` says nobody runs in it.
/// Call only after a sync of every CPU that followed the last moment a trap
/// could send code into the slot (the engine's unregistration does).
pub fn free(address: usize, in_use: impl Fn(core::ops::Range<usize>) -> bool) {
    let index = slot_index(address);
    let mut pool = POOL.lock();
    assert!(pool.state[index] == State::Used, "slot {index} freed twice");
    if in_use(address..address + SLOT_SIZE) {
        pool.state[index] = State::Garbage;
        let top = pool.garbage_len;
        pool.garbage[top] = index as u16;
        pool.garbage_len += 1;
    } else {
        pool.push_free(index);
    }
}

/// Slots free right now (garbage not counted).
pub fn free_count() -> usize {
    POOL.lock().free_len
}

/// Bytes of static memory behind the slots: the slot memory the host
/// provides and the pool that tracks it.
pub fn static_memory_bytes() -> usize {
    SLOT_MEMORY_SIZE + core::mem::size_of::<Pool>() + core::mem::size_of::<Written>()
}

/// Number of slots currently handed out (used or awaiting collection).
pub fn in_use_count() -> usize {
    SLOT_COUNT - POOL.lock().free_len
}

/// Calls `visit` with each slot range written since the last call (the
/// whole region if there were many), and forgets them. For a host that
/// must touch freshly written code again after a sync of every CPU (see
/// the kernel's `patch::retouch_after_sync`).
pub fn take_written(mut visit: impl FnMut(core::ops::Range<usize>)) {
    let mut written = WRITTEN.lock();
    if written.count > WRITTEN_MAX {
        visit(region());
    } else {
        for &index in &written.slots[..written.count] {
            let start = slot_address(index as usize);
            visit(start..start + SLOT_SIZE);
        }
    }
    written.count = 0;
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
    let mut written = WRITTEN.lock();
    if written.count < WRITTEN_MAX {
        let count = written.count;
        written.slots[count] = slot_index(address) as u16;
    }
    written.count = written.count.saturating_add(1);
}
