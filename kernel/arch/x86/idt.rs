//! The IDT, shared by every CPU: interrupt gates for the 32 exceptions, the
//! 16 PIC IRQs and the local APIC's vectors (48–63), and a task gate for the
//! double fault (each CPU's GDT resolves it to its own double-fault task).
//!
//! Interrupt gates (not trap gates) everywhere: handlers start with IF clear,
//! which the probe engine relies on (a kprobe's handlers and single-step must
//! not be preempted). The double fault gets a task gate so that it runs on a
//! known-good stack even when the fault was a kernel stack overflow (i386 has
//! no IST).
use super::gdt::{DOUBLE_FAULT_TSS, KERNEL_CODE};
use super::trap::{STUBS, vector};
use core::mem::size_of;

const ENTRIES: usize = 256;
const INTERRUPT_GATE: u64 = 0x8e; // present, DPL 0, 32-bit interrupt gate
const TASK_GATE: u64 = 0x85; // present, DPL 0, task gate

static mut IDT: [u64; ENTRIES] = [0; ENTRIES];

fn interrupt_gate(handler: usize) -> u64 {
    let offset = handler as u64;
    (offset & 0xffff) | ((KERNEL_CODE as u64) << 16) | (INTERRUPT_GATE << 40) | ((offset >> 16) << 48)
}

fn task_gate(selector: u16) -> u64 {
    ((selector as u64) << 16) | (TASK_GATE << 40)
}

/// Fills and loads the IDT.
///
/// # Safety
/// Call once at boot, after `gdt::init` (the gates name its selectors), with
/// interrupts off.
pub unsafe fn init() {
    // SAFETY: single-threaded boot; the table is static and outlives its use.
    unsafe {
        let idt = &raw mut IDT;
        for (vector, stub) in STUBS.iter().enumerate() {
            (*idt)[vector] = interrupt_gate(*stub as usize);
        }
        (*idt)[vector::DOUBLE_FAULT as usize] = task_gate(DOUBLE_FAULT_TSS);
        let pointer = x86::dtables::DescriptorTablePointer::<u64> {
            limit: (size_of::<[u64; ENTRIES]>() - 1) as u16,
            base: idt as *const u64,
        };
        x86::dtables::lidt(&pointer);
    }
}

/// Loads the (already filled) IDT on an application processor.
///
/// # Safety
/// Call once per application processor, after its `gdt::init`, with
/// interrupts off, and only after the boot CPU's [`init`].
pub unsafe fn load() {
    let pointer = x86::dtables::DescriptorTablePointer::<u64> {
        limit: (size_of::<[u64; ENTRIES]>() - 1) as u16,
        base: (&raw const IDT) as *const u64,
    };
    // SAFETY: the table was filled by `init` and is never written again.
    unsafe { x86::dtables::lidt(&pointer) };
}
