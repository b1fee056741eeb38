//! Symmetric multiprocessing: starting the application processors, the
//! interrupts CPUs send each other, and the cross-CPU synchronisation
//! round that text patching and slot reuse wait for.
//!
//! **Start-up.** The boot CPU copies a small real-mode trampoline to
//! [`TRAMPOLINE_BASE`] (below 1 MiB, as a start-up IPI requires) and, for
//! each CPU the platform lists, fills the trampoline's mailbox (page
//! directory, stack, CPU index, entry point) and sends INIT, then two
//! start-up IPIs (Intel SDM vol. 3, 8.4.4.1; the MP specification's
//! "universal start-up algorithm"). The CPU switches to protected mode and
//! paging in the trampoline, then runs `ap_main` on its idle task's stack
//! (with a guard page below it, like every task stack): its own GDT, TSS,
//! double-fault task and GS per-CPU block (`gdt`, `percpu`), the shared
//! IDT, its local APIC and timer, and finally the scheduler's idle loop,
//! from which it picks up tasks. CPUs start one at a time, so one mailbox
//! serves them all.
//!
//! **Synchronisation.** [`sync_cpus`] interrupts every other online CPU and
//! waits until each has acknowledged. A CPU can take that interrupt only
//! with interrupts on, i.e. outside every interrupts-off region, so outside
//! the probe engine's trap path; the handler executes a serializing
//! instruction (so code written before the round is fetched anew) and
//! records where it found the CPU ([`sync_found_in`]). This is Linux's
//! `text_poke_sync` and, for a kernel whose trap path never sleeps, its
//! `synchronize_rcu` too. A CPU halted in its idle loop is skipped, as RCU
//! treats an idle CPU as quiescent: it is outside every trap path, and it
//! can run again only through an interrupt entry, which marks it running
//! (with a full barrier) and serializes before any handler
//! (`percpu::idle_halt`); the round reads the marks after a full barrier
//! of its own, so a CPU it skips cannot have fetched text or looked at a
//! table from before the round without being marked running by then.
//! Waking idle CPUs only to acknowledge cost, under `-icount`, most of a
//! registration on four CPUs.
use super::percpu::{self, MAX_CPUS};
use super::{apic, cpu, gdt, idt, paging};
use crate::arch::TrapFrame;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

/// Physical address of the start-up trampoline (page 8, start-up vector 0x08).
pub const TRAMPOLINE_BASE: usize = 0x8000;

/// CPUs running now (the boot CPU counts from the start).
static ONLINE: AtomicUsize = AtomicUsize::new(1);
/// Each online CPU's local APIC id, by CPU index.
static APIC_IDS: [AtomicU32; MAX_CPUS] = [const { AtomicU32::new(0) }; MAX_CPUS];
/// Set by a starting CPU once it runs on its own tables.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The generation of the latest synchronisation round, and each CPU's
/// acknowledgement of one.
static SYNC_GENERATION: AtomicUsize = AtomicUsize::new(0);
static SYNC_ACK: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
/// One round at a time.
static SYNC_BUSY: AtomicBool = AtomicBool::new(false);

/// How many CPUs run now.
#[inline(always)]
pub fn online_cpus() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// The local APIC id of online CPU `cpu`.
pub fn apic_id_of(cpu: usize) -> u8 {
    APIC_IDS[cpu].load(Ordering::Relaxed) as u8
}

