//! The probe kernel binary: boots, shows what it booted with, and runs the
//! mode the command line selects (demo, bench or shell).
#![no_std]
#![no_main]

use probe_kernel::arch::qemu::{self, ExitCode};
use probe_kernel::arch::x86::irq::Controller;
use probe_kernel::arch::x86::{ps2, vga};
use probe_kernel::boot_info::BootInfo;
use probe_kernel::cmdline::{self, Mode};
use probe_kernel::{print, println};

probe_kernel::entry_point!(main);

fn main(boot: &'static BootInfo) -> ! {
    println!("probe-kernel {}: an i386 kprobes engine", env!("CARGO_PKG_VERSION"));
    println!("booted by {} via {:?}, command line \"{}\"", boot.bootloader_name(), boot.protocol, boot.command_line());
    let cpus = probe_kernel::arch::x86::smp::online_cpus();
    println!("{cpus} CPU{} online", if cpus == 1 { "" } else { "s" });
    let keyboard = if ps2::is_ready() { ", keyboard on IRQ 1" } else { "" };
    match probe_kernel::arch::x86::irq::controller() {
        Some(Controller::IoApic) => {
            println!("device interrupts through the I/O APIC; serial input on IRQ 4{keyboard}, CPU 0")
        }
        _ => println!(
            "device interrupts through the 8259 PIC (noapic, or no I/O APIC); serial input on IRQ 4{keyboard}, CPU 0"
        ),
    }
    println!(
        "console: output to COM1 (115200 8N1){}; input from COM1{}",
        if vga::is_present() { " and the VGA text screen" } else { " (no VGA text screen found)" },
        if ps2::is_ready() { " and the PS/2 keyboard" } else { " (no PS/2 keyboard)" }
    );
    let line = cmdline::parse(boot.command_line(), |word| {
        println!(
            "unknown command-line word \"{word}\" (known: demo, bench, shell, test=NAME, acpi=off, noapic, kprobe_event=...); using the default"
        );
    });
    println!("memory map ({} KiB available):", boot.available_memory() / 1024);
    for region in boot.memory_map() {
        println!("  {:#010x}..{:#010x} {:?}", region.start, region.start + region.length, region.kind);
    }
    println!("boot information reserved at {:#x}..{:#x}", boot.info_range.start, boot.info_range.end);
    let boot_events = line.kprobe_event.map_or(0, |events| {
        let defined = probe_kernel::tracefs::events::boot_events(events);
        println!("kprobe_event: {defined} event(s) defined and enabled (cat /sys/kernel/tracing/trace at the shell)");
        defined
    });
    match line.mode {
        Mode::Demo => {
            probe_kernel::demo::run();
            if boot_events > 0 {
                // What the boot-time events recorded, as `cat trace` shows it.
                print!("{}", probe_kernel::tracefs::read("/sys/kernel/tracing/trace").unwrap_or_default());
            }
        }
        Mode::Bench => {
            probe_kernel::bench::run();
        }
        Mode::Shell => probe_kernel::shell::run(),
    }
    qemu::exit(ExitCode::Success)
}
