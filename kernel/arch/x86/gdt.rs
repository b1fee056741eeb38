//! The kernel's GDTs, one per CPU: flat code and data, a TSS, a
//! double-fault TSS, and the CPU's per-CPU data segment.
//!
//! GRUB's GDT is not guaranteed valid, so boot loads the boot CPU's first
//! and reloads every segment register; each application processor loads its
//! own when it starts. Every GDT has the same layout, so one shared IDT
//! works on all CPUs: its double-fault task gate names selector
//! [`DOUBLE_FAULT_TSS`], which each CPU resolves to its own double-fault
//! task, with its own stack (Linux's i386 kernel has per-CPU GDTs for the
//! same reason). Everything runs in ring 0; the main TSS exists because a
//! hardware task switch (the double-fault task gate) needs a current task to
//! save the faulting state into, which is exactly what the double-fault
//! report then reads.
//!
//! [`PER_CPU`] is a data segment whose base is the CPU's
//! [`PerCpu`](super::percpu::PerCpu) block: GS holds it on every CPU and is
//! never changed, so the CPU's id and running task are one GS-relative load
//! from any context, trap handlers included.
use super::percpu::{self, MAX_CPUS, PerCpu};
use core::arch::asm;
use core::mem::size_of;

/// Kernel code selector.
pub const KERNEL_CODE: u16 = 0x08;
/// Kernel data selector.
pub const KERNEL_DATA: u16 = 0x10;
/// The TSS of everything that is not the double-fault task.
pub const MAIN_TSS: u16 = 0x18;
/// The double-fault task's TSS (target of IDT vector 8's task gate).
pub const DOUBLE_FAULT_TSS: u16 = 0x20;
/// The per-CPU data segment (GS).
pub const PER_CPU: u16 = 0x28;

const ENTRIES: usize = 6;

/// A 32-bit task-state segment (Intel SDM vol. 3, figure 8-2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Tss {
    pub link: u32,
    pub esp0: u32,
    pub ss0: u32,
    pub esp1: u32,
    pub ss1: u32,
    pub esp2: u32,
    pub ss2: u32,
    pub cr3: u32,
    pub eip: u32,
    pub eflags: u32,
    pub eax: u32,
    pub ecx: u32,
    pub edx: u32,
    pub ebx: u32,
    pub esp: u32,
    pub ebp: u32,
    pub esi: u32,
    pub edi: u32,
    pub es: u32,
    pub cs: u32,
    pub ss: u32,
    pub ds: u32,
    pub fs: u32,
    pub gs: u32,
    pub ldt: u32,
    /// Low half: debug-trap flag; high half: I/O map base.
    pub trap_iomap: u32,
}
const _: () = assert!(size_of::<Tss>() == 104);

const DOUBLE_FAULT_STACK_SIZE: usize = 16 * 1024;

#[repr(C, align(16))]
struct Stack([u8; DOUBLE_FAULT_STACK_SIZE]);

static mut GDT: [[u64; ENTRIES]; MAX_CPUS] = [[0; ENTRIES]; MAX_CPUS];
static mut MAIN_TSS_STATE: [Tss; MAX_CPUS] = [Tss::zeroed(); MAX_CPUS];
static mut DOUBLE_FAULT_TSS_STATE: [Tss; MAX_CPUS] = [Tss::zeroed(); MAX_CPUS];
static mut DOUBLE_FAULT_STACK: [Stack; MAX_CPUS] = [const { Stack([0; DOUBLE_FAULT_STACK_SIZE]) }; MAX_CPUS];
/// The page directory double-fault tasks run with (set once paging is on).
static mut DOUBLE_FAULT_CR3: u32 = 0;

impl Tss {
    const fn zeroed() -> Self {
        Tss {
            link: 0,
            esp0: 0,
            ss0: 0,
            esp1: 0,
            ss1: 0,
            esp2: 0,
            ss2: 0,
            cr3: 0,
            eip: 0,
            eflags: 0,
            eax: 0,
            ecx: 0,
            edx: 0,
            ebx: 0,
            esp: 0,
            ebp: 0,
            esi: 0,
            edi: 0,
            es: 0,
            cs: 0,
            ss: 0,
            ds: 0,
            fs: 0,
            gs: 0,
            ldt: 0,
            trap_iomap: 0,
        }
    }
}

/// A flat 4 GiB segment descriptor with the given access byte.
const fn flat_segment(access: u8) -> u64 {
    // limit 0xfffff, granularity 4 KiB, 32-bit (flags 0xc)
    0x000f_0000_0000_ffff | (0xc << 52) | ((access as u64) << 40)
}

/// A byte-granular 32-bit data segment over `size` bytes at `base`.
fn data_segment(base: usize, size: usize) -> u64 {
    let (base, limit) = (base as u64, (size - 1) as u64);
    (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x92 << 40) // present, ring 0, data, writable
        | (((limit >> 16) & 0xf) << 48)
        | (0x4 << 52) // 32-bit, byte granular
        | (((base >> 24) & 0xff) << 56)
}

