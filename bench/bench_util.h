/*
 * What Herald's C benchmarks share: a monotonic clock, a reproducible
 * random stream, fatal-error helpers, scratch database folders, medians,
 * and the disk's fdatasync ceiling. Define BENCH_NAME before including it
 * (it prefixes every message). Benchmarks only: failures exit the process.
 */
#ifndef HD_BENCH_UTIL_H
#define HD_BENCH_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "herald/error.h"

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static inline uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline void die_herald(const char *what, int rc, const herald_error *err)
{
    fprintf(stderr, "%s: %s: %s: %s\n", BENCH_NAME, what, herald_errcode_name(rc),
            err && err->message[0] ? err->message : herald_strerror(rc));
    exit(1);
}

/* Zeroed memory, or the benchmark ends. */
static inline void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "%s: out of memory\n", BENCH_NAME);
        exit(1);
    }
    return p;
}

/* A fresh, empty folder `base/name` for one LMDB environment. */
static inline void fresh_dir(char *out, size_t n, const char *base, const char *name)
{
    int len = snprintf(out, n, "%s/%s", base, name);
    if (len < 0 || (size_t)len >= n) {
        fprintf(stderr, "%s: folder name too long: %s/%s\n", BENCH_NAME, base, name);
        exit(1);
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", out);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", out);
    unlink(path);
    if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: cannot create %s: %s\n", BENCH_NAME, out, strerror(errno));
        exit(1);
    }
}

static inline void remove_dir(const char *dir)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of n figures (the array is left as it was). */
static inline double median(const double *v, int n)
{
    double *s = xmalloc((size_t)n * sizeof *s);
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

/* Parses a comma-separated list of group sizes ("1,10,100") into groups[0..max). */
static inline bool parse_groups(const char *arg, size_t *groups, size_t max, size_t *n)
{
    *n = 0;
    for (const char *p = arg; *p && *n < max;) {
        char *end;
        unsigned long long g = strtoull(p, &end, 10);
        if (end == p || g == 0) return false;
        groups[(*n)++] = (size_t)g;
        p = *end == ',' ? end + 1 : end;
    }
    return *n > 0;
}

/* fdatasyncs per second of a 4 KiB overwrite: the disk's ceiling, as in LIMITS.md. */
static inline double fsync_rate(const char *base, double seconds)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fsync-probe", base);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return 0;
    char block[4096];
    memset(block, 'x', sizeof block);
    uint64_t n = 0;
    double t0 = now_s(), el = 0;
    while (el < seconds) {
        if (pwrite(fd, block, sizeof block, 0) != (ssize_t)sizeof block || fdatasync(fd) != 0)
            break;
        n++;
        el = now_s() - t0;
    }
    close(fd);
    unlink(path);
    return el > 0 ? (double)n / el : 0;
}

#endif
