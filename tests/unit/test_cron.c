/*
 * Unit tests for cron schedules (src/cron.c): every syntax form, the
 * dom/dow rule, month ends, leap years, the edges of time, the shapes of
 * Convex's crons, and the messages of malformed expressions.
 *
 * Expected times were worked out by hand from the calendar (2026-03-01 is
 * a Sunday, 2026-03-13 a Friday, 2028-02-29 a Tuesday) and are written as
 * UTC dates; timegm turns them into Unix time here, independently of
 * cron.c's own calendar. A random part then checks hd__cron_next against
 * a minute-by-minute walk; HERALD_CRON_SEED sets its seed.
 */
#include <inttypes.h>
#include <stdint.h>
#include <time.h>

#include "check.h"
#include "cron.h"

/* Unix milliseconds of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {
        .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm) * 1000;
}

static const char *show(int64_t ms, char *buf, size_t cap)
{
    if (ms == -1) return "never (-1)";
    time_t t = (time_t)(ms / 1000 - (ms % 1000 < 0));
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%d %H:%M:%S %a", &tm);
    return buf;
}

static hd_cron parse_ok(const char *expr, int line)
{
    hd_cron c;
    memset(&c, 0, sizeof c);
    herald_error err = {0};
    if (hd__cron_parse(expr, &c, &err)) {
        fprintf(stderr, "test_cron.c:%d: \"%s\" refused: %s\n", line, expr, err.message);
        check_failures++;
    }
    return c;
}

/* The next firing of `expr` after `after` must be `want`; `where` says which check this is. */
static void next_is(const char *expr, int64_t after, int64_t want, const char *where)
{
    hd_cron c = parse_ok(expr, 0);
    int64_t got = hd__cron_next(&c, after);
    if (got != want) {
        char a[64], g[64], w[64];
        fprintf(stderr, "test_cron.c: %s: \"%s\" after %s: got %s, want %s\n", where, expr,
                show(after, a, sizeof a), show(got, g, sizeof g), show(want, w, sizeof w));
        if (++check_failures > 20) exit(1);
    }
}

/*
 * A schedule and the times it fires: `times` is the time searched from,
 * then each firing in turn, separated by ", ". A time is "YYYY-MM-DD
 * HH:MM" with optional ":SS.mmm", or just "HH:MM" on the day of the time
 * before it, or "never".
 */
typedef struct firings {
    const char *expr, *times;
} firings;

/* Reads one time of a firings list at `*s`, on from the date in `day` (updated). */
static int64_t read_time(const char **s, int day[3])
{
    int h, mi, sec = 0, ms = 0, n = 0;
    if (!strncmp(*s, "never", 5)) {
        *s += 5;
        return -1;
    }
    int y, mo, d;
    if (sscanf(*s, "%d-%d-%d %n", &y, &mo, &d, &n) == 3) {
        day[0] = y, day[1] = mo, day[2] = d;
        *s += n;
    }
    if (sscanf(*s, "%d:%d%n", &h, &mi, &n) != 2) {
        fprintf(stderr, "test_cron.c: bad time in a firings list: %s\n", *s);
        exit(1);
    }
    *s += n;
    if (sscanf(*s, ":%d.%d%n", &sec, &ms, &n) == 2) *s += n;
    if (!strncmp(*s, ", ", 2)) *s += 2;
    return utc(day[0], day[1], day[2], h, mi) + sec * 1000 + ms;
}

static void check_firings(const firings *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *s = cases[i].times;
        int day[3] = {0, 0, 0};
        int64_t after = read_time(&s, day);
        while (*s) {
            int64_t want = read_time(&s, day);
            next_is(cases[i].expr, after, want, cases[i].times);
            after = want;
        }
    }
}
#define CHECK_FIRINGS(cases) check_firings(cases, sizeof cases / sizeof *cases)

/* `expr` must be refused with exactly `message`. */
static void refused(const char *expr, const char *message, int line)
{
    hd_cron c, before;
    memset(&c, 0xab, sizeof c);
    before = c;
    herald_error err = {0};
    int rc = hd__cron_parse(expr, &c, &err);
    if (rc != HERALD_EINVAL || err.code != HERALD_EINVAL || strcmp(err.message, message) != 0 ||
        memcmp(&c, &before, sizeof c) != 0) {
        fprintf(stderr, "test_cron.c:%d: \"%s\": rc %d, message\n  %s\nwant\n  %s\n", line,
                expr ? expr : "(null)", rc, err.message, message);
        if (++check_failures > 20) exit(1);
    }
}
#define REFUSED(expr, message) refused(expr, message, __LINE__)

