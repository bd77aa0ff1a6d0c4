/* Growable byte buffer; see buf.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static bool reserve(hd_buf *b, size_t extra)
{
    if (b->failed) return false;
    if (b->len + extra <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra)
        cap *= 2;
    uint8_t *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void hd__buf_append(hd_buf *b, const void *p, size_t n)
{
    if (n == 0 || !reserve(b, n)) return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

void hd__buf_byte(hd_buf *b, uint8_t c)
{
    if (!reserve(b, 1)) return;
    b->p[b->len++] = c;
}

void hd__buf_str(hd_buf *b, const char *s)
{
    hd__buf_append(b, s, strlen(s));
}

void hd__buf_free(hd_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->failed = false;
}

uint8_t *hd__buf_take(hd_buf *b, size_t *len)
{
    uint8_t *p = b->p;
    if (len) *len = b->len;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}

void hd__buf_vprintf(hd_buf *b, const char *fmt, va_list ap)
{
    char small[256];
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n < 0) {
        b->failed = true;
    } else if ((size_t)n < sizeof small) {
        hd__buf_append(b, small, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, again);
            hd__buf_append(b, big, (size_t)n);
            free(big);
        } else {
            b->failed = true;
        }
    }
    va_end(again);
}

void hd__buf_printf(hd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    hd__buf_vprintf(b, fmt, ap);
    va_end(ap);
}
