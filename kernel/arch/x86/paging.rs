//! Paging: an identity map of the first 128 MiB with 4 KiB pages, and
//! uncached 4 MiB identity mappings of device memory above it.
//!
//! Kernel text is read-only (CR0.WP makes that bind ring 0 too), page 0 is
//! absent so null dereferences fault, and each stack's guard page is absent
//! so an overflow faults instead of corrupting its neighbour. Everything else
//! is present and writable. The instruction slots live in a writable,
//! executable region (32-bit paging without PAE has no NX bit).
//!
//! Above 128 MiB nothing is mapped until [`map_mmio`] asks for it: the local
//! and I/O APICs and firmware tables live at physical addresses near 4 GiB.
//! Those get 4 MiB pages (CR4.PSE), one page directory entry each, so no page
//! table has to be found for them and the static directory is all the state.
use core::ops::Range;

const PAGE_SIZE: usize = 4096;
const MAPPED_BYTES: usize = 128 << 20;
const TABLES: usize = MAPPED_BYTES / (1024 * PAGE_SIZE);

const PRESENT: u32 = 1 << 0;
const WRITABLE: u32 = 1 << 1;
/// Write-through: with PCD, the strongest uncached type (UC) whatever the MTRRs say.
const WRITE_THROUGH: u32 = 1 << 3;
const CACHE_DISABLE: u32 = 1 << 4;
/// In a directory entry (with CR4.PSE): the entry maps a 4 MiB page itself.
const LARGE_PAGE: u32 = 1 << 7;
const LARGE_PAGE_SIZE: usize = 4 << 20;
/// Set by the CPU on use (accessed, dirty): not part of what an entry maps.
const STATUS_BITS: u32 = (1 << 5) | (1 << 6);
/// CR4.PSE: directory entries with `LARGE_PAGE` map 4 MiB pages.
const CR4_PSE: u32 = 1 << 4;

/// Serializes writers of the directory's large-page entries (several CPUs may
/// map devices once the machine is SMP).
static MMIO_LOCK: spin::Mutex<()> = spin::Mutex::new(());

#[repr(C, align(4096))]
struct PageTable([u32; 1024]);
// `entry_for` indexes the tables as one run of entries.
const _: () = assert!(core::mem::size_of::<PageTable>() == 1024 * 4);

static mut DIRECTORY: PageTable = PageTable([0; 1024]);
static mut TABLES_STORAGE: [PageTable; TABLES] = [const { PageTable([0; 1024]) }; TABLES];

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __kprobes_text_start: u8;
    static __kprobes_text_end: u8;
    static __kernel_start: u8;
    static __kernel_end: u8;
    static __slots_start: u8;
    static __slots_end: u8;
    static boot_stack_guard: u8;
}

/// The kernel's text section (all code), page aligned.
pub fn kernel_text() -> Range<usize> {
    (&raw const __text_start as usize)..(&raw const __text_end as usize)
}

/// The engine's own trap path (`.kprobes.text`): never probeable.
pub fn kprobes_text() -> Range<usize> {
    (&raw const __kprobes_text_start as usize)..(&raw const __kprobes_text_end as usize)
}

/// The whole loaded kernel image.
pub fn kernel_image() -> Range<usize> {
    (&raw const __kernel_start as usize)..(&raw const __kernel_end as usize)
}

/// The writable, executable region that holds instruction slots.
pub fn slot_region() -> Range<usize> {
    (&raw const __slots_start as usize)..(&raw const __slots_end as usize)
}

fn entry_for(address: usize) -> *mut u32 {
    let page = address / PAGE_SIZE;
    // SAFETY: the tables are one array of `[u32; 1024]`s, laid out one
    // after another with no padding, so entry `page` of the whole run is
    // entry `page % 1024` of table `page / 1024`: in bounds for every
    // address below MAPPED_BYTES (callers check). We only form a raw
    // pointer (one add, where indexing table and entry costs a trap path
    // two shifts and masks).
    unsafe { (&raw mut TABLES_STORAGE).cast::<u32>().add(page) }
}

fn directory_entry(index: usize) -> *mut u32 {
    // SAFETY: indexing panics past the directory's 1024 entries; we only
    // form a raw pointer.
    unsafe { &raw mut DIRECTORY.0[index] }
}

fn invalidate(address: usize) {
    // SAFETY: invlpg only drops a TLB entry.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) address, options(nostack, preserves_flags)) };
}

/// Marks the page holding `address` present or absent.
///
/// # Safety
/// Making a page absent faults every later access to it: nothing that is
/// still in use may live there.
pub unsafe fn set_present(address: usize, present: bool) {
    assert!(address < MAPPED_BYTES, "address {address:#x} beyond the identity map");
    let entry = entry_for(address);
    // SAFETY: `entry` points into the static page tables; the caller vouches
    // for the effect on the page's users.
    unsafe {
        if present {
            *entry |= PRESENT;
        } else {
            *entry &= !PRESENT;
        }
    }
    invalidate(address);
}

/// The page directory every CPU runs with (CR3), once [`init`] ran.
pub fn directory() -> u32 {
    (&raw const DIRECTORY) as u32
}

