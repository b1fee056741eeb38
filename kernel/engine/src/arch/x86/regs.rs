//! The registers of probed code, as the host's trap entry saves them.
//!
//! The layout is the engine's contract with the host's trap stubs: the CPU's
//! exception frame (EIP, CS, EFLAGS) below an error code and the vector,
//! below `pushad`'s eight registers. On i386 a kernel-mode trap pushes no
//! ESP/SS, so `esp` holds the interrupted stack pointer, which the stub
//! stores there (pushad's own copy is useless).
use core::mem::{offset_of, size_of};

/// Every register of the interrupted code (Linux's `struct pt_regs`).
///
/// Handlers may change any field; the host's trap exit writes them all
/// back, including `eip`, `eflags` and `esp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PtRegs {
    /// EDI.
    pub edi: u32,
    /// ESI.
    pub esi: u32,
    /// EBP (the frame pointer).
    pub ebp: u32,
    /// ESP of the interrupted code: the address just above the saved EFLAGS.
    pub esp: u32,
    /// EBX.
    pub ebx: u32,
    /// EDX.
    pub edx: u32,
    /// ECX.
    pub ecx: u32,
    /// EAX (a function's return value).
    pub eax: u32,
    /// The interrupt vector.
    pub vector: u32,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u32,
    /// Where the interrupted code resumes.
    pub eip: u32,
    /// The code segment selector.
    pub cs: u32,
    /// EFLAGS.
    pub eflags: u32,
}

/// Size of [`PtRegs`]; asm takes offsets from the type itself.
pub const FRAME_SIZE: usize = size_of::<PtRegs>();
const _: () = assert!(FRAME_SIZE == 13 * 4);
const _: () = assert!(offset_of!(PtRegs, edi) == 0); // pushad's last push
const _: () = assert!(offset_of!(PtRegs, eax) == 28); // pushad's first push
const _: () = assert!(offset_of!(PtRegs, vector) == 32);
const _: () = assert!(offset_of!(PtRegs, eip) == 40);
const _: () = assert!(offset_of!(PtRegs, eflags) == FRAME_SIZE - 4);

/// Defines a naked engine entry that builds a [`PtRegs`] frame, calls
/// `$dispatch(&mut PtRegs)` with interrupts off and leaves through the
/// host's trap exit (`probe_engine_trap_return`): the kretprobe trampoline
/// and the optprobe entry, which differ only in how the top of the frame
/// (EFLAGS, CS, EIP, error code, vector) got there: `$prefix`, the lines
/// that push it, if the entry pushes it itself. `$return_site` labels the
/// return address of the call, where the unwinder continues through the
/// frame.
///
/// ```text
///                (interrupted stack)       = frame.esp
///                EFLAGS, CS, EIP, error, vector   ($prefix, or whoever jumped here)
///                pushad   EAX..EDI
///        ESP ->  &PtRegs argument
/// ```
macro_rules! frame_entry {
    (
        $(#[$meta:meta])*
        $name:ident, prefix: [$($prefix:literal),*], return_site: $return_site:literal, dispatch: $dispatch:path
    ) => {
        $(#[$meta])*
        #[unsafe(naked)]
        #[unsafe(link_section = ".kprobes.text")]
        pub unsafe extern "C" fn $name() {
            core::arch::naked_asm!(
                $($prefix,)*
                "pushad",
                "lea ecx, [esp + {size}]",
                "mov [esp + {esp}], ecx",
                "cld",
                "push esp",   // the frame's address (push stores ESP as it was)
                "call {dispatch}",
                concat!(".global ", $return_site),
                concat!($return_site, ":"),
                "add esp, 4",
                "jmp probe_engine_trap_return", // the host's trap exit (see `Host`)
                size = const $crate::arch::imp::regs::FRAME_SIZE,
                esp = const core::mem::offset_of!($crate::arch::imp::regs::PtRegs, esp),
                dispatch = sym $dispatch,
            );
        }
    };
}
pub(crate) use frame_entry;

impl PtRegs {
    /// Where the code resumes.
    #[inline(always)]
    pub fn ip(&self) -> usize {
        self.eip as usize
    }

    /// Makes the code resume at `address`.
    #[inline(always)]
    pub fn set_ip(&mut self, address: usize) {
        self.eip = address as u32;
    }

    /// The interrupted stack pointer.
    #[inline(always)]
    pub fn sp(&self) -> usize {
        self.esp as usize
    }

    /// A function's return value (in a return handler).
    #[inline(always)]
    pub fn return_value(&self) -> usize {
        self.eax as usize
    }

    /// EFLAGS.
    #[inline(always)]
    pub fn flags(&self) -> u32 {
        self.eflags
    }

    /// The `n`th argument of an `extern "C"` function, at its first
    /// instruction (see [`regs_get_kernel_argument`] for other conventions).
    pub fn argument(&self, n: usize) -> Option<u32> {
        regs_get_kernel_argument(self, n, CallingConvention::C)
    }
}

/// How a probed function receives its arguments, for
/// [`regs_get_kernel_argument`].
///
/// Rust's own ABI (a plain `fn`, `extern "Rust"`) has no fixed convention on
/// i386: rustc passes arguments in registers or on the stack as it sees fit,
/// and that changes between compiler versions and optimization levels. A
/// function whose arguments probes should read is declared `extern "C"` (or
/// `extern "fastcall"`), which fixes where they are — provided LLVM must
/// keep that convention: a function that is only ever called directly,
/// from inside its crate, may be given a faster register convention of its
/// own. Make it visible (`#[unsafe(no_mangle)]`) or take its address (a
/// `#[used]` static holding it), as the demo does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallingConvention {
    /// `extern "C"` (cdecl): every argument on the stack, the first right
    /// above the return address.
    C,
    /// `extern "fastcall"`: the first two 32-bit arguments in ECX and EDX,
    /// the rest on the stack above the return address.
    Fastcall,
}

/// The `n`th (from 0) 32-bit argument of a function, read from the
/// registers of a probe on its first instruction (Linux's
/// `regs_get_kernel_argument`), for a function with the given calling
/// convention. Only meaningful at the entry: there ESP points at the
/// return address and no argument has been moved yet. `None` if the slot
/// lies outside the stack the probed code runs on.
pub fn regs_get_kernel_argument(regs: &PtRegs, n: usize, convention: CallingConvention) -> Option<u32> {
    let stack_index = match (convention, n) {
        (CallingConvention::Fastcall, 0) => return Some(regs.ecx),
        (CallingConvention::Fastcall, 1) => return Some(regs.edx),
        (CallingConvention::Fastcall, n) => n - 2,
        (CallingConvention::C, n) => n,
    };
    let esp = regs.sp();
    let address = esp.checked_add(4)?.checked_add(stack_index.checked_mul(4)?)?;
    let stack = crate::host::stack_of(esp)?;
    if address.checked_add(4)? > stack.end {
        return None;
    }
    // SAFETY: the four bytes at `address` lie on the kernel stack that holds
    // the probed ESP (checked just above), which is mapped and readable.
    Some(unsafe { core::ptr::read_unaligned(address as *const u32) })
}
