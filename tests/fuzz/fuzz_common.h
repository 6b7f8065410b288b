/*
 * fuzz_common.h - helpers shared by the libFuzzer targets in tests/fuzz/.
 *
 * FUZZ_CHECK aborts with a message naming the broken invariant: libFuzzer treats abort() as a
 * crash and saves the input. Byte consumers read the input front to back and give 0 once it
 * is exhausted, so every input, however short, is a valid case.
 */
#ifndef RLD_FUZZ_COMMON_H
#define RLD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                                \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: invariant failed: %s\n  ", __FILE__, __LINE__, #cond);  \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            abort();                                                                         \
        }                                                                                    \
    } while (0)

typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

static inline uint8_t fuzz_u8(fuzz_in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* Little-endian, zero-filled past the end of the input. */
static inline uint64_t fuzz_u64(fuzz_in *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)fuzz_u8(in) << (8 * i);
    return v;
}

/*
 * A value in LO..HI (LO <= HI): a selector byte picks an edge (LO, HI, LO + 1, HI - 1) one
 * time in eight each, else a raw 64-bit word reduced into the range.
 */
static inline uint64_t fuzz_range(fuzz_in *in, uint64_t lo, uint64_t hi)
{
    uint8_t sel = fuzz_u8(in);
    uint64_t raw = fuzz_u64(in);
    uint64_t span = hi - lo;
    switch (sel & 7) {
    case 0:
        return lo;
    case 1:
        return hi;
    case 2:
        return span ? lo + 1 : lo;
    case 3:
        return span ? hi - 1 : hi;
    default:
        return span == UINT64_MAX ? raw : lo + raw % (span + 1);
    }
}

/* A NUL-terminated heap copy of the input (bytes after an embedded NUL are ignored by C
 * string functions, as they would be by any caller). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
