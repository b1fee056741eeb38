//! From the loader's jump to the kernel's main: the boot order in one place.
//!
//! `boot/entry.S` sets up a stack and calls `kernel_boot_entry` with the
//! loader's magic and info address. Order matters: serial first (so anything
//! after can report), then our own GDT and IDT (GRUB's are not to be trusted),
//! boot information (copied out before any memory is used), paging, heap,
//! symbols, tasks, timer, and only then interrupts.
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
    crate::symbols::init();
    crate::task::init();
    // SAFETY: the IDT has gates for the PIC and APIC vectors, paging maps
    // the APIC page; interrupts are still off.
    unsafe {
        super::pic::init();
        super::pit::init();
        super::apic::init_this_cpu(true);
    }
    super::apic::calibrate_timer();
    crate::kprobes::init();
    let (ids, count) = fw_cfg_cpus();
    super::smp::start_application_processors(&ids[..count]);
    super::apic::start_timer();
    super::cpu::enable_interrupts();
    // SAFETY: the symbol is provided by `entry_point!` in every kernel image.
    unsafe { __kernel_main(boot) }
}

/// The CPUs QEMU's fw_cfg device reports (APIC ids 0..N).
fn fw_cfg_cpus() -> ([u8; super::percpu::MAX_CPUS], usize) {
    // SAFETY: QEMU's fw_cfg selector and data ports; reading key 0x05
    // (FW_CFG_NB_CPUS, 16 bits little-endian) has no side effects.
    let count = unsafe {
        x86::io::outw(0x510, 0x05);
        let low = x86::io::inb(0x511) as usize;
        let high = x86::io::inb(0x511) as usize;
        low | high << 8
    };
    let count = if count == 0 || count > 255 { 1 } else { count.min(super::percpu::MAX_CPUS) };
    (core::array::from_fn(|i| i as u8), count)
}
