/*
 * Cron schedules (cron.h): parsing cron expressions and the shapes of
 * Convex's crons into bit sets, and finding the next minute a schedule
 * fires.
 *
 * This file must never read the clock, consult a time zone (no timegm,
 * gmtime or localtime: the server's TZ must not move an app's crons) or
 * allocate: it is pure arithmetic on UTC, so that the runner can call it
 * anywhere and the tests can pin every answer.
 */
#include "cron.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_MINUTE   60000
#define MINUTES_PER_DAY 1440

/*
 * The longest wait between two firings of any schedule that fires at all,
 * in calendar years: 29 February 2096 to 29 February 2104. Other days and
 * weekdays recur within a year (a restricted day-of-week matches some day
 * of every month).
 */
#define SEARCH_YEARS 8

/* ---- The calendar ---- */

/*
 * Days since 1970-01-01 of a proleptic Gregorian date, and back: Howard
 * Hinnant's days_from_civil and civil_from_days, which count in 400-year
 * eras from 1 March so that the leap day falls at the end of a year.
 */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool leap_year(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static int days_in_month(int64_t y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap_year(y) ? 29 : days[m - 1];
}

/* Rounds towards minus infinity, as time before 1970 needs. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return a % b < 0 ? q - 1 : q;
}

/* The weekday of a day counted from 1970-01-01 (a Thursday), 0 = Sunday. */
static int weekday(int64_t days)
{
    return (int)(days - 7 * floor_div(days + 4, 7) + 4);
}

/* ---- Matching ---- */

/* The lowest set bit of `mask` at `from` or above, or -1. */
static int next_bit(uint64_t mask, int from)
{
    if (from > 63) return -1;
    mask &= ~0ull << from;
    return mask ? __builtin_ctzll(mask) : -1;
}

static bool day_matches(const hd_cron *c, int mday, int wday)
{
    bool by_mday = c->days >> mday & 1, by_wday = c->weekdays >> wday & 1;
    if (c->any_day_of_month || c->any_day_of_week) return by_mday && by_wday;
    return by_mday || by_wday;
}

bool hd__cron_matches(const hd_cron *c, int64_t at_ms)
{
    int64_t minute = floor_div(at_ms, MS_PER_MINUTE);
    int64_t days = floor_div(minute, MINUTES_PER_DAY);
    int of_day = (int)(minute - days * MINUTES_PER_DAY);
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    return (c->minutes >> (of_day % 60) & 1) && (c->hours >> (of_day / 60) & 1) &&
           (c->months >> m & 1) && day_matches(c, d, weekday(days));
}

int64_t hd__cron_next(const hd_cron *c, int64_t after_ms)
{
    /* The first whole minute after `after_ms`; a firing at `after_ms` itself is passed. */
    int64_t start = floor_div(after_ms, MS_PER_MINUTE) + 1;
    int64_t days = floor_div(start, MINUTES_PER_DAY);
    int of_day = (int)(start - days * MINUTES_PER_DAY);
    int hour = of_day / 60, minute = of_day % 60;
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    const int64_t last_year = y + SEARCH_YEARS;

    /*
     * Each step either accepts the candidate or moves it to the start of
     * the next month, day or hour (or the next minute bit) that could
     * match; the fields below a moved one start again from their lowest.
     */
    while (y <= last_year) {
        int next_month = next_bit(c->months, m);
        if (next_month != m) {
            if (next_month < 0) {
                y++;
                next_month = next_bit(c->months, 1);
                if (next_month < 0) return -1;
            }
            m = next_month, d = 1, hour = 0, minute = 0;
            continue;
        }
        if (d > days_in_month(y, m)) {
            if (++m > 12) m = 1, y++;
            d = 1, hour = 0, minute = 0;
            continue;
        }
        days = days_from_civil(y, m, d);
        if (!day_matches(c, d, weekday(days))) {
            d++, hour = 0, minute = 0;
            continue;
        }
        int next_hour = next_bit(c->hours, hour);
        if (next_hour < 0) {
            d++, hour = 0, minute = 0;
            continue;
        }
        if (next_hour != hour) hour = next_hour, minute = 0;
        int next_minute = next_bit(c->minutes, minute);
        if (next_minute < 0) {
            if (++hour > 23) d++, hour = 0;
            minute = 0;
            continue;
        }
        int64_t at = days * MINUTES_PER_DAY + hour * 60 + next_minute;
        if (at > INT64_MAX / MS_PER_MINUTE) return -1;
        return at * MS_PER_MINUTE;
    }
    return -1;
}

/* ---- Parsing ---- */

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

/* What a field holds; day-of-week runs to 7 (Sunday again) and is folded onto 0. */
typedef struct field_spec {
    const char *name;
    int lo, hi;
    const char *const *names; /* the names of lo, lo + 1, ..., or NULL */
    int nnames;
    const char *names_hint; /* how the message describes them */
} field_spec;

enum { F_MINUTE, F_HOUR, F_MDAY, F_MONTH, F_WDAY, NFIELDS };

static const field_spec fields[NFIELDS] = {
    {"minute", 0, 59, NULL, 0, NULL},
    {"hour", 0, 23, NULL, 0, NULL},
    {"day-of-month", 1, 31, NULL, 0, NULL},
    {"month", 1, 12, month_names, 12, "a month name (JAN-DEC)"},
    {"day-of-week", 0, 7, day_names, 7, "a day name (SUN-SAT)"},
};

/* Numbers are read up to this; any larger one is reported as written. */
#define NUMBER_CAP 1000000

/* Writes `s` (`len` bytes) in double quotes, escaped and cut to fit `cap` - 1 bytes. */
static void quote(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc[5];
        size_t k = 0;
        if (ch == '"' || ch == '\\') {
            esc[k++] = '\\', esc[k++] = (char)ch;
        } else if (ch < 0x20 || ch > 0x7e) {
            esc[k++] = '\\', esc[k++] = 'x', esc[k++] = hex[ch >> 4], esc[k++] = hex[ch & 15];
        } else {
            esc[k++] = (char)ch;
        }
        /* Room for this, and for "..." and the closing quote and NUL if more follows. */
        if (n + k + (i + 1 < len ? 5 : 2) > cap) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(out + n, esc, k);
        n += k;
    }
    out[n++] = '"';
    out[n] = '\0';
}

