/*
 * Allocation failure injection for C unit tests (the SQLite habit: fail the
 * Nth allocation, for every N). It is active when the test is linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (tests/meson.build); the
 * weak references keep a test linking without those flags, and then
 * `alloc_calls` stays 0 so the test can say its out-of-memory case was
 * skipped. It reaches Herald's own allocations; a shared library such as
 * OpenSSL allocates on its own. Include it in one file per test program.
 */
#ifndef HD_FAILALLOC_H
#define HD_FAILALLOC_H

#include <stdbool.h>
#include <stddef.h>

extern void *__real_malloc(size_t n) __attribute__((weak));
extern void *__real_calloc(size_t n, size_t size) __attribute__((weak));
extern void *__real_realloc(void *p, size_t n) __attribute__((weak));
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long alloc_budget = -1;            /* allocations that may still succeed; -1: no limit */
static _Atomic unsigned long alloc_calls; /* tests may allocate from several threads */

static bool alloc_allowed(void)
{
    alloc_calls++;
    if (alloc_budget == 0) return false;
    if (alloc_budget > 0) alloc_budget--;
    return true;
}
void *__wrap_malloc(size_t n)
{
    return alloc_allowed() ? __real_malloc(n) : NULL;
}
void *__wrap_calloc(size_t n, size_t size)
{
    return alloc_allowed() ? __real_calloc(n, size) : NULL;
}
void *__wrap_realloc(void *p, size_t n)
{
    return alloc_allowed() ? __real_realloc(p, n) : NULL;
}

#endif
