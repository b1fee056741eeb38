//! Linux's `lib/tests/test_kprobes.c` kretprobe scenarios: one probe, a batch, a batch rolled back.
//!
//! Why: the peers' own suite says what a kretprobe must do at the very least;
//! these are its cases with exact values.
use super::*;

// ============================================================ 1. test_kprobes.c

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_target(value: u32) -> u32 {
    black_box(value) / 3 + 17
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_target2(value: u32) -> u32 {
    black_box(value).wrapping_mul(5) + 2
}

fn expected_target(value: u32) -> u32 {
    value / 3 + 17
}
fn expected_target2(value: u32) -> u32 {
    value.wrapping_mul(5) + 2
}

static ENTRY_CALLS: AtomicUsize = AtomicUsize::new(0);
static ENTRY_ARG: AtomicUsize = AtomicUsize::new(0);
static ENTRY_SLOT_OK: AtomicUsize = AtomicUsize::new(0);
static RET_CALLS: AtomicUsize = AtomicUsize::new(0);
static RET_VALUE: AtomicUsize = AtomicUsize::new(0);
static RET_ARG: AtomicUsize = AtomicUsize::new(0);
static RET_EIP: AtomicUsize = AtomicUsize::new(0);
static RET_RI_ADDR: AtomicUsize = AtomicUsize::new(0);
static RET_ESP: AtomicUsize = AtomicUsize::new(0);
static RET_SLOT: AtomicUsize = AtomicUsize::new(0);

fn test_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    ENTRY_CALLS.fetch_add(1, SeqCst);
    let esp = regs.esp as usize;
    // At the first instruction ESP points at the return address, and the
    // first cdecl argument is right above it.
    let arg = stack_word(esp + 4);
    let ok = stack_word(esp) == ri.ret_addr() && ri.stack_slot() == esp && ri.task() == task::current_id();
    ENTRY_SLOT_OK.fetch_add(ok as usize, SeqCst);
    ENTRY_ARG.store(arg, SeqCst);
    ri.store(arg as u32);
    EntryAction::Report
}

fn test_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    RET_CALLS.fetch_add(1, SeqCst);
    RET_VALUE.store(regs_return_value(regs) as usize, SeqCst);
    RET_ARG.store(ri.load::<u32>() as usize, SeqCst);
    RET_EIP.store(regs.eip as usize, SeqCst);
    RET_RI_ADDR.store(ri.ret_addr(), SeqCst);
    RET_ESP.store(regs.esp as usize, SeqCst);
    RET_SLOT.store(ri.stack_slot(), SeqCst);
}

static RP_TEST: Kretprobe =
    Kretprobe::new().symbol("kr_target").entry_handler(test_entry).handler(test_return).data_size(4);

const RAND1: u32 = 0x2f3a_81c5;

#[inline(never)]
#[test_case]
fn kretprobe_entry_and_return_handler() {
    reset(&[&ENTRY_CALLS, &ENTRY_SLOT_OK, &RET_CALLS, &RET_VALUE, &RET_ARG, &RET_EIP]);
    register_kretprobe(&RP_TEST).expect("register");
    assert!(RP_TEST.is_enabled());
    assert_eq!(RP_TEST.nmissed(), 0);
    let value = kr_target(black_box(RAND1));
    assert_eq!(value, expected_target(RAND1));
    assert_eq!(load(&ENTRY_CALLS), 1);
    assert_eq!(load(&ENTRY_ARG), RAND1 as usize, "entry handler saw the argument at [esp+4]");
    assert_eq!(load(&ENTRY_SLOT_OK), 1, "entry: [esp] is the return address, slot = esp, task = current");
    assert_eq!(load(&RET_CALLS), 1);
    assert_eq!(load(&RET_VALUE), expected_target(RAND1) as usize);
    assert_eq!(load(&RET_ARG), RAND1 as usize, "instance data carried the argument");
    // The handler sees the real return address in regs.eip, inside us.
    let eip = load(&RET_EIP);
    assert_eq!(eip, load(&RET_RI_ADDR));
    assert_eq!(caller_of(eip), "kretprobes::linux_scenarios::kretprobe_entry_and_return_handler");
    // After `ret`, ESP is just above the slot the return address was in.
    assert_eq!(load(&RET_ESP), load(&RET_SLOT) + 4);
    assert_eq!(RP_TEST.nmissed(), 0);
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_TEST).expect("unregister");
    assert!(!RP_TEST.is_enabled());
    assert_eq!(kr_target(black_box(7)), expected_target(7));
    assert_eq!(load(&ENTRY_CALLS), 1, "no entry after unregistering");
    assert_eq!(load(&RET_CALLS), 1, "no return after unregistering");
    assert_eq!(unregister_kretprobe(&RP_TEST), Err(KprobeError::NotRegistered));
}

