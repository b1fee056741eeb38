//! Enabling and disabling kretprobes (also while calls are in flight), a handler that changes the return value, and refusals.
//!
//! Why: a kretprobe's state changes while the function may be running; calls
//! must be reported exactly when the probe was enabled at entry.
use super::*;

// ====================================================== 13. enable/disable

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_toggle(value: u32) -> u32 {
    black_box(value) * 11
}

static TOGGLE_CALLS: AtomicUsize = AtomicUsize::new(0);
static TOGGLE_VALUE: AtomicUsize = AtomicUsize::new(0);
fn toggle_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    TOGGLE_CALLS.fetch_add(1, SeqCst);
    TOGGLE_VALUE.store(regs_return_value(regs) as usize, SeqCst);
}
static RP_TOGGLE: Kretprobe = Kretprobe::new().symbol("kr_toggle").handler(toggle_return);

#[test_case]
fn enable_disable() {
    reset(&[&TOGGLE_CALLS, &TOGGLE_VALUE]);
    assert_eq!(disable_kretprobe(&RP_TOGGLE), Err(KprobeError::NotRegistered));
    register_kretprobe(&RP_TOGGLE).expect("register");
    assert_eq!(kr_toggle(black_box(1)), 11);
    assert_eq!(load(&TOGGLE_CALLS), 1);
    disable_kretprobe(&RP_TOGGLE).expect("disable");
    assert!(!RP_TOGGLE.is_enabled());
    assert!(RP_TOGGLE.kp.flags().contains(KprobeFlags::DISABLED));
    for value in 2..5 {
        assert_eq!(kr_toggle(black_box(value)), value * 11);
    }
    assert_eq!(load(&TOGGLE_CALLS), 1, "disabled: not reported");
    assert_eq!(RP_TOGGLE.nmissed(), 0, "disabled calls are not misses");
    enable_kretprobe(&RP_TOGGLE).expect("enable");
    assert!(RP_TOGGLE.is_enabled());
    assert_eq!(kr_toggle(black_box(6)), 66);
    assert_eq!(load(&TOGGLE_CALLS), 2);
    assert_eq!(load(&TOGGLE_VALUE), 66);
    unregister_kretprobe(&RP_TOGGLE).expect("unregister");
    assert_eq!(enable_kretprobe(&RP_TOGGLE), Err(KprobeError::NotRegistered));
}

/// What the probed function does to its own probe while it runs.
static INFLIGHT_ACTION: AtomicUsize = AtomicUsize::new(0);
static INFLIGHT_RETIRED: AtomicUsize = AtomicUsize::new(usize::MAX);
const ACTION_NONE: usize = 0;
const ACTION_DISABLE: usize = 1;
const ACTION_UNREGISTER: usize = 2;
const ACTION_REREGISTER: usize = 3;
static RP_INFLIGHT: Kretprobe = Kretprobe::new().symbol("kr_inflight").handler(toggle_return);

#[inline(never)]
#[unsafe(no_mangle)]
extern "C" fn kr_inflight(value: u32) -> u32 {
    match INFLIGHT_ACTION.load(SeqCst) {
        ACTION_DISABLE => disable_kretprobe(&RP_INFLIGHT).expect("disable in flight"),
        ACTION_UNREGISTER => {
            unregister_kretprobe(&RP_INFLIGHT).expect("unregister in flight");
            INFLIGHT_RETIRED.store(retired_pools(), SeqCst);
        }
        ACTION_REREGISTER => {
            unregister_kretprobe(&RP_INFLIGHT).expect("unregister in flight");
            register_kretprobe(&RP_INFLIGHT).expect("register again in flight");
            INFLIGHT_RETIRED.store(retired_pools(), SeqCst);
        }
        _ => {}
    }
    // The return still goes to the real caller.
    INFLIGHT_RETIRED_RA.store(unwind::return_address(0).unwrap_or(0), SeqCst);
    black_box(value) + 5
}
static INFLIGHT_RETIRED_RA: AtomicUsize = AtomicUsize::new(0);

