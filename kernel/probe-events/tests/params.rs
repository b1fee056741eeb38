//! Function parameters by name (Linux's BTF arguments), against a fake parameter table.
//!
//! A resolver that knows `checksum`'s parameters (on the stack, in
//! registers, one optimized out), none of `vfs_read`'s (no entry) and that
//! `kfree` has none. Checked exactly: the fetch programs, the default
//! types, the `kprobe_events` lines, the records at a hit (entry and
//! return, through the interpreter and the number path), `$arg*` and
//! `$argN` expansion, and every refusal with Linux's message, errno and
//! caret (the BTF cases of Linux's `kprobe_syntax_errors.tc` among them).
mod common;

use common::{FakeMemory, FakeRegs, KERNEL, Kernel};
use probe_events::{
    CallingConvention, Command, CommandError, CommonFields, EntrySource, Errno, ErrorKind, FetchOp, FetchProgram,
    FetchType, Hit, Interface, Param, ParamClass, ParamLookup, Place, ProbeDefinition, Register, SymbolResolver,
    parse_command,
};

const SP: u32 = 0x8000;
const CHECKSUM: u32 = 0xc010_0200;
const CALLER: u32 = 0xc010_0300;

/// The fake kernel, with parameters for some functions.
struct Btf;

fn param(
    name: &'static str,
    type_name: &'static str,
    size: u32,
    place: Option<Place>,
    class: ParamClass,
) -> Param<'static> {
    Param { name, type_name, size, place, class }
}

impl SymbolResolver for Btf {
    fn address_of(&self, name: &str) -> Option<usize> {
        KERNEL.address_of(name)
    }

    fn symbol_count(&self, name: &str) -> usize {
        KERNEL.symbol_count(name)
    }

    fn function_params(&self, symbol: &str) -> ParamLookup<'_> {
        match symbol {
            "checksum" => ParamLookup::Params(vec![
                param("data", "*const u8", 4, Some(Place::Stack(4)), ParamClass::CharPointer),
                param("len", "usize", 4, Some(Place::Stack(8)), ParamClass::Unsigned),
                param("seed", "u64", 8, Some(Place::Stack(12)), ParamClass::Unsigned),
                param("flag", "bool", 1, Some(Place::Register(Register::Dx)), ParamClass::Unsigned),
                param("ctx", "&Ctx", 4, Some(Place::Register(Register::Cx)), ParamClass::Pointer),
                param("gone", "i32", 4, None, ParamClass::Signed),
                param("pair", "(u32, u32)", 8, Some(Place::Stack(20)), ParamClass::Other),
                param("delta", "i16", 2, Some(Place::Stack(28)), ParamClass::Signed),
            ]),
            "kfree" => ParamLookup::Params(vec![]),
            "do_exit" => ParamLookup::Params(vec![param("", "i32", 4, Some(Place::Stack(4)), ParamClass::Signed)]),
            _ => ParamLookup::NoEntry,
        }
    }
}

fn parse_with(command: &str, resolver: &impl SymbolResolver) -> Result<ProbeDefinition, CommandError> {
    match parse_command(command, Interface::DynamicEvents, resolver) {
        Ok(Command::Create(def)) => Ok(def),
        Ok(other) => panic!("{command:?}: {other:?}"),
        Err(error) => Err(error),
    }
}

fn parse(command: &str) -> ProbeDefinition {
    parse_with(command, &Btf).unwrap_or_else(|e| panic!("{command:?}: {e:?}"))
}

/// `checksum(data = 0x3000 "hello", len = 5, seed = 0x1122334455667788,
/// flag = true in dl, ctx = 0x1000 in ecx, pair = (7, 9), delta = -2)`.
fn machine() -> (FakeRegs, FakeMemory) {
    let regs = FakeRegs::with(&[
        (Register::Cx, 0x1000),
        (Register::Dx, 0xffff_ff01),
        (Register::Ax, 0xaaaa),
        (Register::Sp, SP),
        (Register::Ip, CHECKSUM),
    ]);
    let mut memory = FakeMemory::default();
    memory.put_u32(SP, CALLER + 0x10);
    memory.put_u32(SP + 4, 0x3000);
    memory.put_u32(SP + 8, 5);
    memory.put(SP + 12, &0x1122_3344_5566_7788u64.to_le_bytes());
    memory.put_u32(SP + 20, 7);
    memory.put_u32(SP + 24, 9);
    memory.put_u32(SP + 28, 0x5555_fffe);
    memory.put(0x3000, b"hello\0");
    memory.put_u32(0x1000, 0xfeed);
    (regs, memory)
}

