//! Every rule of the command and fetch-argument grammar: what is accepted,
//! what it parses to, and the refusals the selftests do not cover.
mod common;

use common::{KERNEL, Kernel};
use probe_events::command::{MAX_LINE_LEN, split_words};
use probe_events::{
    Bitfield, Command, CommandError, EntrySource, Errno, ErrorKind, FetchOp, FetchType, Interface, ProbeDefinition,
    ProbeKind, ProbeLocation, Register, parse_command, parse_command_bytes, write_lines,
};

fn parse(command: &str) -> ProbeDefinition {
    parse_in(command, Interface::DynamicEvents)
}

fn parse_in(command: &str, interface: Interface) -> ProbeDefinition {
    match parse_command(command, interface, &KERNEL) {
        Ok(Command::Create(def)) => def,
        other => panic!("{command:?}: {other:?}"),
    }
}

fn refuse(command: &str) -> CommandError {
    match parse_command(command, Interface::DynamicEvents, &KERNEL) {
        Ok(parsed) => panic!("{command:?} was accepted: {parsed:?}"),
        Err(e) => e,
    }
}

/// The kind and caret position of the refusal's last entry.
fn refused(command: &str) -> (ErrorKind, usize) {
    let error = refuse(command);
    let last = error.last().unwrap_or_else(|| panic!("{command:?}: nothing logged"));
    (last.kind(), last.position())
}

/// The fetch program of the first argument of `p vfs_read ARG`.
fn ops(arg: &str) -> Vec<FetchOp> {
    parse(&format!("p vfs_read {arg}")).args()[0].ops().to_vec()
}

#[test]
fn probe_types_and_default_names() {
    let def = parse("p vfs_read");
    assert_eq!(def.kind(), ProbeKind::Kprobe);
    assert_eq!((def.group(), def.event()), ("kprobes", "p_vfs_read_0"));
    assert_eq!(def.location(), &ProbeLocation::Symbol { symbol: "vfs_read".into(), offset: 0 });
    assert!(def.at_function_entry());

    let def = parse("p vfs_read+0x10");
    assert_eq!(def.event(), "p_vfs_read_16");
    assert_eq!(def.location(), &ProbeLocation::Symbol { symbol: "vfs_read".into(), offset: 16 });
    assert!(!def.at_function_entry());

    let def = parse("r vfs_read");
    assert_eq!((def.kind(), def.event(), def.maxactive()), (ProbeKind::Kretprobe, "r_vfs_read_0", 0));
    assert!(!def.at_function_entry());

    let def = parse("p vfs_read%return");
    assert_eq!((def.kind(), def.event()), (ProbeKind::Kretprobe, "r_vfs_read_0"));
    let def = parse("p vfs_read+0%return");
    assert_eq!(def.kind(), ProbeKind::Kretprobe);

    let def = parse("r16 vfs_read");
    assert_eq!(def.maxactive(), 16);
    let def = parse("r0x10:myret vfs_read");
    assert_eq!((def.maxactive(), def.event()), (16, "myret"));
    assert_eq!(refused("r0 vfs_read"), (ErrorKind::BadMaxact, 1));
    assert_eq!(parse("r4096 vfs_read").maxactive(), 4096);
    assert_eq!(refused("r4097 vfs_read"), (ErrorKind::MaxactTooBig, 1));
}

#[test]
fn addresses() {
    let def = parse("p 0xc0100000");
    assert_eq!(def.location(), &ProbeLocation::Address(0xc010_0000));
    assert_eq!(def.event(), "p_0xc0100000");
    assert!(!def.at_function_entry());
    assert_eq!(parse("p 4096").location(), &ProbeLocation::Address(4096));
    assert_eq!(parse("r 0x10").event(), "r_0x00000010");
    // An address probe is neither at an entry nor (for Linux) a return.
    assert_eq!(refused("p 0xc0100000 $arg1"), (ErrorKind::NofentryArgs, 13));
    assert_eq!(refused("r 0xc0100000 $retval"), (ErrorKind::RetvalOnProbe, 13));
}

