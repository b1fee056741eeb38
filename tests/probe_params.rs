//! Test kernel: probe arguments by parameter name, from the image's DWARF.
//!
//! Issue 11 (arguments by name): the post-link tool writes each function's
//! parameters and where they are at its entry into the image
//! (`flag` here is one the compiler's DWARF places only after the entry:
//! it is reported as such, listed `[INV]`, and refused by name)
//! (`symbols::params_of`); the console's probe events name them as Linux's
//! BTF arguments do (`p FUNC len`, `$arg*`, `NAME=PARAM:TYPE`), in entry
//! and return probes, and `probe-vars FUNC` lists them as
//! `perf probe -V` does. Every expectation is exact: the table's entries
//! for a cdecl function with known arguments, the listing, the
//! `kprobe_events` lines, the trace records of calls with known values,
//! and the refusals in `error_log`.
#![no_std]
#![no_main]
#![feature(custom_test_frameworks)]
#![test_runner(probe_kernel::testing::run_tests)]
#![reexport_test_harness_main = "test_main"]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use ksyms_table::params::{Class, Location, Unavailable};
use probe_kernel::{memory, shell, symbols};

probe_kernel::test_kernel_main!();

/// cdecl: every argument on the stack above the return address, `seed`
/// in two slots, `flag` and `delta` widened to a slot each.
#[inline(never)]
#[unsafe(no_mangle)]
pub extern "C" fn params_target(data: *const u8, len: usize, seed: u64, flag: bool, delta: i16) -> u32 {
    let mut sum = core::hint::black_box(len as u32) ^ (seed as u32) ^ ((seed >> 32) as u32);
    if core::hint::black_box(flag) {
        sum = sum.wrapping_add(delta as u32);
    }
    sum ^ core::hint::black_box(data) as u32
}

/// Taking the address keeps the C convention (LLVM may otherwise give a
/// function only called directly a register convention of its own).
#[used]
static PINNED: extern "C" fn(*const u8, usize, u64, bool, i16) -> u32 = params_target;

static TEXT: &[u8] = b"hello\0";
const SEED: u64 = 0x1122_3344_5566_7788;

fn call_target() -> u32 {
    params_target(core::hint::black_box(TEXT.as_ptr()), core::hint::black_box(5), SEED, true, -2)
}

/// What the shell prints for `line`.
fn run(line: &str) -> String {
    probe_kernel::testing::captured(|| shell::handle(Ok(line)))
}

fn tracing(file: &str) -> String {
    format!("/sys/kernel/tracing/{file}")
}

/// The event lines of the trace, each from its event's name on.
fn trace_events() -> Vec<String> {
    let trace = run(&format!("cat {}", tracing("trace")));
    trace
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let at = line.find(": ")?;
            Some(String::from(&line[at + 2..]))
        })
        .collect()
}

#[test_case]
fn the_table_locates_each_cdecl_argument_at_the_entry() {
    let address = params_target as *const () as usize;
    let params = symbols::params_of(address).expect("the tool wrote params_target's parameters");
    let got: Vec<(&str, &str, u32, Location, Class)> =
        params.iter().map(|p| (p.name, p.type_name, p.size, p.location, p.class)).collect();
    assert_eq!(
        got,
        [
            ("data", "*const u8", 4, Location::Stack(4), Class::CharPointer),
            ("len", "usize", 4, Location::Stack(8), Class::Unsigned),
            ("seed", "u64", 8, Location::Stack(12), Class::Unsigned),
            // LLVM describes `flag` only once loaded into a register, after
            // the entry: the table says so rather than guess its slot.
            ("flag", "bool", 1, Location::Unavailable(Unavailable::OptimizedOut), Class::Unsigned),
            ("delta", "i16", 2, Location::Stack(24), Class::Signed),
        ]
    );
    // Not a function's first byte: nothing.
    assert!(symbols::params_of(address + 1).is_none());
    // The demo's function, as the README shows it.
    let checksum = probe_kernel::demo::checksum as *const () as usize;
    let seed: Vec<(&str, Location)> =
        symbols::params_of(checksum).unwrap().iter().map(|p| (p.name, p.location)).collect();
    assert_eq!(seed, [("seed", Location::Stack(4))]);
}

#[test_case]
fn lookups_allocate_nothing() {
    let address = params_target as *const () as usize;
    let _ = symbols::params_of(address);
    let before = memory::heap_used();
    for _ in 0..100 {
        let params = symbols::params_of(core::hint::black_box(address)).unwrap();
        assert_eq!(params.iter().map(|p| p.size).sum::<u32>(), 19);
    }
    assert_eq!(memory::heap_used(), before);
}

#[test_case]
fn probe_vars_lists_what_the_entry_can_fetch() {
    assert_eq!(
        run("probe-vars params_target"),
        "Available variables at params_target\n\t@<params_target+0>\n\t\t*const u8\tdata\n\t\tusize\tlen\n\t\t\
         u64\tseed\n\t\ti16\tdelta\n\t\t[INV]\tbool\tflag\t(optimized out at the entry)\n"
    );
    assert_eq!(
        run("probe-vars demo::checksum"),
        "Available variables at probe_kernel::demo::checksum\n\t@<probe_kernel::demo::checksum+0>\n\t\tu32\tseed\n"
    );
    assert_eq!(run("probe-vars no_such_function_at_all"), "probe-vars: no function \"no_such_function_at_all\"\n");
    assert_eq!(run("probe-vars"), "probe-vars: missing FUNCTION (usage: probe-vars FUNCTION)\n");
}

#[test_case]
fn entry_events_record_parameters_by_name() {
    probe_kernel::task::set_affinity(Some(0));
    let size = symbols::lookup_name("params_target").unwrap().size;
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    let define = format!("echo 'p:pp params_target data len seed delta' > {}", tracing("kprobe_events"));
    assert_eq!(run(&define), "");
    let named = format!("echo 'p:pn params_target s=data:string l=len:x16 $arg3:x64' >> {}", tracing("kprobe_events"));
    assert_eq!(run(&named), "");
    assert_eq!(
        run(&format!("cat {}", tracing("kprobe_events"))),
        "p:kprobes/pp params_target data=data len=len seed=seed delta=delta\n\
         p:kprobes/pn params_target s=data:string l=len:x16 seed=seed:x64\n"
    );
    let format = run(&format!("cat {}", tracing("events/kprobes/pp/format")));
    for field in [
        "\tfield:u32 data;\toffset:12;\tsize:4;\tsigned:0;",
        "\tfield:u32 len;\toffset:16;\tsize:4;\tsigned:0;",
        "\tfield:u64 seed;\toffset:20;\tsize:8;\tsigned:0;",
        "\tfield:s16 delta;\toffset:28;\tsize:2;\tsigned:1;",
    ] {
        assert!(format.contains(field), "{field:?} in\n{format}");
    }
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/enable"))), "");
    let result = call_target();
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
    assert_eq!(result, (5 ^ 0x5566_7788 ^ 0x1122_3344u32).wrapping_add(-2i32 as u32) ^ TEXT.as_ptr() as u32);
    let data = TEXT.as_ptr() as usize;
    assert_eq!(
        trace_events(),
        [
            format!("pp: (params_target+0x0/{size:#x}) data={data:#x} len=5 seed={SEED} delta=-2"),
            format!("pn: (params_target+0x0/{size:#x}) s=\"hello\" l=0x5 seed=0x1122334455667788"),
        ]
    );
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    probe_kernel::task::set_affinity(None);
}

/// A word whose address a dereference fetches from.
static WORD: u32 = 0xfeed_beef;

/// Two pages, with the bytes 11 22 33 44 across their boundary: a word that
/// lies in both.
#[repr(C, align(4096))]
struct TwoPages([u8; 8192]);
static PAGES: TwoPages = {
    let mut pages = [0; 8192];
    (pages[0xffe], pages[0xfff], pages[0x1000], pages[0x1001]) = (0x11, 0x22, 0x33, 0x44);
    TwoPages(pages)
};

