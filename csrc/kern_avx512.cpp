// x86-64 with AVX-512 F/BW/DQ/VL (built with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma
// -mf16c; used only when the CPU and the OS support them).
#define ZK_ISA "avx512"
#define ZK_VW 16
#define ZK_TABLE table_avx512
#include "kern_impl.inc"
