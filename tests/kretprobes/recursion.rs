//! Recursion: which calls get instances under `maxactive`, the default `maxactive`, and the recursion guard.
//!
//! Why: instances come from a fixed pool, so a recursive function exhausts it;
//! the misses must be exact, and a handler that calls a probed function must
//! not recurse into the engine.
use super::*;

// ========================================================= 4. recursion

/// 1 + 2 + ... + n, one call per level.
#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_recurse(n: u32) -> u32 {
    if n <= 1 {
        return black_box(1);
    }
    black_box(kr_recurse(black_box(n - 1))) + n
}

static REC_ENTRIES: Log<16> = Log::new();
static REC_REPORTS: Log<16> = Log::new();
static REC_BAD_VALUES: AtomicUsize = AtomicUsize::new(0);

fn rec_entry(ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    let depth = entry_argument(regs, 0);
    REC_ENTRIES.push(depth as usize);
    ri.store(depth);
    EntryAction::Report
}

fn rec_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let depth: u32 = ri.load();
    REC_REPORTS.push(depth as usize);
    if regs_return_value(regs) != depth * (depth + 1) / 2 {
        REC_BAD_VALUES.fetch_add(1, SeqCst);
    }
}

static RP_REC3: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(rec_return).data_size(4).maxactive(3);

fn recurse_and_check(rp: &'static Kretprobe, depth: u32, instances: usize) {
    REC_ENTRIES.clear();
    REC_REPORTS.clear();
    REC_BAD_VALUES.store(0, SeqCst);
    register_kretprobe(rp).expect("register");
    assert_eq!(kr_recurse(black_box(depth)), depth * (depth + 1) / 2);
    let (entries, n_entries) = REC_ENTRIES.get();
    let (reports, n_reports) = REC_REPORTS.get();
    assert_eq!(n_entries, instances, "entry handler runs only for calls that got an instance");
    assert_eq!(n_reports, instances);
    assert_eq!(rp.nmissed(), depth as usize - instances);
    // The outermost calls got the instances: depths depth, depth-1, ...
    for i in 0..instances {
        assert_eq!(entries[i], depth as usize - i, "entry #{i}");
        // Innermost of them returns first.
        assert_eq!(reports[i], depth as usize - instances + 1 + i, "report #{i}");
    }
    assert_eq!(load(&REC_BAD_VALUES), 0, "every reported call had the right return value");
    assert_eq!(active_instances(task::current_id()), 0);
    // A second round: all instances came back.
    REC_REPORTS.clear();
    assert_eq!(kr_recurse(black_box(depth)), depth * (depth + 1) / 2);
    assert_eq!(REC_REPORTS.len(), instances);
    assert_eq!(rp.nmissed(), 2 * (depth as usize - instances));
    unregister_kretprobe(rp).expect("unregister");
    assert_eq!(retired_pools(), 0, "no instance was still out");
}

#[test_case]
fn recursion_maxactive_3_depth_8() {
    assert_eq!(RP_REC3.effective_maxactive(), 3);
    recurse_and_check(&RP_REC3, 8, 3);
}

static TWO_A_REPORTS: AtomicUsize = AtomicUsize::new(0);
static TWO_A_BAD: AtomicUsize = AtomicUsize::new(0);
fn two_a_return(ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    let depth: u32 = ri.load();
    TWO_A_REPORTS.fetch_add(1, SeqCst);
    if regs_return_value(regs) != depth * (depth + 1) / 2 {
        TWO_A_BAD.fetch_add(1, SeqCst);
    }
}
static RP_REC1: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(two_a_return).data_size(4).maxactive(1);

/// Two kretprobes on one recursive function with different `maxactive`:
/// at some depths only one of them swapped the return address.
#[test_case]
fn recursion_two_kretprobes_different_maxactive() {
    REC_ENTRIES.clear();
    REC_REPORTS.clear();
    reset(&[&REC_BAD_VALUES, &TWO_A_REPORTS, &TWO_A_BAD]);
    register_kretprobes(&[&RP_REC1, &RP_REC3]).expect("register");
    assert_eq!(kr_recurse(black_box(6)), 21);
    assert_eq!(load(&TWO_A_REPORTS), 1);
    assert_eq!(RP_REC1.nmissed(), 5);
    let (reports, n) = REC_REPORTS.get();
    assert_eq!(&reports[..n], &[4, 5, 6]);
    assert_eq!(RP_REC3.nmissed(), 3);
    assert_eq!((load(&REC_BAD_VALUES), load(&TWO_A_BAD)), (0, 0));
    unregister_kretprobes(&[&RP_REC1, &RP_REC3]);
    assert_eq!(retired_pools(), 0);
}

