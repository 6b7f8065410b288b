/*
 * heap.h - a binary min-heap of intrusive nodes keyed by a time (ns), with removal by node:
 * the daemon's wait deadlines and next grant time of each limit, librld's due times of
 * degraded non-blocking waits. Nodes record their position.
 */
#ifndef RLD_COMMON_HEAP_H
#define RLD_COMMON_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define HEAP_NONE UINT32_MAX

typedef struct heap_node {
    uint64_t key;
    uint32_t idx;        /* HEAP_NONE when not in a heap */
} heap_node;

typedef struct heap {
    heap_node **v;
    uint32_t n, cap;
} heap;

static inline void heap_swap(heap *h, uint32_t a, uint32_t b)
{
    heap_node *t = h->v[a];
    h->v[a] = h->v[b];
    h->v[b] = t;
    h->v[a]->idx = a;
    h->v[b]->idx = b;
}

static inline void heap_up(heap *h, uint32_t i)
{
    while (i > 0 && h->v[(i - 1) / 2]->key > h->v[i]->key) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static inline void heap_down(heap *h, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && h->v[l]->key < h->v[m]->key)
            m = l;
        if (r < h->n && h->v[r]->key < h->v[m]->key)
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

/* Insert or move NODE to KEY. -1 if out of memory (the node is then not in the heap). */
static inline int heap_set(heap *h, heap_node *node, uint64_t key)
{
    if (node->idx != HEAP_NONE) {
        uint64_t old = node->key;
        node->key = key;
        if (key < old)
            heap_up(h, node->idx);
        else
            heap_down(h, node->idx);
        return 0;
    }
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        heap_node **v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    node->key = key;
    node->idx = h->n;
    h->v[h->n++] = node;
    heap_up(h, node->idx);
    return 0;
}

static inline void heap_remove(heap *h, heap_node *node)
{
    uint32_t i = node->idx;
    if (i == HEAP_NONE)
        return;
    node->idx = HEAP_NONE;
    if (i == --h->n)
        return;
    h->v[i] = h->v[h->n];
    h->v[i]->idx = i;
    heap_up(h, i);
    heap_down(h, h->v[i]->idx);
}

static inline heap_node *heap_min(const heap *h)
{
    return h->n ? h->v[0] : NULL;
}

#endif
