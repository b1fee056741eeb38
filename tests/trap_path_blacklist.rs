//! Every function the trap path can reach is refused by registration.
//!
//! Why: a probe inside code the engine runs while its own state is in flux
//! traps into the engine from the middle of the engine (issue 7, bug 1: a
//! kretprobe on `kretprobe::task_exited` killed the kernel at the next task
//! exit). The engine computes its blacklist from `.kprobes.text`; this test
//! checks it from the other end, independently: it reads the CPU's IDT for
//! the exception entry points, adds the kretprobe trampoline,
//! `jprobe_return` and the instance bookkeeping of task exit, disassembles
//! from there with its own walk (direct calls and jumps, not into functions
//! that never return), and asserts that every function it reaches is refused
//! as blacklisted — and that none of them allocates, decodes or takes the
//! heap's lock.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::vec::Vec;
use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};
use probe_kernel::kprobes::{KprobeError, Kretprobe, can_probe, register_kretprobe};
use probe_kernel::println;
use probe_kernel::symbols::{self, Symbol};

probe_kernel::test_kernel_main!();

/// Handler addresses of the 32 exception vectors, as the loaded IDT has them
/// (the double fault's task gate has none).
fn exception_entries() -> Vec<usize> {
    let mut pointer = x86::dtables::DescriptorTablePointer::<u64>::default();
    // SAFETY: `sidt` only stores the IDT register into `pointer`.
    unsafe { x86::dtables::sidt(&mut pointer) };
    (0..32)
        .filter_map(|vector| {
            // SAFETY: the IDT the kernel loaded has 256 entries, mapped and readable.
            let gate = unsafe { core::ptr::read_volatile(pointer.base.add(vector)) };
            let is_interrupt_gate = (gate >> 40) & 0x1f == 0x0e;
            is_interrupt_gate.then_some(((gate & 0xffff) | ((gate >> 48) << 16)) as usize)
        })
        .collect()
}

fn function_at(address: usize) -> Symbol {
    let symbol = symbols::lookup_address(address).expect("root in no function");
    symbols::lookup_address(symbol.address - symbol.offset).expect("function start")
}

/// The direct branch targets outside `function`, and whether it can return
/// (a `ret`/`iret`, an indirect jump, or a jump out of it).
fn scan(function: &Symbol) -> (Vec<usize>, bool) {
    let mut code = alloc::vec![0; function.size];
    probe_kernel::kprobes::original_bytes(function.address, &mut code);
    let range = function.address..function.address + function.size;
    let mut decoder = Decoder::with_ip(32, &code, function.address as u64, DecoderOptions::NONE);
    let mut insn = Instruction::default();
    let (mut targets, mut returns) = (Vec::new(), false);
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        let target = insn.near_branch_target() as usize;
        match insn.flow_control() {
            FlowControl::Return | FlowControl::IndirectBranch => returns = true,
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch if !range.contains(&target) => {
                returns = true;
                targets.push(target);
            }
            FlowControl::Call if !range.contains(&target) => targets.push(target),
            _ => {}
        }
    }
    (targets, returns)
}

/// Every function reachable from the trap entry points.
fn reachable() -> Vec<Symbol> {
    let mut roots = exception_entries();
    roots.push(probe_kernel::arch::x86::kprobes::trampoline::address());
    roots.push(probe_kernel::kprobes::jprobe_return as *const () as usize);
    roots.push(probe_kernel::kprobes::task_exited as *const () as usize);
    let mut seen: Vec<Symbol> = Vec::new();
    let mut pending: Vec<Symbol> = roots.into_iter().map(function_at).collect();
    while let Some(function) = pending.pop() {
        if seen.iter().any(|s| s.address == function.address) {
            continue;
        }
        seen.push(function);
        let (targets, returns) = scan(&function);
        if !returns {
            continue; // a panic or fatal report: it ends the run
        }
        pending.extend(targets.into_iter().filter_map(|t| symbols::lookup_address(t)).map(|s| function_at(s.address)));
    }
    seen
}

#[test_case]
fn every_function_the_trap_path_reaches_is_refused() {
    let functions = reachable();
    let mut outside_section = 0;
    println!();
    for function in &functions {
        let address = function.address as *const ();
        assert_eq!(can_probe(address), Err(KprobeError::Blacklisted), "{} is on the trap path", function.name);
        if !probe_kernel::arch::x86::paging::kprobes_text().contains(&function.address)
            && !function.name.contains("panic")
            && !function.name.ends_with("_failed")
        {
            outside_section += 1;
            println!("  out-of-line helper outside .kprobes.text: {}", function.name);
        }
    }
    println!(
        "  {} functions reachable from the trap path, {} of them helpers outside .kprobes.text; all refused",
        functions.len(),
        outside_section
    );
    assert!(functions.len() >= 40, "the walk found too little: {}", functions.len());
    assert!(outside_section > 0, "some helper is out of line in every build (memcpy at least)");
}