static bool same(const hd_cron *a, const hd_cron *b)
{
    return a->minutes == b->minutes && a->hours == b->hours && a->days == b->days &&
           a->months == b->months && a->weekdays == b->weekdays &&
           a->any_day_of_month == b->any_day_of_month && a->any_day_of_week == b->any_day_of_week;
}

static void test_forms(void)
{
    static const firings cases[] = {
        {"* * * * *", "2026-03-15 10:20:30.500, 10:21, 10:22"},
        /* Strictly after: an exact firing moves to the next one, a millisecond before does not. */
        {"30 10 * * *", "2026-03-15 10:30, 2026-03-16 10:30"},
        {"30 10 * * *", "2026-03-15 10:29:59.999, 10:30"},
        {"30 10 * * *", "2026-03-15 10:30:59.999, 2026-03-16 10:30"},
        /* Lists, ranges and steps. */
        {"0,15,45 * * * *", "2026-03-15 10:16, 10:45, 11:00"},
        {"10-12 * * * *", "2026-03-15 10:10, 10:11, 10:12, 11:10"},
        {"*/15 * * * *", "2026-03-15 10:16, 10:30, 10:45, 11:00"},
        {"10-50/20 * * * *", "2026-03-15 10:10, 10:30, 10:50, 11:10"},
        {"0 */6 * * *", "2026-03-15 13:00, 18:00, 2026-03-16 00:00"},
        {"0 9-17/4 * * *", "2026-03-15 09:00, 13:00, 17:00, 2026-03-16 09:00"},
        {"5,10-12,*/30 * * * *", "2026-03-15 10:12, 10:30, 11:00, 11:05"},
        {"1-59/1 * * * *", "2026-03-15 10:59, 11:01"},
        {"0 23 * * *", "2026-03-15 23:30, 2026-03-16 23:00"},
        /* Spaces and tabs around and between fields; leading zeros. */
        {"  05\t\t07 * *   *  ", "2026-03-15 10:20, 2026-03-16 07:05"},
    };
    CHECK_FIRINGS(cases);

    /* The bits themselves. */
    hd_cron c = parse_ok("5,10-12,*/30 0-23/12 1,31 2-3 1-5", __LINE__);
    CHECK(c.minutes == (1ull << 0 | 1ull << 5 | 1ull << 10 | 1ull << 11 | 1ull << 12 | 1ull << 30));
    CHECK(c.hours == (1u << 0 | 1u << 12));
    CHECK(c.days == (1u << 1 | 1u << 31));
    CHECK(c.months == (1u << 2 | 1u << 3));
    CHECK(c.weekdays == 0x3e);
    CHECK(!c.any_day_of_month && !c.any_day_of_week);
    c = parse_ok("* * * * *", __LINE__);
    CHECK(c.minutes == (1ull << 60) - 1 && c.hours == 0xffffff && c.days == 0xfffffffe &&
          c.months == 0x1ffe && c.weekdays == 0x7f && c.any_day_of_month && c.any_day_of_week);
}

static void test_names(void)
{
    static const firings cases[] = {
        {"0 0 1 JAN,jul *", "2026-03-15 00:00, 2026-07-01 00:00, 2027-01-01 00:00"},
        {"0 0 1 mar-May *", "2026-03-01 00:00, 2026-04-01 00:00, 2026-05-01 00:00, "
                            "2027-03-01 00:00"},
        /* Friday 20 March 2026: the weekdays resume on Monday. */
        {"0 9 * * MON-FRI", "2026-03-20 08:00, 09:00, 2026-03-23 09:00, 2026-03-24 09:00"},
        {"0 9 * * sat,Sun", "2026-03-20 10:00, 2026-03-21 09:00, 2026-03-22 09:00, "
                            "2026-03-28 09:00"},
    };
    CHECK_FIRINGS(cases);
    hd_cron a = parse_ok("0 0 1 jAn-DeC/3 *", __LINE__), b = parse_ok("0 0 1 1,4,7,10 *", __LINE__);
    CHECK(same(&a, &b));
    a = parse_ok("0 0 1 Feb,9-oct *", __LINE__);
    CHECK(a.months == (1u << 2 | 1u << 9 | 1u << 10));
    a = parse_ok("0 0 * * mon-fri/2", __LINE__);
    CHECK(a.weekdays == (1u << 1 | 1u << 3 | 1u << 5));
}