#[inline(never)]
#[test_case]
fn disable_and_unregister_in_flight() {
    reset(&[&TOGGLE_CALLS, &TOGGLE_VALUE]);
    register_kretprobe(&RP_INFLIGHT).expect("register");
    // Disabled while in flight: that call still reports (Linux: the
    // instance is already taken), the next one does not.
    INFLIGHT_ACTION.store(ACTION_DISABLE, SeqCst);
    assert_eq!(kr_inflight(black_box(1)), 6);
    assert_eq!(load(&TOGGLE_CALLS), 1);
    assert_eq!(load(&TOGGLE_VALUE), 6);
    INFLIGHT_ACTION.store(ACTION_NONE, SeqCst);
    assert_eq!(kr_inflight(black_box(2)), 7);
    assert_eq!(load(&TOGGLE_CALLS), 1);
    enable_kretprobe(&RP_INFLIGHT).expect("enable");
    // Unregistered while in flight: the call returns right, no report.
    INFLIGHT_ACTION.store(ACTION_UNREGISTER, SeqCst);
    assert_eq!(kr_inflight(black_box(3)), 8);
    INFLIGHT_ACTION.store(ACTION_NONE, SeqCst);
    assert_eq!(load(&TOGGLE_CALLS), 1, "no report after unregistering in flight");
    assert_eq!(INFLIGHT_RETIRED.load(SeqCst), 1, "the pool waits for the call in flight");
    assert_eq!(caller_of(load(&INFLIGHT_RETIRED_RA)), "kretprobes::control::disable_and_unregister_in_flight");
    assert_eq!(retired_pools(), 1, "freed only at the next registration");
    assert_eq!(active_instances(task::current_id()), 0);
    register_kretprobe(&RP_INFLIGHT).expect("register again");
    assert_eq!(retired_pools(), 0);
    assert_eq!(kr_inflight(black_box(4)), 9);
    assert_eq!(load(&TOGGLE_CALLS), 2);
    assert_eq!(load(&TOGGLE_VALUE), 9);
    // Unregistered and registered again while in flight: the call in flight
    // belongs to the old registration and reports to neither.
    INFLIGHT_ACTION.store(ACTION_REREGISTER, SeqCst);
    assert_eq!(kr_inflight(black_box(5)), 10);
    INFLIGHT_ACTION.store(ACTION_NONE, SeqCst);
    assert_eq!(INFLIGHT_RETIRED.load(SeqCst), 1, "the old pool waits for its call");
    assert_eq!(load(&TOGGLE_CALLS), 2, "the old call is not reported by the new registration");
    assert_eq!(retired_pools(), 1);
    assert_eq!(kr_inflight(black_box(6)), 11);
    assert_eq!(load(&TOGGLE_CALLS), 3, "the new registration reports new calls");
    assert_eq!(RP_INFLIGHT.nmissed(), 0);
    unregister_kretprobe(&RP_INFLIGHT).expect("unregister");
    assert_eq!(retired_pools(), 0, "both pools freed");
}

// ================================================== the handler's changes

static MODIFY_CALLS: AtomicUsize = AtomicUsize::new(0);
fn modify_return(_ri: &mut KretprobeInstance, regs: &mut PtRegs) {
    MODIFY_CALLS.fetch_add(1, SeqCst);
    regs.eax = regs.eax.wrapping_add(1000);
}
static RP_MODIFY: Kretprobe = Kretprobe::new().symbol("kr_toggle").handler(modify_return);

#[test_case]
fn handler_changes_return_value() {
    reset(&[&MODIFY_CALLS]);
    register_kretprobe(&RP_MODIFY).expect("register");
    assert_eq!(kr_toggle(black_box(2)), 1022);
    assert_eq!(MODIFY_CALLS.load(SeqCst), 1);
    unregister_kretprobe(&RP_MODIFY).expect("unregister");
    assert_eq!(kr_toggle(black_box(2)), 22);
}

// ======================================================== refusals

static RP_NOWHERE: Kretprobe = Kretprobe::new().handler(toggle_return);
static RP_HUGE_POOL: Kretprobe =
    Kretprobe::new().symbol("kr_toggle").handler(toggle_return).maxactive(1 << 20).data_size(4096);
static RP_HUGE_COUNT: Kretprobe = Kretprobe::new().symbol("kr_toggle").handler(toggle_return).maxactive(i32::MAX);

#[test_case]
fn registration_refusals() {
    assert_eq!(register_kretprobe(&RP_NOWHERE), Err(KprobeError::NoLocation));
    let sites = site_count();
    let arena = kretprobe_arena_used();
    // More instances than the pool arena holds: refused, nothing changed.
    for rp in [&RP_HUGE_POOL, &RP_HUGE_COUNT] {
        assert_eq!(register_kretprobe(rp), Err(KprobeError::TableFull("kretprobe instance memory")));
        assert!(!rp.is_enabled());
    }
    assert_eq!(site_count(), sites);
    assert_eq!(kretprobe_arena_used(), arena);
    register_kretprobe(&RP_TOGGLE).expect("register");
    assert_eq!(register_kretprobe(&RP_TOGGLE), Err(KprobeError::AlreadyRegistered));
    unregister_kretprobe(&RP_TOGGLE).expect("unregister");
    assert_eq!(retired_pools(), 0);
}
