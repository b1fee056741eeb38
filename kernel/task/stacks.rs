//! Task stacks: static 16 KiB stacks, each above an unmapped 4 KiB guard page.
//!
//! Without a heap every stack is carved out of one static array. The guard
//! page below each stack is left unmapped by paging (through [`guard_pages`]),
//! so running off the bottom faults — and, because the CPU cannot push the
//! page-fault frame there either, becomes a double fault that the double-fault
//! task reports — instead of silently overwriting the neighbouring stack.
//! [`stack_of_address`] answers "which kernel stack is this address on" for
//! the unwinder and the double-fault report.
use super::TaskId;
use super::table::TABLE_SIZE;
use core::ops::Range;

/// Bytes of stack per spawned task.
pub const STACK_SIZE: usize = 16 * 1024;
/// Bytes of the unmapped guard region below each task stack (one page).
pub const GUARD_SIZE: usize = 4096;

/// One spawned task's memory: its guard page, then its stack (growing down
/// towards the guard). Page aligned so the guard is exactly one page.
#[repr(C, align(4096))]
struct TaskStack {
    guard: [u8; GUARD_SIZE],
    stack: [u8; STACK_SIZE],
}
const _: () = assert!(core::mem::size_of::<TaskStack>() == GUARD_SIZE + STACK_SIZE);

/// Stacks of tasks 1..TABLE_SIZE, idle tasks included (task 0 runs on the
/// boot stack). Only ever
/// accessed through raw pointers: a stack belongs to the task running on it.
static mut STACKS: [TaskStack; TABLE_SIZE - 1] =
    [const { TaskStack { guard: [0; GUARD_SIZE], stack: [0; STACK_SIZE] } }; TABLE_SIZE - 1];

fn slot_base(id: TaskId) -> usize {
    assert!((1..TABLE_SIZE).contains(&id), "task {id} has no stack of its own");
    (&raw const STACKS) as usize + (id - 1) * core::mem::size_of::<TaskStack>()
}

/// The guard pages below every task stack; paging unmaps them at boot.
/// (The boot stack's own guard, `boot_stack_guard`, is handled by paging.)
pub fn guard_pages() -> impl Iterator<Item = usize> {
    (1..TABLE_SIZE).map(slot_base)
}

/// The stack of task `id` (1..TABLE_SIZE): `bottom..top`, the guard page
/// lying just below `bottom`.
pub fn task_stack(id: TaskId) -> Range<usize> {
    let bottom = slot_base(id) + GUARD_SIZE;
    bottom..bottom + STACK_SIZE
}

/// The stack of task `id` as memory to lay out a first frame in.
///
/// # Safety
/// Nothing may be running on (or otherwise using) that stack for the
/// lifetime of the returned slice: its slot must be free.
pub(super) unsafe fn task_stack_memory(id: TaskId) -> &'static mut [u8] {
    let range = task_stack(id);
    // SAFETY: the range lies inside the static `STACKS` (so it is valid,
    // mapped memory — the guard page is excluded) and the caller guarantees
    // nobody else uses it while the slice lives.
    unsafe { core::slice::from_raw_parts_mut(range.start as *mut u8, STACK_SIZE) }
}

/// The boot stack (`boot_stack_bottom..boot_stack_top` in `boot/entry.S`).
fn boot_stack() -> Range<usize> {
    unsafe extern "C" {
        static boot_stack_bottom: u8;
        static boot_stack_top: u8;
    }
    (&raw const boot_stack_bottom as usize)..(&raw const boot_stack_top as usize)
}

/// The stack holding `address`, if it is on a kernel stack: the boot stack,
/// a task stack (free or not: all of them stay mapped), or the double-fault
/// stack. Guard pages are on no stack.
pub fn stack_of_address(address: usize) -> Option<Range<usize>> {
    let boot = boot_stack();
    if boot.contains(&address) {
        return Some(boot);
    }
    if let Some(double_fault) = crate::arch::x86::gdt::double_fault_stack_of(address) {
        return Some(double_fault);
    }
    let first = slot_base(1);
    let slot_size = core::mem::size_of::<TaskStack>();
    if address < first || address >= first + (TABLE_SIZE - 1) * slot_size {
        return None;
    }
    let stack = task_stack(1 + (address - first) / slot_size);
    stack.contains(&address).then_some(stack)
}
