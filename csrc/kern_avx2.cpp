// x86-64 with AVX2, FMA and F16C (built with -mavx2 -mfma -mf16c; used only when the CPU has them).
#define ZK_ISA "avx2"
#define ZK_VW 8
#define ZK_TABLE table_avx2
#include "kern_impl.inc"