#[test]
fn event_and_group_names() {
    let def = parse("p:myprobe vfs_read");
    assert_eq!((def.group(), def.event()), ("kprobes", "myprobe"));
    let def = parse("p:my-group/ev_1 vfs_read");
    assert_eq!((def.group(), def.event()), ("my-group", "ev_1"));
    // '.' separates too, and "GRP/" alone keeps the generated name.
    let def = parse("p:grp.ev vfs_read");
    assert_eq!((def.group(), def.event()), ("grp", "ev"));
    let def = parse("p:grp/ vfs_read+4");
    assert_eq!((def.group(), def.event()), ("grp", "p_vfs_read_4"));
    // 63 characters are fine, 64 are not.
    let long = "a".repeat(63);
    assert_eq!(parse(&format!("p:{long}/{long} vfs_read")).event(), long);
    assert_eq!(refused(&format!("p:{long}a vfs_read")), (ErrorKind::EventTooLong, 2));
    assert_eq!(refused(&format!("p:{long}a/x vfs_read")), (ErrorKind::GroupTooLong, 2));
    // Events are C identifiers; groups may have '-'.
    assert_eq!(refused("p:1ev vfs_read"), (ErrorKind::BadEventName, 2));
    assert_eq!(refused("p:g/e-v vfs_read"), (ErrorKind::BadEventName, 4));
    assert_eq!(refused("p:g/a/b vfs_read"), (ErrorKind::BadEventName, 4));
    assert_eq!(refused("p:gr*p/e vfs_read"), (ErrorKind::BadGroupName, 2));
    assert_eq!(parse("p:_g/_e vfs_read").event(), "_e");
    // Linux ignores what comes between the type letter and ':'.
    assert_eq!(parse("pfoo:bar vfs_read").event(), "bar");
    assert_eq!(parse("px vfs_read").event(), "p_vfs_read_0");
    // The error refers to the name word even when the probe word is fine.
    assert_eq!(refused("r100:/x vfs_read"), (ErrorKind::NoGroupName, 5));
}

#[test]
fn generated_names_sanitize_like_linux() {
    // ':' '.' '*' become '_' (not in the first place); others stay.
    let def = parse("p probe_kernel::demo::checksum");
    assert_eq!(def.event(), "p_probe_kernel__demo__checksum_0");
    assert_eq!(def.location().module(), None);
    assert_eq!(probe_events::command::sanitize_event_name(":a.b*c<d>".into()), ":a_b_c<d>");
    // Cut to 63 characters.
    let long = "p_".to_string() + &"x".repeat(80);
    assert_eq!(probe_events::command::sanitize_event_name(long).len(), 63);
    let def = parse("f vfs_read");
    assert_eq!((def.group(), def.event()), ("fprobes", "vfs_read__entry"));
    assert_eq!(parse("f vfs_read%return").event(), "vfs_read__exit");
}

#[test]
fn symbols_and_modules() {
    assert_eq!(refused("p dup"), (ErrorKind::NonUniqSymbol, 2));
    assert_eq!(refused("p vfs_read-4"), (ErrorKind::BadProbeAddr, 2));
    assert_eq!(refused("p vfs_read+"), (ErrorKind::BadProbeAddr, 2));
    // A module that is not loaded: accepted unchecked, not an entry.
    let def = parse("p mymod:func");
    assert_eq!(def.location().module(), Some("mymod"));
    assert_eq!(def.event(), "p_mymod_func_0");
    assert!(!def.at_function_entry());
    assert_eq!(parse("r mymod:func+4").kind(), ProbeKind::Kretprobe);
    // A loaded module's symbol is checked.
    let kernel = Kernel { modules: vec!["mymod"] };
    assert!(parse_command("p mymod:func", Interface::KprobeEvents, &kernel).is_err());
    // A uprobe's PATH:OFFSET is not a kprobe (no log entry).
    let error = refuse("p /bin/sh:0x10");
    assert!(error.entries().is_empty());
    assert_eq!(error.errno(), Errno::Inval);
    // An fprobe's function must exist, reported after the arguments.
    assert_eq!(refused("f nothing %ax"), (ErrorKind::BadVar, 10));
    assert_eq!(refused("f nothing $stack"), (ErrorKind::BadProbeAddr, 2));
}

