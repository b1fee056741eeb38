//! The trap-path blacklist, computed from the kernel image itself.
//!
//! A probe inside code that the engine runs while its own state is in flux
//! (the `int3`, debug and fault paths, the kretprobe trampoline, the
//! instance bookkeeping, text patching) would trap into the engine from
//! the middle of the engine. Linux marks such code twice: a section
//! (`.kprobes.text`) and a per-symbol list (`NOKPROBE_SYMBOL`), and small
//! helpers the compiler leaves out of line are exactly what a section
//! attribute misses (`Site::address`, `Kprobe::is_enabled`, an iterator's
//! `find`, `task::current_id`, …).
//!
//! So the list is not written by hand: at boot the engine
//! disassembles every function in `.kprobes.text` and follows every direct
//! call and jump out of it, transitively; every function reached is
//! blacklisted. The walk does not continue into functions that never
//! return (no `ret`, no `iret`, no jump out: panics and fatal reports):
//! they end the run, and what they call — formatting, symbols, the
//! unwinder — stays probeable; a fatal report runs every probe hit without
//! handlers. Indirect calls are user handlers and hooks, ordinary code.
use crate::host::{self, Symbol};
use alloc::vec::Vec;
use probe_engine_core::decode;

/// Start addresses of the blacklisted functions, sorted.
static REACHABLE: spin::Once<Vec<usize>> = spin::Once::new();

/// The bytes of `function` as the original code has them.
fn code_of(function: &Symbol) -> Vec<u8> {
    let mut code = alloc::vec![0; function.size];
    super::registry::original_bytes(function.address, &mut code);
    code
}

/// Every function reachable from `.kprobes.text`, as sorted start addresses.
fn compute() -> Vec<usize> {
    let text = host::engine_text();
    let mut reached: Vec<usize> = Vec::new();
    host::for_each_symbol(&mut |s| {
        if text.contains(&s.address) && s.size > 0 {
            reached.push(s.address);
        }
    });
    reached.sort_unstable();
    reached.dedup();
    let mut pending = reached.clone();
    while let Some(start) = pending.pop() {
        let Some(function) = host::symbol_at(start) else { continue };
        let flow = decode::function_flow(&code_of(&function), function.address);
        if !flow.can_return {
            continue;
        }
        for target in flow.external_targets {
            let Some(callee) = host::symbol_at(target) else { continue };
            if let Err(at) = reached.binary_search(&callee.address) {
                reached.insert(at, callee.address);
                pending.push(callee.address);
            }
        }
    }
    reached
}

/// Computes the blacklist (at boot, before any registration).
pub(crate) fn init() {
    REACHABLE.call_once(compute);
}

/// Whether the function starting at `function_start` is on the trap path.
pub(crate) fn contains(function_start: usize) -> bool {
    REACHABLE.call_once(compute).binary_search(&function_start).is_ok()
}

/// The start addresses of every blacklisted function, sorted (computed on
/// first use).
pub fn functions() -> &'static [usize] {
    REACHABLE.call_once(compute)
}
