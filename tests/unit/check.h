/* A minimal assertion helper for Herald's C unit tests. */
#ifndef HD_CHECK_H
#define HD_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald/value.h"

static int check_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            if (++check_failures > 20) exit(1);                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "%s:%d: %s returned %d\n", __FILE__, __LINE__, #expr, rc_);            \
            if (++check_failures > 20) exit(1);                                                    \
        }                                                                                          \
    } while (0)

#define CHECK_DONE()                                                                               \
    do {                                                                                           \
        if (check_failures) fprintf(stderr, "%d checks failed\n", check_failures);                 \
        return check_failures ? 1 : 0;                                                             \
    } while (0)

/* xorshift64*: a reproducible generator; the seed is printed by each test. */
static unsigned long long check_rng_state = 88172645463325252ULL;
static inline unsigned long long check_rand(void)
{
    unsigned long long x = check_rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    check_rng_state = x;
    return x * 2685821657736338717ULL;
}
static inline unsigned check_below(unsigned n)
{
    return n ? (unsigned)(check_rand() % n) : 0;
}

/* A value from JSON text the test wrote; a typo in it ends the test. */
static inline herald_value json(const char *text)
{
    herald_value v;
    herald_error err = {0};
    if (herald_value_from_json(text, strlen(text), &v, &err)) {
        fprintf(stderr, "bad test JSON %s: %s\n", text, err.message);
        exit(1);
    }
    return v;
}

#endif