#[test]
fn commands_that_are_not_probes() {
    for line in ["p", "r vfs", "x vfs_read", "t kfree", "e:a/b c/d", "s:x u64 y", " -:foo", "r"] {
        let error = match parse_command(line, Interface::DynamicEvents, &KERNEL) {
            Ok(parsed) => {
                assert!(line == "r vfs", "{line:?} accepted: {parsed:?}");
                continue;
            }
            Err(e) => e,
        };
        if line == "r vfs" {
            continue;
        }
        assert!(error.entries().is_empty(), "{line:?}");
        assert_eq!(error.errno(), Errno::Inval);
    }
    // fprobes only in dynamic_events.
    let error = parse_command("f vfs_read", Interface::KprobeEvents, &KERNEL).unwrap_err();
    assert!(error.entries().is_empty());
    assert_eq!(parse_command("  \t ", Interface::KprobeEvents, &KERNEL), Ok(Command::Empty));
    assert_eq!(parse_command("", Interface::KprobeEvents, &KERNEL), Ok(Command::Empty));
    assert!(parse_command_bytes(b"p \xff", Interface::KprobeEvents, &KERNEL).unwrap_err().entries().is_empty());
}

#[test]
fn words_and_write_lines() {
    assert_eq!(split_words("  p:a \t vfs_read\x0b%ax\r\n"), ["p:a", "vfs_read", "%ax"]);
    // The caret counts single spaces, whatever separated the words.
    let error = refuse("p    vfs_read\t\t%bogus");
    assert_eq!(error.last().unwrap().command(), "p vfs_read %bogus");
    assert_eq!(error.last().unwrap().position(), 11);
    fn lines(buffer: &str) -> Result<Vec<&str>, probe_events::CommandError> {
        write_lines(buffer).collect()
    }
    assert_eq!(lines("p a\n# comment\n\nr b # why\n").unwrap(), ["p a", "", "", "r b "]);
    assert_eq!(lines("p a").unwrap(), ["p a"]);
    assert_eq!(lines("").unwrap(), Vec::<&str>::new());
    assert_eq!(lines("\n").unwrap(), [""]);
    // '#' cuts anywhere, even inside an immediate string, as in Linux.
    assert_eq!(lines("p a x=\\\"a#b\"").unwrap(), ["p a x=\\\"a"]);
    // 4094 bytes and a newline fit Linux's buffer; a last line without its
    // newline may have one more. A longer line refuses the write when it
    // is reached.
    let long = "a".repeat(MAX_LINE_LEN);
    assert!(lines(&format!("{long}\n")).is_ok());
    assert!(lines(&format!("{long}a")).is_ok());
    assert!(lines(&format!("{long}a\n")).is_err());
    assert!(lines(&format!("{long}aa")).is_err());
    let mut run = write_lines("p a\nbad\n");
    assert_eq!(run.next(), Some(Ok("p a")));
    let buffer = format!("p a\n{long}a\np b\n");
    let mut run = write_lines(&buffer);
    assert_eq!(run.next(), Some(Ok("p a")));
    assert!(matches!(run.next(), Some(Err(_))));
    assert_eq!(run.next(), None);
}

#[test]
fn default_argument_names() {
    let def = parse("p vfs_read %ax x=%bx %cx");
    let names: Vec<_> = def.args().iter().map(|a| a.name()).collect();
    assert_eq!(names, ["arg1", "x", "arg3"]);
    // A name taken by a later default, or a reserved one, is refused.
    assert_eq!(refused("p vfs_read arg2=%ax %bx"), (ErrorKind::UsedArgName, 20));
    assert_eq!(refused("p vfs_read __probe_ip=%ax"), (ErrorKind::UsedArgName, 11));
    assert_eq!(refused("p vfs_read common_pid=%ax"), (ErrorKind::UsedArgName, 11));
    // 32 characters are fine.
    let name = "n".repeat(32);
    assert_eq!(parse(&format!("p vfs_read {name}=%ax")).args()[0].name(), name);
    assert_eq!(refused("p vfs_read 9x=%ax"), (ErrorKind::BadArgName, 11));
    // The body may have '=' after the first.
    assert_eq!(parse("p vfs_read a=\\\"x=y\"").args()[0].text(), "\\\"x=y\"");
}