static void test_sunday(void)
{
    /* Monday 16 March 2026: the next Sunday is the 22nd, however it is written. */
    static const firings sundays[] = {
        {"0 0 * * 0", "2026-03-16 00:00, 2026-03-22 00:00"},
        {"0 0 * * 7", "2026-03-16 00:00, 2026-03-22 00:00"},
        {"0 0 * * SUN", "2026-03-16 00:00, 2026-03-22 00:00"},
        {"0 0 * * sun", "2026-03-16 00:00, 2026-03-22 00:00"},
        {"0 0 * * 0,7", "2026-03-16 00:00, 2026-03-22 00:00"},
        {"0 0 * * SUN-SUN", "2026-03-16 00:00, 2026-03-22 00:00"},
    };
    CHECK_FIRINGS(sundays);
    hd_cron first = parse_ok(sundays[0].expr, __LINE__);
    CHECK(first.weekdays == 1 && !first.any_day_of_week);
    for (size_t i = 0; i < sizeof sundays / sizeof *sundays; i++) {
        hd_cron c = parse_ok(sundays[i].expr, __LINE__);
        CHECK(same(&c, &first));
    }
    static const firings cases[] = {
        /* 7 ends ranges. */
        {"0 0 * * 5-7", "2026-03-19 00:00, 2026-03-20 00:00, 2026-03-21 00:00, "
                        "2026-03-22 00:00, 2026-03-27 00:00"},
        /* Every other day of the week from Sunday: Sunday, Tuesday, Thursday, Saturday. */
        {"0 0 * * */2", "2026-03-15 00:00, 2026-03-17 00:00, 2026-03-19 00:00, "
                        "2026-03-21 00:00, 2026-03-22 00:00"},
    };
    CHECK_FIRINGS(cases);
    /* SUN ending a range that starts later is 7, so SAT-SUN is the weekend. */
    hd_cron c = parse_ok("0 0 * * SAT-SUN", __LINE__);
    CHECK(c.weekdays == (1u << 0 | 1u << 6));
    c = parse_ok("0 0 * * fri-sun", __LINE__);
    CHECK(c.weekdays == (1u << 0 | 1u << 5 | 1u << 6));
    c = parse_ok("0 0 * * 0-7", __LINE__);
    CHECK(c.weekdays == 0x7f && !c.any_day_of_week);
    c = parse_ok("0 0 * * sun-sat", __LINE__);
    CHECK(c.weekdays == 0x7f);
    c = parse_ok("0 0 * * sun-mon,mon-sun", __LINE__);
    CHECK(c.weekdays == 0x7f);
    c = parse_ok("0 0 * * */2", __LINE__);
    CHECK(c.weekdays == (1u << 0 | 1u << 2 | 1u << 4 | 1u << 6));
    c = parse_ok("0 0 * * 0-7/7", __LINE__);
    CHECK(c.weekdays == 1);
}

static void test_day_rule(void)
{
    /* April 2026: Mondays 6, 13, 20; Fridays 10, 17. March 2026: Mondays 2, 9, 16. */
    static const firings cases[] = {
        /* Both restricted: the 13th or any Friday. */
        {"0 0 13 * 5", "2026-04-06 00:00, 2026-04-10 00:00, 2026-04-13 00:00, 2026-04-17 00:00"},
        {"0 0 13 * fri", "2026-04-13 00:00, 2026-04-17 00:00"},
        /* One of them '*': the other alone. */
        {"0 0 13 * *", "2026-04-10 00:00, 2026-04-13 00:00, 2026-05-13 00:00"},
        {"0 0 * * 5", "2026-04-10 00:00, 2026-04-17 00:00"},
        /* A step restricts a field: days 1, 11, 21, 31 or Mondays. */
        {"0 0 */10 * 1", "2026-03-01 00:00, 2026-03-02 00:00, 2026-03-09 00:00, "
                         "2026-03-11 00:00, 2026-03-16 00:00"},
        /* A range over every day is still a restriction; '*' followed by /1 is not. */
        {"0 0 1-31 * 1", "2026-03-02 00:00, 2026-03-03 00:00"},
        {"0 0 */1 * 1", "2026-03-02 00:00, 2026-03-09 00:00"},
        {"0 0 *,5 * 1", "2026-03-02 00:00, 2026-03-09 00:00"},
        /* 30 February never comes, but the Mondays of February do. */
        {"0 0 30 2 1", "2026-03-01 00:00, 2027-02-01 00:00, 2027-02-08 00:00"},
        /* 29 February or the Tuesdays of February. */
        {"0 0 29 2 2", "2026-03-01 00:00, 2027-02-02 00:00"},
    };
    CHECK_FIRINGS(cases);

    hd_cron c = parse_ok("0 9 * * MON-FRI", __LINE__);
    CHECK(hd__cron_matches(&c, utc(2026, 3, 20, 9, 0)));
    CHECK(hd__cron_matches(&c, utc(2026, 3, 20, 9, 0) + 59999));
    CHECK(!hd__cron_matches(&c, utc(2026, 3, 20, 9, 1)));
    CHECK(!hd__cron_matches(&c, utc(2026, 3, 21, 9, 0)));
    c = parse_ok("0 0 13 * 5", __LINE__);
    CHECK(hd__cron_matches(&c, utc(2026, 4, 13, 0, 0)) &&
          hd__cron_matches(&c, utc(2026, 4, 17, 0, 0)));
    CHECK(!hd__cron_matches(&c, utc(2026, 4, 14, 0, 0)));
}

