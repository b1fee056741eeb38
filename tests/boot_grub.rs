//! Booting through GRUB from the ISO (Multiboot2) on four CPUs gives the
//! kernel what it needs, and every CPU works.
//!
//! Why: `make run` and real machines boot this way (the runner boots every
//! `boot_grub*` test kernel from the ISO), with several CPUs; what the kernel
//! learns from the Multiboot2 information must be right, and the
//! application processors must start from GRUB's machine state as they do
//! from QEMU's own loader.
// run.sh: --smp=4
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

use probe_kernel::boot_info::{self, Protocol, RegionKind};

probe_kernel::test_kernel_main!();

#[test_case]
fn booted_by_grub_via_multiboot2() {
    let boot = boot_info::get().unwrap();
    assert_eq!(boot.protocol, Protocol::Multiboot2);
    assert!(boot.bootloader_name().starts_with("GRUB"), "loader: {}", boot.bootloader_name());
}

#[test_case]
fn memory_map_covers_the_kernel() {
    let boot = boot_info::get().unwrap();
    let image = probe_kernel::arch::x86::paging::kernel_image();
    let holds_kernel = boot.memory_map().iter().any(|r| {
        r.kind == RegionKind::Available && r.start <= image.start as u64 && image.end as u64 <= r.start + r.length
    });
    assert!(holds_kernel, "no available region holds the kernel image {image:x?}");
    // QEMU is started with -m 128M: between 126 and 128 MiB are usable.
    let available = boot.available_memory();
    assert!((126 << 20..=128 << 20).contains(&available), "{available} bytes available");
}

#[test_case]
fn info_structure_is_recorded_and_copied() {
    let boot = boot_info::get().unwrap();
    assert!(boot.info_range.end > boot.info_range.start);
    assert!(!boot.memory_map().is_empty());
}

#[test_case]
fn boot_information_is_not_in_the_heap() {
    let boot = boot_info::get().unwrap();
    let heap = probe_kernel::memory::heap_range();
    assert!(
        boot.info_range.end <= heap.start || boot.info_range.start >= heap.end,
        "info {:x?} overlaps heap {heap:x?}",
        boot.info_range
    );
}

#[test_case]
fn the_rsdp_comes_from_the_acpi_tag() {
    use probe_kernel::arch::x86::platform::{self, CpuEntry, Source};
    // QEMU's BIOS has an ACPI 1.0 RSDP (revision 0): GRUB passes the "old" tag.
    let rsdp = boot_info::get().unwrap().rsdp.expect("no ACPI tag from GRUB");
    assert_eq!((&rsdp.bytes[..8], rsdp.bytes[15], rsdp.from_new_tag), (&b"RSD PTR "[..], 0, false));
    assert_eq!(rsdp.bytes[20..], [0; 16]);
    let topology = platform::topology();
    assert_eq!(topology.source, Source::Acpi);
    let enabled = |apic_id| CpuEntry { apic_id, enabled: true };
    assert_eq!(topology.cpus(), &[enabled(0), enabled(1), enabled(2), enabled(3)]);
}

#[test_case]
fn four_cpus_run_tasks_and_take_probe_hits() {
    use core::sync::atomic::{AtomicUsize, Ordering};
    use probe_kernel::arch::x86::{irq, percpu, smp};
    use probe_kernel::kprobes::{Kprobe, PreAction, PtRegs, register_kprobe, unregister_kprobe};
    assert_eq!(smp::online_cpus(), 4);
    assert_eq!(irq::controller(), Some(irq::Controller::IoApic));

    static HITS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];
    fn count_hit(_probe: &Kprobe, _regs: &mut PtRegs) -> PreAction {
        HITS[percpu::cpu_id()].fetch_add(1, Ordering::Relaxed);
        PreAction::Continue
    }
    #[inline(never)]
    #[unsafe(no_mangle)]
    extern "C" fn boot_grub_probed(x: usize) -> usize {
        core::hint::black_box(x) + 1
    }
    static PROBE: Kprobe = Kprobe::new().symbol("boot_grub_probed", 0).pre_handler(count_hit);
    register_kprobe(&PROBE).unwrap();
    fn calls(_: usize) -> usize {
        let sum: usize = (0..100).map(|i| boot_grub_probed(i)).sum();
        assert_eq!(sum, 5050);
        percpu::cpu_id()
    }
    let tasks: [_; 4] = core::array::from_fn(|cpu| probe_kernel::task::spawn_on(cpu, "calls", calls, 0).unwrap());
    let ran_on = tasks.map(probe_kernel::task::join);
    unregister_kprobe(&PROBE).unwrap();
    assert_eq!(ran_on, [0, 1, 2, 3]);
    assert_eq!(HITS.each_ref().map(|hits| hits.load(Ordering::Relaxed)), [100; 4]);
    assert_eq!(PROBE.nmissed(), 0);
}
