//! Every instruction of dozens of functions, probed alone and all at once.
//!
//! Why: each probe, single-stepped, boosted and both at once, must leave the
//! workload's hash unchanged, and hit exactly as often as when it is alone.
use super::*;

/// One probed instruction of a target.
struct Boundary {
    target: usize,
    offset: usize,
    boostable: bool,
    stepped: &'static Counted,
    boosted: &'static Counted,
    /// Hits when probed alone (single-stepped).
    alone: usize,
}

#[test_case]
fn every_instruction_of_fifty_functions_probed_alone_and_all_at_once() {
    assert_eq!(site_count(), 0);
    let started = task::ticks();
    reset_direct();
    let baseline = workload();
    let direct_per_run: Vec<usize> = DIRECT_CALLS.iter().map(|c| c.swap(0, Ordering::Relaxed)).collect();
    assert_eq!(workload(), baseline, "the workload is not deterministic");

    // Candidates by name; refused ones are counted and skipped.
    let engine = paging::kprobes_text();
    let mut refusals: Vec<(String, usize)> = Vec::new();
    let mut refused = 0;
    let mut candidates: Vec<Symbol> = Vec::new();
    for function in kernel_functions() {
        if engine.contains(&function.address) || !is_candidate(function.name) {
            continue;
        }
        match can_probe(function.address as *const ()) {
            Ok(_) => candidates.push(function),
            Err(error) => {
                refused += 1;
                tally(&mut refusals, format!("{error:?}"));
            }
        }
    }

    // The census: which candidates the workload calls, how often.
    reset_direct();
    let calls = census(&candidates, baseline);
    let census_runs = candidates.len().div_ceil(MAX_SITES);
    // The functions the workload calls directly and counts itself (those the
    // compiler did not inline into it: an inlined one is never entered).
    let mut checked_direct = 0;
    for (index, name) in DIRECT_NAMES.iter().enumerate() {
        assert_eq!(DIRECT_CALLS[index].load(Ordering::Relaxed), direct_per_run[index] * census_runs);
        if let Some(at) = candidates.iter().position(|f| f.name == *name).filter(|&at| calls[at] > 0) {
            assert_eq!(
                calls[at], direct_per_run[index],
                "{name}: entry hits differ from the calls the workload counted"
            );
            checked_direct += 1;
        }
    }
    assert!(checked_direct >= 3, "only {checked_direct} directly called functions were entered (inlined?)");
    let mut targets: Vec<Target> = candidates
        .iter()
        .zip(&calls)
        .filter(|(f, calls)| **calls > 0 && f.size <= MAX_TARGET_SIZE)
        .map(|(f, calls)| Target { function: *f, calls: *calls, bytes: function_bytes(f) })
        .collect();
    // Keep within the budget, and diverse: drop the biggest functions first,
    // but keep up to three per pattern.
    let mut total: usize =
        targets.iter().map(|t| instruction_boundaries(&t.function, &t.bytes).map_or(0, |b| b.len())).sum();
    let mut dropped = 0;
    while total > BOUNDARY_BUDGET && targets.len() > MIN_TARGETS {
        let group_size =
            |t: &Target| targets.iter().filter(|u| pattern_of(u.function.name) == pattern_of(t.function.name)).count();
        let Some(victim) =
            (0..targets.len()).filter(|&i| group_size(&targets[i]) > 3).max_by_key(|&i| targets[i].function.size)
        else {
            break;
        };
        let removed = targets.remove(victim);
        total -= instruction_boundaries(&removed.function, &removed.bytes).map_or(0, |b| b.len());
        dropped += 1;
    }
    println!();
    println!(
        "  {} candidates by name ({refused} refused by can_probe: {refusals:?}), {} called by the workload, {} targets ({dropped} dropped for the budget of {BOUNDARY_BUDGET} boundaries)",
        candidates.len() + refused,
        calls.iter().filter(|&&c| c > 0).count(),
        targets.len()
    );
    assert!(
        targets.len() >= MIN_TARGETS,
        "only {} target functions accepted and called (need {MIN_TARGETS})",
        targets.len()
    );

    // Every instruction boundary of every target.
    let mut boundaries: Vec<Boundary> = Vec::new();
    let mut unsupported = 0;
    for (index, target) in targets.iter().enumerate() {
        let instructions = instruction_boundaries(&target.function, &target.bytes)
            .unwrap_or_else(|offset| panic!("{}+{offset:#x} does not decode", target.function.name));
        for (address, _length) in instructions {
            match can_probe(address as *const ()) {
                Ok(fixup) => boundaries.push(Boundary {
                    target: index,
                    offset: address - target.function.address,
                    boostable: fixup.boostable(),
                    stepped: Counted::leak(address, true),
                    boosted: Counted::leak(address, false),
                    alone: 0,
                }),
                Err(KprobeError::UnsupportedInstruction(_)) => unsupported += 1,
                Err(error) => panic!("{}: {error:?}", symbols::Describe(address)),
            }
        }
    }
    let where_ = |b: &Boundary| format!("{}+{:#x}", targets[b.target].function.name, b.offset);

    // One probe at a time: single-stepped, then boosted.
    let (mut alone_hits, mut executed, mut boosted) = (0usize, 0usize, 0usize);
    for boundary in boundaries.iter_mut() {
        let run = probed_run(&[boundary.stepped]);
        assert_eq!(run.hash, baseline, "{}: single-stepped probe changed the result", where_(boundary));
        assert!(!run.flags[0].contains(KprobeFlags::BOOSTED), "{}: boosted with a post handler", where_(boundary));
        let (pre, post) = (boundary.stepped.pre(), boundary.stepped.post());
        assert_eq!((post, run.missed), (pre, 0), "{}: post hits or misses", where_(boundary));
        if boundary.offset == 0 {
            assert_eq!(pre, targets[boundary.target].calls, "{}: entry hits differ from calls", where_(boundary));
        }
        boundary.alone = pre;
        alone_hits += pre;
        executed += usize::from(pre > 0);

        let run = probed_run(&[boundary.boosted]);
        assert_eq!(run.hash, baseline, "{}: boosted probe changed the result", where_(boundary));
        assert_eq!(
            run.flags[0].contains(KprobeFlags::BOOSTED),
            boundary.boostable,
            "{}: BOOSTED flag",
            where_(boundary)
        );
        boosted += usize::from(boundary.boostable);
        let (pre, post) = (boundary.boosted.pre(), boundary.boosted.post());
        assert_eq!((pre, post, run.missed), (boundary.alone, 0, 0), "{}: boosted hits", where_(boundary));
    }
    let alone_time = task::ticks() - started;

    // As many at once as the site table holds: single-stepped, then boosted.
    let batch_started = task::ticks();
    let mut batches = 0;
    let mut batch_hits = 0;
    for chunk in boundaries.chunks(MAX_SITES) {
        for stepped in [true, false] {
            let probes: Vec<&'static Counted> =
                chunk.iter().map(|b| if stepped { b.stepped } else { b.boosted }).collect();
            let run = probed_run(&probes);
            batches += 1;
            let first = where_(&chunk[0]);
            assert_eq!(run.hash, baseline, "batch from {first} (stepped: {stepped}) changed the result");
            assert_eq!(run.missed, 0, "batch from {first} (stepped: {stepped}) missed hits");
            for (boundary, (probe, flags)) in chunk.iter().zip(probes.iter().zip(&run.flags)) {
                let expected_post = if stepped { boundary.alone } else { 0 };
                assert_eq!(
                    (probe.pre(), probe.post()),
                    (boundary.alone, expected_post),
                    "{}: hits in a batch (stepped: {stepped})",
                    where_(boundary)
                );
                assert_eq!(
                    flags.contains(KprobeFlags::BOOSTED),
                    !stepped && boundary.boostable,
                    "{}: BOOSTED in a batch",
                    where_(boundary)
                );
                batch_hits += probe.pre();
            }
        }
    }
    // Multiprobes: both probes of each boundary at once (half as many
    // sites per batch); the post handler keeps the whole site single-stepped.
    let mut multiprobe_hits = 0;
    for chunk in boundaries.chunks(MAX_SITES / 2) {
        let probes: Vec<&'static Counted> = chunk.iter().flat_map(|b| [b.stepped, b.boosted]).collect();
        let run = probed_run(&probes);
        batches += 1;
        let first = where_(&chunk[0]);
        assert_eq!((run.hash, run.missed), (baseline, 0), "multiprobe batch from {first}: result or misses");
        for (boundary, pair) in chunk.iter().zip(probes.chunks(2)) {
            let (stepped, boosted) = (pair[0], pair[1]);
            assert_eq!(
                (stepped.pre(), stepped.post(), boosted.pre(), boosted.post()),
                (boundary.alone, boundary.alone, boundary.alone, 0),
                "{}: multiprobe hits",
                where_(boundary)
            );
            multiprobe_hits += stepped.pre() + boosted.pre();
        }
        assert!(
            run.flags.iter().all(|f| !f.contains(KprobeFlags::BOOSTED)),
            "multiprobe batch from {first}: boosted with a post handler at the site"
        );
    }
    let batch_time = task::ticks() - batch_started;
    for target in &targets {
        assert_eq!(function_bytes(&target.function), target.bytes, "{}: bytes not restored", target.function.name);
    }
    assert_eq!(workload(), baseline);

    let mut groups: Vec<(String, usize)> = Vec::new();
    for target in &targets {
        tally(&mut groups, String::from(pattern_of(target.function.name)));
    }
    println!("  targets per pattern: {groups:?}");
    println!(
        "  probe_everywhere: {} functions, {} boundaries ({unsupported} more refused as unsupported), {executed} executed, {boosted} boostable",
        targets.len(),
        boundaries.len()
    );
    println!(
        "  alone: {} runs, {} hits single-stepped + {} boosted, 0 misses, {}",
        2 * boundaries.len(),
        alone_hits,
        alone_hits,
        Seconds(alone_time)
    );
    println!(
        "  all at once: {batches} batches of up to {MAX_SITES} sites, {batch_hits} hits + {multiprobe_hits} as multiprobes (both probes per site), 0 misses, {}; census {census_runs} runs",
        Seconds(batch_time)
    );
    println!(
        "  heap in use: {} KiB (the probes are leaked: they must outlive their registration)",
        probe_kernel::memory::heap_used() / 1024
    );
    assert!(executed * 2 > boundaries.len(), "the workload ran under half of the probed instructions: {executed}");
}
