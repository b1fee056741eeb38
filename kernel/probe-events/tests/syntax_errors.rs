//! Linux's selftests of the kprobe and fprobe event parsers' error log
//! (in its ftrace selftest suite), ported: each command carries a `^` where
//! the caret must be, and the error must have Linux's text there.
//!
//! Left out, as they do not apply here: the BTF cases (this kernel has no
//! BTF; the `$arg*` case of a kernel without it is kept) and the
//! tracepoint probe (`t`) case. `$FUNCTION_FORK` is `kernel_clone`.
mod common;

use common::KERNEL;
use probe_events::{Command, CommandError, Errno, ErrorKind, Interface, ProbeDefinition, parse_command};

/// Splits a selftest string at its caret: the command and the position.
fn split_caret(with_caret: &str) -> (String, usize) {
    let position = with_caret.find('^').expect("the test command has a caret");
    // A caret past the end stands after a space the command does not have.
    let command = with_caret.replacen('^', "", 1).trim_end().to_string();
    (command, position)
}

fn refusal(command: &str, interface: Interface) -> CommandError {
    match parse_command(command, interface, &KERNEL) {
        Ok(parsed) => panic!("{command:?} was accepted: {parsed:?}"),
        Err(e) => e,
    }
}

/// The error's last entry has `kind` with its caret where the `^` is, and
/// renders as `error_log` shows it (the selftest's length check included).
fn check_logged(error: &CommandError, with_caret: &str, kind: ErrorKind, subsystem: &str) {
    let (command, position) = split_caret(with_caret);
    let entry = error.last().unwrap_or_else(|| panic!("{command:?}: nothing logged ({error:?})"));
    assert_eq!(entry.kind(), kind, "{command:?}");
    assert_eq!(entry.position(), position, "{command:?}: caret");
    assert_eq!(entry.command(), command);
    assert_eq!(entry.to_string(), kind.text());
    let log = entry.error_log_entry(1_234_567_891_011);
    let expected = format!(
        "[ 1234.567891] {subsystem}: error: {}\n  Command: {command}\n{}^\n",
        kind.text(),
        " ".repeat(11 + position)
    );
    assert_eq!(log, expected);
    // ftrace_errlog_check: the caret line is 13 bytes plus the position.
    assert_eq!(log.lines().last().unwrap().len() + 1, 13 + position);
}

fn check_error(with_caret: &str, kind: ErrorKind) {
    let (command, _) = split_caret(with_caret);
    let error = refusal(&command, Interface::KprobeEvents);
    check_logged(&error, with_caret, kind, "trace_kprobe");
    // dynamic_events refuses a kprobe the same way.
    assert_eq!(refusal(&command, Interface::DynamicEvents), error);
}

fn check_fprobe_error(with_caret: &str, kind: ErrorKind) {
    let (command, _) = split_caret(with_caret);
    let error = refusal(&command, Interface::DynamicEvents);
    check_logged(&error, with_caret, kind, "trace_fprobe");
}

fn parse_ok(command: &str, interface: Interface) -> ProbeDefinition {
    match parse_command(command, interface, &KERNEL) {
        Ok(Command::Create(def)) => def,
        other => panic!("{command:?}: {other:?}"),
    }
}

#[test]
fn maxactive() {
    check_error("p^100 vfs_read", ErrorKind::BadMaxactType);
    check_error("r^1a111 vfs_read", ErrorKind::BadMaxact);
    check_error("r^100000 vfs_read", ErrorKind::MaxactTooBig);
}

#[test]
fn probe_address() {
    check_error("p ^non_exist_func", ErrorKind::BadProbeAddr);
    check_error("p ^hoge-fuga", ErrorKind::BadProbeAddr);
    check_error("p ^hoge+1000-1000", ErrorKind::BadProbeAddr);
    check_error("r ^vfs_read+10", ErrorKind::BadRetprobe);
}

#[test]
fn group_and_event_names() {
    check_error("p:^/bar vfs_read", ErrorKind::NoGroupName);
    check_error(
        "p:^12345678901234567890123456789012345678901234567890123456789012345/bar vfs_read",
        ErrorKind::GroupTooLong,
    );
    check_error("p:^foo.1/bar vfs_read", ErrorKind::BadGroupName);
    check_error("p:^ vfs_read", ErrorKind::NoEventName);
    check_error(
        "p:foo/^12345678901234567890123456789012345678901234567890123456789012345 vfs_read",
        ErrorKind::EventTooLong,
    );
    check_error("p:foo/^bar.1 vfs_read", ErrorKind::BadEventName);
}