core::arch::global_asm!(
    r#"
    .pushsection .rodata.ap_trampoline, "a"
    .global ap_trampoline_start
    .global ap_trampoline_end
    .global ap_mailbox_cr3
    .global ap_mailbox_stack
    .global ap_mailbox_cpu
    .global ap_mailbox_entry
    .code16
ap_trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (ap_gdtr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, ${base} + (ap_protected - ap_trampoline_start)
    .code32
ap_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %fs
    movw %ax, %gs
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x10, %eax
    movl %eax, %cr4
    movl {base} + (ap_mailbox_cr3 - ap_trampoline_start), %eax
    movl %eax, %cr3
    movl %cr0, %eax
    orl $0x80010000, %eax
    movl %eax, %cr0
    movl {base} + (ap_mailbox_stack - ap_trampoline_start), %esp
    xorl %ebp, %ebp
    pushl {base} + (ap_mailbox_cpu - ap_trampoline_start)
    pushl $0
    jmp *{base} + (ap_mailbox_entry - ap_trampoline_start)
    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
ap_gdtr:
    .word 23
    .long {base} + (ap_gdt - ap_trampoline_start)
    .balign 4
ap_mailbox_cr3: .long 0
ap_mailbox_stack: .long 0
ap_mailbox_cpu: .long 0
ap_mailbox_entry: .long 0
ap_trampoline_end:
    .popsection
"#,
    base = const TRAMPOLINE_BASE,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_mailbox_cr3: u8;
    static ap_mailbox_stack: u8;
    static ap_mailbox_cpu: u8;
    static ap_mailbox_entry: u8;
}

/// Where a mailbox field of the trampoline lands in its low-memory copy.
fn mailbox(field: *const u8) -> *mut u32 {
    (TRAMPOLINE_BASE + (field as usize - &raw const ap_trampoline_start as usize)) as *mut u32
}

/// Starts every CPU in `apic_ids` other than the boot CPU, one at a time,
/// and returns how many CPUs are online. A CPU that does not check in within
/// 100 ms is reported and skipped. Boot CPU, interrupts off, after paging,
/// the IDT, the boot CPU's local APIC and the task table are set up.
pub fn start_application_processors(apic_ids: &[u8]) -> usize {
    let boot_apic = apic::id();
    APIC_IDS[0].store(boot_apic as u32, Ordering::Relaxed);
    let start = &raw const ap_trampoline_start as usize;
    let size = &raw const ap_trampoline_end as usize - start;
    assert!(size <= 4096, "the AP trampoline outgrew its page");
    // SAFETY: page 8 of low memory is identity-mapped, writable and used by
    // nothing else (below the kernel image and the loaders' structures, which
    // boot_info copied out); the source is the trampoline's image in rodata.
    unsafe { core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE_BASE as *mut u8, size) };
    for &apic_id in apic_ids.iter().filter(|&&id| id != boot_apic) {
        let cpu = online_cpus();
        if cpu == MAX_CPUS {
            crate::println!("smp: more than {MAX_CPUS} CPUs; the rest stay halted");
            break;
        }
        // SAFETY: CPU `cpu` has not started, so nobody reads its block; the
        // mailbox fields are inside the copied trampoline page, read by the
        // starting CPU only after the start-up IPI below.
        unsafe {
            percpu::init_block(cpu, crate::task::idle_task_id(cpu));
            mailbox(&raw const ap_mailbox_cr3).write_volatile(paging::directory());
            mailbox(&raw const ap_mailbox_stack).write_volatile(crate::task::idle_stack_top(cpu) as u32);
            mailbox(&raw const ap_mailbox_cpu).write_volatile(cpu as u32);
            mailbox(&raw const ap_mailbox_entry).write_volatile(ap_main as extern "C" fn(usize) -> ! as usize as u32);
        }
        STARTED.store(false, Ordering::Release);
        APIC_IDS[cpu].store(apic_id as u32, Ordering::Relaxed);
        let page = (TRAMPOLINE_BASE >> 12) as u8;
        apic::send_init(apic_id);
        super::pit::delay_us(10_000);
        for _ in 0..2 {
            apic::send_startup(apic_id, page);
            super::pit::delay_us(200);
            if STARTED.load(Ordering::Acquire) {
                break;
            }
        }
        let mut waited = 0;
        while !STARTED.load(Ordering::Acquire) && waited < 100 {
            super::pit::delay_us(1000);
            waited += 1;
        }
        if STARTED.load(Ordering::Acquire) {
            ONLINE.store(cpu + 1, Ordering::Release);
        } else {
            crate::println!("smp: the CPU with APIC id {apic_id} did not start");
        }
    }
    online_cpus()
}

/// An application processor's first Rust code, on its idle task's stack,
/// interrupts off, paging (with CR4.PSE, for the directory's 4 MiB device pages) on with
/// the kernel's directory, flat segments.
extern "C" fn ap_main(cpu: usize) -> ! {
    // SAFETY: this CPU's start-up, in the order each init asks for: its GDT
    // (and GS) first, the shared IDT, then its local APIC; nothing here can
    // be interrupted (IF is clear since the trampoline's cli).
    unsafe {
        gdt::init(cpu, super::trap::double_fault_task_entry);
        idt::load();
        apic::init_this_cpu(false);
    }
    STARTED.store(true, Ordering::Release);
    apic::start_timer();
    crate::task::run_idle(cpu)
}