#[test]
fn registers() {
    for register in Register::ALL {
        assert_eq!(ops(&format!("%{}", register.name())), [FetchOp::Reg(register), FetchOp::StoreRaw { size: 4 }]);
    }
    assert_eq!(ops("%eax")[0], FetchOp::Reg(Register::Ax));
    assert_eq!(ops("%esp")[0], FetchOp::Reg(Register::Sp));
    assert_eq!(ops("%eflags")[0], FetchOp::Reg(Register::Flags));
    assert_eq!(refused("p vfs_read %AX"), (ErrorKind::BadRegName, 11));
    assert_eq!(refused("p vfs_read %"), (ErrorKind::BadRegName, 11));
    assert_eq!(refused("p vfs_read %rax"), (ErrorKind::BadRegName, 11));
}

#[test]
fn memory_and_symbols() {
    assert_eq!(ops("@0x1000"), [FetchOp::Imm(0x1000), FetchOp::StoreMem { offset: 0, size: 4 }]);
    assert_eq!(ops("@010"), [FetchOp::Imm(8), FetchOp::StoreMem { offset: 0, size: 4 }]);
    assert_eq!(
        ops("@jiffies+4"),
        [FetchOp::Symbol("jiffies+4".into()), FetchOp::Imm(0), FetchOp::StoreMem { offset: 0, size: 4 }]
    );
    // Unknown symbols are registration's problem.
    assert_eq!(ops("@nothing")[0], FetchOp::Symbol("nothing".into()));
}

#[test]
fn variables() {
    assert_eq!(ops("$stack"), [FetchOp::StackPointer, FetchOp::StoreRaw { size: 4 }]);
    assert_eq!(ops("$stack0")[0], FetchOp::Stack(0));
    assert_eq!(ops("$stack2048")[0], FetchOp::Stack(2048));
    assert_eq!(refused("p vfs_read $stack2049"), (ErrorKind::BadStackNum, 11));
    assert_eq!(refused("p vfs_read $stack1x"), (ErrorKind::BadVar, 11));
    assert_eq!(refused("p vfs_read $stackx"), (ErrorKind::BadVar, 11));
    assert_eq!(ops("$comm"), [FetchOp::Comm, FetchOp::StoreString { offset: 0 }]);
    assert_eq!(ops("$COMM")[0], FetchOp::Comm);
    assert_eq!(parse("p vfs_read $comm").args()[0].fetch_type(), FetchType::String);
    assert_eq!(ops("$arg1")[0], FetchOp::Arg(0));
    assert_eq!(ops("$arg2048")[0], FetchOp::Arg(2047));
    assert_eq!(refused("p vfs_read x=$arg0"), (ErrorKind::BadArgNum, 13));
    assert_eq!(refused("p vfs_read x=$arg2049"), (ErrorKind::BadArgNum, 13));
    assert_eq!(refused("p vfs_read x=$argx"), (ErrorKind::BadVar, 13));
    assert_eq!(refused("p vfs_read $argx"), (ErrorKind::BadVar, 11));
    assert_eq!(refused("p vfs_read $arg"), (ErrorKind::BadVar, 11));
    // Linux's kstrtoul takes a '+'.
    assert_eq!(ops("x=$arg+2")[0], FetchOp::Arg(1));
    assert_eq!(refused("p vfs_read+4 x=+0($arg1)"), (ErrorKind::NofentryArgs, 18));
    // $retval is a prefix in Linux.
    let def = parse("r vfs_read $retval $retval_x");
    assert_eq!(def.args()[1].ops()[0], FetchOp::Retval);
    assert_eq!(refused("p vfs_read +0($retval)"), (ErrorKind::RetvalOnProbe, 14));
}

#[test]
fn return_probes_read_arguments_saved_at_entry() {
    let def = parse("r vfs_read a=$arg2 b=$arg1 c=+4($arg2) $retval");
    assert_eq!(def.args()[0].ops()[0], FetchOp::EntryArg { arg: 1, slot: 0 });
    assert_eq!(def.args()[1].ops()[0], FetchOp::EntryArg { arg: 0, slot: 1 });
    assert_eq!(def.args()[2].ops()[0], FetchOp::EntryArg { arg: 1, slot: 0 });
    assert_eq!(def.entry_args(), [EntrySource::Arg(1), EntrySource::Arg(0)]);
    assert_eq!(parse("f vfs_read%return $arg3").entry_args(), [EntrySource::Arg(2)]);
    assert_eq!(parse("f vfs_read $arg3").args()[0].ops()[0], FetchOp::Arg(2));
    // A symbol string of a saved argument is refused, as in Linux.
    assert_eq!(refused("r vfs_read $arg1:symstr"), (ErrorKind::BadSymstring, 17));
}