/* Where a parse is, for its messages. */
typedef struct parser {
    char expr[96]; /* the expression, quoted */
    herald_error *err;
    const field_spec *spec;
    const char *field; /* the field being read, and its length */
    size_t field_len;
} parser;

/* Fails with `cron "<expr>": <field> "<field text>": <what>`. */
static int field_fail(parser *p, const char *what)
{
    char text[96];
    quote(text, sizeof text, p->field, p->field_len);
    return herald_fail(p->err, HERALD_EINVAL, "cron %s: %s %s: %s", p->expr, p->spec->name, text,
                       what);
}

static int unexpected(parser *p, const char *at)
{
    unsigned char ch = (unsigned char)*at;
    char what[48];
    if (ch > 0x20 && ch < 0x7f)
        snprintf(what, sizeof what, "unexpected '%c'", ch);
    else
        snprintf(what, sizeof what, "unexpected byte 0x%02X", ch);
    return field_fail(p, what);
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool is_letter(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/* Whether `len` bytes at `s` spell `name` in any case (ASCII only: no locale). */
static bool same_letters(const char *s, size_t len, const char *name)
{
    if (strlen(name) != len) return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i] >= 'a' && s[i] <= 'z' ? (char)(s[i] - 'a' + 'A') : s[i];
        char want = name[i] >= 'a' && name[i] <= 'z' ? (char)(name[i] - 'a' + 'A') : name[i];
        if (ch != want) return false;
    }
    return true;
}

/*
 * Reads the number whose digits start at `*at`, checked to lie in lo-hi;
 * `what` names it in the message ("minute", "minute step"), which shows
 * the number as written (cut after 24 digits), however large.
 */
static int read_number(parser *p, const char **at, const char *end, const char *what, int lo,
                       int hi, int *value)
{
    const char *digits = *at, *s = digits;
    long v = 0;
    for (; s < end && is_digit(*s); s++)
        if (v < NUMBER_CAP) v = v * 10 + (*s - '0');
    if (v < lo || v > hi) {
        int n = (int)(s - digits);
        return herald_fail(p->err, HERALD_EINVAL, "cron %s: %s %.*s%s is out of %d-%d", p->expr,
                           what, n > 24 ? 24 : n, digits, n > 24 ? "..." : "", lo, hi);
    }
    *value = (int)v;
    *at = s;
    return 0;
}

/*
 * Reads a number or a name at `*at` into `*value`, checked against the
 * field's range. `range_from` is the start of the range it ends, or NULL:
 * SUN ending a range that starts later in the week means 7 (SAT-SUN).
 * `after` says what came before it, for the message when it is missing.
 */
