/*
 * The log's two formats (log.h). A line is built whole in memory and
 * written with one fwrite under the stream's lock, then flushed, so that
 * a reader following the log (a test, journald, a collector) sees every
 * line as it happens and lines of different threads never interleave.
 *
 * It must never write a byte that is not valid UTF-8 into a JSON line:
 * a function's print() may pass anything, and one bad byte would make a
 * collector drop the line or the whole stream.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"

static hd_log_format log_format = HD_LOG_TEXT;
/* Where lines go: the process's standard output and error, also once they are wrapped. */
static FILE *out_stream, *err_stream;

/*
 * In JSON, whatever else writes to stdout or stderr (a line not yet
 * routed here, a library) is wrapped too, a line at a time, so that the
 * stream stays one JSON object per line whoever wrote.
 */
typedef struct wrapped {
    hd_log_level level;
    char line[2048];
    size_t len;
} wrapped;

static wrapped wrapped_out = {.level = HD_LOG_INFO}, wrapped_err = {.level = HD_LOG_WARN};

static void wrapped_flush(wrapped *w)
{
    size_t len = w->len, start = 0;
    w->len = 0;
    while (start < len && (w->line[start] == ' ' || w->line[start] == '\r'))
        start++;
    if (start < len)
        hd__logf(w->level, "message", NULL, 0, "%.*s", (int)(len - start), w->line + start);
}

/* stdio's write of a wrapped stream (called under that stream's lock). */
static ssize_t wrapped_write(void *cookie, const char *p, size_t n)
{
    wrapped *w = cookie;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' || w->len == sizeof w->line) wrapped_flush(w);
        if (p[i] != '\n') w->line[w->len++] = p[i];
    }
    return (ssize_t)n;
}

static int wrapped_close(void *cookie)
{
    wrapped_flush(cookie);
    return 0;
}

void hd__log_set_format(hd_log_format format)
{
    if (!out_stream) {
        out_stream = stdout;
        err_stream = stderr;
    }
    if (format == HD_LOG_JSON && log_format != HD_LOG_JSON) {
        cookie_io_functions_t io = {.write = wrapped_write, .close = wrapped_close};
        FILE *out = fopencookie(&wrapped_out, "w", io);
        FILE *err = fopencookie(&wrapped_err, "w", io);
        if (out && err) {
            fflush(stdout);
            fflush(stderr);
            setvbuf(out, NULL, _IOLBF, 0);
            setvbuf(err, NULL, _IOLBF, 0);
            stdout = out;
            stderr = err;
        } else {
            if (out) fclose(out);
            if (err) fclose(err);
        }
    }
    log_format = format;
}

bool hd__log_format_parse(const char *name, hd_log_format *out)
{
    if (!strcmp(name, "text"))
        *out = HD_LOG_TEXT;
    else if (!strcmp(name, "json"))
        *out = HD_LOG_JSON;
    else
        return false;
    return true;
}

/* The length of the valid UTF-8 sequence at p (at most n bytes), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min;
    unsigned cp;
    if (p[0] < 0x80) return 1;
    if ((p[0] & 0xe0) == 0xc0) {
        len = 2, min = 0x80, cp = p[0] & 0x1f;
    } else if ((p[0] & 0xf0) == 0xe0) {
        len = 3, min = 0x800, cp = p[0] & 0x0f;
    } else if ((p[0] & 0xf8) == 0xf0) {
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return len;
}

/* Appends a JSON string; bytes that are not UTF-8 become U+FFFD. */
static void json_string(hd_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    hd__buf_byte(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            hd__buf_byte(b, '\\');
            hd__buf_byte(b, ch);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            hd__buf_str(b, esc);
            i++;
        } else {
            size_t len = utf8_len(p + i, n - i);
            if (len) {
                hd__buf_append(b, p + i, len);
                i += len;
            } else {
                hd__buf_str(b, "\\ufffd");
                i++;
            }
        }
    }
    hd__buf_byte(b, '"');
}

static const char *const level_names[] = {"info", "warn", "error"};

/* A number field's text; JSON has no NaN or infinity: null. */
static const char *number_text(const hd_log_field *f, char out[64])
{
    if (f->type == HD_LF_INT)
        snprintf(out, 64, "%lld", f->i);
    else if (f->d == f->d && f->d < 1e300 && f->d > -1e300)
        snprintf(out, 64, "%.3f", f->d);
    else
        snprintf(out, 64, "null");
    return out;
}

static void json_line(hd_buf *b, hd_log_level level, const char *event, const hd_log_field *fields,
                      size_t nfields, const char *msg)
{
    struct timespec ts;
    struct tm tm;
    char head[96];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t hl = strftime(head, sizeof head, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(head + hl, sizeof head - hl,
             ".%03ldZ\",\"level\":\"%s\",\"event\":", ts.tv_nsec / 1000000, level_names[level]);
    hd__buf_str(b, head);
    json_string(b, event, strlen(event));
    /* The text form's prefix says nothing a JSON line does not. */
    if (!strncmp(msg, "herald: ", 8)) msg += 8;
    size_t mlen = strlen(msg);
    while (mlen && (msg[mlen - 1] == '\n' || msg[mlen - 1] == ' '))
        mlen--;
    while (mlen && (*msg == '\n' || *msg == ' '))
        msg++, mlen--;
    hd__buf_str(b, ",\"msg\":");
    json_string(b, msg, mlen);
    for (size_t i = 0; i < nfields; i++) {
        const hd_log_field *f = &fields[i];
        char num[64];
        if (f->type == HD_LF_STR && !f->s) continue;
        hd__buf_printf(b, ",\"%s\":", f->name);
        if (f->type == HD_LF_STR)
            json_string(b, f->s, strlen(f->s));
        else
            hd__buf_str(b, number_text(f, num));
    }
    hd__buf_str(b, "}\n");
}

static void text_line(hd_buf *b, const hd_log_field *fields, size_t nfields, const char *msg)
{
    size_t mlen = strlen(msg);
    bool newline = mlen && msg[mlen - 1] == '\n';
    hd__buf_append(b, msg, newline ? mlen - 1 : mlen);
    for (size_t i = 0; i < nfields; i++) {
        const hd_log_field *f = &fields[i];
        char num[64];
        if (f->type == HD_LF_STR && !f->s) continue;
        hd__buf_printf(b, " %s=%s", f->name, f->type == HD_LF_STR ? f->s : number_text(f, num));
    }
    hd__buf_byte(b, '\n');
}

void hd__logf(hd_log_level level, const char *event, const hd_log_field *fields, size_t nfields,
              const char *fmt, ...)
{
    hd_buf text = HD_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    hd__buf_vprintf(&text, fmt, ap);
    va_end(ap);
    hd__buf_byte(&text, 0);
    const char *msg =
        hd__buf_failed(&text) ? "(a log line that did not fit in memory)" : (const char *)text.p;
    hd_buf line = HD_BUF_INIT;
    if (log_format == HD_LOG_JSON)
        json_line(&line, level, event, fields, nfields, msg);
    else
        text_line(&line, fields, nfields, msg);
    if (!out_stream) {
        out_stream = stdout;
        err_stream = stderr;
    }
    FILE *out = level == HD_LOG_INFO ? out_stream : err_stream;
    flockfile(out);
    if (!hd__buf_failed(&line)) {
        fwrite(line.p, 1, line.len, out);
    } else {
        /* Out of memory for the line: the message alone, so that nothing is lost silently. */
        fputs(msg, out);
        fputc('\n', out);
    }
    fflush(out);
    funlockfile(out);
    hd__buf_free(&line);
    hd__buf_free(&text);
}
