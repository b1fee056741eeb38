typedef unsigned int size_t;
struct big { int a, b, c; };
volatile int sink;

__attribute__((used, aligned(16))) const unsigned char probe_kernel_ksyms[8192] = {'K','S','Y','M','N','O','N','E', 0x00, 0x20, 0x00, 0x00};
__attribute__((used, aligned(16))) const unsigned char probe_kernel_params[65536] = {'K','P','A','R','N','O','N','E', 0x00, 0x00, 0x01, 0x00};

__attribute__((noinline)) int cdecl_args(const char *name, size_t len, long long wide, _Bool flag, short delta) {
    sink = name[0]; sink = len; sink = (int)wide; sink = (int)(wide >> 32); sink = flag; sink = delta;
    return 0;
}
__attribute__((noinline, regparm(3))) int regparm_args(int a, int b, int c, int d) {
    sink = a; sink = b; sink = c; sink = d;
    return 0;
}
__attribute__((noinline, fastcall)) int fastcall_args(int a, int b, int c) {
    sink = a; sink = b; sink = c;
    return 0;
}
__attribute__((noinline, regparm(3))) int split_arg(long long v) {
    sink = (int)v; sink = (int)(v >> 32);
    return 0;
}
__attribute__((noinline)) int by_value(struct big b, int after) {
    sink = b.a + b.b + b.c + after;
    return 0;
}
__attribute__((noinline)) int unused_arg(int used, int unused) {
    sink = used;
    return 0;
}
void _start(void) {
    struct big b = {1, 2, 3};
    cdecl_args("x", 1, 2, 1, 3);
    regparm_args(1, 2, 3, 4);
    fastcall_args(1, 2, 3);
    split_arg(5);
    by_value(b, 4);
    unused_arg(1, 2);
    for (;;) {}
}
