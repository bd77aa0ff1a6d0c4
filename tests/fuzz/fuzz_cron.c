/*
 * Fuzz target for cron schedules (src/cron.c) on arbitrary bytes.
 *
 * Apps write cron expressions in functions/crons.lua, so any text must be
 * refused with a clean message or parsed into a schedule that means what
 * the text says, and the next firing must be exactly right. The input is
 * the expression up to its first NUL byte; eight bytes after that NUL, if
 * there are, are one more time (little-endian Unix milliseconds) to
 * search from besides the fixed ones below.
 *
 * What must hold:
 * - a refused expression gets HERALD_EINVAL and a whole message of
 *   printable ASCII that names it, and the output is left alone;
 * - an accepted one has, in every field, exactly the values a plain
 *   reading of its text gives (ref_contains, written apart from cron.c);
 * - hd__cron_next returns -1 or a minute strictly after the time given at
 *   which the schedule fires, judged with the C library's gmtime_r rather
 *   than cron.c's calendar, and no earlier minute after that time fires:
 *   the minutes and hours before it on its day, and the days between, are
 *   each ruled out.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* `at`: the time searched from, or the value looked at. */
static void fail(const char *what, const char *expr, int64_t at)
{
    fprintf(stderr, "fuzz_cron: %s (expression \"%s\", at %lld)\n", what, expr, (long long)at);
    abort();
}

/* What a refusal must leave in its output, padding included (set with memcpy). */
static const hd_cron untouched = {1, 2, 3, 4, 5, true, false};

/* ---- The plain reading of a field ---- */

static const int field_lo[5] = {0, 0, 1, 1, 0}, field_hi[5] = {59, 23, 31, 12, 7};
static const char *const ref_names[2][12] = {
    {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}};

/* A number or a name at `*p` of field `f` (the text parsed, so it is one); `*named` if a name. */
static int ref_value(const char **p, int f, bool *named)
{
    const char *s = *p;
    *named = !(*s >= '0' && *s <= '9');
    if (!*named) {
        int v = 0;
        while (*s >= '0' && *s <= '9')
            v = v * 10 + (*s++ - '0');
        *p = s;
        return v;
    }
    char word[3];
    for (int i = 0; i < 3; i++)
        word[i] = (char)(s[i] | 0x20);
    *p = s + 3;
    for (int i = 0; i < 12; i++)
        if (ref_names[f == 4][i] && !memcmp(word, ref_names[f == 4][i], 3)) return field_lo[f] + i;
    return -1;
}

/* Whether field `f`, `len` bytes at `s`, holds `v`; `*any` if one of its items is '*' alone. */
static bool ref_contains(const char *s, size_t len, int f, int v, bool *any)
{
    bool in = false;
    const char *end = s + len;
    *any = false;
    while (s < end) {
        const char *item_end = memchr(s, ',', (size_t)(end - s));
        if (!item_end) item_end = end;
        int a = field_lo[f], b = field_hi[f], step = 1;
        bool star = *s == '*', named;
        if (star) {
            s++;
        } else {
            a = b = ref_value(&s, f, &named);
            if (s < item_end && *s == '-') {
                s++;
                b = ref_value(&s, f, &named);
                if (f == 4 && named && a > 0 && b == 0) b = 7; /* SAT-SUN: SUN is 7 */
            }
        }
        if (s < item_end && *s == '/') {
            step = 0;
            for (s++; s < item_end; s++)
                step = step * 10 + (*s - '0');
        }
        if (star && step == 1) *any = true;
        for (int x = a; x <= b; x += step)
            if (x == v || (f == 4 && x == 7 && v == 0)) in = true;
        s = item_end + 1;
    }
    return in;
}

static uint64_t field_bits(const hd_cron *c, int f)
{
    switch (f) {
    case 0:
        return c->minutes;
    case 1:
        return c->hours;
    case 2:
        return c->days;
    case 3:
        return c->months;
    default:
        return c->weekdays;
    }
}

