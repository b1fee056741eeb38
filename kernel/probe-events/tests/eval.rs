//! Evaluating fetch arguments at a hit with fake registers and memory, and
//! showing the records as the trace does: every source, faults, strings,
//! bitfields, arrays, dereference chains, return probes.
mod common;

use common::{FakeMemory, FakeRegs, KERNEL, Kernel};
use probe_events::{
    CallingConvention, Command, CommonFields, Errno, ErrorKind, FetchProgram, Hit, Interface, ProbeDefinition,
    Register, parse_command,
};

const SP: u32 = 0x8000;
const CHECKSUM: u32 = 0xc010_0200;
const CALLER: u32 = 0xc010_0300;

fn parse(command: &str) -> ProbeDefinition {
    match parse_command(command, Interface::DynamicEvents, &KERNEL) {
        Ok(Command::Create(def)) => def,
        other => panic!("{command:?}: {other:?}"),
    }
}

/// A hit in `checksum(0x11, 0x22, 0x2000, 0x44)` called from `caller`,
/// with some data around.
fn machine() -> (FakeRegs, FakeMemory) {
    let regs = FakeRegs::with(&[
        (Register::Ax, 0x1000),
        (Register::Bx, 0x1010),
        (Register::Cx, 0xc),
        (Register::Dx, 0xd),
        (Register::Si, 0x5000),
        (Register::Di, 0x4000),
        (Register::Sp, SP),
        (Register::Ip, CHECKSUM + 5),
    ]);
    let mut memory = FakeMemory::default();
    for (i, word) in [CALLER + 0x10, 0x11, 0x22, 0x2000, 0x44].into_iter().enumerate() {
        memory.put_u32(SP + 4 * i as u32, word);
    }
    // A structure at 0x1000: a pointer, a bitfield word, bytes, a pointer
    // to itself, a negative byte and a character, a 64-bit value.
    memory.put_u32(0x1000, 0x3000);
    memory.put_u32(0x1004, 0b1011_0100);
    memory.put(0x1008, &[1, 2, 3, 4]);
    memory.put_u32(0x100c, 0x1000);
    memory.put(0x1010, &[0xfe, b'A']);
    memory.put(0x1018, &0x1122_3344_5566_7788u64.to_le_bytes());
    memory.put(0x3000, b"hello\0");
    memory.put(0x3100, b"world\0");
    memory.put_u32(0x4000, 0x3000);
    memory.put_u32(0x4004, 0x3100);
    memory.put_u32(0x4008, 0xdead_0000);
    memory.put_u32(0xc020_0000, 0x1234_5678);
    memory.put_u32(0xc020_0004, 0x9abc);
    memory.put_user(0x5000, b"user\0");
    (regs, memory)
}

/// Evaluates `def` at the machine's hit and shows the record.
fn show(def: &ProbeDefinition, convention: CallingConvention) -> String {
    let (regs, memory) = machine();
    show_with(def, convention, &regs, &memory, &[], 0)
}

fn show_with(
    def: &ProbeDefinition,
    convention: CallingConvention,
    regs: &FakeRegs,
    memory: &FakeMemory,
    entry: &[u8],
    duration_ns: u64,
) -> String {
    let program = FetchProgram::compile(def, &KERNEL, convention).unwrap();
    let hit = Hit { regs, memory, symbols: &KERNEL, comm: b"insmod\0\0\0", entry, duration_ns };
    let mut record = vec![0xaau8; 512];
    let common = CommonFields { type_id: 780, flags: 1, preempt_count: 2, pid: 42 };
    let (ip, ret_ip) = if def.kind().is_return() { (CHECKSUM, CALLER + 0x10) } else { (CHECKSUM, 0) };
    program.write_header(&mut record, &common, ip, ret_ip);
    let used = program.fetch(&hit, &mut record);
    assert_eq!(used, program.fixed_size() + program.dynamic_size(&hit), "the measure matches the store");
    assert_eq!(&record[..8], &[0x0c, 0x03, 1, 2, 42, 0, 0, 0]);
    // The number path, where it applies, writes the same bytes into a
    // buffer it was never asked to clear.
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

#[test]
fn documentation_example() {
    let def = parse("p:myprobe checksum dfd=%ax filename=%dx flags=%cx mode=+4($stack)");
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "myprobe: (checksum+0x0/0x40) dfd=0x1000 filename=0xd flags=0xc mode=0x11"
    );
}