/// An available 32-bit TSS descriptor.
fn tss_descriptor(tss: *const Tss) -> u64 {
    let base = tss as u64;
    let limit = (size_of::<Tss>() - 1) as u64;
    (limit & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x89 << 40) // present, DPL 0, type 9 (32-bit TSS, available)
        | (((limit >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56)
}

/// Loads CPU `cpu`'s GDT and task register and reloads every segment
/// register, GS with the CPU's [`PerCpu`] block.
///
/// # Safety
/// Call once per CPU, on that CPU, with interrupts off, before it loads the
/// IDT: at boot for CPU 0, first thing in an application processor's start.
/// `percpu::init_block(cpu)` must have filled the CPU's block.
pub unsafe fn init(cpu: usize, double_fault_entry: unsafe extern "C" fn() -> !) {
    assert!(cpu < MAX_CPUS);
    // SAFETY: each CPU writes only its own entries of these arrays, once,
    // before anything (the CPU itself included) uses them; the statics
    // outlive every use.
    unsafe {
        let df = &raw mut DOUBLE_FAULT_TSS_STATE[cpu];
        let stack_top = (&raw mut DOUBLE_FAULT_STACK[cpu]) as u32 + DOUBLE_FAULT_STACK_SIZE as u32;
        (*df).eip = double_fault_entry as usize as u32;
        (*df).esp = stack_top;
        (*df).ss = KERNEL_DATA as u32;
        (*df).ds = KERNEL_DATA as u32;
        (*df).es = KERNEL_DATA as u32;
        (*df).fs = KERNEL_DATA as u32;
        (*df).gs = PER_CPU as u32;
        (*df).cs = KERNEL_CODE as u32;
        (*df).cr3 = DOUBLE_FAULT_CR3;
        (*df).eflags = 0x2; // reserved bit 1; IF clear
        (*df).trap_iomap = (size_of::<Tss>() as u32) << 16;
        MAIN_TSS_STATE[cpu].trap_iomap = (size_of::<Tss>() as u32) << 16;

        let gdt = &raw mut GDT[cpu];
        (*gdt)[1] = flat_segment(0x9a); // present, ring 0, code, readable
        (*gdt)[2] = flat_segment(0x92); // present, ring 0, data, writable
        (*gdt)[3] = tss_descriptor(&raw const MAIN_TSS_STATE[cpu]);
        (*gdt)[4] = tss_descriptor(&raw const DOUBLE_FAULT_TSS_STATE[cpu]);
        (*gdt)[5] = data_segment(percpu::block_address(cpu), size_of::<PerCpu>());

        let pointer = x86::dtables::DescriptorTablePointer::<u64> {
            limit: (size_of::<[u64; ENTRIES]>() - 1) as u16,
            base: gdt as *const u64,
        };
        x86::dtables::lgdt(&pointer);
        asm!(
            "mov ds, {data:x}", "mov es, {data:x}", "mov fs, {data:x}",
            "mov gs, {gs:x}", "mov ss, {data:x}",
            "push {code}", "lea {tmp}, [2f]", "push {tmp}", "retf", "2:",
            data = in(reg) KERNEL_DATA as u32,
            gs = in(reg) PER_CPU as u32,
            code = const KERNEL_CODE as u32,
            tmp = out(reg) _,
        );
        asm!("ltr {0:x}", in(reg) MAIN_TSS as u32, options(nostack, preserves_flags));
    }
}

/// Gives every double-fault task the page directory it must run with.
///
/// # Safety
/// `cr3` must be the physical address of a valid page directory mapping the
/// kernel; call on the boot CPU before any double fault can happen with
/// paging on and before any application processor starts (they copy it).
pub unsafe fn set_double_fault_cr3(cr3: u32) {
    // SAFETY: plain stores, before any other CPU runs; the CPU reads these
    // fields only on a task switch.
    unsafe {
        DOUBLE_FAULT_CR3 = cr3;
        let states = &raw mut DOUBLE_FAULT_TSS_STATE;
        for state in (*states).iter_mut() {
            state.cr3 = cr3;
        }
    }
}

/// The state this CPU saved for the interrupted task when it switched to
/// its double-fault task (EIP, registers, EFLAGS of the faulting code).
pub fn interrupted_task_state() -> Tss {
    // SAFETY: read after the hardware task switch wrote it; only this CPU
    // writes its main TSS.
    unsafe { core::ptr::read_volatile(&raw const MAIN_TSS_STATE[percpu::cpu_id()]) }
}

/// The double-fault stacks' bounds, for the unwinder: the one holding
/// `address`, if any.
pub fn double_fault_stack_of(address: usize) -> Option<core::ops::Range<usize>> {
    let first = (&raw const DOUBLE_FAULT_STACK) as usize;
    let end = first + MAX_CPUS * DOUBLE_FAULT_STACK_SIZE;
    if !(first..end).contains(&address) {
        return None;
    }
    let bottom = first + (address - first) / DOUBLE_FAULT_STACK_SIZE * DOUBLE_FAULT_STACK_SIZE;
    Some(bottom..bottom + DOUBLE_FAULT_STACK_SIZE)
}