#[test_case]
fn the_trap_path_neither_allocates_nor_decodes() {
    for function in reachable() {
        for forbidden in [
            "__rust_alloc",
            "__rust_dealloc",
            "__rust_realloc",
            "__rdl_",
            "linked_list_allocator",
            "iced_x86",
            "KernelHeap",
        ] {
            assert!(!function.name.contains(forbidden), "{} is reachable from the trap path", function.name);
        }
    }
}

#[test_case]
fn the_helpers_the_bug_report_named_are_refused_where_the_trap_path_calls_them() {
    // Whether each is out of line, and called out of line from the trap
    // path, depends on the build; those that are must be refused.
    let reached = reachable();
    let mut on_trap_path = 0;
    for name in [
        "probe_engine::registry::Site::address",
        "probe_engine::probe::Kprobe::is_enabled",
        "probe_engine::arch::x86::slot::ArchSite::slot_range",
        "probe_engine::arch::x86::trampoline::address",
        "probe_kernel::task::table::current_id",
        "probe_engine::kretprobe::task_exited",
    ] {
        let Some(symbol) = symbols::lookup_name(name) else { continue };
        if reached.iter().any(|f| f.address == symbol.address) {
            on_trap_path += 1;
            assert_eq!(can_probe(symbol.address as *const ()), Err(KprobeError::Blacklisted), "{name}");
        }
    }
    println!("  {on_trap_path} of them are called out of line from the trap path in this build");
}

static ON_TASK_EXIT: Kretprobe = Kretprobe::new().symbol("probe_engine::kretprobe::task_exited");

#[test_case]
fn a_kretprobe_on_the_task_exit_bookkeeping_is_refused() {
    let sites = probe_kernel::kprobes::site_count();
    let arena = probe_kernel::kprobes::kretprobe_arena_used();
    assert_eq!(register_kretprobe(&ON_TASK_EXIT), Err(KprobeError::Blacklisted));
    assert_eq!(probe_kernel::kprobes::site_count(), sites);
    assert_eq!(probe_kernel::kprobes::kretprobe_arena_used(), arena);
    // The console scenario of the report: a task exit now finds nothing amiss.
    let id = probe_kernel::task::spawn(|x| x + 1, 41).unwrap();
    assert_eq!(probe_kernel::task::join(id), 42);
}

#[test_case]
fn the_engine_blacklist_covers_its_whole_section() {
    let section = probe_kernel::arch::x86::paging::kprobes_text();
    let blacklisted = probe_kernel::kprobes::blacklisted_functions();
    let in_section = symbols::iter().filter(|s| section.contains(&s.address) && s.size > 0).count();
    assert!(blacklisted.len() > in_section, "{} blacklisted, {in_section} in .kprobes.text", blacklisted.len());
    for symbol in symbols::iter().filter(|s| section.contains(&s.address) && s.size > 0) {
        assert!(blacklisted.binary_search(&symbol.address).is_ok(), "{}", symbol.name);
    }
}

/// A sync round skips a CPU marked halted in its idle loop, so nothing
/// between the mark and the `hlt` may be probed: the idle loop must call
/// `idle_halt` (unprobeable, in `.kprobes.text`) and halt nowhere itself.
/// Inlined into the probeable idle loop, the gap once left the section.
#[test_case]
fn the_idle_halt_gap_cannot_be_probed() {
    let idle_halt = probe_kernel::arch::x86::percpu::idle_halt as *const () as usize;
    let halt = symbols::lookup_address(idle_halt).expect("a function of its own");
    for offset in 0..halt.size {
        assert_eq!(can_probe((idle_halt + offset) as *const ()), Err(KprobeError::Blacklisted), "+{offset}");
    }
    let idle_loop = symbols::lookup_name("probe_kernel::task::scheduler::idle_loop").expect("the idle loop");
    let mut code = alloc::vec![0; idle_loop.size];
    probe_kernel::kprobes::original_bytes(idle_loop.address, &mut code);
    let mut decoder = Decoder::with_ip(32, &code, idle_loop.address as u64, DecoderOptions::NONE);
    let (mut calls_idle_halt, mut halts) = (false, false);
    for insn in &mut decoder {
        calls_idle_halt |= insn.flow_control() == FlowControl::Call && insn.near_branch_target() as usize == idle_halt;
        halts |= insn.mnemonic() == iced_x86::Mnemonic::Hlt;
    }
    assert!(calls_idle_halt && !halts, "idle_loop calls idle_halt: {calls_idle_halt}, halts itself: {halts}");
}
