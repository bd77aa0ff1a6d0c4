/* A min-heap of embedded deadlines (deadline.h). */
#include "deadline.h"

#include <stdlib.h>

static void put(hd_deadlines *h, size_t i, hd_deadline *d)
{
    h->v[i] = d;
    d->slot = i + 1;
}

static void sift_up(hd_deadlines *h, size_t i)
{
    hd_deadline *d = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->at <= d->at) break;
        put(h, i, h->v[parent]);
        i = parent;
    }
    put(h, i, d);
}

static void sift_down(hd_deadlines *h, size_t i)
{
    hd_deadline *d = h->v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n) break;
        if (child + 1 < h->n && h->v[child + 1]->at < h->v[child]->at) child++;
        if (d->at <= h->v[child]->at) break;
        put(h, i, h->v[child]);
        i = child;
    }
    put(h, i, d);
}

static void remove_at(hd_deadlines *h, size_t i)
{
    h->v[i]->slot = 0;
    hd_deadline *last = h->v[--h->n];
    if (i == h->n) return;
    put(h, i, last);
    sift_down(h, i);
    sift_up(h, last->slot - 1);
}

int hd__deadline_set(hd_deadlines *h, hd_deadline *d, double at)
{
    if (at <= 0) {
        if (d->slot) remove_at(h, d->slot - 1);
        d->at = 0;
        return 0;
    }
    if (d->slot) {
        size_t i = d->slot - 1;
        d->at = at;
        sift_down(h, i);
        sift_up(h, d->slot - 1);
        return 0;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        hd_deadline **v = realloc(h->v, cap * sizeof *v);
        if (!v) return -1;
        h->v = v;
        h->cap = cap;
    }
    d->at = at;
    put(h, h->n++, d);
    sift_up(h, h->n - 1);
    return 0;
}

hd_deadline *hd__deadline_due(const hd_deadlines *h, double now)
{
    return h->n && h->v[0]->at <= now ? h->v[0] : NULL;
}

void hd__deadlines_free(hd_deadlines *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->slot = 0;
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
