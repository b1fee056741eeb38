//! Entry handlers that skip calls, and per-instance data of the largest size.
//!
//! Why: an entry handler decides per call whether the return is reported, and
//! the data it stores must come back intact to the return handler.
use super::*;

// ==================================================== 5. entry handler skip

static SKIP_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static SKIP_REPORTS: Log<16> = Log::new();
static SKIP_BAD: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_parity(value: u32) -> u32 {
    black_box(value) * 3 + 1
}

fn skip_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    SKIP_ENTRIES.fetch_add(1, SeqCst);
    let arg = entry_argument(regs, 0);
    ri.store(arg);
    if arg % 2 == 1 { EntryAction::Skip } else { EntryAction::Report }
}

fn skip_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let arg: u32 = ri.load();
    SKIP_REPORTS.push(arg as usize);
    if regs_return_value(regs) != arg * 3 + 1 {
        SKIP_BAD.fetch_add(1, SeqCst);
    }
}

// maxactive 1: a skipped call must give its instance back at once.
static RP_SKIP: Kretprobe =
    Kretprobe::new().symbol("kr_parity").entry_handler(skip_entry).handler(skip_return).data_size(4).maxactive(1);

#[test_case]
fn entry_handler_skips_odd_calls() {
    reset(&[&SKIP_ENTRIES, &SKIP_BAD]);
    SKIP_REPORTS.clear();
    register_kretprobe(&RP_SKIP).expect("register");
    for arg in 0..10 {
        assert_eq!(kr_parity(black_box(arg)), arg * 3 + 1);
    }
    assert_eq!(load(&SKIP_ENTRIES), 10);
    let (reports, n) = SKIP_REPORTS.get();
    assert_eq!(&reports[..n], &[0, 2, 4, 6, 8]);
    assert_eq!(load(&SKIP_BAD), 0);
    assert_eq!(RP_SKIP.nmissed(), 0, "skipped calls are not misses");
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_SKIP).expect("unregister");
    assert_eq!(retired_pools(), 0);
}

// ========================================================= 6. instance data

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_data_recurse(n: u32) -> u32 {
    if n == 0 {
        return black_box(0);
    }
    black_box(kr_data_recurse(black_box(n - 1))) + 2
}

fn pattern(seed: u32, index: usize) -> u8 {
    (seed.wrapping_mul(0x9e37_79b1) as usize ^ index.wrapping_mul(31) ^ (index >> 8)) as u8
}

static DATA_ENTRIES: AtomicUsize = AtomicUsize::new(0);
static DATA_REPORTS: AtomicUsize = AtomicUsize::new(0);
static DATA_BAD_LEN: AtomicUsize = AtomicUsize::new(0);
static DATA_BAD_BYTES: AtomicUsize = AtomicUsize::new(0);
static DATA_BAD_VALUE: AtomicUsize = AtomicUsize::new(0);

fn data_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    DATA_ENTRIES.fetch_add(1, SeqCst);
    let arg = entry_argument(regs, 0);
    let data = ri.data();
    if data.len() != MAX_DATA_SIZE {
        DATA_BAD_LEN.fetch_add(1, SeqCst);
    }
    for (index, byte) in data.iter_mut().enumerate() {
        *byte = pattern(arg, index);
    }
    EntryAction::Report
}

fn data_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    DATA_REPORTS.fetch_add(1, SeqCst);
    let data = ri.data();
    if data.len() != MAX_DATA_SIZE {
        DATA_BAD_LEN.fetch_add(1, SeqCst);
    }
    // The seed is the call's argument; its return value is 2 * arg.
    let arg = regs_return_value(regs) / 2;
    let bad = data.iter().enumerate().filter(|&(index, &byte)| byte != pattern(arg, index)).count();
    DATA_BAD_BYTES.fetch_add(bad, SeqCst);
    if regs_return_value(regs) % 2 != 0 {
        DATA_BAD_VALUE.fetch_add(1, SeqCst);
    }
}

static RP_DATA: Kretprobe = Kretprobe::new()
    .symbol("kr_data_recurse")
    .entry_handler(data_entry)
    .handler(data_return)
    .data_size(MAX_DATA_SIZE)
    .maxactive(5);
static RP_DATA_TOO_BIG: Kretprobe =
    Kretprobe::new().symbol("kr_data_recurse").handler(data_return).data_size(MAX_DATA_SIZE + 1);

#[test_case]
fn data_round_trip_max_size() {
    reset(&[&DATA_ENTRIES, &DATA_REPORTS, &DATA_BAD_LEN, &DATA_BAD_BYTES, &DATA_BAD_VALUE]);
    assert_eq!(MAX_DATA_SIZE, 4096);
    let sites = site_count();
    let arena = kretprobe_arena_used();
    assert_eq!(register_kretprobe(&RP_DATA_TOO_BIG), Err(KprobeError::DataTooLarge { max: 4096 }));
    assert!(!RP_DATA_TOO_BIG.is_enabled());
    assert_eq!(site_count(), sites);
    assert_eq!(kretprobe_arena_used(), arena);
    register_kretprobe(&RP_DATA).expect("register with 4096 bytes of data");
    assert!(kretprobe_arena_used() >= arena + 5 * 4096, "5 instances of 4096 bytes");
    // Five nested live instances, each with its own 4096 bytes.
    assert_eq!(kr_data_recurse(black_box(4)), 8);
    assert_eq!(load(&DATA_ENTRIES), 5);
    assert_eq!(load(&DATA_REPORTS), 5);
    // And again, reusing the instances with other seeds.
    assert_eq!(kr_data_recurse(black_box(2)), 4);
    assert_eq!(load(&DATA_REPORTS), 8);
    assert_eq!(load(&DATA_BAD_LEN), 0);
    assert_eq!(load(&DATA_BAD_BYTES), 0, "every byte of every instance's data survived");
    assert_eq!(load(&DATA_BAD_VALUE), 0);
    assert_eq!(RP_DATA.nmissed(), 0);
    unregister_kretprobe(&RP_DATA).expect("unregister");
    assert_eq!(kretprobe_arena_used(), arena);
}
