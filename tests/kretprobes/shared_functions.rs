//! Several probes of every kind on one function.
//!
//! Why: kretprobes, kprobes and jprobes share one site at a function's entry;
//! each must see every call exactly once.
use super::*;

// ========================================== 9. several probes on one function

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_multi(a: u32, b: u32) -> u32 {
    black_box(a) ^ black_box(b).rotate_left(7)
}

fn expected_multi(a: u32, b: u32) -> u32 {
    a ^ b.rotate_left(7)
}

static MULTI_LOG: Log<64> = Log::new();
static MULTI_VALUES: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

fn multi_handler(which: usize, regs: &PtRegs) {
    MULTI_LOG.push(which);
    MULTI_VALUES[which - 1].store(regs_return_value(regs) as usize, SeqCst);
}
fn multi_1(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    multi_handler(1, regs)
}
fn multi_2(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    multi_handler(2, regs)
}
fn multi_3(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    multi_handler(3, regs)
}

static RP_MULTI_1: Kretprobe = Kretprobe::new().symbol("kr_multi").handler(multi_1);
static RP_MULTI_2: Kretprobe = Kretprobe::new().symbol("kr_multi").handler(multi_2);
static RP_MULTI_3: Kretprobe = Kretprobe::new().symbol("kr_multi").handler(multi_3);

fn multi_values() -> [usize; 3] {
    [0, 1, 2].map(|i| MULTI_VALUES[i].load(SeqCst))
}

#[inline(never)]
#[test_case]
fn three_kretprobes_on_one_function() {
    MULTI_LOG.clear();
    let sites = site_count();
    register_kretprobe(&RP_MULTI_1).expect("register 1");
    register_kretprobe(&RP_MULTI_2).expect("register 2");
    register_kretprobe(&RP_MULTI_3).expect("register 3");
    assert_eq!(site_count(), sites + 1, "one site for all three");
    for (round, (a, b)) in [(1u32, 2u32), (0xdead_beef, 0x1234_5678), (77, 0)].into_iter().enumerate() {
        assert_eq!(kr_multi(black_box(a), black_box(b)), expected_multi(a, b));
        let e = expected_multi(a, b) as usize;
        assert_eq!(multi_values(), [e, e, e], "round {round}");
        assert_eq!(MULTI_LOG.len(), 3 * (round + 1), "each reports exactly once per call");
    }
    // Return handlers run newest instance first.
    let (log, n) = MULTI_LOG.get();
    assert_eq!(&log[..n], &[3, 2, 1, 3, 2, 1, 3, 2, 1]);
    assert_eq!(active_instances(task::current_id()), 0);
    // Without the middle one.
    unregister_kretprobe(&RP_MULTI_2).expect("unregister 2");
    MULTI_LOG.clear();
    assert_eq!(kr_multi(black_box(5), black_box(6)), expected_multi(5, 6));
    let (log, n) = MULTI_LOG.get();
    assert_eq!(&log[..n], &[3, 1]);
    for rp in [&RP_MULTI_1, &RP_MULTI_2, &RP_MULTI_3] {
        assert_eq!(rp.nmissed(), 0);
    }
    unregister_kretprobes(&[&RP_MULTI_1, &RP_MULTI_3]);
    assert_eq!(site_count(), sites);
    assert_eq!(retired_pools(), 0);
}

static KP_PRE_CALLS: AtomicUsize = AtomicUsize::new(0);
static KP_POST_CALLS: AtomicUsize = AtomicUsize::new(0);
static KP_ARGS: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

fn multi_pre(_p: &Kprobe, regs: &mut PtRegs) -> PreAction {
    KP_PRE_CALLS.fetch_add(1, SeqCst);
    let esp = regs.esp as usize;
    KP_ARGS[0].store(stack_word(esp + 4), SeqCst);
    KP_ARGS[1].store(stack_word(esp + 8), SeqCst);
    PreAction::Continue
}
fn multi_post(_p: &Kprobe, _regs: &mut PtRegs) {
    KP_POST_CALLS.fetch_add(1, SeqCst);
}

static KP_MULTI_BOOSTED: Kprobe = Kprobe::new().symbol("kr_multi", 0).pre_handler(multi_pre);
static KP_MULTI_STEPPED: Kprobe = Kprobe::new().symbol("kr_multi", 0).pre_handler(multi_pre).post_handler(multi_post);

