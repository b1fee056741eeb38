//! Kretprobe instance pools: fixed-capacity sets of instances carved at
//! registration.
//!
//! Each registration of a kretprobe gets one pool of `maxactive` instances
//! (each with `data_size` private bytes) from a static arena reserved for
//! pools. The trap path takes and returns instances through the pool's
//! lock-free set of free ones (`probe_engine_core::freeset`, a bitmap: one
//! atomic bit operation each way): any CPU may take or give back at any
//! moment, and an interrupt nested into a take or give back on the same
//! CPU may do so too, with no lock.
//!
//! A pool whose kretprobe was unregistered is *retired*: its owner is
//! cleared, so instances still out run no handler, and it is freed once
//! (a) every CPU has been synchronized since the kretprobe stopped handing
//! out its pool (`Host::sync_cpus`, called by the unregistration before
//! [`retire`]: after it no CPU is between loading the pool's address and
//! taking an instance from it), and (b) the last instance has come back
//! (the free set says no instance is out; a give back's setting of its
//! bit is its last access to the pool). Freeing happens at the next
//! registration or retirement, never on the trap path, which must not
//! take the arena's lock.
use super::control::TrapContext;
use super::kretprobe::Kretprobe;
use super::quiesce::Quiesced;
use crate::arch::imp::cpu::without_interrupts;
use crate::kretprobe::TaskId;
use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use linked_list_allocator::Heap;
use probe_engine_core::freeset::FreeSet;
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// Bytes reserved for all kretprobe instance pools together.
pub const ARENA_SIZE: usize = 1 << 20;

#[repr(C, align(4096))]
struct Arena([u8; ARENA_SIZE]);

static mut ARENA: Arena = Arena([0; ARENA_SIZE]);
static ALLOCATOR: spin::Mutex<Option<Heap>> = spin::Mutex::new(None);

/// One active (or free) return-probe instance.
#[repr(C)]
pub struct KretprobeInstance {
    pub(crate) pool: *mut Pool,
    /// Its bit in the pool's free set (bit `i` for `instances[i]`) as a
    /// bit offset from this instance's own address, for the trampoline's
    /// lane: `lock bts [instance], free_bit` gives the
    /// instance back (the pool's words and instances share one allocation
    /// of the 1 MiB arena, well within `bts`'s ±2^31 bits).
    free_bit: isize,
    /// The next older active instance of the same task.
    pub(crate) next: *mut KretprobeInstance,
    pub(crate) return_address: usize,
    pub(crate) stack_slot: usize,
    pub(crate) task: TaskId,
    pub(crate) entry_time: u64,
    pub(crate) data: *mut u8,
    pub(crate) data_len: usize,
}

impl KretprobeInstance {
    /// The real return address (where the probed function returns to).
    pub fn ret_addr(&self) -> usize {
        self.return_address
    }

    /// When the call entered the function (the host's timestamp), so a
    /// return handler can tell how long it took.
    pub fn entry_timestamp(&self) -> u64 {
        self.entry_time
    }

    /// The task that made this call.
    pub fn task(&self) -> TaskId {
        self.task
    }

    /// The stack slot whose return address was replaced.
    pub fn stack_slot(&self) -> usize {
        self.stack_slot
    }