#[test]
fn registers_stack_and_immediates() {
    let def = parse(
        "p:e checksum a=%ax b=%ebx ip=%ip s0=$stack0 s3=$stack3 sp=$stack far=$stack1000 \
         i=\\42 n=\\-1:s32 c=$comm",
    );
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "e: (checksum+0x0/0x40) a=0x1000 b=0x1010 ip=0xc0100205 s0=0xc0100310 s3=0x2000 sp=0x8000 far=0x0 \
         i=0x2a n=-1 c=\"insmod\""
    );
}

#[test]
fn arguments_follow_the_calling_convention() {
    let def = parse("p:e checksum $arg1 $arg2 $arg3 $arg4");
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "e: (checksum+0x0/0x40) arg1=0x11 arg2=0x22 arg3=0x2000 arg4=0x44"
    );
    // Linux's regparm(3): eax, edx, ecx, then the stack above the return.
    assert_eq!(
        show(&def, CallingConvention::Regparm3),
        "e: (checksum+0x0/0x40) arg1=0x1000 arg2=0xd arg3=0xc arg4=0x11"
    );
}

#[test]
fn dereference_chains_and_faults() {
    let def = parse(
        "p:e checksum a=+0(%ax) b=+4(+12(%ax)) c=-12(%ax):u8 d=+0(+0(%ax)):x8 dd=+0(+0(+0(%ax))):x8 \
         user=+u0(%si):x8 bad=+0(%cx) worse=+4(+0(%cx)) half=+0(+0(%di))",
    );
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "e: (checksum+0x0/0x40) a=0x3000 b=0xb4 c=0 d=0x68 dd=0x0 user=0x75 bad=0x0 worse=0x0 half=0x6c6c6568"
    );
}

#[test]
fn types() {
    let def = parse(
        "p:e checksum u8=+8(%ax):u8 u16=+8(%ax):u16 s8=+0(%bx):s8 s16=+0(%bx):s16 ch=+1(%bx):char \
         u64=+24(%ax):u64 x64=+24(%ax):x64 s64=+24(%ax):s64 x16=+8(%ax):x16 sym=%ip:symbol away=%ax:symbol",
    );
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "e: (checksum+0x0/0x40) u8=1 u16=513 s8=-2 s16=16894 ch='A' u64=1234605616436508552 \
         x64=0x1122334455667788 s64=1234605616436508552 x16=0x201 sym=checksum+0x5/0x40 away=0x1000"
    );
}

#[test]
fn raw_values_are_stored_as_an_unsigned_long() {
    // A value from a register is 32 bits, whatever the type says.
    let def = parse("p:e checksum a=\\-1:u64 b=\\-1:s64 c=\\-2:s8");
    assert_eq!(show(&def, CallingConvention::Stack), "e: (checksum+0x0/0x40) a=4294967295 b=4294967295 c=-2");
}

#[test]
fn strings() {
    // A string type reads the text at the address computed: +0(%ax) is
    // the text at %ax, +0(+0(%ax)) the text %ax points to.
    let def = parse(
        "p:e checksum s=+0(+0(%ax)):string at=@0x3000:string here=+0(%ax):string lit=\\\"lit\" empty=\\\" \
         c=$comm u=+0(%si):ustring u2=+u0(%si):string k=+0(%si):string bad=+0(%cx):string \
         worse=+0(+0(%cx)):string sym=%ip:symstr sym2=+0($stack):symstr nosym=%ax:symstr",
    );
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "e: (checksum+0x0/0x40) s=\"hello\" at=\"hello\" here=\"\" lit=\"lit\" empty=\"\" c=\"insmod\" u=\"user\" \
         u2=\"user\" k=(fault) bad=(fault) worse=(fault) sym=\"checksum+0x5/0x40\" sym2=\"caller+0x10/0x30\" \
         nosym=\"0x1000\""
    );
}