#[test]
fn variables() {
    check_error("p vfs_read ^$retval", ErrorKind::RetvalOnProbe);
    check_error("p vfs_read ^$stack10000", ErrorKind::BadStackNum);
    check_error("p vfs_read ^$arg10000", ErrorKind::BadArgNum);
    check_error("p vfs_read ^$none_var", ErrorKind::BadVar);
}

#[test]
fn registers_memory_immediates() {
    check_error("p vfs_read ^%none_reg", ErrorKind::BadRegName);
    check_error("p vfs_read ^@12345678abcde", ErrorKind::BadMemAddr);
    check_error("p vfs_read ^@+10", ErrorKind::FileOnKprobe);
    check_error("p vfs_read arg1=\\^x", ErrorKind::BadImm);
    check_error("p vfs_read arg1=\\\"abcd^", ErrorKind::ImmstrNoClose);
}

#[test]
fn dereferences() {
    check_error("p vfs_read ^+0@0)", ErrorKind::DerefNeedBrace);
    check_error("p vfs_read ^+0ab1(@0)", ErrorKind::BadDerefOffs);
    check_error("p vfs_read +0(+0(@0^)", ErrorKind::DerefOpenBrace);
    check_error("p vfs_read +0(^$comm)", ErrorKind::CommCantDeref);
    check_error("p vfs_read ^&1", ErrorKind::BadFetchArg);
    check_error("p vfs_read +0(^+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(@0))))))))))))))", ErrorKind::TooManyOps);
}

#[test]
fn arrays() {
    check_error("p vfs_read +0(@11):u8[10^", ErrorKind::ArrayNoClose);
    check_error("p vfs_read +0(@11):u8[10]^a", ErrorKind::BadArraySuffix);
    check_error("p vfs_read +0(@11):u8[^10a]", ErrorKind::BadArrayNum);
    check_error("p vfs_read +0(@11):u8[^256]", ErrorKind::ArrayTooBig);
}

#[test]
fn types() {
    check_error("p vfs_read @11:^unknown_type", ErrorKind::BadType);
    check_error("p vfs_read $stack0:^string", ErrorKind::BadString);
    check_error("p vfs_read @11:^b10@a/16", ErrorKind::BadBitfield);
}

#[test]
fn argument_names_and_bodies() {
    check_error("p vfs_read ^arg123456789012345678901234567890=@11", ErrorKind::ArgNameTooLong);
    check_error("p vfs_read ^=@11", ErrorKind::NoArgName);
    check_error("p vfs_read ^var.1=@11", ErrorKind::BadArgName);
    check_error("p vfs_read var1=@11 ^var1=@12", ErrorKind::UsedArgName);
    check_error("p vfs_read ^+1234567(+1234567(+1234567(+1234567(+1234567(+1234567(@1234))))))", ErrorKind::ArgTooLong);
    check_error("p vfs_read arg1=^", ErrorKind::NoArgBody);
}

#[test]
fn instruction_boundary_is_registrations() {
    // The parser accepts it; registration finds it mid-instruction and
    // reports it at the probed location.
    let def = parse_ok("p vfs_read+3", Interface::KprobeEvents);
    let error = def.registration_error(ErrorKind::BadInsnBndry);
    assert_eq!(error.errno(), Errno::IlSeq);
    check_logged(&error, "p ^vfs_read+3", ErrorKind::BadInsnBndry, "trace_kprobe");
}

/// The multiprobe cases: appending to `testevent` on `kernel_clone`.
#[test]
fn multiprobe() {
    let plain = parse_ok("p:kprobes/testevent kernel_clone", Interface::KprobeEvents);
    let ret = parse_ok("r:kprobes/testevent do_exit", Interface::KprobeEvents);
    let error = ret.check_append(&[&plain]).unwrap_err();
    assert_eq!(error.errno(), Errno::Exist);
    check_logged(&error, "^r:kprobes/testevent do_exit", ErrorKind::DiffProbeType, "trace_kprobe");

    let existing = parse_ok("p:kprobes/testevent kernel_clone abcd=\\1", Interface::KprobeEvents);
    for with_caret in [
        "p:kprobes/testevent kernel_clone ^bcd=\\1",
        "p:kprobes/testevent kernel_clone ^abcd=\\1:u8",
        "p:kprobes/testevent kernel_clone ^abcd=\\\"foo\"",
    ] {
        let (command, _) = split_caret(with_caret);
        let new = parse_ok(&command, Interface::KprobeEvents);
        let error = new.check_append(&[&existing]).unwrap_err();
        check_logged(&error, with_caret, ErrorKind::DiffArgType, "trace_kprobe");
    }
    let same = parse_ok("p:kprobes/testevent kernel_clone abcd=\\1", Interface::KprobeEvents);
    let error = same.check_append(&[&existing]).unwrap_err();
    check_logged(&error, "^p:kprobes/testevent kernel_clone abcd=\\1", ErrorKind::SameProbe, "trace_kprobe");
    // Fewer arguments than the event's: Linux points past the command's
    // end (after the last word and a space).
    let error =
        parse_ok("p:kprobes/testevent kernel_clone", Interface::KprobeEvents).check_append(&[&existing]).unwrap_err();
    check_logged(&error, "p:kprobes/testevent kernel_clone ^", ErrorKind::DiffArgType, "trace_kprobe");
    // Another location with the same arguments joins the event.
    let other = parse_ok("p:kprobes/testevent do_exit abcd=\\2", Interface::KprobeEvents);
    other.check_append(&[&existing]).unwrap();
}

