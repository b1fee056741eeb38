//! From the loader's jump to the kernel's main: the boot order in one place.
//!
//! `boot/entry.S` sets up a stack and calls `kernel_boot_entry` with the
//! loader's magic and info address. Order matters: serial and the VGA
//! screen first (so anything after can report), then our own GDT and IDT (GRUB's are not to be trusted),
//! boot information (copied out before any memory is used), paging, heap,
//! platform discovery (CPUs and interrupt controllers), symbols, tasks,
//! the device interrupt controller (I/O APIC or PIC), the serial port's
//! receive interrupt and the PS/2 keyboard's, timer, and only then
//! interrupts.
use crate::boot_info;

core::arch::global_asm!(include_str!("../../../boot/entry.S"));

unsafe extern "Rust" {
    /// Defined by [`crate::entry_point!`] in the kernel binary or test kernel.
    fn __kernel_main(boot: &'static boot_info::BootInfo) -> !;
}

/// The first Rust code to run, on the boot stack, interrupts off.
#[unsafe(no_mangle)]
extern "C" fn kernel_boot_entry(magic: u32, info_address: u32) -> ! {
    super::serial::init();
    super::vga::init();
    // SAFETY: boot runs once, single-threaded, interrupts off; each init is
    // called in the order its `# Safety` section asks for. CPU 0 runs task 0.
    unsafe {
        super::percpu::init_block(0, 0);
        super::gdt::init(0, super::trap::double_fault_task_entry);
        super::idt::init();
    }
    let boot = boot_info::parse(magic, info_address);
    // SAFETY: as above; boot information has been copied out, so paging may
    // leave the loader's structures unmapped.
    unsafe { super::paging::init() };
    crate::memory::init();
    super::platform::init(boot);
    crate::symbols::init();
    crate::task::init();
    // SAFETY: the IDT has gates for the PIC and APIC vectors, paging maps
    // the APIC page; interrupts are still off.
    unsafe {
        super::pit::init();
        super::apic::init_this_cpu(true);
    }
    let topology = super::platform::topology();
    let noapic = crate::cmdline::parse(boot.command_line(), |_| {}).noapic;
    // SAFETY: once, interrupts off, after platform discovery and the boot
    // CPU's local APIC; the IDT has gates for vectors 32–47.
    unsafe { super::irq::init(topology, noapic) };
    super::apic::calibrate_timer();
    crate::kprobes::init();
    let mut apic_ids = [0u8; super::percpu::MAX_CPUS];
    let mut count = 0;
    for cpu in topology.cpus().iter().filter(|cpu| cpu.enabled) {
        apic_ids[count] = cpu.apic_id;
        count += 1;
    }
    super::smp::start_application_processors(&apic_ids[..count]);
    // Routed once every CPU's APIC id is known (the boot CPU's too).
    super::serial::enable_receive_interrupt();
    if let Err(error) = super::ps2::init() {
        crate::println!("keyboard: no PS/2 keyboard input ({error:?}); the console reads COM1 only");
    }
    super::apic::start_timer();
    super::cpu::enable_interrupts();
    // SAFETY: the symbol is provided by `entry_point!` in every kernel image.
    unsafe { __kernel_main(boot) }
}
