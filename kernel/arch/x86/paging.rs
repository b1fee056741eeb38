//! Paging: an identity map of the first 128 MiB with 4 KiB pages.
//!
//! Kernel text is read-only (CR0.WP makes that bind ring 0 too), page 0 is
//! absent so null dereferences fault, and each stack's guard page is absent
//! so an overflow faults instead of corrupting its neighbour. Everything else
//! is present and writable. The instruction slots live in a writable,
//! executable region (32-bit paging without PAE has no NX bit).
use core::ops::Range;

const PAGE_SIZE: usize = 4096;
const MAPPED_BYTES: usize = 128 << 20;
const TABLES: usize = MAPPED_BYTES / (1024 * PAGE_SIZE);

const PRESENT: u32 = 1 << 0;
const WRITABLE: u32 = 1 << 1;
const WRITE_THROUGH: u32 = 1 << 3;
const CACHE_DISABLE: u32 = 1 << 4;

/// The 4 MiB of physical address space holding the I/O APIC (0xfec00000)
/// and the local APIC (0xfee00000), identity-mapped uncached.
const APIC_WINDOW: usize = 0xfec0_0000;

#[repr(C, align(4096))]
struct PageTable([u32; 1024]);

static mut DIRECTORY: PageTable = PageTable([0; 1024]);
static mut TABLES_STORAGE: [PageTable; TABLES] = [const { PageTable([0; 1024]) }; TABLES];
static mut APIC_TABLE: PageTable = PageTable([0; 1024]);

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
    // SAFETY: the index is in bounds for every address below MAPPED_BYTES
    // (asserted by callers); we only form a raw pointer.
    unsafe { &raw mut TABLES_STORAGE[page / 1024].0[page % 1024] }
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

/// Builds the identity map and turns paging and CR0.WP on.
///
/// # Safety
/// Call once at boot with interrupts off, after `gdt::init`. All memory the
/// kernel will use must lie in the first 128 MiB.
pub unsafe fn init() {
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
        let apic_table = &raw mut APIC_TABLE;
        for (page, entry) in (*apic_table).0.iter_mut().enumerate() {
            *entry = (APIC_WINDOW + page * PAGE_SIZE) as u32 | PRESENT | WRITABLE | WRITE_THROUGH | CACHE_DISABLE;
        }
        (*directory).0[APIC_WINDOW >> 22] = apic_table as u32 | PRESENT | WRITABLE;
        *entry_for(&raw const boot_stack_guard as usize) &= !PRESENT;
        for guard in crate::task::guard_pages() {
            *entry_for(guard) &= !PRESENT;
        }

        let cr3 = directory as u32;
        super::gdt::set_double_fault_cr3(cr3);
        core::arch::asm!(
            "mov cr3, {cr3}",
            "mov {tmp}, cr0",
            "or {tmp}, {flags}",
            "mov cr0, {tmp}",
            cr3 = in(reg) cr3,
            tmp = out(reg) _,
            flags = const (1u32 << 31) | (1 << 16), // PG | WP
            options(nostack),
        );
    }
}
