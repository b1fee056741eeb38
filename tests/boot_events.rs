//! Probe events from the kernel command line: Linux's `kprobe_event=`
//! (`;` between events, `,` between words) defines each event and enables
//! it at boot; a refused one is reported and the others still come.
//! (A `harness = false`-style single test: its words are on the `run.sh`
//! line below.)
// run.sh: kprobe_event=p:seed,demo::checksum,s=+4($stack):u32;p,no_such_function_anywhere
#![no_std]
#![no_main]

extern crate alloc;

use probe_kernel::cmdline;
use probe_kernel::testing;
use probe_kernel::tracefs;

probe_kernel::entry_point!(main);

const NAME: &str = "boot_events::kprobe_event_defines_and_enables_what_it_can";

fn main(boot: &'static probe_kernel::boot_info::BootInfo) -> ! {
    testing::single_test(NAME);
    let line = cmdline::parse(boot.command_line(), |_| {});
    let defined = line.kprobe_event.map_or(0, tracefs::events::boot_events);
    for seed in [5, 6, 7] {
        core::hint::black_box(probe_kernel::demo::checksum(core::hint::black_box(seed)));
    }
    let events = tracefs::read("/sys/kernel/tracing/kprobe_events").unwrap_or_default();
    let enabled = tracefs::read("/sys/kernel/tracing/events/kprobes/seed/enable").unwrap_or_default();
    let trace = tracefs::read("/sys/kernel/tracing/trace").unwrap_or_default();
    let errors = tracefs::read("/sys/kernel/tracing/error_log").unwrap_or_default();
    let hits: alloc::vec::Vec<&str> =
        trace.lines().filter(|line| line.contains(" seed: (probe_kernel::demo::checksum+0x0/0x2a) s=")).collect();
    let seeds = ["s=5", "s=6", "s=7"];
    let checks = [
        defined == 1,
        events == "p:kprobes/seed demo::checksum s=+4($stack):u32\n",
        enabled == "1\n",
        hits.len() == 3 && hits.iter().zip(seeds).all(|(line, seed)| line.ends_with(seed)),
        errors.contains("error: Invalid probed address or symbol\n  Command: p no_such_function_anywhere\n"),
    ];
    testing::single_verdict(
        NAME,
        checks.iter().all(|c| *c),
        format_args!("checks {checks:?}\n{events}{enabled}{trace}{errors}"),
    )
}