#[test]
fn duration_extension() {
    let def = parse("r vfs_read $duration t=$duration:u32");
    assert!(def.uses_duration());
    assert_eq!(def.args()[0].fetch_type(), FetchType::U64);
    assert_eq!(def.args()[0].ops(), [FetchOp::Duration, FetchOp::StoreRaw { size: 8 }]);
    assert_eq!(def.args()[1].fetch_type(), FetchType::U32);
    assert!(parse("f vfs_read%return $duration").uses_duration());
    assert!(!parse("r vfs_read $retval").uses_duration());
    assert_eq!(refused("p vfs_read $duration"), (ErrorKind::BadVar, 11));
    assert_eq!(refused("r vfs_read $duration:string"), (ErrorKind::BadString, 21));
}

#[test]
fn immediates() {
    assert_eq!(ops("\\123"), [FetchOp::Imm(123), FetchOp::StoreRaw { size: 4 }]);
    assert_eq!(ops("\\0x10")[0], FetchOp::Imm(16));
    assert_eq!(ops("\\-1")[0], FetchOp::Imm(u32::MAX));
    assert_eq!(ops("\\+5")[0], FetchOp::Imm(5));
    assert_eq!(refused("p vfs_read \\"), (ErrorKind::BadImm, 12));
    assert_eq!(refused("p vfs_read \\4294967296"), (ErrorKind::BadImm, 12));
    assert_eq!(ops("\\\"hello\""), [FetchOp::Data(b"hello".to_vec()), FetchOp::StoreString { offset: 0 }]);
    // Linux checks the byte before the end: `\"` alone is an empty string.
    assert_eq!(ops("\\\"")[0], FetchOp::Data(Vec::new()));
    assert_eq!(ops("\\\"\"")[0], FetchOp::Data(Vec::new()));
    assert_eq!(refused("p vfs_read \\\"a"), (ErrorKind::ImmstrNoClose, 14));
    assert_eq!(refused("p vfs_read +0(\\\"a\")"), (ErrorKind::CommCantDeref, 14));
    // $comm and immediate strings take only the string type.
    assert_eq!(refused("p vfs_read $comm:u32"), (ErrorKind::NeedStringType, 17));
    assert_eq!(refused("p vfs_read \\\"a\":string[2]"), (ErrorKind::NeedStringType, 16));
    assert_eq!(parse("p vfs_read $comm:string").args()[0].fetch_type(), FetchType::String);
}

#[test]
fn dereferences() {
    assert_eq!(ops("+8(%ax)"), [FetchOp::Reg(Register::Ax), FetchOp::StoreMem { offset: 8, size: 4 }]);
    assert_eq!(ops("-8(%ax)")[1], FetchOp::StoreMem { offset: -8, size: 4 });
    assert_eq!(ops("+0x10(%ax)")[1], FetchOp::StoreMem { offset: 16, size: 4 });
    assert_eq!(ops("+u4(%ax)")[1], FetchOp::StoreUserMem { offset: 4, size: 4 });
    assert_eq!(ops("-u4(%ax)")[1], FetchOp::StoreUserMem { offset: -4, size: 4 });
    assert_eq!(
        ops("+4(+8($stack))"),
        [FetchOp::StackPointer, FetchOp::Deref(8), FetchOp::StoreMem { offset: 4, size: 4 }]
    );
    assert_eq!(
        ops("+0(+u8(%si)):u8"),
        [FetchOp::Reg(Register::Si), FetchOp::UserDeref(8), FetchOp::StoreMem { offset: 0, size: 1 }]
    );
    // The last ')' closes; what follows it is ignored, as in Linux.
    assert_eq!(ops("+4(%ax)junk")[1], FetchOp::StoreMem { offset: 4, size: 4 });
    // Carets inside: after the '(' (and one column short after "+u").
    assert_eq!(refused("p vfs_read +4(%nope)"), (ErrorKind::BadRegName, 14));
    assert_eq!(refused("p vfs_read -4(%nope)"), (ErrorKind::BadRegName, 14));
    assert_eq!(refused("p vfs_read +u4(%nope)"), (ErrorKind::BadRegName, 14));
    assert_eq!(refused("p vfs_read +4(+8(%nope))"), (ErrorKind::BadRegName, 17));
    assert_eq!(refused("p vfs_read +4()"), (ErrorKind::BadFetchArg, 14));
    assert_eq!(refused("p vfs_read +4(x)"), (ErrorKind::NosupBtfarg, 14));
    assert_eq!(refused("p vfs_read +(%ax)"), (ErrorKind::BadDerefOffs, 11));
    // 13 levels fit in the 16-instruction program, 14 do not.
    let nest = |n: usize| format!("p vfs_read {}@0{}", "+0(".repeat(n), ")".repeat(n));
    assert_eq!(parse(&nest(13)).args()[0].ops().len(), 15);
    assert_eq!(refused(&nest(14)).0, ErrorKind::TooManyOps);
}

