//! The kernel's own GDT: flat code and data, a TSS, and a double-fault TSS.
//!
//! GRUB's GDT is not guaranteed valid, so boot loads this one first and
//! reloads every segment register. Everything runs in ring 0; the main TSS
//! exists because a hardware task switch (the double-fault task gate) needs a
//! current task to save the faulting state into — which is exactly what the
//! double-fault report then reads.
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

static mut GDT: [u64; 5] = [0; 5];
static mut MAIN_TSS_STATE: Tss = Tss::zeroed();
static mut DOUBLE_FAULT_TSS_STATE: Tss = Tss::zeroed();
static mut DOUBLE_FAULT_STACK: Stack = Stack([0; DOUBLE_FAULT_STACK_SIZE]);

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

/// Loads the GDT and task register and reloads every segment register.
///
/// # Safety
/// Call once, at boot, before the IDT is loaded and with interrupts off.
pub unsafe fn init(double_fault_entry: unsafe extern "C" fn() -> !) {
    // SAFETY: single-threaded boot; nothing else references these statics yet.
    unsafe {
        let df = &raw mut DOUBLE_FAULT_TSS_STATE;
        let stack_top = (&raw mut DOUBLE_FAULT_STACK) as u32 + DOUBLE_FAULT_STACK_SIZE as u32;
        (*df).eip = double_fault_entry as usize as u32;
        (*df).esp = stack_top;
        (*df).ss = KERNEL_DATA as u32;
        (*df).ds = KERNEL_DATA as u32;
        (*df).es = KERNEL_DATA as u32;
        (*df).fs = KERNEL_DATA as u32;
        (*df).gs = KERNEL_DATA as u32;
        (*df).cs = KERNEL_CODE as u32;
        (*df).eflags = 0x2; // reserved bit 1; IF clear
        (*df).trap_iomap = (size_of::<Tss>() as u32) << 16;
        MAIN_TSS_STATE.trap_iomap = (size_of::<Tss>() as u32) << 16;

        let gdt = &raw mut GDT;
        (*gdt)[1] = flat_segment(0x9a); // present, ring 0, code, readable
        (*gdt)[2] = flat_segment(0x92); // present, ring 0, data, writable
        (*gdt)[3] = tss_descriptor(&raw const MAIN_TSS_STATE);
        (*gdt)[4] = tss_descriptor(&raw const DOUBLE_FAULT_TSS_STATE);

        let pointer = x86::dtables::DescriptorTablePointer::<u64> {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as *const u64,
        };
        x86::dtables::lgdt(&pointer);
        asm!(
            "mov ds, {data:x}", "mov es, {data:x}", "mov fs, {data:x}",
            "mov gs, {data:x}", "mov ss, {data:x}",
            "push {code}", "lea {tmp}, [2f]", "push {tmp}", "retf", "2:",
            data = in(reg) KERNEL_DATA as u32,
            code = const KERNEL_CODE as u32,
            tmp = out(reg) _,
        );
        asm!("ltr {0:x}", in(reg) MAIN_TSS as u32, options(nostack, preserves_flags));
    }
}

/// Gives the double-fault task the page directory it must run with.
///
/// # Safety
/// `cr3` must be the physical address of a valid page directory mapping the
/// kernel; call before any double fault can happen with paging on.
pub unsafe fn set_double_fault_cr3(cr3: u32) {
    // SAFETY: a plain store; the CPU reads this field only on a task switch.
    unsafe { DOUBLE_FAULT_TSS_STATE.cr3 = cr3 };
}

/// The state the CPU saved for the interrupted task when it switched to the
/// double-fault task (EIP, registers, EFLAGS of the faulting code).
pub fn interrupted_task_state() -> Tss {
    // SAFETY: read after the hardware task switch wrote it; nothing else
    // writes the main TSS.
    unsafe { core::ptr::read_volatile(&raw const MAIN_TSS_STATE) }
}

/// The double-fault stack's bounds, for the unwinder.
pub fn double_fault_stack() -> core::ops::Range<usize> {
    let bottom = (&raw const DOUBLE_FAULT_STACK) as usize;
    bottom..bottom + DOUBLE_FAULT_STACK_SIZE
}