static int read_value(parser *p, const char **at, const char *end, const int *range_from,
                      int *value, const char *after)
{
    const field_spec *spec = p->spec;
    const char *s = *at;
    char what[128];
    if (s < end && is_digit(*s))
        return read_number(p, at, end, spec->name, spec->lo, spec->hi, value);
    if (s < end && is_letter(*s)) {
        while (s < end && is_letter(*s))
            s++;
        size_t len = (size_t)(s - *at);
        for (int i = 0; spec->names && i < spec->nnames; i++) {
            if (same_letters(*at, len, spec->names[i])) {
                *value = spec->lo + i;
                if (range_from && *range_from > 0 && spec->hi == 7 && *value == 0) *value = 7;
                *at = s;
                return 0;
            }
        }
        char word[40];
        quote(word, sizeof word, *at, len);
        snprintf(what, sizeof what, "%s is not %s", word,
                 spec->names ? spec->names_hint : "a number");
        return field_fail(p, what);
    }
    if (s == end || *s == ',') {
        if (!after) return field_fail(p, "a list item is empty");
        snprintf(what, sizeof what, "a number is missing after '%s'", after);
        return field_fail(p, what);
    }
    return unexpected(p, s);
}

/* Reads one field, `len` bytes at `text`, into the bits of `*bits` and `*any`. */
static int read_field(parser *p, const char *text, size_t len, uint64_t *bits, bool *any)
{
    const field_spec *spec = p->spec;
    const char *at = text, *end = text + len;
    /* The last value of the field: day-of-week's 7 only repeats Sunday. */
    const int top = spec->hi == 7 ? 6 : spec->hi;
    p->field = text;
    p->field_len = len;
    *bits = 0;
    *any = false;
    for (;;) {
        int lo, hi, step = 1;
        bool star = false, single = false;
        if (at < end && *at == '*') {
            star = true;
            at++;
            lo = spec->lo;
            hi = top;
        } else {
            int rc = read_value(p, &at, end, NULL, &lo, NULL);
            if (rc) return rc;
            hi = lo;
            single = true;
            if (at < end && *at == '-') {
                at++;
                rc = read_value(p, &at, end, &lo, &hi, "-");
                if (rc) return rc;
                single = false;
                if (hi < lo) {
                    /* Hours 22-2 are surely 22-23,0-2; a Sunday given as 7 has no such reading. */
                    char what[128];
                    int n = snprintf(what, sizeof what, "the range %d-%d runs backwards", lo, hi);
                    if (lo <= top)
                        snprintf(what + n, sizeof what - (size_t)n,
                                 " (ranges do not wrap around: write %d-%d,%d-%d)", lo, top,
                                 spec->lo, hi);
                    return field_fail(p, what);
                }
            }
        }
        if (at < end && *at == '/') {
            if (single) {
                char what[128];
                snprintf(what, sizeof what,
                         "a step needs '*' or a range before it (write %d-%d/...)", lo, top);
                return field_fail(p, what);
            }
            at++;
            if (at == end || !is_digit(*at)) {
                if (at < end && *at != ',') return unexpected(p, at);
                return field_fail(p, "a step number is missing after '/'");
            }
            char what[32];
            snprintf(what, sizeof what, "%s step", spec->name);
            int rc = read_number(p, &at, end, what, 1, spec->hi, &step);
            if (rc) return rc;
        }
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << v;
        if (star && step == 1) *any = true;
        if (at == end) break;
        if (*at != ',') return unexpected(p, at);
        at++;
        if (at == end) return field_fail(p, "a list item is empty");
    }
    /* Sunday is 0 and 7. */
    if (spec->hi == 7 && (*bits >> 7 & 1)) *bits = (*bits & 0x7f) | 1;
    return 0;
}

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