#[inline(never)]
#[test_case]
fn kprobe_and_kretprobe_on_one_function() {
    for (variant, kp) in [&KP_MULTI_BOOSTED, &KP_MULTI_STEPPED].into_iter().enumerate() {
        for kprobe_first in [true, false] {
            MULTI_LOG.clear();
            reset(&[&KP_PRE_CALLS, &KP_POST_CALLS]);
            if kprobe_first {
                register_kprobe(kp).expect("register kprobe");
                register_kretprobe(&RP_MULTI_1).expect("register kretprobe");
            } else {
                register_kretprobe(&RP_MULTI_1).expect("register kretprobe");
                register_kprobe(kp).expect("register kprobe");
            }
            assert_eq!(kp.flags().contains(KprobeFlags::BOOSTED), variant == 0);
            for round in 1..=3u32 {
                let (a, b) = (round * 1000 + 1, round * 77);
                assert_eq!(kr_multi(black_box(a), black_box(b)), expected_multi(a, b));
                assert_eq!(load(&KP_PRE_CALLS), round as usize);
                assert_eq!(load(&KP_POST_CALLS), if variant == 1 { round as usize } else { 0 });
                assert_eq!([load(&KP_ARGS[0]), load(&KP_ARGS[1])], [a as usize, b as usize]);
                assert_eq!(MULTI_LOG.len(), round as usize);
                assert_eq!(multi_values()[0], expected_multi(a, b) as usize);
            }
            assert_eq!((kp.nmissed(), RP_MULTI_1.nmissed()), (0, 0));
            unregister_kprobe(kp).expect("unregister kprobe");
            // The kretprobe alone still works.
            assert_eq!(kr_multi(black_box(9), black_box(9)), expected_multi(9, 9));
            assert_eq!(MULTI_LOG.len(), 4);
            assert_eq!(load(&KP_PRE_CALLS), 3);
            unregister_kretprobe(&RP_MULTI_1).expect("unregister kretprobe");
        }
    }
}

static JP_CALLS: AtomicUsize = AtomicUsize::new(0);
static JP_ARGS: [AtomicU32; 2] = [const { AtomicU32::new(0) }; 2];

extern "C" fn jp_multi(a: u32, b: u32) -> u32 {
    JP_CALLS.fetch_add(1, SeqCst);
    JP_ARGS[0].store(a, SeqCst);
    JP_ARGS[1].store(b, SeqCst);
    jprobe_return()
}

static JP_MULTI: Jprobe = Jprobe::new(jp_multi as *const ()).symbol("kr_multi");

#[inline(never)]
#[test_case]
fn jprobe_and_kretprobe_on_one_function() {
    for jprobe_first in [true, false] {
        MULTI_LOG.clear();
        reset(&[&JP_CALLS, &KP_PRE_CALLS]);
        if jprobe_first {
            register_jprobe(&JP_MULTI).expect("register jprobe");
            register_kretprobe(&RP_MULTI_2).expect("register kretprobe");
        } else {
            register_kretprobe(&RP_MULTI_2).expect("register kretprobe");
            register_jprobe(&JP_MULTI).expect("register jprobe");
        }
        for round in 1..=3u32 {
            let (a, b) = (round * 31 + 5, 0xf000_0000 | round);
            assert_eq!(kr_multi(black_box(a), black_box(b)), expected_multi(a, b));
            assert_eq!(load(&JP_CALLS), round as usize);
            assert_eq!([JP_ARGS[0].load(SeqCst), JP_ARGS[1].load(SeqCst)], [a, b], "jprobe saw the arguments");
            assert_eq!(MULTI_LOG.len(), round as usize);
            assert_eq!(multi_values()[1], expected_multi(a, b) as usize);
        }
        // All four kinds together: kprobe, jprobe, two kretprobes.
        register_kprobe(&KP_MULTI_BOOSTED).expect("register kprobe");
        register_kretprobe(&RP_MULTI_3).expect("register second kretprobe");
        MULTI_LOG.clear();
        assert_eq!(kr_multi(black_box(3), black_box(4)), expected_multi(3, 4));
        assert_eq!(load(&JP_CALLS), 4);
        assert_eq!(load(&KP_PRE_CALLS), 1);
        let (log, n) = MULTI_LOG.get();
        assert_eq!(&log[..n], &[3, 2]);
        let e = expected_multi(3, 4) as usize;
        assert_eq!(multi_values()[1..], [e, e]);
        assert_eq!((JP_MULTI.kp.nmissed(), RP_MULTI_2.nmissed(), RP_MULTI_3.nmissed()), (0, 0, 0));
        unregister_kprobe(&KP_MULTI_BOOSTED).expect("unregister kprobe");
        unregister_kretprobe(&RP_MULTI_3).expect("unregister");
        unregister_jprobe(&JP_MULTI).expect("unregister jprobe");
        unregister_kretprobe(&RP_MULTI_2).expect("unregister kretprobe");
        assert_eq!(kr_multi(black_box(3), black_box(4)), expected_multi(3, 4));
        assert_eq!(load(&JP_CALLS), 4);
        assert_eq!(MULTI_LOG.len(), 2);
    }
}