/// The trace line of `def` at a hit with `regs`/`memory` (and, for a
/// return probe, its entry slots); the number path, where it applies,
/// must make the same record.
fn show_with(def: &ProbeDefinition, regs: &FakeRegs, memory: &FakeMemory, entry: &[u8]) -> String {
    let program = FetchProgram::compile(def, &Btf, CallingConvention::Stack).unwrap();
    let hit = Hit { regs, memory, symbols: &KERNEL, comm: b"demo", entry, duration_ns: 0 };
    let mut record = vec![0xaau8; 512];
    let common = CommonFields { type_id: 1500, flags: 1, preempt_count: 0, pid: 1 };
    let (ip, ret_ip) = if def.kind().is_return() { (CHECKSUM, CALLER + 0x10) } else { (CHECKSUM, 0) };
    program.write_header(&mut record, &common, ip, ret_ip);
    let used = program.fetch(&hit, &mut record);
    if program.is_numbers_only() {
        let mut numbers = vec![0x55u8; 512];
        program.write_header(&mut numbers, &common, ip, ret_ip);
        assert_eq!(program.fetch_numbers(regs, memory, &mut numbers), program.fixed_size());
        assert_eq!(&numbers[..used], &record[..used], "the number path agrees with the interpreter");
    }
    let mut line = String::new();
    def.format_event(&record[..used], &KERNEL, &mut line).unwrap();
    line
}

fn show(def: &ProbeDefinition) -> String {
    let (regs, memory) = machine();
    show_with(def, &regs, &memory, &[])
}

fn types(def: &ProbeDefinition) -> Vec<(&str, FetchType)> {
    def.args().iter().map(|a| (a.name(), a.fetch_type())).collect()
}

#[test]
fn bare_names_fetch_parameters_with_their_types() {
    let def = parse("p:e checksum data len seed flag ctx pair delta");
    assert_eq!(
        def.to_string(),
        "p:kprobes/e checksum data=data len=len seed=seed flag=flag ctx=ctx pair=pair delta=delta"
    );
    assert_eq!(
        types(&def),
        [
            ("data", FetchType::X32),
            ("len", FetchType::U32),
            ("seed", FetchType::U64),
            ("flag", FetchType::U8),
            ("ctx", FetchType::X32),
            ("pair", FetchType::X64),
            ("delta", FetchType::S16),
        ]
    );
    assert_eq!(
        def.args()[0].ops(),
        [FetchOp::Param { place: Place::Stack(4), size: 4 }, FetchOp::StoreRaw { size: 4 }]
    );
    assert_eq!(
        def.args()[2].ops(),
        [FetchOp::Param { place: Place::Stack(12), size: 8 }, FetchOp::StoreRaw { size: 8 }]
    );
    assert_eq!(
        def.args()[3].ops(),
        [FetchOp::Param { place: Place::Register(Register::Dx), size: 1 }, FetchOp::StoreRaw { size: 1 }]
    );
    assert!(FetchProgram::compile(&def, &Btf, CallingConvention::Stack).unwrap().is_numbers_only());
    assert_eq!(
        show(&def),
        "e: (checksum+0x0/0x40) data=0x3000 len=5 seed=1234605616436508552 flag=1 ctx=0x1000 pair=0x900000007 \
         delta=-2"
    );
}

#[test]
fn named_and_typed_and_dereferenced_parameters() {
    let def = parse("p:e checksum l=len:x8 s=data:string u=data:ustring p=+0(ctx):u32 w=seed:u32 c=ctx:symbol");
    assert_eq!(
        def.to_string(),
        "p:kprobes/e checksum l=len:x8 s=data:string u=data:ustring p=+0(ctx):u32 w=seed:u32 c=ctx:symbol"
    );
    // A `string` of a character pointer reads what it points to.
    assert_eq!(
        def.args()[1].ops(),
        [FetchOp::Param { place: Place::Stack(4), size: 4 }, FetchOp::StoreString { offset: 0 }]
    );
    assert_eq!(
        def.args()[2].ops(),
        [FetchOp::Param { place: Place::Stack(4), size: 4 }, FetchOp::StoreUserString { offset: 0 }]
    );
    // A dereference's value is no longer the parameter: the default type.
    assert_eq!(parse("p checksum +0(ctx)").args()[0].fetch_type(), FetchType::X32);
    assert_eq!(parse("p checksum +0(ctx)").args()[0].name(), "arg1");
    let mut memory = machine().1;
    memory.put_user(0x3000, b"user\0");
    assert_eq!(
        show_with(&def, &machine().0, &memory, &[]),
        "e: (checksum+0x0/0x40) l=0x5 s=\"hello\" u=\"user\" p=65261 w=1432778632 c=0x1000"
    );
}