static void test_calendar(void)
{
    static const firings cases[] = {
        /* Month ends: April, June, September and November have no 31st. */
        {"0 0 31 * *", "2026-03-31 00:00, 2026-05-31 00:00, 2026-07-31 00:00, "
                       "2026-08-31 00:00, 2026-10-31 00:00"},
        {"0 0 30 * *", "2026-01-30 00:00, 2026-03-30 00:00"},
        {"59 23 28-31 2 *", "2026-02-28 23:59, 2027-02-28 23:59, 2028-02-28 23:59, "
                            "2028-02-29 23:59, 2029-02-28 23:59"},
        /* Leap years: every fourth, not centuries, but every fourth century. */
        {"0 0 29 2 *", "2026-01-01 00:00, 2028-02-29 00:00, 2032-02-29 00:00"},
        {"0 0 29 2 *", "2096-03-01 00:00, 2104-02-29 00:00"},
        {"0 0 29 2 *", "1999-03-01 00:00, 2000-02-29 00:00"},
        {"0 0 29 2 *", "1896-03-01 00:00, 1904-02-29 00:00"},
        {"0 12 29 feb *", "2028-02-29 11:59, 12:00"},
        /* Year rollover. */
        {"0 0 1 1 *", "2026-12-31 23:59:30.000, 2027-01-01 00:00"},
        {"59 23 31 12 *", "2026-12-31 23:59, 2027-12-31 23:59"},
        {"* * * * *", "2026-12-31 23:59, 2027-01-01 00:00"},
        {"0 0 * * 5", "2026-12-31 00:00, 2027-01-01 00:00"},
        /* Days no chosen month has: never. */
        {"0 0 30 2 *", "2026-01-01 00:00, never"},
        {"0 0 30,31 feb *", "2026-01-01 00:00, never"},
        {"0 0 31 4,6,9,11 *", "2026-01-01 00:00, never"},
        {"* * 31 apr *", "1970-01-01 00:00, never"},
        /* Before 1970, and far ahead. */
        {"0 0 1 1 *", "1969-12-31 23:59:59.999, 1970-01-01 00:00"},
        {"0 0 1 1 *", "1969-12-31 23:59, 1970-01-01 00:00"},
        {"* * * * *", "1969-12-31 23:57:59.999, 23:58, 23:59, 1970-01-01 00:00"},
        {"59 23 31 12 *", "1969-12-31 00:00, 23:59"},
        {"0 12 20 7 *", "1969-01-01 00:00, 1969-07-20 12:00"},
        {"0 0 1 1 *", "9999-06-01 00:00, 10000-01-01 00:00"},
    };
    CHECK_FIRINGS(cases);

    /* At the edges of int64_t. */
    hd_cron every = parse_ok("* * * * *", __LINE__);
    CHECK(hd__cron_next(&every, -1) == 0);
    CHECK(hd__cron_next(&every, INT64_MAX) == -1);
    int64_t low = hd__cron_next(&every, INT64_MIN);
    CHECK(low > INT64_MIN && low <= INT64_MIN + 60000 && low % 60000 == 0);
    /* The largest minute an int64_t holds. */
    int64_t top = INT64_MAX / 60000 * 60000;
    CHECK(hd__cron_next(&every, top - 1) == top);
    CHECK(hd__cron_next(&every, top) == -1);
}

