//! The memory behind the engine's instruction slots.
//!
//! The engine manages its slots (`probe_engine::slots`); the kernel provides
//! the memory: a static, page-aligned region in `.kprobe_slots`, which the
//! linker script places in a writable, executable section of the image.
pub use probe_engine::slots::{
    DETOUR_COUNT, DETOUR_SIZE, SLOT_COUNT, SLOT_MEMORY_SIZE, SLOT_SIZE, in_use_count, region,
};

#[repr(C, align(4096))]
struct SlotMemory([u8; SLOT_MEMORY_SIZE]);

#[unsafe(link_section = ".kprobe_slots")]
static mut SLOT_MEMORY: SlotMemory = SlotMemory([0xcc; SLOT_MEMORY_SIZE]);

/// The slot memory's address range (what the engine's host hands it).
pub fn memory() -> core::ops::Range<usize> {
    let start = (&raw const SLOT_MEMORY) as usize;
    start..start + SLOT_MEMORY_SIZE
}
