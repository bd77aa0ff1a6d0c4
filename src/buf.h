/*
 * A growable byte buffer. Used for keys, encoded documents and text.
 * Allocation failure is sticky: after one, every append is a no-op and
 * hd__buf_failed() is true, so a sequence of appends needs one check.
 */
#ifndef HD_BUF_H
#define HD_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hd_buf {
    uint8_t *p;
    size_t len, cap;
    bool failed;
} hd_buf;

#define HD_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

void hd__buf_append(hd_buf *b, const void *p, size_t n);
void hd__buf_byte(hd_buf *b, uint8_t c);
void hd__buf_str(hd_buf *b, const char *s);
/* Appends printf's text (without its terminating NUL). */
void hd__buf_printf(hd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hd__buf_vprintf(hd_buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
void hd__buf_free(hd_buf *b);
static inline bool hd__buf_failed(const hd_buf *b)
{
    return b->failed;
}
/* Hands the bytes to the caller (free()) and resets the buffer. */
uint8_t *hd__buf_take(hd_buf *b, size_t *len);

#endif
