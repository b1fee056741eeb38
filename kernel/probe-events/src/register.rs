//! The i386 registers a `%REG` fetch argument can name.

/// An i386 register as Linux names it in probe definitions. The
/// discriminant is the register's index in Linux's i386 `struct pt_regs`
/// (`bx cx dx si di bp ax ds es fs gs orig_ax ip cs flags sp ss`), which is
/// also the order of Linux's name table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Register {
    /// `%bx`
    Bx = 0,
    /// `%cx`
    Cx = 1,
    /// `%dx`
    Dx = 2,
    /// `%si`
    Si = 3,
    /// `%di`
    Di = 4,
    /// `%bp`
    Bp = 5,
    /// `%ax`
    Ax = 6,
    /// `%ds`
    Ds = 7,
    /// `%es`
    Es = 8,
    /// `%fs`
    Fs = 9,
    /// `%gs`
    Gs = 10,
    /// `%orig_ax`: the system call number or the trap's error code.
    OrigAx = 11,
    /// `%ip`
    Ip = 12,
    /// `%cs`
    Cs = 13,
    /// `%flags`
    Flags = 14,
    /// `%sp`
    Sp = 15,
    /// `%ss`
    Ss = 16,
}

impl Register {
    /// Every register, in `pt_regs` order.
    pub const ALL: [Register; 17] = [
        Register::Bx,
        Register::Cx,
        Register::Dx,
        Register::Si,
        Register::Di,
        Register::Bp,
        Register::Ax,
        Register::Ds,
        Register::Es,
        Register::Fs,
        Register::Gs,
        Register::OrigAx,
        Register::Ip,
        Register::Cs,
        Register::Flags,
        Register::Sp,
        Register::Ss,
    ];

    /// The register's index in Linux's i386 `struct pt_regs`.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Linux's name for the register (without the `%`).
    pub const fn name(self) -> &'static str {
        match self {
            Register::Bx => "bx",
            Register::Cx => "cx",
            Register::Dx => "dx",
            Register::Si => "si",
            Register::Di => "di",
            Register::Bp => "bp",
            Register::Ax => "ax",
            Register::Ds => "ds",
            Register::Es => "es",
            Register::Fs => "fs",
            Register::Gs => "gs",
            Register::OrigAx => "orig_ax",
            Register::Ip => "ip",
            Register::Cs => "cs",
            Register::Flags => "flags",
            Register::Sp => "sp",
            Register::Ss => "ss",
        }
    }

    /// The register a name denotes: Linux's names, and as this project's
    /// extension the 32-bit names `eax ebx ecx edx esi edi ebp esp eip
    /// eflags` (Linux refuses those). Case matters, as in Linux.
    pub fn from_name(name: &str) -> Option<Register> {
        if let Some(register) = Register::ALL.iter().copied().find(|r| r.name() == name) {
            return Some(register);
        }
        Some(match name {
            "eax" => Register::Ax,
            "ebx" => Register::Bx,
            "ecx" => Register::Cx,
            "edx" => Register::Dx,
            "esi" => Register::Si,
            "edi" => Register::Di,
            "ebp" => Register::Bp,
            "esp" => Register::Sp,
            "eip" => Register::Ip,
            "eflags" => Register::Flags,
            _ => return None,
        })
    }
}
