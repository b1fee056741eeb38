//! Memory the kernel hands out: the heap (registration-time work only) and
//! instruction slots (executable memory for out-of-line single-step).
//!
//! Both are static regions inside the kernel image, so nothing is carved out
//! of firmware memory and the loader's info structure can never be handed
//! out. The heap serves iced-x86's decoder tables and registration-time
//! bookkeeping; no trap path allocates (the allocator takes a lock).
use linked_list_allocator::LockedHeap;

/// Heap size: iced-x86's decoder tables need about 190 KiB.
pub const HEAP_SIZE: usize = 2 << 20;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut HEAP_ARENA: Arena = Arena([0; HEAP_SIZE]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// The heap's address range.
pub fn heap_range() -> core::ops::Range<usize> {
    let start = (&raw const HEAP_ARENA) as usize;
    start..start + HEAP_SIZE
}

/// Bytes of heap in use.
pub fn heap_used() -> usize {
    ALLOCATOR.lock().used()
}

/// Sets up the heap. Called once by boot, before anything allocates.
pub fn init() {
    // SAFETY: called once at boot; the arena is static, unused by anything
    // else, and lives for the whole run.
    unsafe { ALLOCATOR.lock().init((&raw mut HEAP_ARENA) as *mut u8, HEAP_SIZE) };
}

pub mod slots;