/// Dereferences read only memory present in the kernel's map: an aligned
/// word in one page (the fast path), a word across two pages, and absent
/// pages (the null page, a stack's guard page, a word half in one) record
/// zero instead of faulting, each in the event's own record.
#[test_case]
fn dereferences_read_present_memory_and_record_zero_for_absent() {
    probe_kernel::task::set_affinity(Some(0));
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    let define = format!("echo 'p:pd params_target w=+0($arg1):x32 h=+2($arg1):x16' > {}", tracing("kprobe_events"));
    assert_eq!(run(&define), "");
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/enable"))), "");
    let guard = probe_kernel::task::guard_pages().next().unwrap();
    let across = PAGES.0.as_ptr() as usize + 0x1000 - 2;
    let addresses = [&WORD as *const u32 as usize, 0x10, guard, guard - 2, across];
    for address in addresses {
        params_target(address as *const u8, 0, 0, false, 0);
    }
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
    let size = symbols::lookup_name("params_target").unwrap().size;
    let expected: Vec<String> = [(0xfeed_beef_u32, 0xfeed), (0, 0), (0, 0), (0, 0), (0x4433_2211, 0x4433)]
        .iter()
        .map(|(word, half)| format!("pd: (params_target+0x0/{size:#x}) w={word:#x} h={half:#x}"))
        .collect();
    assert_eq!(trace_events(), expected);
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    probe_kernel::task::set_affinity(None);
}

#[test_case]
fn return_events_record_parameters_saved_at_the_entry() {
    probe_kernel::task::set_affinity(Some(0));
    assert_eq!(run(&format!("echo > {}", tracing("trace"))), "");
    let define = format!("echo 'r:pr params_target len seed $retval d=delta' > {}", tracing("kprobe_events"));
    assert_eq!(run(&define), "");
    assert_eq!(run(&format!("echo 'r:star params_target $arg*' >> {}", tracing("kprobe_events"))), "");
    assert_eq!(
        run(&format!("cat {}", tracing("kprobe_events"))),
        "r:kprobes/pr params_target len=len seed=seed arg3=$retval d=delta\n\
         r:kprobes/star params_target data=data len=len seed=seed delta=delta\n"
    );
    assert_eq!(run(&format!("echo 1 > {}", tracing("events/kprobes/enable"))), "");
    let result = call_target();
    assert_eq!(run(&format!("echo 0 > {}", tracing("events/kprobes/enable"))), "");
    let events = trace_events();
    assert_eq!(events.len(), 2, "{events:?}");
    // Each event's line from its ` <- `: where it returned to is this test.
    let tail = |name: &str| {
        let event = events.iter().find(|e| e.starts_with(name)).unwrap_or_else(|| panic!("{name} in {events:?}"));
        String::from(&event[event.find(" <- ").unwrap()..])
    };
    assert_eq!(tail("pr: "), format!(" <- params_target) len=5 seed={SEED} arg3={result:#x} d=-2"));
    assert_eq!(
        tail("star: "),
        format!(" <- params_target) data={:#x} len=5 seed={SEED} delta=-2", TEXT.as_ptr() as usize)
    );
    assert_eq!(run(&format!("echo > {}", tracing("kprobe_events"))), "");
    probe_kernel::task::set_affinity(None);
}

#[test_case]
fn refusals_are_linuxs() {
    assert_eq!(run(&format!("echo > {}", tracing("error_log"))), "");
    let refused = [
        ("p params_target+1 len", "Invalid argument", "BTF is not available or not supported", 18),
        ("p params_target nope", "No such file or directory", "This variable is not found at this probe point", 16),
        ("p params_target flag", "No such file or directory", "This variable is not found at this probe point", 16),
        ("p params_target $arg9", "No such file or directory", "This variable is not found at this probe point", 16),
        (
            "p params_target len.x",
            "Operation not supported",
            "Non pointer structure/union argument is not supported.",
            19,
        ),
    ];
    for (command, errno, _, _) in refused {
        assert_eq!(
            run(&format!("echo '{command}' >> {}", tracing("kprobe_events"))),
            format!("echo: write error: {errno}\n"),
            "{command}"
        );
    }
    let log = run(&format!("cat {}", tracing("error_log")));
    let entries: Vec<&str> = log.split_inclusive("^\n").collect();
    assert_eq!(entries.len(), refused.len(), "{log}");
    for (entry, (command, _, message, caret)) in entries.iter().zip(refused) {
        let body = &entry[entry.find("] ").unwrap() + 2..];
        assert_eq!(
            body,
            format!("trace_kprobe: error: {message}\n  Command: {command}\n{}^\n", " ".repeat(11 + caret)),
            "{log}"
        );
    }
    assert_eq!(run(&format!("cat {}", tracing("kprobe_events"))), "");
}