// ===================================================== 7. default maxactive

static RP_MAX0: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(rec_return).data_size(4).maxactive(0);
static RP_MAXNEG: Kretprobe =
    Kretprobe::new().symbol("kr_recurse").entry_handler(rec_entry).handler(rec_return).data_size(4).maxactive(-5);
static RP_MAXUNSET: Kretprobe = Kretprobe::new().symbol("kr_recurse").handler(rec_return);

#[test_case]
fn default_maxactive() {
    assert_eq!(DEFAULT_MAXACTIVE, 10);
    assert_eq!(RP_MAX0.effective_maxactive(), DEFAULT_MAXACTIVE);
    assert_eq!(RP_MAXNEG.effective_maxactive(), DEFAULT_MAXACTIVE);
    assert_eq!(RP_MAXUNSET.effective_maxactive(), DEFAULT_MAXACTIVE);
    recurse_and_check(&RP_MAX0, 12, 10);
    recurse_and_check(&RP_MAXNEG, 12, 10);
}

// ====================================================== 12. recursion guard

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_self(value: u32) -> u32 {
    black_box(value) + 100
}

static SELF_CALLS: AtomicUsize = AtomicUsize::new(0);
static SELF_BAD: AtomicUsize = AtomicUsize::new(0);
static SELF_ENTRY_CALLS: AtomicUsize = AtomicUsize::new(0);

fn self_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    SELF_CALLS.fetch_add(1, SeqCst);
    let value = regs_return_value(regs);
    // The probed function, from its own return handler.
    if kr_self(black_box(value)) != value + 100 {
        SELF_BAD.fetch_add(1, SeqCst);
    }
}

fn self_entry(_ri: &mut KretprobeInstance, regs: &mut PtRegs) -> EntryAction {
    SELF_ENTRY_CALLS.fetch_add(1, SeqCst);
    let arg = entry_argument(regs, 0);
    if kr_self(black_box(arg)) != arg + 100 {
        SELF_BAD.fetch_add(1, SeqCst);
    }
    EntryAction::Report
}

static RP_SELF: Kretprobe = Kretprobe::new().symbol("kr_self").handler(self_return);
static RP_SELF_BOTH: Kretprobe = Kretprobe::new().symbol("kr_self").entry_handler(self_entry).handler(self_return);