/* Every field of `c` against the plain reading of `expr`. */
static void check_fields(const char *expr, const hd_cron *c)
{
    static const uint64_t outside[5] = {~0ull << 60, ~0ull << 24, ~0ull << 32 | 1, ~0ull << 13 | 1,
                                        ~0ull << 7};
    const char *s = expr;
    for (int f = 0; f < 5; f++) {
        while (*s == ' ' || (*s >= '\t' && *s <= '\r'))
            s++;
        size_t len = 0;
        while (s[len] && s[len] != ' ' && !(s[len] >= '\t' && s[len] <= '\r'))
            len++;
        uint64_t bits = field_bits(c, f);
        if (bits & outside[f]) fail("a field has a value outside its range", expr, 0);
        if (!bits) fail("a field has no value", expr, 0);
        bool any = false;
        for (int v = field_lo[f]; v <= (f == 4 ? 6 : field_hi[f]); v++)
            if (ref_contains(s, len, f, v, &any) != (bool)(bits >> v & 1))
                fail("a field's values differ from its text", expr, v);
        if ((f == 2 && any != c->any_day_of_month) || (f == 4 && any != c->any_day_of_week))
            fail("'*' in a day field is read differently", expr, 0);
        s += len;
    }
}

/* ---- The next firing, judged with gmtime_r ---- */

/* The UTC calendar time of `ms`, or false where gmtime_r cannot say. */
static bool to_tm(int64_t ms, struct tm *tm)
{
    time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0));
    return gmtime_r(&t, tm) != NULL;
}

static bool day_fires(const hd_cron *c, const struct tm *tm)
{
    if (!(c->months >> (tm->tm_mon + 1) & 1)) return false;
    bool by_mday = c->days >> tm->tm_mday & 1, by_wday = c->weekdays >> tm->tm_wday & 1;
    if (c->any_day_of_month || c->any_day_of_week) return by_mday && by_wday;
    return by_mday || by_wday;
}

/* On a day that fires, whether some minute at or after hour:minute does. */
static bool fires_from(const hd_cron *c, int hour, int minute)
{
    if ((c->hours >> hour & 1) && (c->minutes >> minute) != 0) return true;
    return hour < 23 && (c->hours >> (hour + 1)) != 0;
}

/* Whether `mask` has a bit from `lo` up to, not including, `hi` (0 <= lo <= hi < 64). */
static bool between(uint64_t mask, int lo, int hi)
{
    return (mask & ((1ull << hi) - 1) & ~((1ull << lo) - 1)) != 0;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b < 0);
}

static void check_next(const char *expr, const hd_cron *c, int64_t after)
{
    int64_t got = hd__cron_next(c, after);
    if (got != -1 && (got <= after || got % 60000 != 0))
        fail("next is not a later minute", expr, after);
    if (got != -1 && !hd__cron_matches(c, got)) fail("next does not match", expr, after);
    /* gmtime_r's reach, with room for the eight years searched. */
    if (after < -4e16 || after > 4e16) return;

    int64_t start = (floor_div(after, 60000) + 1) * 60000;
    struct tm s, g, d;
    if (!to_tm(start, &s)) fail("gmtime_r failed", expr, after);
    if (got == -1) {
        /* No firing in the rest of the start's day, nor for 400 days after. */
        if (day_fires(c, &s) && fires_from(c, s.tm_hour, s.tm_min))
            fail("-1, but the day it starts on fires", expr, after);
        for (int64_t day = floor_div(start, 86400000) + 1, i = 0; i < 400; day++, i++)
            if (to_tm(day * 86400000 + 43200000, &d) && day_fires(c, &d))
                fail("-1, but a later day fires", expr, after);
        return;
    }
    if (!to_tm(got, &g)) fail("gmtime_r failed", expr, after);
    bool fires = day_fires(c, &g) && (c->hours >> g.tm_hour & 1) && (c->minutes >> g.tm_min & 1);
    if (!fires) fail("next is not a firing by gmtime_r", expr, after);
    if (hd__cron_next(c, got - 1) != got) fail("next of a millisecond before differs", expr, after);

    int64_t start_day = floor_div(start, 86400000), got_day = floor_div(got, 86400000);
    if (got_day == start_day) {
        /* The same day: no minute between the start and it fires. */
        bool earlier;
        if (g.tm_hour == s.tm_hour)
            earlier = between(c->minutes, s.tm_min, g.tm_min);
        else
            earlier = ((c->hours >> s.tm_hour & 1) && (c->minutes >> s.tm_min) != 0) ||
                      between(c->hours, s.tm_hour + 1, g.tm_hour) ||
                      between(c->minutes, 0, g.tm_min);
        if (earlier) fail("an earlier minute of the same day fires", expr, after);
        return;
    }
    if (day_fires(c, &s) && fires_from(c, s.tm_hour, s.tm_min))
        fail("next skips the rest of a day that fires", expr, after);
    for (int64_t day = start_day + 1; day < got_day; day++)
        if (to_tm(day * 86400000 + 43200000, &d) && day_fires(c, &d))
            fail("next skips a day that fires", expr, after);
    /* The first firing of its day. */
    if (between(c->hours, 0, g.tm_hour) || between(c->minutes, 0, g.tm_min))
        fail("next is not the first firing of its day", expr, after);
}