static BATCH_A_CALLS: AtomicUsize = AtomicUsize::new(0);
static BATCH_A_VALUE: AtomicUsize = AtomicUsize::new(0);
static BATCH_B_CALLS: AtomicUsize = AtomicUsize::new(0);
static BATCH_B_VALUE: AtomicUsize = AtomicUsize::new(0);

fn batch_a(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    BATCH_A_CALLS.fetch_add(1, SeqCst);
    BATCH_A_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}
fn batch_b(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    BATCH_B_CALLS.fetch_add(1, SeqCst);
    BATCH_B_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}

static RP_BATCH_A: Kretprobe = Kretprobe::new().symbol("kr_target").handler(batch_a);
static RP_BATCH_B: Kretprobe = Kretprobe::new().symbol("kr_target2").handler(batch_b);
static RP_BATCH_BAD: Kretprobe = Kretprobe::new().symbol("kr_no_such_function").handler(batch_b);

const RAND2: u32 = 0x0123_4567;

#[inline(never)]
#[test_case]
fn kretprobes_batch() {
    reset(&[&BATCH_A_CALLS, &BATCH_A_VALUE, &BATCH_B_CALLS, &BATCH_B_VALUE]);
    let sites = site_count();
    register_kretprobes(&[&RP_BATCH_A, &RP_BATCH_B]).expect("register batch");
    assert_eq!(site_count(), sites + 2);
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!((load(&BATCH_A_CALLS), load(&BATCH_B_CALLS)), (1, 0));
    assert_eq!(load(&BATCH_A_VALUE), expected_target(RAND1) as usize);
    assert_eq!(kr_target2(black_box(RAND2)), expected_target2(RAND2));
    assert_eq!((load(&BATCH_A_CALLS), load(&BATCH_B_CALLS)), (1, 1));
    assert_eq!(load(&BATCH_B_VALUE), expected_target2(RAND2) as usize);
    assert_eq!((RP_BATCH_A.nmissed(), RP_BATCH_B.nmissed()), (0, 0));
    unregister_kretprobes(&[&RP_BATCH_A, &RP_BATCH_B]);
    assert_eq!(site_count(), sites);
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!(kr_target2(black_box(RAND2)), expected_target2(RAND2));
    assert_eq!((load(&BATCH_A_CALLS), load(&BATCH_B_CALLS)), (1, 1));
}

#[inline(never)]
#[test_case]
fn kretprobes_batch_rollback() {
    reset(&[&BATCH_A_CALLS, &BATCH_B_CALLS]);
    let sites = site_count();
    let arena = kretprobe_arena_used();
    assert_eq!(register_kretprobes(&[&RP_BATCH_A, &RP_BATCH_BAD]), Err(KprobeError::UnknownSymbol));
    // The first one was rolled back: not registered, no breakpoint, its
    // instance pool freed.
    assert!(!RP_BATCH_A.is_enabled());
    assert!(RP_BATCH_A.kp.flags().contains(KprobeFlags::GONE));
    assert_eq!(RP_BATCH_A.kp.addr(), None);
    assert_eq!(site_count(), sites);
    assert_eq!(retired_pools(), 0);
    assert_eq!(kretprobe_arena_used(), arena, "the rolled-back pool was freed");
    let symbol = symbols::lookup_name("kr_target").expect("kr_target in the symbol table");
    let mut first = [0u8; 1];
    original_bytes(symbol.address, &mut first);
    let live = text_byte(symbol.address);
    assert_eq!(live, first[0], "no breakpoint left at kr_target");
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!(load(&BATCH_A_CALLS), 0, "calls are not reported after the rollback");
    assert_eq!(unregister_kretprobe(&RP_BATCH_A), Err(KprobeError::NotRegistered));
    // An invalid one first: nothing registered either.
    assert_eq!(register_kretprobes(&[&RP_BATCH_BAD, &RP_BATCH_B]), Err(KprobeError::UnknownSymbol));
    assert!(!RP_BATCH_B.is_enabled());
    assert_eq!(kr_target2(black_box(RAND2)), expected_target2(RAND2));
    assert_eq!(load(&BATCH_B_CALLS), 0);
    // The same probe twice: the second is refused and the first rolled back.
    assert_eq!(register_kretprobes(&[&RP_BATCH_A, &RP_BATCH_A]), Err(KprobeError::AlreadyRegistered));
    assert!(!RP_BATCH_A.is_enabled());
    assert_eq!(site_count(), sites);
    // Still registrable after all that.
    register_kretprobe(&RP_BATCH_A).expect("register after rollback");
    assert_eq!(kr_target(black_box(RAND1)), expected_target(RAND1));
    assert_eq!(load(&BATCH_A_CALLS), 1);
    unregister_kretprobe(&RP_BATCH_A).expect("unregister");
    assert_eq!(kretprobe_arena_used(), arena);
}