    /// The kretprobe this instance belongs to, unless it was unregistered.
    pub fn kretprobe(&self) -> Option<&'static Kretprobe> {
        // SAFETY: an instance's pool outlives the instance; its `owner` is a
        // `&'static Kretprobe` or null.
        unsafe { (*self.pool).owner.load(Ordering::Acquire).as_ref() }
    }

    /// The private data (`data_size` bytes), written at entry, read at return.
    pub fn data(&mut self) -> &mut [u8] {
        // SAFETY: `data` points at this instance's own `data_len` bytes.
        unsafe { core::slice::from_raw_parts_mut(self.data, self.data_len) }
    }

    /// Stores `value` at the start of the private data.
    ///
    /// Only types without padding or interior mutability can be stored
    /// (zerocopy's `IntoBytes` and `Immutable`; derive them for your own
    /// `#[repr(C)]` structs). Panics if `data_size` is smaller than `T`.
    pub fn store<T: IntoBytes + Immutable>(&mut self, value: T) {
        let data = self.data();
        assert!(core::mem::size_of::<T>() <= data.len(), "kretprobe data_size too small");
        data[..core::mem::size_of::<T>()].copy_from_slice(value.as_bytes());
    }

    /// Loads a value from the start of the private data (as [`store`](Self::store)
    /// left it, or zero bytes if nothing was stored).
    ///
    /// Only types for which every byte pattern is valid can be loaded
    /// (zerocopy's `FromBytes`: integers, arrays of them, `#[repr(C)]`
    /// structs of them), so no bytes can make an invalid `bool`, `char`,
    /// enum or reference. Panics if `data_size` is smaller than `T`.
    pub fn load<T: FromBytes>(&self) -> T {
        // SAFETY: `data` points at this instance's own `data_len` bytes,
        // borrowed shared for as long as `self` is.
        let data = unsafe { core::slice::from_raw_parts(self.data, self.data_len) };
        match T::read_from_prefix(data) {
            Ok((value, _)) => value,
            Err(_) => panic!("kretprobe data_size too small"),
        }
    }
}

/// The instances of one registration.
pub(crate) struct Pool {
    pub owner: AtomicPtr<Kretprobe>,
    /// Which instances are free (`probe_engine_core::freeset`), over
    /// `words`; shared by every CPU, changed only atomically.
    free: FreeSet,
    words: *const AtomicU32,
    instances: *mut KretprobeInstance,
    layout: Layout,
    next_retired: AtomicPtr<Pool>,
}

/// Where the kretprobe trampoline's assembly lane finds what it reads of
/// instances and pools (checked by the compiler: `offset_of!`).
pub(crate) mod layout {
    use super::{KretprobeInstance, Pool};
    use core::mem::{offset_of, size_of};
    const _: () = assert!(size_of::<super::TaskId>() == 4 && size_of::<u64>() == 8);
    /// `KretprobeInstance::pool`.
    pub const INSTANCE_POOL: usize = offset_of!(KretprobeInstance, pool);
    /// `KretprobeInstance::free_bit`: its bit in the pool's free set, as a
    /// bit offset from the instance.
    pub const INSTANCE_FREE_BIT: usize = offset_of!(KretprobeInstance, free_bit);
    /// `KretprobeInstance::next`.
    pub const INSTANCE_NEXT: usize = offset_of!(KretprobeInstance, next);
    /// `KretprobeInstance::return_address`.
    pub const INSTANCE_RETURN_ADDRESS: usize = offset_of!(KretprobeInstance, return_address);
    /// `KretprobeInstance::stack_slot`.
    pub const INSTANCE_STACK_SLOT: usize = offset_of!(KretprobeInstance, stack_slot);
    /// `KretprobeInstance::task`.
    pub const INSTANCE_TASK: usize = offset_of!(KretprobeInstance, task);
    /// `KretprobeInstance::entry_time` (low word first).
    pub const INSTANCE_ENTRY_TIME: usize = offset_of!(KretprobeInstance, entry_time);
    /// Bytes per instance in a pool's `instances`.
    pub const INSTANCE_SIZE: usize = size_of::<KretprobeInstance>();
    /// `Pool::instances`: the first instance.
    pub const POOL_INSTANCES: usize = offset_of!(Pool, instances);
    /// `Pool::owner`: the `&'static Kretprobe`, null once retired.
    pub const POOL_OWNER: usize = offset_of!(Pool, owner);
    /// `Pool::words`: the free set's first word; instance `i` is free when
    /// bit `i` of the bit string starting there is set (`FreeSet`'s layout:
    /// bit `i % 32` of word `i / 32`, which is what x86's `bts` with a
    /// register bit offset addresses).
    pub const POOL_WORDS: usize = offset_of!(Pool, words);
}

