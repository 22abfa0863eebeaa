// The portable table: the target's baseline vectors (SSE2 on x86-64, NEON on arm64, plain scalar
// code elsewhere), 4 floats per vector.
#if defined(__aarch64__) || defined(__ARM_NEON)
#define ZK_ISA "neon"
#else
#define ZK_ISA "generic"
#endif
#define ZK_VW 4
#define ZK_TABLE table_generic
#include "kern_impl.inc"