/// Interrupts every other online CPU and waits until each has taken the
/// interrupt, serialized and acknowledged (see the module docs). Task
/// context with interrupts on; with one CPU online it returns at once.
pub fn sync_cpus() {
    let online = online_cpus();
    if online == 1 {
        return;
    }
    assert!(cpu::interrupts_enabled(), "sync_cpus with interrupts off would deadlock");
    while SYNC_BUSY.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        core::hint::spin_loop();
    }
    let generation = SYNC_GENERATION.fetch_add(1, Ordering::AcqRel) + 1;
    // Everything the caller wrote (text, unpublished tables) is visible to
    // every CPU before the halted marks are read: x86 lets a load pass an
    // earlier store, so a full barrier.
    core::sync::atomic::fence(Ordering::SeqCst);
    // The sender passes a quiescent point by running this task code
    // (interrupts on, outside the trap path); we may migrate while waiting,
    // so "every other CPU" means every CPU but the one that sent.
    let mut interrupted = [false; MAX_CPUS];
    let sender = cpu::without_interrupts(|| {
        let sender = percpu::cpu_id();
        // The sender is found here, in task code outside every slot: what
        // an earlier round recorded for this CPU (when another task ran on
        // it, perhaps inside a slot) is stale now and must not keep that
        // slot from reuse.
        percpu::block(sender).sync_eip.store(0, Ordering::Release);
        for (other, interrupt) in interrupted.iter_mut().enumerate().take(online) {
            if other == sender {
                continue;
            }
            if percpu::block(other).idle_halted.load(Ordering::SeqCst) {
                // Halted in its idle loop since before the barrier: outside
                // every trap path, and it can run again only through an
                // interrupt entry, which serializes before any handler
                // (`percpu::leave_idle_halt`). Already synchronized.
                percpu::block(other).sync_eip.store(0, Ordering::Release);
            } else {
                apic::send_ipi(apic_id_of(other), apic::vector::SYNC);
                *interrupt = true;
            }
        }
        sender
    });
    for (other, ack) in SYNC_ACK.iter().enumerate().take(online) {
        if other == sender || !interrupted[other] {
            continue;
        }
        while ack.load(Ordering::Acquire) < generation {
            core::hint::spin_loop();
        }
    }
    SYNC_BUSY.store(false, Ordering::Release);
}

/// Whether the last synchronisation round found some CPU executing inside
/// `range` (it will resume there).
pub fn sync_found_in(range: &core::ops::Range<usize>) -> bool {
    (0..online_cpus()).any(|cpu| range.contains(&percpu::block(cpu).sync_eip.load(Ordering::Acquire)))
}

/// Wakes the other CPUs' idle loops to look for work (a task became
/// runnable). Nothing to do on one CPU.
pub fn wake_idle_cpus() {
    if online_cpus() > 1 {
        apic::send_ipi_all_but_self(apic::vector::RESCHEDULE);
    }
}

/// Stops every other CPU (a fatal report is being printed): each halts
/// with interrupts off for good.
pub fn stop_other_cpus() {
    if online_cpus() > 1 {
        apic::send_ipi_all_but_self(apic::vector::STOP);
    }
}

/// The local APIC's vectors (timer, IPIs, spurious), from the trap dispatcher.
#[unsafe(link_section = ".kprobes.text")]
pub fn handle_apic_interrupt(vector: u8, frame: &mut TrapFrame) {
    match vector {
        apic::vector::TIMER => {
            let outer = crate::task::interrupt_enter(frame.eip as usize);
            apic::eoi();
            crate::task::timer_tick();
            crate::task::interrupt_leave(outer);
        }
        apic::vector::SYNC => {
            apic::eoi();
            cpu::serialize();
            let me = percpu::cpu_id();
            percpu::this_cpu().sync_eip.store(frame.eip as usize, Ordering::Release);
            SYNC_ACK[me].store(SYNC_GENERATION.load(Ordering::Acquire), Ordering::Release);
        }
        apic::vector::RESCHEDULE => {
            let outer = crate::task::interrupt_enter(frame.eip as usize);
            apic::eoi();
            crate::task::reschedule_idle();
            crate::task::interrupt_leave(outer);
        }
        apic::vector::STOP => cpu::halt_forever(),
        apic::vector::SPURIOUS => {} // never acknowledged (SDM 11.9)
        _ => apic::eoi(),
    }
}