impl Pool {
    /// The free set's words.
    fn words(&self) -> &[AtomicU32] {
        // SAFETY: `create` laid out the set's initialised words at `words`,
        // which live as long as the pool.
        unsafe { core::slice::from_raw_parts(self.words, self.free.words()) }
    }

    /// How many instances are out (exact once no take or give back is in
    /// progress).
    fn out(&self) -> usize {
        self.free.out(self.words())
    }
}

static RETIRED: AtomicPtr<Pool> = AtomicPtr::new(ptr::null_mut());

fn arena() -> spin::MutexGuard<'static, Option<Heap>> {
    let mut guard = ALLOCATOR.lock();
    if guard.is_none() {
        let mut heap = Heap::empty();
        // SAFETY: the arena is static, used by nothing else, and initialised
        // once (under this lock).
        unsafe { heap.init((&raw mut ARENA) as *mut u8, ARENA_SIZE) };
        *guard = Some(heap);
    }
    guard
}

/// Frees retired pools whose instances have all come back (every pool on
/// the retired list was synchronized before it was put there; see the
/// module docs).
fn collect_retired(heap: &mut Heap) {
    without_interrupts(|| {
        let mut link = &RETIRED;
        loop {
            let pool = link.load(Ordering::Acquire);
            if pool.is_null() {
                return;
            }
            // SAFETY: retired pools stay allocated until freed right here.
            let (out, next, layout) =
                unsafe { ((*pool).out(), (*pool).next_retired.load(Ordering::Acquire), (*pool).layout) };
            if out == 0 {
                link.store(next, Ordering::Release);
                // SAFETY: allocated from this heap with this layout; no
                // instance is out, and it is no longer on any list.
                unsafe { heap.deallocate(NonNull::new_unchecked(pool as *mut u8), layout) };
            } else {
                // SAFETY: as above.
                link = unsafe { &(*pool).next_retired };
            }
        }
    })
}

/// Allocates a pool of `count` instances with `data_size` bytes each.
pub(crate) fn create(owner: &'static Kretprobe, count: usize, data_size: usize) -> Option<*mut Pool> {
    let mut guard = arena();
    let heap = guard.as_mut().expect("arena initialised");
    collect_retired(heap);
    let header = Layout::new::<Pool>();
    let (with_words, words_at) = header.extend(Layout::array::<AtomicU32>(FreeSet::words_for(count)).ok()?).ok()?;
    let (with_instances, instances_at) = with_words.extend(Layout::array::<KretprobeInstance>(count).ok()?).ok()?;
    let (layout, data_at) = with_instances.extend(Layout::array::<u8>(count.checked_mul(data_size)?).ok()?).ok()?;
    let base = heap.allocate_first_fit(layout.pad_to_align()).ok()?.as_ptr();
    // SAFETY: `base` is a fresh allocation of `layout`: header, then the
    // free set's words, then the instances, then their data, at the
    // offsets `extend` computed; nothing else refers to it yet.
    unsafe {
        let pool = base as *mut Pool;
        let words = base.add(words_at) as *mut AtomicU32;
        let instances = base.add(instances_at) as *mut KretprobeInstance;
        let data = base.add(data_at);
        ptr::write_bytes(data, 0, count * data_size);
        for i in 0..count {
            let instance = instances.add(i);
            // Bits from the instance to bit `i` of the words (`bts` counts
            // bits of the bit string at the address it is given).
            let free_bit = (words as isize - instance as isize) * 8 + i as isize;
            instance.write(KretprobeInstance {
                pool,
                free_bit,
                next: ptr::null_mut(),
                return_address: 0,
                stack_slot: 0,
                task: 0,
                entry_time: 0,
                data: data.add(i * data_size),
                data_len: data_size,
            });
        }
        let word_count = FreeSet::words_for(count);
        for i in 0..word_count {
            words.add(i).write(AtomicU32::new(0));
        }
        let free = FreeSet::new(core::slice::from_raw_parts(words, word_count), count);
        pool.write(Pool {
            owner: AtomicPtr::new(owner as *const Kretprobe as *mut Kretprobe),
            free,
            words,
            instances,
            layout: layout.pad_to_align(),
            next_retired: AtomicPtr::new(ptr::null_mut()),
        });
        Some(pool)
    }
}