#[test]
fn bitfields() {
    let def = parse("p:e checksum f=+4(%ax):b4@2/32 top=+4(%ax):b1@7/8 all=+4(%ax):b8@0/8 r=%ax:b4@12/32");
    assert_eq!(show(&def, CallingConvention::Stack), "e: (checksum+0x0/0x40) f=13 top=1 all=180 r=1");
}

#[test]
fn arrays() {
    let def = parse(
        "p:e checksum b=+8(%ax):x8[4] w=+8(%ax):u16[2] bits=+8(%ax):b1@1/8[4] \
         names=+0(%di):string[2] more=+4(%di):string[2] tail=+8(%di):string[3] at=@0x4000:string[2]",
    );
    assert_eq!(
        show(&def, CallingConvention::Stack),
        "e: (checksum+0x0/0x40) b={0x1,0x2,0x3,0x4} w={513,1027} bits={0,1,1,0} names={\"hello\",\"world\"} \
         more={\"world\",(fault)} tail={(fault),(fault),(fault)} at={\"hello\",\"world\"}"
    );
    // An array that runs into unmapped memory shows zeros there.
    let def = parse("p:e checksum b=+0x1e(%ax):x8[4]");
    assert_eq!(show(&def, CallingConvention::Stack), "e: (checksum+0x0/0x40) b={0x22,0x11,0x0,0x0}");
}

#[test]
fn symbols_resolve_when_compiled() {
    let def = parse("p:e checksum j=@jiffies k=@jiffies+4:u16 l=@jiffies-0x10");
    assert_eq!(show(&def, CallingConvention::Stack), "e: (checksum+0x0/0x40) j=0x12345678 k=39612 l=0x0");
    let error =
        FetchProgram::compile(&parse("p:e checksum x=@nothing"), &KERNEL, CallingConvention::Stack).unwrap_err();
    assert_eq!((error.kind(), error.errno()), (Some(ErrorKind::BadProbeAddr), Errno::NoEnt));
    assert_eq!(error.last().unwrap().position(), 4, "at the probed location");
    let error =
        FetchProgram::compile(&parse("p:e checksum x=@jiffies+zz"), &KERNEL, CallingConvention::Stack).unwrap_err();
    assert_eq!((error.kind(), error.errno()), (Some(ErrorKind::FailRegProbe), Errno::Inval));
}

#[test]
fn return_probes() {
    let def = parse("r:ret checksum $retval a=$arg1 c=$arg3 again=+0($arg3):u8 d=$duration");
    let program = FetchProgram::compile(&def, &KERNEL, CallingConvention::Stack).unwrap();
    assert_eq!(program.entry_slots(), 2);
    // At the entry the handler saves $arg1 and $arg3...
    let (regs, mut memory) = machine();
    assert_eq!(program.entry_data_size(), 16);
    let mut slots = [0xeeu8; 20];
    program.capture_entry(&regs, &memory, &mut slots);
    assert_eq!(slots[..16], [[0x11u8, 0, 0, 0, 0, 0, 0, 0], [0, 0x20, 0, 0, 0, 0, 0, 0]].concat());
    assert_eq!(slots[16..], [0xee; 4], "bytes past the slots are left alone");
    // ...which the return reads, with the return value in eax.
    memory.put(0x2000, &[7]);
    let at_return = FakeRegs::with(&[(Register::Ax, 3), (Register::Sp, SP + 4)]);
    assert_eq!(
        show_with(&def, CallingConvention::Stack, &at_return, &memory, &slots, 1500),
        "ret: (caller+0x10/0x30 <- checksum) arg1=0x3 a=0x11 c=0x2000 again=7 d=1500"
    );
    let fexit = parse("f:fx checksum%return $retval");
    assert_eq!(
        show_with(&fexit, CallingConvention::Stack, &at_return, &memory, &[], 0),
        "fx: (caller+0x10/0x30 <- checksum) arg1=0x3"
    );
}