#[test]
fn arg_star_and_arg_n_expand_to_parameter_names() {
    let def = parse("p:e checksum $arg*");
    // `gone` cannot be read at the entry: left out.
    assert_eq!(
        def.to_string(),
        "p:kprobes/e checksum data=data len=len seed=seed flag=flag ctx=ctx pair=pair delta=delta"
    );
    let def = parse("p:e checksum $arg2 $arg3:x64 x=$arg1");
    assert_eq!(def.to_string(), "p:kprobes/e checksum len=len seed=seed:x64 x=$arg1");
    assert_eq!(types(&def), [("len", FetchType::U32), ("seed", FetchType::X64), ("x", FetchType::X32)]);
    // A function without parameter information keeps Linux's `$argN`.
    assert_eq!(parse("p:e vfs_read $arg2").to_string(), "p:kprobes/e vfs_read arg1=$arg2");
    assert_eq!(parse("p:e vfs_read $arg2").args()[0].ops()[0], FetchOp::Arg(1));
    assert_eq!(show(&parse("p:e checksum $arg2 $arg7")), "e: (checksum+0x0/0x40) len=5 pair=0x900000007");
}

#[test]
fn return_probes_save_parameters_at_the_entry() {
    let def = parse("r:r checksum len seed $retval ctx again=len");
    assert_eq!(
        def.entry_args(),
        [
            EntrySource::Param { place: Place::Stack(8), size: 4 },
            EntrySource::Param { place: Place::Stack(12), size: 8 },
            EntrySource::Param { place: Place::Register(Register::Cx), size: 4 },
        ]
    );
    assert_eq!(
        def.args()[0].ops(),
        [FetchOp::EntryParam { place: Place::Stack(8), size: 4, slot: 0 }, FetchOp::StoreRaw { size: 4 }]
    );
    assert_eq!(def.args()[4].ops()[0], FetchOp::EntryParam { place: Place::Stack(8), size: 4, slot: 0 });
    let program = FetchProgram::compile(&def, &Btf, CallingConvention::Stack).unwrap();
    assert_eq!(program.entry_slots(), 3);
    let (regs, memory) = machine();
    let mut slots = [0u8; 24];
    program.capture_entry(&regs, &memory, &mut slots);
    let values: Vec<u64> = slots.chunks(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!(values, [5, 0x1122_3344_5566_7788, 0x1000]);
    // At the return the stack and registers hold other things.
    let at_return = FakeRegs::with(&[(Register::Ax, 42), (Register::Sp, SP + 4), (Register::Cx, 0xdead)]);
    assert_eq!(
        show_with(&def, &at_return, &FakeMemory::default(), &slots),
        "r: (caller+0x10/0x30 <- checksum) len=5 seed=1234605616436508552 arg3=0x2a ctx=0x1000 again=5"
    );
    // fprobes: the same at an exit, the live value at an entry.
    assert_eq!(
        parse("f checksum%return len").args()[0].ops()[0],
        FetchOp::EntryParam { place: Place::Stack(8), size: 4, slot: 0 }
    );
    assert_eq!(parse("f checksum len").args()[0].ops()[0], FetchOp::Param { place: Place::Stack(8), size: 4 });
    assert_eq!(parse("f checksum $arg*").args().len(), 7);
}

/// The refusal of `with_caret` (a command with `^` where the caret must
/// be): its last entry's kind, position and errno.
fn check(with_caret: &str, kind: ErrorKind, errno: Errno) {
    let position = with_caret.find('^').unwrap();
    let command = with_caret.replacen('^', "", 1).trim_end().to_string();
    let error = parse_with(&command, &Btf).expect_err(&command);
    let entry = error.last().unwrap_or_else(|| panic!("{command}: nothing logged"));
    assert_eq!((entry.kind(), entry.position(), error.errno()), (kind, position, errno), "{command}");
    assert_eq!(entry.command(), command);
}

#[test]
fn refusals_say_what_linux_says() {
    // Linux's kprobe_syntax_errors.tc, "BTF arguments errors" (kfree has
    // no parameters here, so `$arg10` is tried on checksum).
    check("p vfs_read args=^$arg*", ErrorKind::BadVarArgs, Errno::Inval);
    check("p vfs_read +0(^$arg*)", ErrorKind::BadVarArgs, Errno::Inval);
    check("p checksum $arg* ^$arg*", ErrorKind::DoubleArgs, Errno::Inval);
    check("p checksum+8 ^$arg*", ErrorKind::NofentryArgs, Errno::Inval);
    check("p checksum ^hoge", ErrorKind::NoBtfarg, Errno::NoEnt);
    check("p checksum ^$arg10", ErrorKind::NoBtfarg, Errno::NoEnt);
    check("f checksum ^hoge", ErrorKind::NoBtfarg, Errno::NoEnt);
    // Only at a function's entry or exit.
    check("p checksum+4 ^len", ErrorKind::NosupBtfarg, Errno::Inval);
    check("p 0xc0100200 ^len", ErrorKind::NosupBtfarg, Errno::Inval);
    // No parameters known for the function, or none at all.
    check("p vfs_read ^count", ErrorKind::NoBtfEntry, Errno::NoEnt);
    check("p kfree ^x", ErrorKind::NoBtfEntry, Errno::NoEnt);
    // Known, but not readable at the entry.
    check("p checksum ^gone", ErrorKind::NoBtfarg, Errno::NoEnt);
    // An unnamed parameter cannot be expanded.
    check("p do_exit ^$arg*", ErrorKind::NoBtfEntry, Errno::NoEnt);
    check("p do_exit ^$arg1", ErrorKind::NoBtfEntry, Errno::NoEnt);
    check("p checksum ^$arg1x", ErrorKind::BadVar, Errno::NoEnt);
    // Fields: no structure layouts here.
    check("p checksum len^.x", ErrorKind::NosupDatArg, Errno::OpNotSupp);
    check("p checksum len^-x", ErrorKind::BadHyphen, Errno::Inval);
    check("p checksum ctx->^f", ErrorKind::NoBtfField, Errno::NoEnt);
    check("p checksum len->^f", ErrorKind::NoPtrStrct, Errno::Inval);
    check("p checksum x=^len:string", ErrorKind::BadType4str, Errno::Inval);
    check("p checksum len ^len", ErrorKind::UsedArgName, Errno::Inval);
    // An error in an expanded argument points past the command, as
    // Linux's index into the expanded list does.
    check("p checksum $arg* %nope ^", ErrorKind::BadRegName, Errno::Inval);
    // `$arg*` of a function without parameters: nothing to expand
    // (logged, not fatal), then `$arg*` fails as a variable.
    let error = parse_with("p kfree $arg*", &Btf).unwrap_err();
    let kinds: Vec<ErrorKind> = error.entries().iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [ErrorKind::NosupBtfarg, ErrorKind::BadVarArgs]);
}