static void test_shapes(void)
{
    hd_cron c, want;
    herald_error err = {0};
    CHECK_OK(hd__cron_hourly(5, &c, &err));
    want = parse_ok("5 * * * *", __LINE__);
    CHECK(same(&c, &want));
    CHECK_OK(hd__cron_daily(13, 30, &c, &err));
    want = parse_ok("30 13 * * *", __LINE__);
    CHECK(same(&c, &want));
    CHECK_OK(hd__cron_weekly("monday", 9, 0, &c, &err));
    want = parse_ok("0 9 * * 1", __LINE__);
    CHECK(same(&c, &want));
    CHECK_OK(hd__cron_weekly("Sunday", 23, 59, &c, &err));
    want = parse_ok("59 23 * * 7", __LINE__);
    CHECK(same(&c, &want));
    CHECK_OK(hd__cron_weekly("SATURDAY", 0, 0, &c, &err));
    want = parse_ok("0 0 * * sat", __LINE__);
    CHECK(same(&c, &want));
    CHECK_OK(hd__cron_monthly(31, 0, 0, &c, &err));
    want = parse_ok("0 0 31 * *", __LINE__);
    CHECK(same(&c, &want));
    CHECK(hd__cron_next(&c, utc(2026, 4, 1, 0, 0)) == utc(2026, 5, 31, 0, 0));
    CHECK_OK(hd__cron_monthly(1, 16, 0, &c, &err));
    CHECK(hd__cron_next(&c, utc(2026, 4, 1, 16, 0)) == utc(2026, 5, 1, 16, 0));
    CHECK_OK(hd__cron_daily(0, 0, &c, &err));
    CHECK(hd__cron_next(&c, utc(2026, 12, 31, 0, 0)) == utc(2027, 1, 1, 0, 0));
}

/* Each shape's failure, its message, and `*out` left as it was. */
static void shape_refused(int rc, const hd_cron *c, const herald_error *err, const char *message,
                          int line)
{
    hd_cron untouched;
    memset(&untouched, 0xab, sizeof untouched);
    if (rc != HERALD_EINVAL || strcmp(err->message, message) != 0 ||
        memcmp(c, &untouched, sizeof *c) != 0) {
        fprintf(stderr, "test_cron.c:%d: rc %d, message\n  %s\nwant\n  %s\n", line, rc,
                err->message, message);
        if (++check_failures > 20) exit(1);
    }
}
#define SHAPE_REFUSED(call, message)                                                               \
    do {                                                                                           \
        hd_cron c;                                                                                 \
        herald_error err = {0};                                                                    \
        memset(&c, 0xab, sizeof c);                                                                \
        int rc = call;                                                                             \
        shape_refused(rc, &c, &err, message, __LINE__);                                            \
    } while (0)

static void test_shape_errors(void)
{
#define DAYS "is not one of sunday, monday, tuesday, wednesday, thursday, friday, saturday"
    SHAPE_REFUSED(hd__cron_hourly(60, &c, &err), "hourly cron: minuteUTC 60 is out of 0-59");
    SHAPE_REFUSED(hd__cron_hourly(-1, &c, &err), "hourly cron: minuteUTC -1 is out of 0-59");
    SHAPE_REFUSED(hd__cron_daily(24, 0, &c, &err), "daily cron: hourUTC 24 is out of 0-23");
    SHAPE_REFUSED(hd__cron_daily(0, 60, &c, &err), "daily cron: minuteUTC 60 is out of 0-59");
    SHAPE_REFUSED(hd__cron_weekly("funday", 0, 0, &c, &err),
                  "weekly cron: dayOfWeek \"funday\" " DAYS);
    SHAPE_REFUSED(hd__cron_weekly("mon", 0, 0, &c, &err), "weekly cron: dayOfWeek \"mon\" " DAYS);
    SHAPE_REFUSED(hd__cron_weekly("", 0, 0, &c, &err), "weekly cron: dayOfWeek \"\" " DAYS);
    SHAPE_REFUSED(hd__cron_weekly(NULL, 0, 0, &c, &err), "weekly cron: dayOfWeek (missing) " DAYS);
    SHAPE_REFUSED(hd__cron_weekly("monday", -1, 0, &c, &err),
                  "weekly cron: hourUTC -1 is out of 0-23");
    SHAPE_REFUSED(hd__cron_weekly("monday", 9, 75, &c, &err),
                  "weekly cron: minuteUTC 75 is out of 0-59");
    SHAPE_REFUSED(hd__cron_monthly(0, 0, 0, &c, &err), "monthly cron: day 0 is out of 1-31");
    SHAPE_REFUSED(hd__cron_monthly(32, 0, 0, &c, &err), "monthly cron: day 32 is out of 1-31");
    SHAPE_REFUSED(hd__cron_monthly(1, 25, 0, &c, &err), "monthly cron: hourUTC 25 is out of 0-23");
#undef DAYS
}

