//! Fakes shared by the tests: a symbol table, registers and memory.
#![allow(dead_code)]

use probe_events::SymbolResolver;

/// A small kernel symbol table: (name, address, size).
pub const SYMBOLS: &[(&str, u32, u32)] = &[
    ("vfs_read", 0xc010_0000, 0x100),
    ("kernel_clone", 0xc010_0100, 0x80),
    ("do_exit", 0xc010_0180, 0x40),
    ("kfree", 0xc010_01c0, 0x40),
    ("checksum", 0xc010_0200, 0x40),
    ("probe_kernel::demo::checksum", 0xc010_0240, 0x40),
    ("dup", 0xc010_0280, 0x10),
    ("dup", 0xc010_0290, 0x10),
    ("jiffies", 0xc020_0000, 4),
    ("caller", 0xc010_0300, 0x30),
];

/// The fake kernel's symbols, for parsing and printing.
pub struct Kernel {
    pub modules: Vec<&'static str>,
}

pub const KERNEL: Kernel = Kernel { modules: Vec::new() };

impl SymbolResolver for Kernel {
    fn address_of(&self, name: &str) -> Option<usize> {
        SYMBOLS.iter().find(|s| s.0 == name).map(|s| s.1 as usize)
    }

    fn symbol_count(&self, name: &str) -> usize {
        SYMBOLS.iter().filter(|s| s.0 == name).count()
    }

    fn module_loaded(&self, name: &str) -> bool {
        self.modules.contains(&name)
    }
}
