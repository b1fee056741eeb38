//! Property tests: any input parses or is refused, never panics; what is
//! accepted prints back to itself, compiles, evaluates against any memory
//! into any buffer, and shows, all without panicking.
mod common;

use common::{FakeMemory, FakeRegs, KERNEL};
use probe_events::{
    CallingConvention, Command, FetchProgram, Hit, Interface, ProbeDefinition, parse_command, parse_command_bytes,
    write_lines,
};
use proptest::prelude::*;

fn interfaces() -> impl Strategy<Value = Interface> {
    prop_oneof![Just(Interface::KprobeEvents), Just(Interface::DynamicEvents)]
}

/// Pieces of the grammar, so random commands often get far in the parser:
/// mostly valid pieces, some broken ones.
fn fetch_arg() -> impl Strategy<Value = String> {
    let good = prop::sample::select(vec![
        "%ax",
        "%sp",
        "%eax",
        "$stack",
        "$stack3",
        "$arg1",
        "$arg3",
        "$retval",
        "$comm",
        "$duration",
        "@0x1000",
        "@jiffies",
        "@jiffies+4",
        "\\1",
        "\\-1",
        "\\\"s\"",
    ]);
    let bad = prop::sample::select(vec![
        "%bogus",
        "$stack9999",
        "$arg0",
        "$arg*",
        "$x",
        "@nothing",
        "@+1",
        "\\x",
        "\\\"",
        "&",
        "",
        "name",
    ]);
    let leaf = prop_oneof![
        12 => good.prop_map(String::from),
        1 => bad.prop_map(String::from),
        1 => any::<u32>().prop_map(|n| format!("@{n:#x}")),
    ];
    leaf.prop_recursive(3, 6, 1, |inner| {
        let offset = prop_oneof![
            12 => prop::sample::select(vec!["+0", "-4", "+u8", "-u1", "+0x10", "+4"]),
            1 => prop::sample::select(vec!["+", "+zz"]),
        ];
        (offset, inner, prop::bool::weighted(0.98))
            .prop_map(|(offset, inner, closed)| format!("{offset}({inner}{}", if closed { ")" } else { "" }))
    })
}

fn typed_arg() -> impl Strategy<Value = String> {
    let ty = prop_oneof![
        3 => Just(""),
        6 => prop::sample::select(vec![
            ":u8", ":s16", ":x64", ":char", ":string", ":ustring", ":symstr", ":symbol", ":b4@2/32", ":u8[4]",
            ":string[2]", ":x16[3]", ":b1@3/8[2]",
        ]),
        1 => prop::sample::select(vec![":b9@0/8", ":x8[65]", ":u8[2", ":bogus"]),
    ];
    (fetch_arg(), ty).prop_map(|(arg, ty)| format!("{arg}{ty}"))
}

fn command() -> impl Strategy<Value = String> {
    let head = prop_oneof![
        8 => prop::sample::select(vec!["p", "r", "r4", "p:ev", "p:g/ev", "r:g/", "f", "f:ev", "f:g.ev"]),
        1 => prop::sample::select(vec!["r0", "p:/x", "-:ev", "-:g/", "!p:ev", "x"]),
    ];
    let place = prop_oneof![
        8 => prop::sample::select(vec![
            "vfs_read", "vfs_read+4", "vfs_read%return", "kfree", "0xc0100000", "mod:sym",
            "probe_kernel::demo::checksum",
        ]),
        1 => prop::sample::select(vec!["dup", "nothing", "vfs_read+0x10%return", "vfs_read%x"]),
    ];
    let name = prop_oneof![4 => Just(false), 1 => Just(true)];
    (head, place, prop::collection::vec((name, typed_arg()), 0..5)).prop_map(|(head, place, args)| {
        let mut command = format!("{head} {place}");
        for (i, (named, arg)) in args.into_iter().enumerate() {
            command.push(' ');
            if named {
                command.push_str(&format!("n{i}="));
            }
            command.push_str(&arg);
        }
        command
    })
}

/// Everything done with an accepted definition must work.
fn exercise(def: &ProbeDefinition, memory: &FakeMemory, regs: &FakeRegs, buffer: usize) {
    let shown = def.to_string();
    match parse_command(&shown, Interface::DynamicEvents, &KERNEL) {
        Ok(Command::Create(again)) => {
            assert_eq!(again.to_string(), shown);
            assert_eq!(again.args(), def.args());
        }
        other => panic!("{shown:?} does not parse back: {other:?}"),
    }
    let _ = def.format_file(1);
    for convention in [CallingConvention::Stack, CallingConvention::Regparm3] {
        let Ok(program) = FetchProgram::compile(def, &KERNEL, convention) else { continue };
        let entry = [1, 2, 3];
        let hit = Hit { regs, memory, symbols: &KERNEL, comm: b"task", entry: &entry, duration_ns: 7 };
        let mut record = vec![0u8; buffer];
        program.write_header(&mut record, &Default::default(), 0xc010_0000, 0x10);
        let used = program.fetch(&hit, &mut record);
        assert!(used <= record.len());
        let mut line = String::new();
        def.format_event(&record, &KERNEL, &mut line).unwrap();
        let _ = program.dynamic_size(&hit);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10000, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..200), interface in interfaces()) {
        let _ = parse_command_bytes(&bytes, interface, &KERNEL);
    }

    #[test]
    fn any_text(text in "\\PC{0,120}", interface in interfaces()) {
        for line in write_lines(&text) {
            let Ok(line) = line else { break };
            let _ = parse_command(line, interface, &KERNEL);
        }
    }

    #[test]
    fn grammar_shaped(
        command in command(),
        interface in interfaces(),
        words in prop::collection::vec(any::<u32>(), 32),
        mapped in any::<bool>(),
        buffer in 0usize..160,
    ) {
        match parse_command(&command, interface, &KERNEL) {
            Ok(Command::Create(def)) => {
                let mut memory = FakeMemory::default();
                if mapped {
                    for (i, &w) in words.iter().enumerate() {
                        memory.put_u32(0x1000 + 4 * i as u32, w);
                        memory.put_u32(w & !3, 0x1000 + (w & 0x7c));
                    }
                    memory.put(0x1080, b"text\0");
                    memory.put_u32(0xc020_0000, 0x1000);
                }
                let mut regs = FakeRegs::default();
                for (i, slot) in regs.0.iter_mut().enumerate() {
                    *slot = if i % 2 == 0 { 0x1000 } else { words[i] };
                }
                exercise(&def, &memory, &regs, buffer);
            }
            Ok(_) => {}
            Err(error) => {
                // Every caret is within the command (or just past it).
                for entry in error.entries() {
                    prop_assert!(entry.position() <= entry.command().len() + 1);
                    prop_assert!(!entry.to_string().is_empty());
                }
            }
        }
    }
}
