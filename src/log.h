/*
 * Herald's log: every line the server writes about itself goes through
 * hd__logf(), as plain text (the default, the lines Herald always wrote)
 * or as one JSON object per line (`--log-format json`, docs/operations.md
 * "Logs"): {"time": RFC 3339 UTC with milliseconds, "level", "event",
 * "msg", and the line's fields}.
 *
 * Lines at info level go to standard output, warnings and errors to
 * standard error; each line is written whole with one write, so lines of
 * different threads never mix. Any thread may log.
 *
 * Caveats: nothing here knows what a secret is. Callers never pass a
 * token, a key, an Authorization header or a URL that carries a token
 * (storage URLs): they pass what identifies a request without granting
 * anything (the path with its token cut off, the client's address).
 */
#ifndef HD_LOG_H
#define HD_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { HD_LOG_INFO, HD_LOG_WARN, HD_LOG_ERROR } hd_log_level;

typedef enum { HD_LOG_TEXT, HD_LOG_JSON } hd_log_format;

typedef enum { HD_LF_STR, HD_LF_INT, HD_LF_NUM } hd_log_field_type;

/* One field of a line: a string (NULL: left out), an integer or a number. */
typedef struct hd_log_field {
    const char *name; /* a JSON-safe identifier: not escaped */
    hd_log_field_type type;
    const char *s;
    long long i;
    double d;
} hd_log_field;

#define HD_LOG_STR(n, v)                                                                           \
    {                                                                                              \
        .name = (n), .type = HD_LF_STR, .s = (v)                                                   \
    }
#define HD_LOG_INT(n, v)                                                                           \
    {                                                                                              \
        .name = (n), .type = HD_LF_INT, .i = (long long)(v)                                        \
    }
#define HD_LOG_NUM(n, v)                                                                           \
    {                                                                                              \
        .name = (n), .type = HD_LF_NUM, .d = (double)(v)                                           \
    }

/* The format of every line from now on (set once, before threads start). */
void hd__log_set_format(hd_log_format format);
/* "text" or "json"; false for anything else. */
bool hd__log_format_parse(const char *name, hd_log_format *out);

/*
 * Writes one line. `event` names what happened in a word ("listening",
 * "http", "ws_close"); the message is printf's `fmt`. As text: the
 * message as it is, then ` name=value` for each field. As JSON: the
 * message without a leading "herald: " as "msg", and the fields.
 */
void hd__logf(hd_log_level level, const char *event, const hd_log_field *fields, size_t nfields,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* A line without fields. */
#define hd__log(level, event, ...) hd__logf(level, event, NULL, 0, __VA_ARGS__)

#endif