/* A refusal must come whole, printable and named. */
static void check_refusal(const char *expr, int rc, const herald_error *err, const hd_cron *c,
                          const char *prefix)
{
    if (rc != HERALD_EINVAL || err->code != HERALD_EINVAL) fail("refused without EINVAL", expr, 0);
    size_t len = strlen(err->message);
    if (len == 0 || len >= sizeof err->message - 1) fail("message empty or cut", expr, 0);
    for (size_t i = 0; i < len; i++)
        if (err->message[i] < 0x20 || err->message[i] > 0x7e)
            fail("message is not printable ASCII", expr, 0);
    if (strncmp(err->message, prefix, strlen(prefix)) != 0) fail("message misnamed", expr, 0);
    if (memcmp(c, &untouched, sizeof *c) != 0) fail("a refusal changed the output", expr, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - data) : size;
    char *expr = malloc(len + 1);
    if (!expr) return 0;
    memcpy(expr, data, len);
    expr[len] = '\0';

    int64_t times[] = {
        0,
        -1,
        1773568800000,  /* 2026-03-15 10:00 */
        1835481599999,  /* 2028-02-29 23:59:59.999 */
        3981225600000,  /* 2096-02-28 */
        -2208988800001, /* 1899-12-31 23:59:59.999 */
        0,              /* from the input, if it gives one */
    };
    size_t ntimes = sizeof times / sizeof *times - 1;
    if (nul && size - len - 1 >= 8) {
        uint64_t t = 0;
        for (int i = 7; i >= 0; i--)
            t = t << 8 | nul[1 + i];
        times[ntimes++] = (int64_t)t;
    }

    hd_cron c;
    memcpy(&c, &untouched, sizeof c);
    herald_error err = {0};
    int rc = hd__cron_parse(expr, &c, &err);
    if (rc) {
        check_refusal(expr, rc, &err, &c, "cron \"");
    } else {
        check_fields(expr, &c);
        for (size_t i = 0; i < ntimes; i++) {
            check_next(expr, &c, times[i]);
            /* And on from there, a few firings. */
            int64_t t = times[i];
            for (int k = 0; k < 3 && (t = hd__cron_next(&c, t)) != -1; k++)
                check_next(expr, &c, t);
        }
    }

    /* The text as a weekday for the weekly shape: a day name, or a clean refusal. */
    hd_cron w;
    memcpy(&w, &untouched, sizeof w);
    herald_error werr = {0};
    rc = hd__cron_weekly(expr, 12, 30, &w, &werr);
    if (rc)
        check_refusal(expr, rc, &werr, &w, "weekly cron: ");
    else if (w.weekdays == 0 || (w.weekdays & (w.weekdays - 1)) != 0)
        fail("weekly gave other than one weekday", expr, 0);
    free(expr);
    return 0;
}
