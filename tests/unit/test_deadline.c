/*
 * Deadlines (src/deadline.c): against a plain array scanned in full, through
 * random sets, moves and removals, the heap always yields the earliest
 * deadline, only when it is due, and every record knows whether it is in.
 */
#include <string.h>

#include "check.h"
#include "deadline.h"

#define N 500

int main(void)
{
    hd_deadlines h = {0};
    static hd_deadline d[N];
    memset(d, 0, sizeof d);
    printf("seed %llu\n", check_rng_state);
    /* Nothing due in an empty heap; removing what is not in is a no-op. */
    CHECK(hd__deadline_due(&h, 1e18) == NULL);
    CHECK_OK(hd__deadline_set(&h, &d[0], 0));
    CHECK(d[0].slot == 0);
    for (int step = 0; step < 200000; step++) {
        hd_deadline *x = &d[check_rand() % N];
        unsigned op = (unsigned)(check_rand() % 4);
        double at = op == 0 ? 0 : 1 + (double)(check_rand() % 1000);
        CHECK_OK(hd__deadline_set(&h, x, at));
        CHECK((x->slot != 0) == (at > 0));
        /* The earliest of those in, by a full scan. */
        double min = 0;
        size_t in = 0;
        for (int i = 0; i < N; i++) {
            if (!d[i].slot) continue;
            in++;
            if (!min || d[i].at < min) min = d[i].at;
        }
        CHECK(in == h.n);
        double now = (double)(check_rand() % 1001);
        hd_deadline *due = hd__deadline_due(&h, now);
        CHECK(due ? (due->at == min && min <= now) : (!min || min > now));
        /* Now and then everything due is taken out, earliest first. */
        if (step % 1000 == 999) {
            double last = 0;
            while ((due = hd__deadline_due(&h, now))) {
                CHECK(due->at >= last && due->at <= now);
                last = due->at;
                CHECK_OK(hd__deadline_set(&h, due, 0));
            }
            for (int i = 0; i < N; i++)
                CHECK(!d[i].slot || d[i].at > now);
        }
        if (check_failures) break;
    }
    hd__deadlines_free(&h);
    for (int i = 0; i < N; i++)
        CHECK(d[i].slot == 0);
    CHECK_DONE();
}