static void test_errors(void)
{
#define FIELDS "minute hour day-of-month month day-of-week"
    REFUSED(NULL, "cron expression is missing");
    REFUSED("", "cron \"\": empty; a cron expression has 5 fields: " FIELDS);
    REFUSED(" \t ", "cron \" \\x09 \": empty; a cron expression has 5 fields: " FIELDS);
    REFUSED("*", "cron \"*\": 1 field, but a cron expression has 5: " FIELDS);
    REFUSED("* * * *", "cron \"* * * *\": 4 fields, but a cron expression has 5: " FIELDS);
    REFUSED("0 * * * * *", "cron \"0 * * * * *\": 6 fields, but a cron expression has 5: " FIELDS
                           " (no seconds or year)");
    REFUSED("@daily", "cron \"@daily\": shorthands such as @daily are not supported; write the 5 "
                      "fields (" FIELDS ")");
    /* Out of range, in every field. */
    REFUSED("61 * * * *", "cron \"61 * * * *\": minute 61 is out of 0-59");
    REFUSED("60 * * * *", "cron \"60 * * * *\": minute 60 is out of 0-59");
    REFUSED("* 24 * * *", "cron \"* 24 * * *\": hour 24 is out of 0-23");
    REFUSED("* * 0 * *", "cron \"* * 0 * *\": day-of-month 0 is out of 1-31");
    REFUSED("* * 32 * *", "cron \"* * 32 * *\": day-of-month 32 is out of 1-31");
    REFUSED("* * * 0 *", "cron \"* * * 0 *\": month 0 is out of 1-12");
    REFUSED("* * * 13 *", "cron \"* * * 13 *\": month 13 is out of 1-12");
    REFUSED("* * * * 8", "cron \"* * * * 8\": day-of-week 8 is out of 0-7");
    REFUSED("1-60 * * * *", "cron \"1-60 * * * *\": minute 60 is out of 0-59");
    REFUSED("0,5,99 * * * *", "cron \"0,5,99 * * * *\": minute 99 is out of 0-59");
    /* Huge numbers are told as written, cut after 24 digits. */
    REFUSED("99999999999999999999 * * * *",
            "cron \"99999999999999999999 * * * *\": minute 99999999999999999999 is out of 0-59");
    REFUSED("* * * * 1234567890123456789012345678901234567890",
            "cron \"* * * * 1234567890123456789012345678901234567890\": day-of-week "
            "123456789012345678901234... is out of 0-7");
    REFUSED("* 18446744073709551617 * * *",
            "cron \"* 18446744073709551617 * * *\": hour 18446744073709551617 is out of 0-23");
    /* Ranges. */
    REFUSED("5-1 * * * *", "cron \"5-1 * * * *\": minute \"5-1\": the range 5-1 runs backwards "
                           "(ranges do not wrap around: write 5-59,0-1)");
    REFUSED("* 22-2 * * *", "cron \"* 22-2 * * *\": hour \"22-2\": the range 22-2 runs backwards "
                            "(ranges do not wrap around: write 22-23,0-2)");
    REFUSED("* * * * FRI-MON",
            "cron \"* * * * FRI-MON\": day-of-week \"FRI-MON\": the range 5-1 runs backwards "
            "(ranges do not wrap around: write 5-6,0-1)");
    REFUSED("* * * * 7-0",
            "cron \"* * * * 7-0\": day-of-week \"7-0\": the range 7-0 runs backwards");
    REFUSED("* * * dec-jan *", "cron \"* * * dec-jan *\": month \"dec-jan\": the range 12-1 runs "
                               "backwards (ranges do not wrap around: write 12-12,1-1)");
    REFUSED("1- * * * *", "cron \"1- * * * *\": minute \"1-\": a number is missing after '-'");
    REFUSED("1-,2 * * * *",
            "cron \"1-,2 * * * *\": minute \"1-,2\": a number is missing after '-'");
    REFUSED("1-* * * * *", "cron \"1-* * * * *\": minute \"1-*\": unexpected '*'");
    REFUSED("1-2-3 * * * *", "cron \"1-2-3 * * * *\": minute \"1-2-3\": unexpected '-'");
    REFUSED("-1 * * * *", "cron \"-1 * * * *\": minute \"-1\": unexpected '-'");
    /* Steps. */
    REFUSED("*/0 * * * *", "cron \"*/0 * * * *\": minute step 0 is out of 1-59");
    REFUSED("*/60 * * * *", "cron \"*/60 * * * *\": minute step 60 is out of 1-59");
    REFUSED("0 0 * * */8", "cron \"0 0 * * */8\": day-of-week step 8 is out of 1-7");
    REFUSED("0 0 1-5/0 * *", "cron \"0 0 1-5/0 * *\": day-of-month step 0 is out of 1-31");
    REFUSED("*/99999999999999999999 * * * *",
            "cron \"*/99999999999999999999 * * * *\": minute step 99999999999999999999 is out of "
            "1-59");
    REFUSED("5/15 * * * *", "cron \"5/15 * * * *\": minute \"5/15\": a step needs '*' or a range "
                            "before it (write 5-59/...)");
    REFUSED("0 0 * * MON/2", "cron \"0 0 * * MON/2\": day-of-week \"MON/2\": a step needs '*' or "
                             "a range before it (write 1-6/...)");
    REFUSED("*/ * * * *", "cron \"*/ * * * *\": minute \"*/\": a step number is missing after '/'");
    REFUSED("*/,5 * * * *",
            "cron \"*/,5 * * * *\": minute \"*/,5\": a step number is missing after '/'");
    REFUSED("*/x * * * *", "cron \"*/x * * * *\": minute \"*/x\": unexpected 'x'");
    REFUSED("*/2/2 * * * *", "cron \"*/2/2 * * * *\": minute \"*/2/2\": unexpected '/'");
    /* Lists. */
    REFUSED("1,,2 * * * *", "cron \"1,,2 * * * *\": minute \"1,,2\": a list item is empty");
    REFUSED("1, * * * *", "cron \"1, * * * *\": minute \"1,\": a list item is empty");
    REFUSED(",1 * * * *", "cron \",1 * * * *\": minute \",1\": a list item is empty");
    /* Names where they do not belong, and names that are not. */
    REFUSED("MON * * * *", "cron \"MON * * * *\": minute \"MON\": \"MON\" is not a number");
    REFUSED("* * * FOO *",
            "cron \"* * * FOO *\": month \"FOO\": \"FOO\" is not a month name (JAN-DEC)");
    REFUSED("* * * January *", "cron \"* * * January *\": month \"January\": \"January\" is not "
                               "a month name (JAN-DEC)");
    REFUSED("* * * * MONDAY", "cron \"* * * * MONDAY\": day-of-week \"MONDAY\": \"MONDAY\" is not "
                              "a day name (SUN-SAT)");
    REFUSED("* * * * JAN",
            "cron \"* * * * JAN\": day-of-week \"JAN\": \"JAN\" is not a day name (SUN-SAT)");
    REFUSED("* * * MON *",
            "cron \"* * * MON *\": month \"MON\": \"MON\" is not a month name (JAN-DEC)");
    REFUSED("0 0 L * *", "cron \"0 0 L * *\": day-of-month \"L\": \"L\" is not a number");
    /* Garbage. */
    REFUSED("0 0 ? * *", "cron \"0 0 ? * *\": day-of-month \"?\": unexpected '?'");
    REFUSED("1x * * * *", "cron \"1x * * * *\": minute \"1x\": unexpected 'x'");
    REFUSED("** * * * *", "cron \"** * * * *\": minute \"**\": unexpected '*'");
    REFUSED("*5 * * * *", "cron \"*5 * * * *\": minute \"*5\": unexpected '5'");
    REFUSED("0 0 1 1 1#2", "cron \"0 0 1 1 1#2\": day-of-week \"1#2\": unexpected '#'");
    REFUSED("\x01 * * * *", "cron \"\\x01 * * * *\": minute \"\\x01\": unexpected byte 0x01");
    REFUSED("\xef\xbc\x95 * * * *", "cron \"\\xEF\\xBC\\x95 * * * *\": minute \"\\xEF\\xBC\\x95\": "
                                    "unexpected byte 0xEF");
    REFUSED("\"5\" * * * *", "cron \"\\\"5\\\" * * * *\": minute \"\\\"5\\\"\": unexpected '\"'");
    REFUSED("0 0 * * 1\\", "cron \"0 0 * * 1\\\\\": day-of-week \"1\\\\\": unexpected '\\'");
#undef FIELDS

    /* Length: HD_CRON_MAX_LEN bytes parse, one more does not; the message cuts the expression. */
    char expr[HD_CRON_MAX_LEN + 2];
    memset(expr, ' ', sizeof expr);
    memcpy(expr + HD_CRON_MAX_LEN - 9, "* * * * *", 9);
    expr[HD_CRON_MAX_LEN] = '\0';
    hd_cron c = parse_ok(expr, __LINE__);
    CHECK(c.any_day_of_month);
    memset(expr, '1', sizeof expr);
    memcpy(expr, "1,", 2);
    expr[HD_CRON_MAX_LEN + 1] = '\0';
    char want[256];
    snprintf(want, sizeof want, "cron \"%.90s...\": longer than %d bytes", expr, HD_CRON_MAX_LEN);
    REFUSED(expr, want);
    /* A long field in a message is cut too, and the message keeps its end. */
    char list[200] = "0 0 1 1 ";
    for (int i = 0; i < 60; i++)
        strcat(list, "1,");
    strcat(list, "#");
    herald_error err = {0};
    CHECK(hd__cron_parse(list, &c, &err) == HERALD_EINVAL);
    CHECK(strstr(err.message, "...\": day-of-week \"1,1,") != NULL);
    CHECK(strstr(err.message, "...\": unexpected '#'") != NULL);
}