#[test_case]
fn handler_calls_probed_function() {
    reset(&[&SELF_CALLS, &SELF_BAD, &SELF_ENTRY_CALLS]);
    register_kretprobe(&RP_SELF).expect("register");
    for round in 1..=3u32 {
        assert_eq!(kr_self(black_box(round)), round + 100);
        assert_eq!(load(&SELF_CALLS), round as usize, "the nested call is not reported");
        assert_eq!(RP_SELF.nmissed(), round as usize, "one miss per outer call");
    }
    assert_eq!(load(&SELF_BAD), 0);
    assert_eq!(active_instances(task::current_id()), 0);
    unregister_kretprobe(&RP_SELF).expect("unregister");
    // From both handlers: two misses per call.
    reset(&[&SELF_CALLS]);
    register_kretprobe(&RP_SELF_BOTH).expect("register");
    for round in 1..=3u32 {
        assert_eq!(kr_self(black_box(round)), round + 100);
        assert_eq!(load(&SELF_ENTRY_CALLS), round as usize);
        assert_eq!(load(&SELF_CALLS), round as usize);
        assert_eq!(RP_SELF_BOTH.nmissed(), 2 * round as usize);
    }
    assert_eq!(load(&SELF_BAD), 0);
    unregister_kretprobe(&RP_SELF_BOTH).expect("unregister");
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_helper(value: u32) -> u32 {
    black_box(value) * 7
}

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_outer(value: u32) -> u32 {
    black_box(value) + 1
}

static OUTER_CALLS: AtomicUsize = AtomicUsize::new(0);
static HELPER_CALLS: AtomicUsize = AtomicUsize::new(0);
static HELPER_BAD: AtomicUsize = AtomicUsize::new(0);
static LOOKUP_CALLS: AtomicUsize = AtomicUsize::new(0);
static LOOKUP_FOUND: AtomicBool = AtomicBool::new(false);

fn outer_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    OUTER_CALLS.fetch_add(1, SeqCst);
    let value = regs_return_value(regs);
    if kr_helper(black_box(value)) != value * 7 {
        HELPER_BAD.fetch_add(1, SeqCst);
    }
}
fn helper_return(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    HELPER_CALLS.fetch_add(1, SeqCst);
}
fn lookup_return(_ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    LOOKUP_CALLS.fetch_add(1, SeqCst);
}
fn outer_lookup_return(ri: &mut KretprobeInstance, _regs: &mut PtRegs) {
    OUTER_CALLS.fetch_add(1, SeqCst);
    // A kernel function with a kretprobe of its own, from a handler.
    let found = symbols::lookup_address(ri.ret_addr() - 1)
        .is_some_and(|s| s.name == "kretprobes::recursion::probed_function_called_by_handler");
    LOOKUP_FOUND.store(found, SeqCst);
}

static RP_OUTER: Kretprobe = Kretprobe::new().symbol("kr_outer").handler(outer_return);
static RP_OUTER_LOOKUP: Kretprobe = Kretprobe::new().symbol("kr_outer").handler(outer_lookup_return);
static RP_HELPER: Kretprobe = Kretprobe::new().symbol("kr_helper").handler(helper_return);
static RP_LOOKUP: Kretprobe = Kretprobe::new().symbol("probe_kernel::symbols::lookup_address").handler(lookup_return);

#[inline(never)]
#[test_case]
fn probed_function_called_by_handler() {
    reset(&[&OUTER_CALLS, &HELPER_CALLS, &HELPER_BAD, &LOOKUP_CALLS]);
    register_kretprobes(&[&RP_OUTER, &RP_HELPER]).expect("register");
    for round in 1..=2u32 {
        assert_eq!(kr_outer(black_box(round)), round + 1);
    }
    assert_eq!(load(&OUTER_CALLS), 2);
    assert_eq!(load(&HELPER_CALLS), 0, "calls from a handler are not reported");
    assert_eq!(RP_HELPER.nmissed(), 2);
    assert_eq!(RP_OUTER.nmissed(), 0);
    assert_eq!(load(&HELPER_BAD), 0);
    // Outside handlers the helper reports as usual.
    assert_eq!(kr_helper(black_box(3)), 21);
    assert_eq!(load(&HELPER_CALLS), 1);
    assert_eq!(RP_HELPER.nmissed(), 2);
    unregister_kretprobes(&[&RP_OUTER, &RP_HELPER]);

    // A kernel function (the symbol table lookup) called from a handler.
    register_kretprobes(&[&RP_OUTER_LOOKUP, &RP_LOOKUP]).expect("register lookup probes");
    LOOKUP_FOUND.store(false, SeqCst);
    reset(&[&OUTER_CALLS]);
    assert_eq!(kr_outer(black_box(8)), 9);
    assert_eq!(load(&OUTER_CALLS), 1);
    assert!(LOOKUP_FOUND.load(SeqCst), "lookup_address still works under its probe");
    assert_eq!(load(&LOOKUP_CALLS), 0);
    assert_eq!(RP_LOOKUP.nmissed(), 1);
    let here = kr_helper as *const () as usize;
    assert_eq!(symbols::lookup_address(here + 1).map(|s| s.name), Some("kr_helper"));
    assert_eq!(load(&LOOKUP_CALLS), 1);
    assert_eq!(RP_LOOKUP.nmissed(), 1);
    unregister_kretprobes(&[&RP_OUTER_LOOKUP, &RP_LOOKUP]);
    assert_eq!(retired_pools(), 0);
}