#[test]
fn types_and_stores() {
    let arg = |text: &str| parse(&format!("p vfs_read {text}")).args()[0].clone();
    for ty in FetchType::ALL {
        let text = match ty {
            FetchType::String | FetchType::UString => "+0(%ax)",
            _ => "%ax",
        };
        assert_eq!(arg(&format!("{text}:{}", ty.name())).fetch_type(), ty);
    }
    assert_eq!(arg("%ax").fetch_type(), FetchType::X32);
    assert_eq!(arg("%ax:u8").ops(), [FetchOp::Reg(Register::Ax), FetchOp::StoreRaw { size: 1 }]);
    assert_eq!(arg("%ax:x64").ops()[1], FetchOp::StoreRaw { size: 8 });
    assert_eq!(arg("+0(%ax):string").ops(), [FetchOp::Reg(Register::Ax), FetchOp::StoreString { offset: 0 }]);
    assert_eq!(arg("+4(%ax):ustring").ops()[1], FetchOp::StoreUserString { offset: 4 });
    assert_eq!(arg("+u4(%ax):string").ops()[1], FetchOp::StoreUserString { offset: 4 });
    assert_eq!(arg("@0x100:string").ops(), [FetchOp::Imm(0x100), FetchOp::StoreString { offset: 0 }]);
    assert_eq!(arg("\\0x100:string").ops(), [FetchOp::Imm(0x100), FetchOp::StoreString { offset: 0 }]);
    assert_eq!(arg("%ax:symstr").ops(), [FetchOp::Reg(Register::Ax), FetchOp::StoreSymString { offset: 0 }]);
    assert_eq!(
        arg("+4(%ax):symstr").ops(),
        [FetchOp::Reg(Register::Ax), FetchOp::Deref(4), FetchOp::StoreSymString { offset: 0 }]
    );
    assert_eq!(arg("%ax:symbol").ops()[1], FetchOp::StoreRaw { size: 4 });
    assert_eq!(refused("p vfs_read %ax:string"), (ErrorKind::BadString, 15));
    assert_eq!(refused("p vfs_read $stack:symstr"), (ErrorKind::BadSymstring, 18));
    assert_eq!(refused("p vfs_read \\1:symstr"), (ErrorKind::BadSymstring, 14));
    // After a dereference Linux counts a type error's offset from inside
    // the parentheses (here "+u0(" with its one-column slip: 3), not from
    // the argument's start.
    assert_eq!(refused("p vfs_read +u0(%ax):symstr"), (ErrorKind::BadSymstring, 23));
    // Type errors found before the argument is parsed are not shifted.
    assert_eq!(refused("p vfs_read +0(%ax):u8[2]:x"), (ErrorKind::BadArraySuffix, 24));
    assert_eq!(refused("p vfs_read +4(%ax):symstr[2]"), (ErrorKind::BadString, 22));
    assert_eq!(refused("p vfs_read %ax:"), (ErrorKind::BadType, 15));
    assert_eq!(refused("p vfs_read %ax:U8"), (ErrorKind::BadType, 15));
    assert_eq!(refused("p vfs_read %ax:%pd"), (ErrorKind::BadType, 15));
    // The first ':' starts the type.
    assert_eq!(refused("p vfs_read @a:b:u8"), (ErrorKind::BadType, 14));
}

