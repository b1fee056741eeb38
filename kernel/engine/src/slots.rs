//! Instruction slots, small pieces of executable memory for probed
//! instructions run out of line, and detour slots for jump-optimized
//! probes' detours.
//!
//! Two fixed pools in one region of memory the host provides
//! (`Host::slot_memory`, writable and executable), handed out at
//! registration; a slot's address says its kind. A freed slot is not reused
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

/// Bytes per instruction slot: room for two copies of a probed
/// instruction, one for single-stepping (up to 15 bytes) and one relocated
/// for boosting with its jump back (up to 15 + 5 bytes); see
/// `arch::x86::slot`.
pub const SLOT_SIZE: usize = 48;
/// Number of instruction slots: one per probe site
/// ([`MAX_SITES`](crate::MAX_SITES)), and 256 more for `text_poke_bp` and
/// for slots held back as garbage.
pub const SLOT_COUNT: usize = crate::registry::MAX_SITES + 256;

/// Bytes per detour slot: a jump-optimized probe's detour, its own code
/// with its probe's addresses written in, then the displaced instructions
/// (see `arch::x86::optprobe`).
pub const DETOUR_SIZE: usize = 128;
/// Number of detour slots: at most this many probes are jump-optimized at
/// once; beyond, a probe stays on its breakpoint (boosted), which is always
/// correct. 4,096 is far more than the functions anyone probes by hand, and
/// keeps the memory behind all of them at 512 KiB.
pub const DETOUR_COUNT: usize = 4096;
const _: () = assert!(SLOT_COUNT + DETOUR_COUNT <= u16::MAX as usize);

/// Bytes of slot memory the host must provide: the instruction slots, then
/// the detour slots. (It need not take room in the image: it can be
/// uninitialized.)
pub const SLOT_MEMORY_SIZE: usize = SLOT_SIZE * SLOT_COUNT + DETOUR_SIZE * DETOUR_COUNT;

/// The two kinds of slot, each with a pool of its own in one region.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    /// An instruction slot ([`SLOT_SIZE`] bytes).
    Instruction,
    /// A detour slot ([`DETOUR_SIZE`] bytes).
    Detour,
}

impl Kind {
    /// Bytes per slot of this kind.
    pub const fn size(self) -> usize {
        match self {
            Kind::Instruction => SLOT_SIZE,
            Kind::Detour => DETOUR_SIZE,
        }
    }

    /// Where this kind's slots start in the region.
    const fn offset(self) -> usize {
        match self {
            Kind::Instruction => 0,
            Kind::Detour => SLOT_SIZE * SLOT_COUNT,
        }
    }

