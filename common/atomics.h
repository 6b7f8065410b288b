/*
 * atomics.h - the atomic operations rld uses on shared memory, named with their ordering.
 *
 * Shared-memory fields are plain integers in layout.h (their layout is ABI); every access to
 * a field another process may write goes through these helpers, never a plain load/store.
 */
#ifndef RLD_COMMON_ATOMICS_H
#define RLD_COMMON_ATOMICS_H

#include <stdbool.h>
#include <stdint.h>

typedef unsigned __int128 rldi_u128;

#define rldi_load_relaxed(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
#define rldi_load_acquire(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define rldi_store_relaxed(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define rldi_store_release(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define rldi_add_relaxed(p, v)    __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define rldi_sub_relaxed(p, v)    __atomic_fetch_sub((p), (v), __ATOMIC_RELAXED)

/*
 * Fences (seqlock readers and the daemon's writers). ThreadSanitizer does not model fences
 * and refuses to compile them; in a TSan build they are left out. TSan sees one process
 * only, and every in-process access to shared fields is an atomic operation, so its reports
 * stay meaningful; the cross-process ordering is covered by the other builds' tests.
 */
#if defined(__SANITIZE_THREAD__)
#define rldi_fence_acquire() ((void)0)
#define rldi_fence_release() ((void)0)
#else
#define rldi_fence_acquire() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define rldi_fence_release() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

static inline void rldi_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/*
 * 16-byte compare-and-swap, sequentially consistent (a full barrier, as lock cmpxchg16b is).
 * On failure *expected receives the current value, read atomically. P must be 16-aligned.
 * x86-64: the __sync builtin with -mcx16 inlines lock cmpxchg16b (the __atomic one would
 * call libatomic). Elsewhere libatomic provides it (LSE casp on aarch64).
 */
static inline bool rldi_cas16(void *p, rldi_u128 *expected, rldi_u128 desired)
{
#if defined(__x86_64__) && defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16)
    rldi_u128 old = *expected;
    rldi_u128 cur = __sync_val_compare_and_swap((rldi_u128 *)p, old, desired);
    if (cur == old)
        return true;
    *expected = cur;
    return false;
#else
    return __atomic_compare_exchange_n((rldi_u128 *)p, expected, desired, false,
                                       __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE);
#endif
}

/*
 * rldi_cas16 on the two 64-bit halves of the word (LO at P, HI at P + 8): on failure *LO
 * and *HI receive the current value. On x86-64 in inline assembly: GCC builds the 128-bit
 * operands of __sync_val_compare_and_swap through the stack (a store-forwarding round trip
 * on the fast path, between the clock read and the CAS) and compares the old value with
 * xor/or, where cmpxchg16b sets ZF itself. ThreadSanitizer does not see inline assembly:
 * its builds take the builtin.
 */
static inline bool rldi_cas16_halves(void *p, uint64_t *lo, uint64_t *hi, uint64_t nlo,
                                     uint64_t nhi)
{
#if defined(__x86_64__) && defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_16) && \
    !defined(__SANITIZE_THREAD__)
    bool ok;
    __asm__ __volatile__("lock cmpxchg16b %1"
                         : "=@ccz"(ok), "+m"(*(rldi_u128 *)p), "+a"(*lo), "+d"(*hi)
                         : "b"(nlo), "c"(nhi)
                         : "memory");
    return ok;
#else
    rldi_u128 exp = ((rldi_u128)*hi << 64) | *lo;
    bool ok = rldi_cas16(p, &exp, ((rldi_u128)nhi << 64) | nlo);
    *lo = (uint64_t)exp;
    *hi = (uint64_t)(exp >> 64);
    return ok;
#endif
}

/*
 * An optimistic read of a 16-byte word as two 8-byte loads, the high half (version) first
 * with acquire. It may be torn; every user validates it with rldi_cas16 or by re-reading.
 */
static inline rldi_u128 rldi_load16_split(const uint64_t *p)
{
    uint64_t hi = __atomic_load_n(&p[1], __ATOMIC_ACQUIRE);
    uint64_t lo = __atomic_load_n(&p[0], __ATOMIC_RELAXED);
    return ((rldi_u128)hi << 64) | lo;
}

#endif
