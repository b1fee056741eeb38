//! i386 support: boot, descriptor tables, traps, interrupts, paging, text
//! patching, the serial port, the VGA text screen and the PS/2 keyboard.
//!
//! Routing only; each concern lives in its own file.
pub mod apic;
pub mod boot;
pub mod context;
pub mod cpu;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod irq;
pub mod kprobes;
pub mod paging;
pub mod patch;
pub mod percpu;
pub mod pic;
pub mod pit;
pub mod platform;
pub mod ps2;
pub mod qemu;
pub mod serial;
pub mod smp;
pub mod trap;
pub mod vga;
