//! Fakes shared by the tests: a symbol table, registers and memory.
#![allow(dead_code)]

use probe_events::{Fault, Memory, Register, Regs, SymbolInfo, SymbolResolver, Symbolizer};
use std::collections::BTreeMap;

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

impl Symbolizer for Kernel {
    fn symbolize(&self, addr: u32) -> Option<SymbolInfo<'_>> {
        SYMBOLS.iter().find(|s| addr >= s.1 && addr - s.1 < s.2).map(|s| SymbolInfo {
            name: s.0,
            offset: addr - s.1,
            size: s.2,
        })
    }

    fn is_kretprobe_trampoline(&self, addr: u32) -> bool {
        addr == 0xc0ff_0000
    }
}

/// Registers by Linux index.
#[derive(Default, Clone)]
pub struct FakeRegs(pub [u32; 17]);

impl FakeRegs {
    pub fn with(pairs: &[(Register, u32)]) -> Self {
        let mut regs = FakeRegs::default();
        for &(reg, value) in pairs {
            regs.0[reg.index()] = value;
        }
        regs
    }
}

impl Regs for FakeRegs {
    fn get(&self, reg: Register) -> u32 {
        self.0[reg.index()]
    }
}

/// Sparse kernel and user memory; an unmapped byte faults.
#[derive(Default, Clone)]
pub struct FakeMemory {
    pub kernel: BTreeMap<u32, u8>,
    pub user: BTreeMap<u32, u8>,
}

impl FakeMemory {
    pub fn put(&mut self, addr: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.kernel.insert(addr.wrapping_add(i as u32), b);
        }
    }

    pub fn put_u32(&mut self, addr: u32, value: u32) {
        self.put(addr, &value.to_le_bytes());
    }

    pub fn put_user(&mut self, addr: u32, bytes: &[u8]) {
        for (i, &b) in bytes.iter().enumerate() {
            self.user.insert(addr.wrapping_add(i as u32), b);
        }
    }
}

fn copy(map: &BTreeMap<u32, u8>, addr: u32, buf: &mut [u8]) -> Result<(), Fault> {
    for (i, slot) in buf.iter_mut().enumerate() {
        *slot = *map.get(&addr.wrapping_add(i as u32)).ok_or(Fault)?;
    }
    Ok(())
}

impl Memory for FakeMemory {
    fn read(&self, addr: u32, buf: &mut [u8]) -> Result<(), Fault> {
        copy(&self.kernel, addr, buf)
    }

    fn read_user(&self, addr: u32, buf: &mut [u8]) -> Result<(), Fault> {
        copy(&self.user, addr, buf)
    }
}