#[test]
fn return_suffix() {
    check_error("p vfs_read^%hoge", ErrorKind::BadAddrSuffix);
    check_error("p ^vfs_read+10%return", ErrorKind::BadRetprobe);
}

/// Without BTF, Linux logs "BTF is not available" for `$arg*` and carries
/// on, so the variable itself is then refused at the same place.
#[test]
fn all_arguments_need_btf() {
    let error = refusal("p vfs_read $arg*", Interface::KprobeEvents);
    let kinds: Vec<_> = error.entries().iter().map(|e| e.kind()).collect();
    assert_eq!(kinds, [ErrorKind::NosupBtfarg, ErrorKind::BadVar]);
    check_logged(&error, "p vfs_read ^$arg*", ErrorKind::BadVar, "trace_kprobe");
    assert_eq!(error.entries()[0].position(), 11);
    // The BTF check runs over the arguments first and blames the last
    // `$arg` one; the argument parse then fails where it fails.
    let error = refusal("p vfs_read %nope $arg* $arg1", Interface::KprobeEvents);
    let entries = error.entries();
    assert_eq!(entries.len(), 2);
    assert_eq!((entries[0].kind(), entries[0].position()), (ErrorKind::NosupBtfarg, 23));
    check_logged(&error, "p vfs_read ^%nope $arg* $arg1", ErrorKind::BadRegName, "trace_kprobe");
    check_error("p vfs_read $arg* ^$arg*", ErrorKind::DoubleArgs);
    check_error("p vfs_read+20 ^$arg*", ErrorKind::NofentryArgs);
}

