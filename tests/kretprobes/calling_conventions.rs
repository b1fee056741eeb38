//! Functions that pop their own arguments (`ret imm16`) and tail calls between probed functions.
//!
//! Why: the trampoline must return where the function would have, with the
//! stack as the function left it, whichever way the function returns.
use super::*;

// ========================================= callee-popped arguments (ret imm16)

/// Returned through a hidden pointer that the callee pops: `ret 4`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Quad {
    a: u32,
    b: u32,
    c: u32,
    d: u32,
}

fn quad(value: u32, depth: u32) -> Quad {
    Quad { a: value, b: value ^ 0xffff, c: depth, d: value.wrapping_mul(3) }
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_quad(value: u32, depth: u32) -> Quad {
    if depth == 0 {
        return black_box(quad(value, 0));
    }
    let inner = black_box(kr_quad(black_box(value), black_box(depth - 1)));
    Quad { c: inner.c + 1, ..inner }
}

static QUAD_ENTRIES: Log<16> = Log::new();
static QUAD_REPORTS: Log<16> = Log::new();
static QUAD_BAD: AtomicUsize = AtomicUsize::new(0);

fn quad_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    // [esp] return address, [esp+4] the hidden result pointer, then the arguments.
    let esp = regs.esp as usize;
    let (value, depth) = (stack_word(esp + 8) as u32, stack_word(esp + 12) as u32);
    QUAD_ENTRIES.push(depth as usize);
    ri.store([value, depth]);
    EntryAction::Report
}

fn quad_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let [value, depth]: [u32; 2] = ri.load();
    QUAD_REPORTS.push(depth as usize);
    // EAX holds the result pointer; `ret 4` popped it, so ESP is 8 above the slot.
    // SAFETY: the caller's result slot, just written by the probed function.
    let result = unsafe { core::ptr::read(regs.eax as *const Quad) };
    if result != quad(value, depth) || regs.esp as usize != ri.stack_slot() + 8 || regs.eip as usize != ri.ret_addr() {
        QUAD_BAD.fetch_add(1, SeqCst);
    }
}

static RP_QUAD: Kretprobe =
    Kretprobe::new().symbol("kr_quad").entry_handler(quad_entry).handler(quad_return).data_size(8).maxactive(3);

/// Whether the function `name` contains a `ret 4` (C2 04 00).
fn has_ret_4(name: &str) -> bool {
    let symbol = symbols::lookup_name(name).expect("symbol");
    let mut code = [0u8; 512];
    let len = symbol.size.min(code.len());
    original_bytes(symbol.address, &mut code[..len]);
    code[..len].windows(3).any(|w| w == [0xc2, 0x04, 0x00])
}

#[inline(never)]
#[test_case]
fn function_that_pops_its_arguments() {
    assert!(has_ret_4("kr_quad"), "kr_quad returns with `ret 4` (the premise of this test)");
    QUAD_ENTRIES.clear();
    QUAD_REPORTS.clear();
    QUAD_BAD.store(0, SeqCst);
    register_kretprobe(&RP_QUAD).expect("register");
    assert_eq!(kr_quad(black_box(77), black_box(0)), quad(77, 0));
    assert_eq!(QUAD_REPORTS.len(), 1);
    // Recursion: the three outermost of five calls report, innermost first.
    assert_eq!(kr_quad(black_box(5), black_box(4)), quad(5, 4));
    let (entries, n) = QUAD_ENTRIES.get();
    assert_eq!(&entries[..n], &[0, 4, 3, 2]);
    let (reports, n) = QUAD_REPORTS.get();
    assert_eq!(&reports[..n], &[0, 2, 3, 4]);
    assert_eq!(RP_QUAD.nmissed(), 2);
    assert_eq!(load(&QUAD_BAD), 0);
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_QUAD).expect("unregister");
    assert_eq!(retired_pools(), 0);
}

// ================================================================ tail call

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_tail_target(value: u32) -> u32 {
    black_box(value).wrapping_mul(9) + 1
}

/// Jumps to `kr_tail_target` with the caller's return address still in
/// place: the target's entry finds the trampoline in the slot.
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn kr_tail(value: u32) -> u32 {
    core::arch::naked_asm!(
        "push ebp",
        "mov ebp, esp",
        "pop ebp",
        "jmp {target}",
        target = sym kr_tail_target,
    )
}

static TAIL_LOG: Log<16> = Log::new();
static TAIL_BAD: AtomicUsize = AtomicUsize::new(0);
static TAIL_RET: AtomicUsize = AtomicUsize::new(0);
fn tail_check(which: usize, ri: &KretprobeInstance, regs: &PtRegs) {
    TAIL_LOG.push(which);
    TAIL_RET.store(ri.ret_addr(), SeqCst);
    if regs_return_value(regs) != TAIL_EXPECT.load(SeqCst) as u32 || regs.eip as usize != ri.ret_addr() {
        TAIL_BAD.fetch_add(1, SeqCst);
    }
}
static TAIL_EXPECT: AtomicUsize = AtomicUsize::new(0);
fn tail_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    tail_check(1, ri, regs)
}
fn tail_target_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    tail_check(2, ri, regs)
}
static RP_TAIL: Kretprobe = Kretprobe::new().symbol("kr_tail").handler(tail_return);
static RP_TAIL_TARGET: Kretprobe = Kretprobe::new().symbol("kr_tail_target").handler(tail_target_return);

#[inline(never)]
#[test_case]
fn tail_call_between_probed_functions() {
    TAIL_LOG.clear();
    TAIL_BAD.store(0, SeqCst);
    register_kretprobes(&[&RP_TAIL, &RP_TAIL_TARGET]).expect("register");
    for value in [3u32, 1000] {
        TAIL_EXPECT.store((value * 9 + 1) as usize, SeqCst);
        assert_eq!(kr_tail(black_box(value)), value * 9 + 1);
    }
    // One return, two calls: both report, the target (newest) first.
    let (log, n) = TAIL_LOG.get();
    assert_eq!(&log[..n], &[2, 1, 2, 1]);
    assert_eq!(caller_of(load(&TAIL_RET)), "kretprobes::calling_conventions::tail_call_between_probed_functions");
    TAIL_EXPECT.store(37, SeqCst);
    assert_eq!(kr_tail_target(black_box(4)), 37);
    assert_eq!(TAIL_LOG.len(), 5);
    assert_eq!(load(&TAIL_BAD), 0);
    assert_eq!((RP_TAIL.nmissed(), RP_TAIL_TARGET.nmissed()), (0, 0));
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobes(&[&RP_TAIL, &RP_TAIL_TARGET]);
    assert_eq!(retired_pools(), 0);
}
