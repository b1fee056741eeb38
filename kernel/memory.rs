//! Memory the kernel hands out: the heap (registration-time work only) and
//! instruction slots (executable memory for out-of-line single-step).
//!
//! Both are static regions inside the kernel image, so nothing is carved out
//! of firmware memory and the loader's info structure can never be handed
//! out. The heap serves iced-x86's decoder tables and registration-time
//! bookkeeping. No trap path allocates, and the allocator enforces it: it
//! panics, with a message saying why, when called in probe context (a
//! handler, a step, the trampoline) or when its lock is held with
//! interrupts off (interrupt context that interrupted an allocation — the
//! call could only deadlock).
use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use core::ptr::NonNull;
use linked_list_allocator::Heap;

/// Heap size: iced-x86's decoder tables need about 190 KiB.
pub const HEAP_SIZE: usize = 2 << 20;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut HEAP_ARENA: Arena = Arena([0; HEAP_SIZE]);

/// The kernel heap: a first-fit heap behind a lock, with the trap-path rule
/// checked on every call.
struct KernelHeap(spin::Mutex<Heap>);

#[global_allocator]
static ALLOCATOR: KernelHeap = KernelHeap(spin::Mutex::new(Heap::empty()));

impl KernelHeap {
    /// The heap, or a panic naming the broken rule.
    fn lock(&self, what: &str) -> spin::MutexGuard<'_, Heap> {
        if crate::kprobes::trap_path_active() || crate::kprobes::in_probe_context() {
            panic!("heap {what} in probe context: probe handlers and the trap path must not allocate");
        }
        loop {
            if let Some(heap) = self.0.try_lock() {
                return heap;
            }
            if !crate::arch::cpu::interrupts_enabled() {
                panic!(
                    "heap {what} with interrupts off while the heap lock is held: interrupt context may not allocate"
                );
            }
            core::hint::spin_loop();
        }
    }
}

// SAFETY: every call goes to one `linked_list_allocator::Heap` under its
// lock; `Heap` hands out disjoint blocks of at least the layout's size and
// alignment and takes back exactly what it handed out.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.lock("allocation").allocate_first_fit(layout).map_or(core::ptr::null_mut(), |block| block.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned for
        // `layout` (GlobalAlloc's contract), so it is non-null and ours.
        unsafe { self.lock("deallocation").deallocate(NonNull::new_unchecked(ptr), layout) }
    }
}

/// The heap's address range.
pub fn heap_range() -> core::ops::Range<usize> {
    let start = (&raw const HEAP_ARENA) as usize;
    start..start + HEAP_SIZE
}

/// Bytes of heap in use.
pub fn heap_used() -> usize {
    ALLOCATOR.0.lock().used()
}

/// Sets up the heap. Called once by boot, before anything allocates.
pub fn init() {
    // SAFETY: called once at boot; the arena is static, unused by anything
    // else, and lives for the whole run.
    unsafe { ALLOCATOR.0.lock().init((&raw mut HEAP_ARENA) as *mut u8, HEAP_SIZE) };
}

pub mod slots;

/// `memcpy` as i386 does it best: `rep movsd` for the words, `rep movsb` for
/// the tail. Every struct copy the compiler does not inline lands here,
/// registration's many among them; compiler_builtins' portable version
/// copies a word per eight instructions after a long set-up.
///
/// # Safety
/// The C contract: `dest` and `src` valid for `n` bytes and not overlapping.
#[unsafe(no_mangle)]
#[unsafe(naked)]
#[unsafe(link_section = ".kprobes.text")]
pub unsafe extern "C" fn memcpy(dest: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
    // Stack after the two pushes: [esp+12] dest, [esp+16] src, [esp+20] n.
    // The direction flag is clear (the ABI's rule; the trap entry clears it).
    core::arch::naked_asm!(
        "push edi",
        "push esi",
        "mov edi, [esp + 12]",
        "mov esi, [esp + 16]",
        "mov ecx, [esp + 20]",
        "mov eax, edi",
        "mov edx, ecx",
        "shr ecx, 2",
        "rep movsd",
        "mov ecx, edx",
        "and ecx, 3",
        "rep movsb",
        "pop esi",
        "pop edi",
        "ret",
    );
}

#[cfg(test)]
mod tests {
    #[test_case]
    fn memcpy_copies_every_length_and_alignment() {
        let source: [u8; 80] = core::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(7));
        for from in 0..4 {
            for to in 0..4 {
                for length in 0..70 {
                    let mut destination = [0xeeu8; 80];
                    // SAFETY: both ranges lie inside their 80-byte arrays
                    // (offset < 4, length < 70) and the arrays are distinct.
                    let (to_pointer, from_pointer) =
                        unsafe { (destination.as_mut_ptr().add(to).cast(), source.as_ptr().add(from).cast()) };
                    // SAFETY: as above.
                    let returned = unsafe { super::memcpy(to_pointer, from_pointer, length) };
                    assert_eq!(returned, to_pointer);
                    assert_eq!(&destination[to..to + length], &source[from..from + length], "{from} {to} {length}");
                    assert!(destination[..to].iter().chain(&destination[to + length..]).all(|&b| b == 0xee));
                }
            }
        }
    }
}