/// Detaches a pool from its kretprobe: instances still out run no handler,
/// and the memory is freed once they are all back.
///
/// The caller has made the pool unreachable for new takes (the kretprobe's
/// pool pointer cleared, its entry probe unlinked) and then synchronized
/// every CPU (`Host::sync_cpus`), so no CPU still holds the pool's address
/// on its way to a take: from here on the count of instances out only
/// falls.
pub(crate) fn retire(pool: Quiesced<*mut Pool>) {
    let pool = pool.into_inner();
    let mut guard = arena();
    let heap = guard.as_mut().expect("arena initialised");
    without_interrupts(|| {
        // SAFETY: the pool is live (owned by the registration being undone).
        unsafe {
            (*pool).owner.store(ptr::null_mut(), Ordering::Release);
            (*pool).next_retired.store(RETIRED.load(Ordering::Acquire), Ordering::Release);
        }
        RETIRED.store(pool, Ordering::Release);
    });
    collect_retired(heap);
}

/// Takes a free instance, or `None` if all are out. Lock-free (one word
/// per 32 instances at most), safe
/// from any CPU and from interrupts nested into another take or give back;
/// trap path only.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn get(_cx: &mut TrapContext, pool: *mut Pool) -> Option<NonNull<KretprobeInstance>> {
    // SAFETY: the pool is live: the caller loaded its address from a
    // registered kretprobe with interrupts off, and a pool is freed only
    // after a sync of every CPU that follows its retirement (see the module
    // docs), which this interrupts-off region precedes. Only a shared
    // reference is made: every field the trap path changes is atomic.
    // `instances` holds as many entries as the free set has indices (laid
    // out by `create`), and `take` returns one of those indices.
    unsafe {
        let pool = &*pool;
        let index = pool.free.take(pool.words())?;
        let instance = NonNull::new_unchecked(pool.instances.add(index));
        // The free set handed `index` to this caller alone: nobody else
        // refers to the instance until it is given back.
        (*instance.as_ptr()).next = ptr::null_mut();
        Some(instance)
    }
}

/// Returns an instance to its pool. One atomic bit set, lock-free, safe
/// from any CPU and from nested interrupts; trap path only.
#[unsafe(link_section = ".kprobes.text")]
pub(crate) fn put(_cx: &mut TrapContext, instance: NonNull<KretprobeInstance>) {
    let instance = instance.as_ptr();
    // SAFETY: an instance's pool outlives it: a retired pool is freed only
    // once no instance is out, and the give back below (setting the
    // instance's bit) is its very last access to the pool. The caller owns
    // the instance (taken from its pool, unlinked from every list) and
    // holds no reference to it; the pool is only shared-borrowed, its free
    // set being atomic. `offset_from`: the instance is an element of its
    // pool's `instances`, one allocation (`create`), so both pointers are
    // in it and their distance is a whole number of instances.
    unsafe {
        let pool = &*(*instance).pool;
        let index = instance.offset_from(pool.instances) as usize;
        pool.free.give_back(pool.words(), index);
    }
}

/// Bytes of the pool arena in use (for tests and the shell).
pub fn arena_used() -> usize {
    arena().as_ref().map_or(0, |h| h.used())
}

/// Whether `pool` was retired and is still waiting for instances.
pub(crate) fn retired_pools() -> usize {
    let mut count = 0;
    let mut pool = RETIRED.load(Ordering::Acquire);
    while !pool.is_null() {
        count += 1;
        // SAFETY: retired pools stay allocated while on the list.
        pool = unsafe { (*pool).next_retired.load(Ordering::Acquire) };
    }
    count
}
