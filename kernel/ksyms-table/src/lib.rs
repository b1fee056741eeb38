//! The kernel symbol table's format, defined once for its writer and its reader.
//!
//! Backtraces and symbol-based probes need name → address and address →
//! name+offset/size at run time, and no loader hands the kernel its own ELF
//! symbols. So a post-link tool (kernel/ksyms-tool) writes a table (entries
//! sorted by address for address lookups, and a hash index by name, since
//! every symbol-based probe registration looks a name up) into a fixed-size
//! static of the image, and the kernel (kernel/symbols.rs) reads it in place.
//! Both sides use this crate, so the layout, the order and the index lookups
//! rely on and the checks that guard them cannot drift apart.
//!
//! Principles: `no_std` and allocation-free for reading (trap handlers and
//! the panic path look symbols up), every read bounds-checked so that no
//! bytes, however corrupted, make a lookup panic, and a full validation
//! ([`Table::validate`]) that rejects any changed byte. The writer
//! ([`build`], feature `alloc`) is the only producer of tables; host tests
//! (`cargo test` in this directory) check the two against a reference model.
//!
//! The [`params`] module is the second table the tool writes: each
//! function's parameters and where they are at its entry, from DWARF.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod checksum;
pub mod layout;
pub mod params;
mod table;
#[cfg(feature = "alloc")]
mod writer;

pub use checksum::adler32;
pub use layout::Flags;
pub use table::{Invalid, Symbol, Table};
#[cfg(feature = "alloc")]
pub use writer::{BuildError, Input, build, preference_order};
