/*
 * Cron schedules: when an app's crons (functions/crons.lua) run.
 *
 * An hd_cron is a parsed schedule, built from a standard five-field cron
 * expression (hd__cron_parse) or from the shapes of Convex's `crons`
 * object (hd__cron_hourly, _daily, _weekly, _monthly); hd__cron_next tells
 * the minute it next fires. Intervals are not schedules of this kind and
 * live with the code that runs the crons.
 *
 * Every time is Unix time in milliseconds and every field is UTC: there is
 * no time zone and no daylight saving time here, and nothing reads the
 * clock, allocates or keeps state. The calendar is the proleptic Gregorian
 * one, computed with integers.
 *
 * Caveats: an hd_cron is plain data (copy it, compare it field by field);
 * every function is thread-safe.
 */
#ifndef HD_CRON_H
#define HD_CRON_H

#include <stdbool.h>
#include <stdint.h>

#include "herald/error.h"

/* The longest cron expression hd__cron_parse accepts, in bytes. */
#define HD_CRON_MAX_LEN 256

/*
 * A schedule: the minutes, hours, days, months and weekdays it fires on, one
 * bit each. It fires at a minute whose minute, hour and month bits are set
 * and whose day matches: when both `any_day_of_month` and `any_day_of_week`
 * are false, the day's day-of-month bit or its weekday bit must be set
 * (either); otherwise both must be (the one left as '*' has every bit set).
 */
typedef struct hd_cron {
    uint64_t minutes;      /* bit m: minute m, 0-59 */
    uint32_t hours;        /* bit h: hour h, 0-23 */
    uint32_t days;         /* bit d: day of the month d, 1-31 */
    uint16_t months;       /* bit m: month m, 1 (January) to 12 */
    uint8_t weekdays;      /* bit w: weekday w, 0 (Sunday) to 6 (Saturday) */
    bool any_day_of_month; /* the day-of-month field was '*' */
    bool any_day_of_week;  /* the day-of-week field was '*' */
} hd_cron;

/*
 * Parses `expr`, a cron expression of five fields separated by white space
 * (spaces, tabs, line ends): minute (0-59), hour (0-23), day-of-month (1-31), month (1-12 or
 * JAN-DEC) and day-of-week (0-7 or SUN-SAT, where 0 and 7 are both Sunday).
 * Names are three letters in any case; in day-of-week, SUN ending a range
 * that starts later in the week means 7, so that SAT-SUN is the weekend.
 *
 * A field is a list of items separated by commas (1,15,30), each '*' (every
 * value), a value (5, MON) or a range (1-5, MON-FRI), optionally followed
 * by a step "/n" that keeps every n-th value from the start of the range:
 * '*' followed by /15 is 0,15,30,45 in minutes; 10-50/20 is 10,30,50. A
 * step after a single value (5/15) is refused rather than guessed at. A
 * step is at most the field's largest value (59 for minutes).
 *
 * Day-of-month and day-of-week combine as in Vixie cron: if both are
 * restricted, a day matching either fires; if one is '*', the other alone
 * decides. A field counts as '*' only when one of its items is a bare '*'
 * (or '*' followed by /1); a larger step restricts it, as in most cron
 * libraries: '*' followed by /2 in day-of-month with MON in day-of-week
 * fires on odd days and on Mondays. (Vixie's own code treats any field
 * that starts with '*' as unrestricted, and would fire on odd Mondays.)
 *
 * Returns 0 and fills `*out`, or HERALD_EINVAL, leaves `*out` untouched and
 * writes a message to `err` (when not NULL) naming the expression, the
 * field and what is wrong: `cron "61 * * * *": minute 61 is out of 0-59`.
 * It refuses a NULL or empty `expr`, one longer than HD_CRON_MAX_LEN bytes,
 * any other number of fields than five, out-of-range values and steps,
 * ranges that run backwards, unknown names, and any other character.
 * Bytes that are not printable ASCII appear in the message as \xNN, and a
 * long expression is cut short there.
 */
int hd__cron_parse(const char *expr, hd_cron *out, herald_error *err);

/*
 * The first minute at which `c` fires strictly after `after_ms` (so a time
 * at which it fires gives the next one), in Unix milliseconds: a multiple
 * of 60000, negative before 1970. -1 (never a multiple of 60000) when it
 * never fires ("0 0 30 2 *"), or only beyond what an int64_t of
 * milliseconds can hold.
 *
 * It looks at most eight calendar years past `after_ms`, which is enough
 * for any schedule that fires at all: the longest wait is for 29 February
 * across a century year that is not a leap year (2096 to 2104). It skips
 * whole months, days and hours that cannot match, so a call costs a few
 * hundred steps at worst. `c` must come from one of the functions here.
 */
int64_t hd__cron_next(const hd_cron *c, int64_t after_ms);

/*
 * The shapes of Convex's crons, each parsed as the cron expression it
 * stands for. Arguments are named as in crons.lua (minuteUTC, hourUTC, day,
 * dayOfWeek) in the messages. Each returns 0 and fills `*out`, or
 * HERALD_EINVAL with a message and `*out` untouched:
 *
 * hd__cron_hourly: at `minute` (0-59) past every hour ("M * * * *").
 * hd__cron_daily: every day at `hour`:`minute` ("M H * * *").
 * hd__cron_weekly: every week on `day_name` ("sunday" to "saturday", in any
 *   case) at `hour`:`minute` ("M H * * D").
 * hd__cron_monthly: every month on day `day` (1-31) at `hour`:`minute`
 *   ("M H D * *"); months without that day are skipped, so days past 28 do
 *   not fire every month.
 */
int hd__cron_hourly(int minute, hd_cron *out, herald_error *err);
int hd__cron_daily(int hour, int minute, hd_cron *out, herald_error *err);
int hd__cron_weekly(const char *day_name, int hour, int minute, hd_cron *out, herald_error *err);
int hd__cron_monthly(int day, int hour, int minute, hd_cron *out, herald_error *err);

/*
 * Whether `c` fires in the minute holding `at_ms`: what hd__cron_next
 * looks for, one minute at a time (the tests and the fuzz target hold one
 * against the other).
 */
bool hd__cron_matches(const hd_cron *c, int64_t at_ms);

#endif