#[test]
fn trace_line_addresses() {
    let def = parse("r:ret checksum");
    let program = FetchProgram::compile(&def, &KERNEL, CallingConvention::Stack).unwrap();
    let mut record = vec![0u8; program.fixed_size()];
    let mut line = |ip: u32, ret_ip: u32| {
        program.write_header(&mut record, &CommonFields::default(), ip, ret_ip);
        let mut text = String::new();
        def.format_event(&record, &KERNEL, &mut text).unwrap();
        text
    };
    assert_eq!(line(CHECKSUM, 0), "ret: (0 <- checksum)");
    assert_eq!(line(0x1234, 0xc0ff_0000), "ret: ([unknown/kretprobe'd] <- 0x00001234)");
    assert_eq!(line(CHECKSUM + 4, 0x10), "ret: (0x10 <- checksum)");
}

#[test]
fn small_records() {
    let def = parse("p:e checksum s=+0(+0(%ax)):string t=+0(%di):string[2] n=%ax");
    let program = FetchProgram::compile(&def, &KERNEL, CallingConvention::Stack).unwrap();
    let (regs, memory) = machine();
    let hit = Hit { regs: &regs, memory: &memory, symbols: &KERNEL, comm: b"", entry: &[], duration_ns: 0 };
    assert_eq!(program.fixed_size(), 12 + 4 + 8 + 4);
    assert_eq!(program.dynamic_size(&hit), 18);
    // Too small for the fixed part: nothing written.
    let mut record = vec![0xaa; program.fixed_size() - 1];
    assert_eq!(program.fetch(&hit, &mut record), 0);
    assert!(record.iter().all(|&b| b == 0xaa));
    // Room for the fixed part and 8 string bytes: "hello" fits (6 with its
    // NUL), the array's "hello" is cut to "h" (and a NUL), "world" gets
    // nothing.
    let mut record = vec![0u8; program.fixed_size() + 8];
    assert_eq!(program.fetch(&hit, &mut record), record.len());
    let mut line = String::new();
    def.format_args(&record, &KERNEL, &mut line).unwrap();
    assert_eq!(line, " s=\"hello\" t={\"h\",(fault)} n=0x1000");
}

#[test]
fn malformed_records_do_not_panic() {
    let def = parse("p:e checksum s=+0(%ax):string b=+0(%ax):u8[4] y=%ax:symbol");
    for record in [vec![], vec![0xffu8; 13], vec![0xffu8; 64]] {
        let mut line = String::new();
        def.format_event(&record, &Kernel { modules: vec![] }, &mut line).unwrap();
        assert!(line.starts_with("e: ("));
    }
}

#[test]
fn plain_number_arguments_take_the_number_path_and_nothing_else_does() {
    let numbers_only = |command: &str| {
        FetchProgram::compile(&parse(command), &KERNEL, CallingConvention::Stack).unwrap().is_numbers_only()
    };
    assert!(numbers_only("p:a checksum dfd=%ax mode=+4($stack) x=$stack2 y=\\7 z=$arg2 w=%sp:x64"));
    assert!(numbers_only("r:b checksum ret=$retval"));
    assert!(numbers_only("p:c checksum"));
    assert!(!numbers_only("p:d checksum name=+0(%ax):string"), "a string");
    assert!(!numbers_only("p:e checksum deep=+4(+0(%ax))"), "two reads");
    assert!(!numbers_only("p:f checksum bits=%ax:b2@3/32"), "a bitfield");
    assert!(!numbers_only("p:g checksum arr=+0(%ax):u8[4]"), "an array");
    assert!(!numbers_only("p:h checksum c=$comm"), "the task name");
}
