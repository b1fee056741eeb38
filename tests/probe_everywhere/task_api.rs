//! Every instruction of the task API probed while tasks switch.
//!
//! Why: spawn, task start, yield, sleep, exit and join run across context
//! switches; a probe there must survive being hit in one task and resumed
//! in another.
use super::*;

/// A child task: yields, one of them sleeps, reads its own name.
fn child(k: usize) -> usize {
    for _ in 0..3 {
        task::yield_now();
    }
    if k == 2 {
        task::sleep(1);
    }
    k * k + task::task_name(task::current_id()).map_or(0, str::len)
}

/// Spawns three children and joins them: spawn, task start, yield, sleep,
/// exit and join all run, with context switches in between.
#[inline(never)]
fn task_workload() -> u64 {
    let ids = [1, 2, 3].map(|k| task::spawn_named("child", child, k).expect("spawn child"));
    ids.into_iter().fold(7u64, |sum, id| sum * 31 + task::join(id) as u64)
}

#[test_case]
fn every_instruction_of_the_task_api_probed_while_tasks_switch() {
    assert_eq!(site_count(), 0);
    let started = task::ticks();
    let baseline = task_workload();
    assert_eq!(baseline, ((7 * 31 + 6) * 31 + 9) * 31 + 14, "children's results");
    let engine = paging::kprobes_text();
    let (mut refused, mut refusals) = (0, Vec::new());
    let mut candidates: Vec<Symbol> = Vec::new();
    for function in kernel_functions() {
        let task_api = [
            "probe_kernel::task::lifecycle::",
            "probe_kernel::task::scheduler::",
            "probe_kernel::task::table::",
            "probe_kernel::task::stacks::",
        ];
        if engine.contains(&function.address) || !task_api.iter().any(|p| function.name.starts_with(p)) {
            continue;
        }
        match can_probe(function.address as *const ()) {
            Ok(_) => candidates.push(function),
            Err(error) => {
                refused += 1;
                tally(&mut refusals, format!("{}: {error:?}", function.name));
            }
        }
    }
    // Two censuses: entry hits are checked where they do not depend on
    // how the tasks happened to interleave.
    let first = census_of(&candidates, baseline, task_workload);
    let second = census_of(&candidates, baseline, task_workload);
    let targets: Vec<(Symbol, Option<usize>)> = candidates
        .iter()
        .zip(first.iter().zip(&second))
        .filter(|(_, (a, b))| **a > 0 || **b > 0)
        .map(|(f, (a, b))| (*f, (a == b).then_some(*a)))
        .collect();
    println!();
    println!(
        "  task API: {} functions called, {refused} refused ({refusals:?}); entry counts stable for {}",
        targets.len(),
        targets.iter().filter(|t| t.1.is_some()).count()
    );
    let names: Vec<(&str, Option<usize>)> = targets.iter().map(|(f, calls)| (f.name, *calls)).collect();
    println!("  (function, calls per run): {names:?}");
    assert!(targets.len() >= 5, "too few task functions: {}", targets.len());

    let mut probes: Vec<(&'static Counted, &'static Counted, Option<usize>, String)> = Vec::new();
    for (function, calls) in &targets {
        let bytes = function_bytes(function);
        for (address, _) in instruction_boundaries(function, &bytes).expect("decodes") {
            if can_probe(address as *const ()).is_err() {
                continue;
            }
            let offset = address - function.address;
            let entry_calls = if offset == 0 { *calls } else { None };
            probes.push((
                Counted::leak(address, true),
                Counted::leak(address, false),
                entry_calls,
                format!("{}+{offset:#x}", function.name),
            ));
        }
    }
    let mut hits = 0;
    for (stepped, boosted, entry_calls, where_) in &probes {
        for probe in [*stepped, *boosted] {
            let run = probed_run_of(&[probe], task_workload);
            assert_eq!((run.hash, run.missed), (baseline, 0), "{where_}: result or misses");
            if let Some(calls) = entry_calls {
                assert_eq!(probe.pre(), *calls, "{where_}: entry hits");
            }
            hits += probe.pre();
        }
        assert_eq!(stepped.pre(), stepped.post(), "{where_}: post hits");
    }
    for stepped in [true, false] {
        for chunk in probes.chunks(MAX_SITES) {
            let batch: Vec<&'static Counted> = chunk.iter().map(|p| if stepped { p.0 } else { p.1 }).collect();
            let run = probed_run_of(&batch, task_workload);
            assert_eq!((run.hash, run.missed), (baseline, 0), "batch (stepped: {stepped}): result or misses");
            for (probe, (_, _, entry_calls, where_)) in batch.iter().zip(chunk) {
                if let Some(calls) = entry_calls {
                    assert_eq!(probe.pre(), *calls, "{where_}: entry hits in a batch");
                }
                hits += probe.pre();
            }
        }
    }
    println!(
        "  task API: {} boundaries, each probed alone twice and in batches (stepped, boosted): {hits} hits, 0 misses, {}",
        probes.len(),
        Seconds(task::ticks() - started)
    );
}