#[test]
fn bitfields() {
    let def = parse("p vfs_read +0(%ax):b4@2/32 %bx:b1@7/8");
    let first = &def.args()[0];
    let field = Bitfield { width: 4, offset: 2, container: 4, lshift: 26, rshift: 28 };
    assert_eq!(first.bitfield(), Some(field));
    assert_eq!(first.fetch_type(), FetchType::U32);
    assert_eq!(
        first.ops(),
        [FetchOp::Reg(Register::Ax), FetchOp::StoreMem { offset: 0, size: 4 }, FetchOp::Bitfield(field)]
    );
    assert_eq!(def.args()[1].fetch_type(), FetchType::U8);
    assert_eq!(field.apply(0b1011_0100), 0b1101);
    assert_eq!(parse("p vfs_read %ax:b0x8@0x18/0x20").args()[0].bitfield().unwrap().width, 8);
    assert_eq!(parse("p vfs_read %ax:b32@0/32").args()[0].bitfield().unwrap().lshift, 0);
    for bad in ["b0@0/32", "b4/32", "b4@/32", "b4@0", "b33@0/32", "b30@3/32", "b4@0x/32"] {
        let error = refused(&format!("p vfs_read %ax:{bad}"));
        let kind = if bad.contains('/') { ErrorKind::BadBitfield } else { ErrorKind::BadType };
        assert_eq!(error, (kind, 15), "{bad}");
    }
    // The container decides the type; its size must be 8, 16, 32 or 64.
    assert_eq!(refused("p vfs_read %ax:b4@0/24"), (ErrorKind::BadType, 15));
    // Linux looks up any 'b...' name by its '/' first.
    assert_eq!(refused("p vfs_read %ax:bogus/8"), (ErrorKind::BadBitfield, 15));
}

#[test]
fn arrays() {
    let arg = parse("p vfs_read +8(%ax):x16[4]").args()[0].clone();
    assert_eq!((arg.array_len(), arg.size(), arg.field_type()), (4, 8, "u16[4]".into()));
    assert_eq!(arg.ops(), [FetchOp::Reg(Register::Ax), FetchOp::StoreMem { offset: 8, size: 2 }, FetchOp::Array(4)]);
    let arg = parse("p vfs_read +0(%di):string[2]").args()[0].clone();
    assert_eq!(
        arg.ops(),
        [FetchOp::Reg(Register::Di), FetchOp::Deref(0), FetchOp::StoreString { offset: 0 }, FetchOp::Array(2)]
    );
    assert_eq!((arg.size(), arg.field_type()), (8, "__data_loc char[][2]".into()));
    assert_eq!(parse("p vfs_read @jiffies:u8[64]").args()[0].array_len(), 64);
    assert_eq!(refused("p vfs_read @1:u8[65]"), (ErrorKind::ArrayTooBig, 17));
    assert_eq!(refused("p vfs_read @1:u8[0]"), (ErrorKind::BadArrayNum, 17));
    assert_eq!(refused("p vfs_read @1:u8[]"), (ErrorKind::BadArrayNum, 17));
    // Arrays need memory: Linux calls that a string error.
    assert_eq!(refused("p vfs_read $stack1:x8[8]"), (ErrorKind::BadString, 19));
    assert_eq!(refused("p vfs_read %ax:symstr[2]"), (ErrorKind::BadString, 15));
    assert_eq!(parse("p vfs_read +8($stack):x8[8]").args()[0].array_len(), 8);
    assert_eq!(
        parse("p vfs_read +0(%ax):b4@4/8[2]").args()[0].ops(),
        [
            FetchOp::Reg(Register::Ax),
            FetchOp::StoreMem { offset: 0, size: 1 },
            FetchOp::Bitfield(Bitfield { width: 4, offset: 4, container: 1, lshift: 0, rshift: 4 }),
            FetchOp::Array(2)
        ]
    );
}

#[test]
fn limits() {
    let args: Vec<String> = (0..128).map(|i| format!("a{i}=%ax")).collect();
    assert_eq!(parse(&format!("p vfs_read {}", args.join(" "))).args().len(), 128);
    let args: Vec<String> = (0..129).map(|i| format!("a{i}=%ax")).collect();
    let error = refuse(&format!("p vfs_read {}", args.join(" ")));
    assert_eq!((error.kind(), error.errno()), (Some(ErrorKind::TooManyArgs), Errno::TooBig));
    assert_eq!(error.last().unwrap().position(), 11);
    // 63 bytes of body are fine.
    let body = format!("+0({})", "+0(".repeat(9) + "%ax" + &")".repeat(9));
    let body = format!("{body}:{}", "u8".repeat((63 - body.len() - 1) / 2));
    let padded = format!("{}{}", body, "x".repeat(63 - body.len()));
    assert_eq!(padded.len(), 63);
    assert_eq!(refused(&format!("p vfs_read n={padded}")).0, ErrorKind::BadType);
    assert_eq!(refused(&format!("p vfs_read n={padded}x")), (ErrorKind::ArgTooLong, 13));
    assert_eq!(refuse(&format!("p vfs_read n={padded}x")).errno(), Errno::TooBig);
}

