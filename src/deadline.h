/*
 * Deadlines: a binary min-heap of points in time, each embedded in the
 * record it belongs to (a connection's token expiry). Setting, moving and
 * removing a deadline cost O(log n); finding the ones that passed costs
 * O(log n) each, so that nothing walks every record to find the few due.
 *
 * Single-threaded. A deadline is in at most one heap.
 */
#ifndef HD_DEADLINE_H
#define HD_DEADLINE_H

#include <stddef.h>

typedef struct hd_deadline {
    double at;   /* when it falls due */
    size_t slot; /* 1 + its index in the heap; 0 when not in one */
} hd_deadline;

typedef struct hd_deadlines {
    hd_deadline **v;
    size_t n, cap;
} hd_deadlines;

/* Sets (or moves) `d` to fall due at `at`; `at` <= 0 removes it. 0, or -1 without memory. */
int hd__deadline_set(hd_deadlines *h, hd_deadline *d, double at);
/* The earliest deadline if it is due at `now` (it stays until set or removed), else NULL. */
hd_deadline *hd__deadline_due(const hd_deadlines *h, double now);
void hd__deadlines_free(hd_deadlines *h);

#endif