int hd__cron_parse(const char *expr, hd_cron *out, herald_error *err)
{
    if (!expr) return herald_fail(err, HERALD_EINVAL, "cron expression is missing");
    parser p = {.err = err};
    size_t len = strnlen(expr, HD_CRON_MAX_LEN + 1);
    quote(p.expr, sizeof p.expr, expr, len);
    if (len > HD_CRON_MAX_LEN)
        return herald_fail(err, HERALD_EINVAL, "cron %s: longer than %d bytes", p.expr,
                           HD_CRON_MAX_LEN);

    const char *start[NFIELDS + 1];
    size_t field_len[NFIELDS + 1];
    int n = 0;
    for (const char *s = expr; *s;) {
        while (is_space(*s))
            s++;
        if (!*s) break;
        const char *f = s;
        while (*s && !is_space(*s))
            s++;
        if (n <= NFIELDS) start[n] = f, field_len[n] = (size_t)(s - f);
        n++;
    }
    if (n == 0)
        return herald_fail(err, HERALD_EINVAL,
                           "cron %s: empty; a cron expression has 5 fields: minute hour "
                           "day-of-month month day-of-week",
                           p.expr);
    if (n == 1 && start[0][0] == '@')
        return herald_fail(err, HERALD_EINVAL,
                           "cron %s: shorthands such as @daily are not supported; write the 5 "
                           "fields (minute hour day-of-month month day-of-week)",
                           p.expr);
    if (n != NFIELDS)
        return herald_fail(err, HERALD_EINVAL,
                           "cron %s: %d field%s, but a cron expression has 5: minute hour "
                           "day-of-month month day-of-week%s",
                           p.expr, n, n == 1 ? "" : "s",
                           n > NFIELDS ? " (no seconds or year)" : "");

    hd_cron c;
    memset(&c, 0, sizeof c);
    uint64_t bits[NFIELDS];
    bool any[NFIELDS];
    for (int i = 0; i < NFIELDS; i++) {
        p.spec = &fields[i];
        int rc = read_field(&p, start[i], field_len[i], &bits[i], &any[i]);
        if (rc) return rc;
    }
    c.minutes = bits[F_MINUTE];
    c.hours = (uint32_t)bits[F_HOUR];
    c.days = (uint32_t)bits[F_MDAY];
    c.months = (uint16_t)bits[F_MONTH];
    c.weekdays = (uint8_t)bits[F_WDAY];
    c.any_day_of_month = any[F_MDAY];
    c.any_day_of_week = any[F_WDAY];
    *out = c;
    return 0;
}

/* ---- Convex's shapes ---- */

static int check_arg(const char *shape, const char *name, int value, int lo, int hi,
                     herald_error *err)
{
    if (value >= lo && value <= hi) return 0;
    return herald_fail(err, HERALD_EINVAL, "%s cron: %s %d is out of %d-%d", shape, name, value, lo,
                       hi);
}

/* A schedule at `minute` of `hour` (or of every hour) every day; the caller narrows the days. */
static int at_time(const char *shape, bool every_hour, int hour, int minute, hd_cron *out,
                   herald_error *err)
{
    int rc = every_hour ? 0 : check_arg(shape, "hourUTC", hour, 0, 23, err);
    if (!rc) rc = check_arg(shape, "minuteUTC", minute, 0, 59, err);
    if (rc) return rc;
    hd_cron c;
    memset(&c, 0, sizeof c);
    c.minutes = 1ull << minute;
    c.hours = every_hour ? 0xffffffu : 1u << hour;
    c.days = 0xfffffffeu;
    c.months = 0x1ffe;
    c.weekdays = 0x7f;
    c.any_day_of_month = c.any_day_of_week = true;
    *out = c;
    return 0;
}

int hd__cron_hourly(int minute, hd_cron *out, herald_error *err)
{
    return at_time("hourly", true, 0, minute, out, err);
}

int hd__cron_daily(int hour, int minute, hd_cron *out, herald_error *err)
{
    return at_time("daily", false, hour, minute, out, err);
}

int hd__cron_weekly(const char *day_name, int hour, int minute, hd_cron *out, herald_error *err)
{
    static const char *const names[] = {"sunday",   "monday", "tuesday", "wednesday",
                                        "thursday", "friday", "saturday"};
    int day = -1;
    for (int i = 0; day_name && i < 7; i++)
        if (same_letters(day_name, strnlen(day_name, 16), names[i])) day = i;
    if (day < 0) {
        char text[64];
        if (day_name)
            quote(text, sizeof text, day_name, strnlen(day_name, 64));
        else
            snprintf(text, sizeof text, "(missing)");
        return herald_fail(err, HERALD_EINVAL,
                           "weekly cron: dayOfWeek %s is not one of sunday, monday, tuesday, "
                           "wednesday, thursday, friday, saturday",
                           text);
    }
    hd_cron c;
    int rc = at_time("weekly", false, hour, minute, &c, err);
    if (rc) return rc;
    c.weekdays = (uint8_t)(1u << day);
    c.any_day_of_week = false;
    *out = c;
    return 0;
}

int hd__cron_monthly(int day, int hour, int minute, hd_cron *out, herald_error *err)
{
    hd_cron c;
    int rc = check_arg("monthly", "day", day, 1, 31, err);
    if (!rc) rc = at_time("monthly", false, hour, minute, &c, err);
    if (rc) return rc;
    c.days = 1u << day;
    c.any_day_of_month = false;
    *out = c;
    return 0;
}
