//! Kernel symbols: name → address and address → name+offset.
//!
//! STUB: replaced by the real table (tools/ksyms.py fills `.ksyms` post-link).
use core::fmt;

/// A function in the kernel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub name: &'static str,
    pub address: usize,
    pub size: usize,
    pub offset: usize,
}

/// Validates the table. Called once at boot.
pub fn init() {}

/// The function called `name`.
pub fn lookup_name(_name: &str) -> Option<Symbol> {
    None
}

/// The function containing `address`.
pub fn lookup_address(_address: usize) -> Option<Symbol> {
    None
}

/// Formats an address as `name+0xoff/0xsize`.
pub struct Describe(pub usize);

impl fmt::Display for Describe {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match lookup_address(self.0) {
            Some(s) => write!(f, "{}+{:#x}/{:#x}", s.name, s.offset, s.size),
            None => write!(f, "?"),
        }
    }
}