/* A random field for `lo`-`hi`: '*', values, ranges and steps, in lists. */
static void random_field(char *out, size_t cap, int lo, int hi, bool dense)
{
    if (dense && check_below(2)) {
        snprintf(out, cap, check_below(4) ? "*" : "*/%u", 1 + check_below(3));
        return;
    }
    size_t n = 0;
    unsigned items = 1 + check_below(3);
    for (unsigned i = 0; i < items; i++) {
        int a = lo + (int)check_below((unsigned)(hi - lo + 1));
        int b = a + (int)check_below((unsigned)(hi - a + 1));
        int step = 1 + (int)check_below((unsigned)hi);
        if (step > hi) step = hi;
        const char *sep = i ? "," : "";
        switch (check_below(4)) {
        case 0:
            n += (size_t)snprintf(out + n, cap - n, "%s%d", sep, a);
            break;
        case 1:
            n += (size_t)snprintf(out + n, cap - n, "%s%d-%d", sep, a, b);
            break;
        case 2:
            n += (size_t)snprintf(out + n, cap - n, "%s%d-%d/%d", sep, a, b, step);
            break;
        default:
            n += (size_t)snprintf(out + n, cap - n, "%s*/%d", sep, step);
            break;
        }
    }
}

/*
 * hd__cron_next against a walk minute by minute with hd__cron_matches: the
 * first firing in the walk is the answer, or there is none in the walk and
 * the answer lies beyond it.
 */