#[test]
fn fprobe_selftest() {
    check_fprobe_error("f^100 vfs_read", ErrorKind::BadMaxact);
    check_fprobe_error("f ^non_exist_func", ErrorKind::BadProbeAddr);
    check_fprobe_error("f ^vfs_read+10", ErrorKind::BadProbeAddr);
    check_fprobe_error("f:^/bar vfs_read", ErrorKind::NoGroupName);
    check_fprobe_error(
        "f:^12345678901234567890123456789012345678901234567890123456789012345/bar vfs_read",
        ErrorKind::GroupTooLong,
    );
    check_fprobe_error("f:^foo.1/bar vfs_read", ErrorKind::BadGroupName);
    check_fprobe_error("f:^ vfs_read", ErrorKind::NoEventName);
    check_fprobe_error(
        "f:foo/^12345678901234567890123456789012345678901234567890123456789012345 vfs_read",
        ErrorKind::EventTooLong,
    );
    check_fprobe_error("f:foo/^bar.1 vfs_read", ErrorKind::BadEventName);
    check_fprobe_error("f vfs_read ^$stack10000", ErrorKind::BadStackNum);
    check_fprobe_error("f vfs_read ^$arg10000", ErrorKind::BadArgNum);
    check_fprobe_error("f vfs_read ^$none_var", ErrorKind::BadVar);
    check_fprobe_error("f vfs_read ^%ax", ErrorKind::BadVar);
    check_fprobe_error("f vfs_read ^@12345678abcde", ErrorKind::BadMemAddr);
    check_fprobe_error("f vfs_read ^@+10", ErrorKind::FileOnKprobe);
    check_fprobe_error("f vfs_read arg1=\\^x", ErrorKind::BadImm);
    check_fprobe_error("f vfs_read arg1=\\\"abcd^", ErrorKind::ImmstrNoClose);
    check_fprobe_error("f vfs_read ^+0@0)", ErrorKind::DerefNeedBrace);
    check_fprobe_error("f vfs_read ^+0ab1(@0)", ErrorKind::BadDerefOffs);
    check_fprobe_error("f vfs_read +0(+0(@0^)", ErrorKind::DerefOpenBrace);
    check_fprobe_error("f vfs_read +0(^$comm)", ErrorKind::CommCantDeref);
    check_fprobe_error("f vfs_read ^&1", ErrorKind::BadFetchArg);
    check_fprobe_error("f vfs_read +0(^+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(+0(@0))))))))))))))", ErrorKind::TooManyOps);
    check_fprobe_error("f vfs_read +0(@11):u8[10^", ErrorKind::ArrayNoClose);
    check_fprobe_error("f vfs_read +0(@11):u8[10]^a", ErrorKind::BadArraySuffix);
    check_fprobe_error("f vfs_read +0(@11):u8[^10a]", ErrorKind::BadArrayNum);
    check_fprobe_error("f vfs_read +0(@11):u8[^256]", ErrorKind::ArrayTooBig);
    check_fprobe_error("f vfs_read @11:^unknown_type", ErrorKind::BadType);
    check_fprobe_error("f vfs_read $stack0:^string", ErrorKind::BadString);
    check_fprobe_error("f vfs_read @11:^b10@a/16", ErrorKind::BadBitfield);
    check_fprobe_error("f vfs_read ^arg123456789012345678901234567890=@11", ErrorKind::ArgNameTooLong);
    check_fprobe_error("f vfs_read ^=@11", ErrorKind::NoArgName);
    check_fprobe_error("f vfs_read ^var.1=@11", ErrorKind::BadArgName);
    check_fprobe_error("f vfs_read var1=@11 ^var1=@12", ErrorKind::UsedArgName);
    check_fprobe_error(
        "f vfs_read ^+1234567(+1234567(+1234567(+1234567(+1234567(+1234567(@1234))))))",
        ErrorKind::ArgTooLong,
    );
    check_fprobe_error("f vfs_read arg1=^", ErrorKind::NoArgBody);
    check_fprobe_error("f vfs_read^%hoge", ErrorKind::BadAddrSuffix);
    let error = refusal("f vfs_read $arg*", Interface::DynamicEvents);
    assert_eq!(error.entries()[0].kind(), ErrorKind::NosupBtfarg);
    check_logged(&error, "f vfs_read ^$arg*", ErrorKind::BadVar, "trace_fprobe");
}

#[test]
fn fprobe_multiprobe() {
    let existing = parse_ok("f:fprobes/testevent kernel_clone", Interface::DynamicEvents);
    let exit = parse_ok("f:fprobes/testevent do_exit%return", Interface::DynamicEvents);
    let error = exit.check_append(&[&existing]).unwrap_err();
    check_logged(&error, "^f:fprobes/testevent do_exit%return", ErrorKind::DiffProbeType, "trace_fprobe");

    let existing = parse_ok("f:fprobes/testevent kernel_clone abcd=\\1", Interface::DynamicEvents);
    for with_caret in [
        "f:fprobes/testevent kernel_clone ^bcd=\\1",
        "f:fprobes/testevent kernel_clone ^abcd=\\1:u8",
        "f:fprobes/testevent kernel_clone ^abcd=\\\"foo\"",
    ] {
        let (command, _) = split_caret(with_caret);
        let error = parse_ok(&command, Interface::DynamicEvents).check_append(&[&existing]).unwrap_err();
        check_logged(&error, with_caret, ErrorKind::DiffArgType, "trace_fprobe");
    }
    let error = parse_ok("f:fprobes/testevent kernel_clone abcd=\\1", Interface::DynamicEvents)
        .check_append(&[&existing])
        .unwrap_err();
    check_logged(&error, "^f:fprobes/testevent kernel_clone abcd=\\1", ErrorKind::SameProbe, "trace_fprobe");
}

/// Every message is Linux's, byte for byte (a sample, including the
/// misspelling Linux ships).
#[test]
fn message_texts() {
    assert_eq!(ErrorKind::BadVar.text(), "Invalid $-valiable specified");
    assert_eq!(ErrorKind::ImmstrNoClose.text(), "String is not closed with '\"'");
    assert_eq!(ErrorKind::BadRetprobe.text(), "Retprobe address must be an function entry");
    assert_eq!(ErrorKind::BadSymstring.text(), "Symbol String doesn't accept data/userdata");
    assert_eq!(ErrorKind::NeedStringType.text(), "$comm and immediate-string only accepts string type");
    assert_eq!(ErrorKind::BadMaxactType.text(), "Maxactive is only for function exit");
    assert_eq!(ErrorKind::ALL.len(), 80);
}