#[test]
fn btf_names_are_refused() {
    assert_eq!(refused("p vfs_read count"), (ErrorKind::NosupBtfarg, 11));
    assert_eq!(refuse("p vfs_read count").errno(), Errno::OpNotSupp);
    assert_eq!(refuse("p vfs_read+4 _x").errno(), Errno::Inval);
    assert_eq!(refused("p vfs_read 123"), (ErrorKind::BadFetchArg, 11));
}

#[test]
fn removals() {
    let Ok(Command::Remove(removal)) = parse_command("-:myprobe", Interface::KprobeEvents, &KERNEL) else { panic!() };
    assert_eq!((removal.group(), removal.event()), (None, "myprobe"));
    let probe = parse_in("p:myprobe vfs_read+8 a=%ax %bx", Interface::KprobeEvents);
    let other = parse_in("p:other vfs_read", Interface::KprobeEvents);
    assert!(removal.matches(&probe));
    assert!(!removal.matches(&other));
    let removes = |line: &str, interface, def: &ProbeDefinition| match parse_command(line, interface, &KERNEL) {
        Ok(Command::Remove(r)) => r.matches(def),
        other => panic!("{line:?}: {other:?}"),
    };
    let k = Interface::KprobeEvents;
    assert!(removes("-:kprobes/", k, &probe));
    assert!(removes("-:kprobes/myprobe", k, &probe));
    assert!(!removes("-:fprobes/myprobe", k, &probe));
    assert!(removes("-:myprobe vfs_read+8", k, &probe));
    assert!(removes("-:myprobe vfs_read+8 a=%ax arg2=%bx", k, &probe));
    assert!(!removes("-:myprobe vfs_read+8 a=%bx", k, &probe));
    assert!(!removes("-:myprobe vfs_read", k, &probe));
    assert!(!removes("-:myprobe vfs_read+8 a=%ax arg2=%bx x=%cx", k, &probe));
    let address = parse_in("p:a 0xc0100000", k);
    assert!(removes("-:a 0xc0100000", k, &address));
    let fprobe = parse("f:fp vfs_read%return $retval");
    assert!(removes("-:fp vfs_read arg1=$retval", Interface::DynamicEvents, &fprobe));
    assert!(!removes("-:fp", k, &fprobe), "kprobe_events removes kprobes only");
    assert!(removes("!f:fprobes/fp", Interface::DynamicEvents, &fprobe));
    for bad in ["-", "-x", "-:", "!"] {
        let error = parse_command(bad, Interface::DynamicEvents, &KERNEL).unwrap_err();
        assert!(error.entries().is_empty(), "{bad}");
    }
    // '!' is only dynamic_events'.
    assert!(parse_command("!p:x", Interface::KprobeEvents, &KERNEL).is_err());
}

#[test]
fn fprobes() {
    let def = parse("f:grp/ev vfs_read a=$arg1 $stack0");
    assert_eq!((def.kind(), def.group(), def.event()), (ProbeKind::FunctionEntry, "grp", "ev"));
    assert!(def.at_function_entry());
    // $retval makes an exit probe, unless it is part of a longer name.
    assert_eq!(parse("f vfs_read $retval").kind(), ProbeKind::FunctionExit);
    assert_eq!(parse("f vfs_read x=+0($retval):u8").kind(), ProbeKind::FunctionExit);
    assert_eq!(refused("f vfs_read $retvalue"), (ErrorKind::RetvalOnProbe, 11));
    assert_eq!(refused("fx vfs_read"), (ErrorKind::BadMaxact, 1));
    assert_eq!(refused("f vfs_read%ret"), (ErrorKind::BadAddrSuffix, 10));
}