    /// The first slot number of this kind (slots are numbered across both
    /// kinds, instruction slots first).
    const fn first(self) -> usize {
        match self {
            Kind::Instruction => 0,
            Kind::Detour => SLOT_COUNT,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Used,
    Garbage,
}

/// Every slot's state, with the free and the garbage slots on stacks of
/// their own, so allocation and freeing are O(1) however many slots exist;
/// only a collection looks at every garbage slot (and there are few). One
/// per kind; indices are within the kind.
struct Pool<const N: usize> {
    state: [State; N],
    free: [u16; N],
    free_len: usize,
    garbage: [u16; N],
    garbage_len: usize,
}

impl<const N: usize> Pool<N> {
    const fn new() -> Self {
        // Popped from the top: the lowest slot first.
        let mut free = [0u16; N];
        let mut i = 0;
        while i < N {
            free[i] = (N - 1 - i) as u16;
            i += 1;
        }
        Pool { state: [State::Free; N], free, free_len: N, garbage: [0; N], garbage_len: 0 }
    }

    fn push_free(&mut self, index: usize) {
        self.state[index] = State::Free;
        self.free[self.free_len] = index as u16;
        self.free_len += 1;
    }

    /// See [`allocate`]: `range` gives the bytes of the slot numbered
    /// within the kind.
    fn allocate(
        &mut self,
        in_use: impl Fn(core::ops::Range<usize>) -> bool,
        range: impl Fn(usize) -> core::ops::Range<usize>,
    ) -> Option<usize> {
        let mut kept = 0;
        for i in 0..self.garbage_len {
            let index = self.garbage[i] as usize;
            if in_use(range(index)) {
                self.garbage[kept] = index as u16;
                kept += 1;
            } else {
                self.push_free(index);
            }
        }
        self.garbage_len = kept;
        if self.free_len == 0 {
            return None;
        }
        self.free_len -= 1;
        let index = self.free[self.free_len] as usize;
        self.state[index] = State::Used;
        Some(index)
    }

    fn free(&mut self, index: usize, busy: bool) {
        assert!(self.state[index] == State::Used, "slot {index} freed twice");
        if busy {
            self.state[index] = State::Garbage;
            let top = self.garbage_len;
            self.garbage[top] = index as u16;
            self.garbage_len += 1;
        } else {
            self.push_free(index);
        }
    }
}

static POOL: Mutex<Pool<SLOT_COUNT>> = Mutex::new(Pool::new());
static DETOURS: Mutex<Pool<DETOUR_COUNT>> = Mutex::new(Pool::new());

/// Slot ranges written since the host last asked ([`take_written`]); past
/// [`WRITTEN_MAX`] of them, the whole region counts as written.
const WRITTEN_MAX: usize = 64;
struct Written {
    slots: [u16; WRITTEN_MAX],
    count: usize,
}
static WRITTEN: Mutex<Written> = Mutex::new(Written { slots: [0; WRITTEN_MAX], count: 0 });

/// The address of slot `index` (numbered across both kinds).
pub fn slot_address(index: usize) -> usize {
    let kind = if index < SLOT_COUNT { Kind::Instruction } else { Kind::Detour };
    base() + kind.offset() + (index - kind.first()) * kind.size()
}

/// The number of the slot `address` lies in (across both kinds).
/// `address` must lie in [`region`].
pub fn slot_index(address: usize) -> usize {
    locate(address).0
}

/// The number among the detour slots of the one `address` lies in.
/// `address` must lie in [`detour_region`].
#[inline(always)]
pub fn detour_index(address: usize) -> usize {
    (address - detour_region().start) / DETOUR_SIZE
}

/// The number of the slot `address` lies in, its kind, and its bytes.
fn locate(address: usize) -> (usize, Kind, core::ops::Range<usize>) {
    // Written out per kind, so each division is by a constant.
    fn within(region: usize, offset: usize, kind: Kind) -> (usize, Kind, core::ops::Range<usize>) {
        let number = (offset - kind.offset()) / kind.size();
        let start = region + kind.offset() + number * kind.size();
        (kind.first() + number, kind, start..start + kind.size())
    }
    let region = base();
    let offset = address - region;
    if offset < Kind::Detour.offset() {
        within(region, offset, Kind::Instruction)
    } else {
        within(region, offset, Kind::Detour)
    }
}

/// The whole slot region (for "is this EIP inside a slot?").
pub fn region() -> core::ops::Range<usize> {
    let start = base();
    start..start + SLOT_MEMORY_SIZE
}

/// The detour slots' part of the region.
pub fn detour_region() -> core::ops::Range<usize> {
    let start = base() + Kind::Detour.offset();
    start..start + DETOUR_SIZE * DETOUR_COUNT
}

/// The start of the slot region (the host's answer, a constant once the
/// kernel is linked).
#[inline(always)]
fn base() -> usize {
    crate::host::slot_memory().start
}

/// Checks the host's slot memory at boot.
pub(crate) fn check_memory() {
    let memory = crate::host::slot_memory();
    assert!(memory.len() >= SLOT_MEMORY_SIZE, "the host's slot memory holds fewer than {SLOT_MEMORY_SIZE} bytes");
    // A detour finds its own start from an address inside it by rounding
    // down (`arch::x86::optprobe`).
    assert!(
        detour_region().start.is_multiple_of(DETOUR_SIZE),
        "the host's slot memory is not {DETOUR_SIZE}-byte aligned"
    );
}

/// Takes a free slot of `kind`, first collecting garbage slots that
/// `in_use` clears after a sync of every CPU (only if there is garbage to
/// collect). Returns the slot's address. O(1) but for that collection.
/// Registration time only (takes a lock; task context with interrupts on,
/// for the sync).
pub fn allocate(kind: Kind, in_use: impl Fn(core::ops::Range<usize>) -> bool) -> Option<usize> {
    let range = |index: usize| {
        let start = slot_address(kind.first() + index);
        start..start + kind.size()
    };
    let index = match kind {
        Kind::Instruction => {
            if POOL.lock().garbage_len > 0 {
                // Where every other CPU is now: `in_use` counts those inside a slot.
                crate::quiesce::text_poke_sync();
            }
            POOL.lock().allocate(in_use, range)?
        }
        Kind::Detour => {
            if DETOURS.lock().garbage_len > 0 {
                crate::quiesce::text_poke_sync();
            }
            DETOURS.lock().allocate(in_use, range)?
        }
    };
    Some(slot_address(kind.first() + index))
}

/// Gives a slot back; it becomes free once `in_use` says nobody runs in it.
/// Call only after a sync of every CPU that followed the last moment a trap
/// could send code into the slot (the engine's unregistration does).
pub fn free(address: usize, in_use: impl Fn(core::ops::Range<usize>) -> bool) {
    let (index, kind, range) = locate(address);
    let busy = in_use(range);
    match kind {
        Kind::Instruction => POOL.lock().free(index, busy),
        Kind::Detour => DETOURS.lock().free(index - kind.first(), busy),
    }
}

/// Instruction slots free right now (garbage not counted).
pub fn free_count() -> usize {
    POOL.lock().free_len
}

/// Bytes of static memory behind the slots: the slot memory the host
/// provides and the pool that tracks it.
pub fn static_memory_bytes() -> usize {
    SLOT_MEMORY_SIZE
        + core::mem::size_of::<Pool<SLOT_COUNT>>()
        + core::mem::size_of::<Pool<DETOUR_COUNT>>()
        + core::mem::size_of::<Written>()
}

/// Number of slots of both kinds currently handed out (used or awaiting
/// collection).
pub fn in_use_count() -> usize {
    SLOT_COUNT - POOL.lock().free_len + DETOUR_COUNT - DETOURS.lock().free_len
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
            // Each kind's size a constant, for a visitor that loops over the bytes.
            match (index as usize) < SLOT_COUNT {
                true => visit(start..start + SLOT_SIZE),
                false => visit(start..start + DETOUR_SIZE),
            }
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
    let (index, _, range) = locate(address);
    assert!(code.len() <= range.end - address);
    // SAFETY: the slot is ours (caller's contract) and lies in the writable
    // slot region.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), address as *mut u8, code.len()) };
    crate::arch::imp::cpu::serialize();
    let mut written = WRITTEN.lock();
    if written.count < WRITTEN_MAX {
        let count = written.count;
        written.slots[count] = index as u16;
    }
    written.count = written.count.saturating_add(1);
}
