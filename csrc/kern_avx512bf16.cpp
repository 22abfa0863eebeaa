// x86-64 with AVX-512 F/BW/DQ/VL and AVX512_BF16 (Zen 4 and later, Intel Cooper Lake and Sapphire
// Rapids and later): the AVX-512 table whose 4-bit matrix-vector kernel runs on bfloat16 dot
// products (kern_q4bf16.inc). Built with -mavx512bf16 on top of kern_avx512.cpp's flags, and only
// where the compiler accepts it (CMakeLists.txt); used only when the CPU has the instructions.
#define ZK_ISA "avx512bf16"
#define ZK_VW 16
#define ZK_TABLE table_avx512bf16
#include "kern_impl.inc"