#[test]
fn without_parameter_information_nothing_changes() {
    // The shared fake kernel knows no parameters: Linux without BTF.
    let error = parse_with("p checksum len", &Kernel { modules: vec![] }).unwrap_err();
    assert_eq!((error.kind(), error.errno()), (Some(ErrorKind::NosupBtfarg), Errno::OpNotSupp));
    let error = parse_with("p checksum len len", &KERNEL).unwrap_err();
    assert_eq!(error.kind(), Some(ErrorKind::NosupBtfarg), "the second name is not checked against the first");
    assert_eq!(parse_with("p:e checksum $arg2", &KERNEL).unwrap().to_string(), "p:kprobes/e checksum arg1=$arg2");
}

#[test]
fn place_reads_zero_extend_and_survive_faults() {
    let (regs, memory) = machine();
    assert_eq!(Place::Register(Register::Dx).read(1, &regs, &memory), 1);
    assert_eq!(Place::Register(Register::Dx).read(2, &regs, &memory), 0xff01);
    assert_eq!(Place::Register(Register::Dx).read(4, &regs, &memory), 0xffff_ff01);
    assert_eq!(Place::Stack(12).read(8, &regs, &memory), 0x1122_3344_5566_7788);
    assert_eq!(Place::Stack(12).read(2, &regs, &memory), 0x7788);
    assert_eq!(Place::Stack(0x100).read(4, &regs, &memory), 0, "an unmapped slot reads 0");
}