/// Identity-maps the physical range `physical` uncached (PCD and PWT: the UC
/// memory type, as device registers need), readable and writable, so that
/// physical address `a` is then readable at virtual address `a`.
///
/// The part of the range inside the first 128 MiB is left as it is: the
/// identity map already covers it with ordinary write-back pages (firmware
/// tables there are RAM; the MTRRs make the legacy device holes below 1 MiB
/// uncached). Above that, every 4 MiB page the range touches is mapped, so
/// up to 4 MiB − 1 bytes on either side become visible too. Mapping a range
/// again, or one that shares a 4 MiB page with an earlier one, changes
/// nothing (idempotent). Memory mapped here is never unmapped.
///
/// Callable before [`init`] (the entries wait in the page directory, which
/// `init` keeps, and with paging off physical addresses are usable anyway)
/// and after it, from any CPU: an entry only ever goes from absent to
/// present, and processors cache no translation for an absent entry, so no
/// other CPU's TLB has to be flushed. Not from a trap path (it takes a lock).
///
/// Firmware tables (ACPI, the MP table) read through this mapping are
/// correct, only slower to read than cached RAM; they are read once at boot.
pub fn map_mmio(physical: Range<usize>) {
    if physical.end <= physical.start || physical.end <= MAPPED_BYTES {
        return;
    }
    let first = physical.start.max(MAPPED_BYTES) / LARGE_PAGE_SIZE;
    let last = (physical.end - 1) / LARGE_PAGE_SIZE;
    let _guard = MMIO_LOCK.lock();
    for index in first..=last {
        let wanted = (index * LARGE_PAGE_SIZE) as u32 | PRESENT | WRITABLE | WRITE_THROUGH | CACHE_DISABLE | LARGE_PAGE;
        // SAFETY: `index` is at most 1023 (a 32-bit address's top ten bits)
        // and at least TABLES, so the entry is one `init` never writes; the
        // lock makes this the only writer of it. Installing a mapping where
        // none was cannot change the meaning of any address in use: the
        // region was unmapped, so nothing could have been using it.
        unsafe {
            let entry = directory_entry(index);
            match *entry {
                0 => {
                    *entry = wanted;
                    invalidate(index * LARGE_PAGE_SIZE);
                }
                current => {
                    assert_eq!(current & !STATUS_BITS, wanted, "directory entry {index} already maps something else")
                }
            }
        }
    }
}

/// Whether physical (and virtual) `address` is mapped: inside the first
/// 128 MiB (except the pages made absent) or in a page [`map_mmio`] mapped.
pub fn is_mapped(address: usize) -> bool {
    if address < MAPPED_BYTES {
        // SAFETY: `entry_for` is in bounds below MAPPED_BYTES; a plain read
        // of a static page table entry.
        return unsafe { *entry_for(address) } & PRESENT != 0;
    }
    let _guard = MMIO_LOCK.lock();
    // SAFETY: the index is below 1024; the lock excludes `map_mmio`'s writes.
    unsafe { *directory_entry(address / LARGE_PAGE_SIZE) & PRESENT != 0 }
}

/// Whether `address` is present in the first 128 MiB of the identity map
/// (false above it): a check without a lock, for reads from trap context
/// that must not fault (the trace's fetch arguments).
#[inline]
pub fn is_present_ram(address: usize) -> bool {
    // SAFETY: `entry_for` is in bounds below MAPPED_BYTES; a plain read of a
    // static page table entry, which only boot code writes.
    address < MAPPED_BYTES && unsafe { *entry_for(address) } & PRESENT != 0
}

/// Builds the identity map and turns paging, CR0.WP and CR4.PSE on.
///
/// Directory entries [`map_mmio`] wrote before are kept.
///
/// # Safety
/// Call once at boot with interrupts off, after `gdt::init`. All memory the
/// kernel will use must lie in the first 128 MiB or have been mapped with
/// [`map_mmio`].
pub unsafe fn init() {
    // 4 MiB pages need PSE, which every CPU since the Pentium has; say so
    // plainly rather than fault on the first device access.
    assert!(core::arch::x86::__cpuid(1).edx & (1 << 3) != 0, "the CPU lacks PSE (4 MiB pages)");
    let text = kernel_text();
    // SAFETY: boot is single-threaded; the tables are static.
    unsafe {
        for page in 0..MAPPED_BYTES / PAGE_SIZE {
            let address = page * PAGE_SIZE;
            let mut flags = PRESENT | WRITABLE;
            if text.contains(&address) {
                flags &= !WRITABLE;
            }
            if page == 0 {
                flags = 0;
            }
            *entry_for(address) = address as u32 | flags;
        }
        let directory = &raw mut DIRECTORY;
        for (table, entry) in (*directory).0.iter_mut().enumerate().take(TABLES) {
            let address = (&raw const TABLES_STORAGE[table]) as u32;
            *entry = address | PRESENT | WRITABLE;
        }
        *entry_for(&raw const boot_stack_guard as usize) &= !PRESENT;
        for guard in crate::task::guard_pages() {
            *entry_for(guard) &= !PRESENT;
        }

        let cr3 = directory as u32;
        super::gdt::set_double_fault_cr3(cr3);
        core::arch::asm!(
            "mov {tmp}, cr4",
            "or {tmp}, {pse}",
            "mov cr4, {tmp}",
            "mov cr3, {cr3}",
            "mov {tmp}, cr0",
            "or {tmp}, {flags}",
            "mov cr0, {tmp}",
            cr3 = in(reg) cr3,
            tmp = out(reg) _,
            flags = const (1u32 << 31) | (1 << 16), // PG | WP
            pse = const CR4_PSE,
            options(nostack),
        );
    }
}
