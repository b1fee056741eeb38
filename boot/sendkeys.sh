#!/usr/bin/env bash
# Types on the guest's PS/2 keyboard through QEMU's monitor (run.sh starts
# it in the background for a kernel that has a keys file).
#
#   boot/sendkeys.sh KEYS_FILE LOG MONITOR_IN
#
# MONITOR_IN is the write end of QEMU's human monitor (a FIFO: run.sh gives
# QEMU `-chardev pipe,path=...`); LOG is the file the kernel's serial output
# goes to as it runs. Each monitor `sendkey` presses a key and releases it
# after HOLD ms ($PROBE_KEY_HOLD_MS, default 10); QEMU queues them in
# order, and the guest's keyboard interrupt takes them as a person's typing.
#
# The keys file, one directive a line (`#` starts a comment line):
#   wait TEXT      wait until LOG holds TEXT (at most 60 s), e.g. a line the
#                  kernel prints when its keyboard is ready
#   type TEXT      type TEXT character by character (printable ASCII; the
#                  rest of the line after one space, trailing blanks kept)
#   key NAME...    press keys by QEMU's names: ret, tab, backspace, delete,
#                  up, down, left, right, home, end, ctrl-c, ...
set -u
keys=$1 log=$2 monitor=$3
hold=${PROBE_KEY_HOLD_MS:-10}

exec 3>"$monitor" || exit 1

# QEMU queues key events (a press, a pause, a release, a pause, each
# modifier too) and drops what exceeds its queue: one key at a time, each
# given the time its events take before the next is sent.
send() {
    printf 'sendkey %s %s\n' "$1" "$hold" >&3
    local parts=${1//[^-]/}
    local ms=$(( (${#parts} + 1) * 2 * hold + 10 ))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}

# The QEMU key name of one character (US layout).
key_of() {
    local c=$1
    case "$c" in
        [a-z0-9]) echo "$c" ;;
        [A-Z]) echo "shift-${c,,}" ;;
        ' ') echo spc ;;
        '-') echo minus ;;   '_') echo shift-minus ;;
        '=') echo equal ;;   '+') echo shift-equal ;;
        '.') echo dot ;;     '>') echo shift-dot ;;
        ',') echo comma ;;   '<') echo shift-comma ;;
        '/') echo slash ;;   '?') echo shift-slash ;;
        ';') echo semicolon ;; ':') echo shift-semicolon ;;
        "'") echo apostrophe ;; '"') echo shift-apostrophe ;;
        '[') echo bracket_left ;; '{') echo shift-bracket_left ;;
        ']') echo bracket_right ;; '}') echo shift-bracket_right ;;
        '\') echo backslash ;; '|') echo shift-backslash ;;
        '`') echo grave_accent ;; '~') echo shift-grave_accent ;;
        '!') echo shift-1 ;; '@') echo shift-2 ;; '#') echo shift-3 ;;
        '$') echo shift-4 ;; '%') echo shift-5 ;; '^') echo shift-6 ;;
        '&') echo shift-7 ;; '*') echo shift-8 ;; '(') echo shift-9 ;;
        ')') echo shift-0 ;;
        *) echo "sendkeys.sh: no key types '$c'" >&2; return 1 ;;
    esac
}

number=0
while IFS= read -r line || [ -n "$line" ]; do
    number=$((number + 1))
    case "$line" in
        '#'* | '') ;;
        'wait '*)
            text=${line#wait }
            waited=0
            until tr -d '\r' < "$log" | grep -qF -- "$text"; do
                sleep 0.1
                waited=$((waited + 1))
                [ "$waited" -lt 600 ] || { echo "sendkeys.sh: '$text' never appeared" >&2; exit 1; }
            done
            ;;
        'type '*)
            text=${line#type }
            for ((i = 0; i < ${#text}; i++)); do
                name=$(key_of "${text:i:1}") || exit 1
                send "$name"
            done
            ;;
        'key '*)
            for name in ${line#key }; do send "$name"; done
            ;;
        *) echo "sendkeys.sh: $keys:$number: not a directive: $line" >&2; exit 1 ;;
    esac
done < "$keys"
