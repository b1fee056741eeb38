/* Boot headers and the 32-bit entry point.
 *
 * One ELF carries both headers: GRUB's `multiboot2` command reads only the
 * Multiboot2 header, QEMU's `-kernel` reads only Multiboot1. Both loaders enter
 * at _start in 32-bit protected mode, paging off, interrupts off, with the
 * magic in EAX and the physical address of the boot information in EBX. The
 * Rust side tells the two apart by the magic. Included by
 * kernel/arch/x86/boot.rs through global_asm! (Intel syntax). */

.section .multiboot, "a"
.align 8
multiboot2_header:
    .long 0xE85250D6                       /* magic */
    .long 0                                /* architecture: i386 protected mode */
    .long multiboot2_header_end - multiboot2_header
    .long -(0xE85250D6 + 0 + (multiboot2_header_end - multiboot2_header))
    .align 8
    .short 0                               /* end tag */
    .short 0
    .long 8
multiboot2_header_end:

.align 4
multiboot1_header:
    .long 0x1BADB002                       /* magic */
    .long 0x00000003                       /* flags: page-align modules, memory info */
    .long -(0x1BADB002 + 0x00000003)

.section .text.boot, "ax"
.global _start
_start:
    cli
    cld
    mov esp, offset boot_stack_top
    xor ebp, ebp                           /* ends the frame-pointer chain */
    push ebx                               /* boot information address */
    push eax                               /* loader magic */
    call kernel_boot_entry                 /* never returns */
2:  hlt
    jmp 2b

.section .bss
.align 4096
.global boot_stack_guard
boot_stack_guard:                          /* left unmapped: overflow faults */
    .skip 4096
.global boot_stack_bottom
boot_stack_bottom:
    .skip 65536
.global boot_stack_top
boot_stack_top:
