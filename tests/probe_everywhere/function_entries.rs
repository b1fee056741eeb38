//! A probe on every function entry of the image, while the demo runs.
//!
//! Why: the demo's summary must not change, whichever probeable function
//! the probes sit on, in batches that fill the site table.
use super::*;

#[test_case]
fn a_probe_on_every_function_entry_leaves_the_demo_unchanged() {
    assert_eq!(site_count(), 0);
    let started = task::ticks();
    let unprobed = probe_kernel::demo::run();
    let engine = paging::kprobes_text();
    let mut refusals: Vec<(String, usize)> = Vec::new();
    let (mut trap_path, mut refused) = (0, 0);
    let mut probes: Vec<&'static Counted> = Vec::new();
    let mut entries: Vec<(&'static str, usize, u8)> = Vec::new();
    for function in kernel_functions() {
        if engine.contains(&function.address) {
            trap_path += 1;
            continue;
        }
        match can_probe(function.address as *const ()) {
            Ok(_) => {
                probes.push(Counted::leak(function.address, false));
                entries.push((function.name, function.address, text_byte(function.address)));
            }
            Err(error) => {
                refused += 1;
                tally(&mut refusals, format!("{error:?}"));
            }
        }
    }
    // The demo registers a kprobe and a kretprobe of its own: leave them two sites.
    let batch = MAX_SITES - 2;
    let (mut hits, mut missed, mut batches) = (0, 0, 0);
    let mut per_batch: Vec<usize> = Vec::new();
    for chunk in probes.chunks(batch) {
        let kprobes: Vec<&'static Kprobe> = chunk.iter().map(|c| &c.probe).collect();
        register_kprobes(&kprobes).unwrap_or_else(|e| panic!("batch {batches} refused: {e:?}"));
        let summary = probe_kernel::demo::run();
        let batch_missed: usize = kprobes.iter().map(|p| p.nmissed()).sum();
        unregister_kprobes(&kprobes);
        let batch_hits: usize = chunk.iter().map(|c| c.pre.load(Ordering::Relaxed)).sum();
        assert_eq!(
            exact(&summary),
            exact(&unprobed),
            "batch {batches} ({}..): the demo's results changed",
            symbols::Describe(chunk[0].probe.addr().unwrap_or(0))
        );
        per_batch.push(batch_hits);
        hits += batch_hits;
        missed += batch_missed;
        batches += 1;
    }
    assert_eq!(site_count(), 0);
    for &(_, address, byte) in &entries {
        assert_eq!(text_byte(address), byte, "{}: byte not restored", symbols::Describe(address));
    }
    // The demo's own functions were entered exactly as often as it calls them.
    let hits_of = |name: &str| {
        let at = entries.iter().position(|e| e.0 == name).unwrap_or_else(|| panic!("{name} not probed"));
        probes[at].pre.load(Ordering::Relaxed)
    };
    let calls = probe_kernel::demo::TASKS * probe_kernel::demo::CALLS_PER_TASK;
    assert_eq!(hits_of("probe_kernel::demo::checksum"), calls);
    assert_eq!(hits_of("probe_kernel::demo::slow_square"), calls);
    assert_eq!(hits_of("probe_kernel::demo::run"), 1);
    assert_eq!(exact(&probe_kernel::demo::run()), exact(&unprobed));
    println!();
    println!(
        "  every entry: {} functions probed in {batches} batches of up to {batch}, {refused} refused ({refusals:?}), {trap_path} trap-path functions skipped",
        probes.len()
    );
    println!(
        "  {hits} hits (per batch {per_batch:?}), {missed} misses (handlers that print reach probed console code), {}",
        Seconds(task::ticks() - started)
    );
    println!("  demo summary (unprobed and every probed run): {unprobed:?}");
}

/// What of the demo's summary is exact on any number of CPUs: its kprobe's
/// counts, and its kretprobe's reports and misses together (which of the
/// calls miss its 2 instances depends on how the CPUs interleave).
fn exact(summary: &probe_kernel::demo::Summary) -> (usize, usize, usize, usize, usize) {
    (
        summary.calls,
        summary.kprobe_hits,
        summary.kprobe_post_hits,
        summary.kprobe_missed,
        summary.kretprobe_reports + summary.kretprobe_missed,
    )
}