static void test_random(void)
{
    const char *seed = getenv("HERALD_CRON_SEED");
    check_rng_state = seed ? strtoull(seed, NULL, 10) : 20260315;
    if (!check_rng_state) check_rng_state = 1;
    printf("test_cron: seed %llu (rerun with HERALD_CRON_SEED=%llu)\n", check_rng_state,
           check_rng_state);
    const int64_t walk = 3 * 24 * 60; /* minutes */
    for (int round = 0; round < 3000; round++) {
        char f[5][64], expr[330];
        random_field(f[0], sizeof f[0], 0, 59, true);
        random_field(f[1], sizeof f[1], 0, 23, true);
        random_field(f[2], sizeof f[2], 1, 31, true);
        random_field(f[3], sizeof f[3], 1, 12, true);
        random_field(f[4], sizeof f[4], 0, 7, true);
        snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
        hd_cron c = parse_ok(expr, __LINE__);
        /* Any millisecond from 1960 to 2110. */
        int64_t after =
            utc(1960, 1, 1, 0, 0) +
            (int64_t)(check_rand() % (uint64_t)(utc(2110, 1, 1, 0, 0) - utc(1960, 1, 1, 0, 0)));
        int64_t got = hd__cron_next(&c, after);
        /* Times before 1970 are negative: whether the walk found one is kept apart. */
        int64_t first = -1;
        bool found = false;
        int64_t minute = (after - ((after % 60000) + 60000) % 60000) + 60000;
        for (int64_t i = 0; i < walk && !found; i++, minute += 60000)
            if (hd__cron_matches(&c, minute)) first = minute, found = true;
        bool ok = found ? got == first : (got == -1 || got >= minute);
        if (got != -1) ok = ok && got > after && got % 60000 == 0 && hd__cron_matches(&c, got);
        if (!ok) {
            char a[64], g[64], w[64];
            fprintf(stderr, "test_cron: \"%s\" after %s: got %s, the walk found %s\n", expr,
                    show(after, a, sizeof a), show(got, g, sizeof g), show(first, w, sizeof w));
            if (++check_failures > 20) exit(1);
        }
    }
}

int main(void)
{
    test_forms();
    test_names();
    test_sunday();
    test_day_rule();
    test_calendar();
    test_shapes();
    test_shape_errors();
    test_errors();
    test_random();
    CHECK_DONE();
}
