/*
 * Fuzz target for the snapshot archive reader (src/snaparc.c), which reads
 * bytes a replica fetched from JetStream.
 *
 * The input is the archive. It is read twice: whole, and in pieces whose
 * sizes come from the input's own bytes (1 to 64), and both reads must end
 * alike: the same result and the same files reported, byte for byte.
 *
 * What must hold:
 * - every path reported is relative, of components of [A-Za-z0-9._-] that
 *   are neither "." nor "..", at most 255 bytes (checked here apart from
 *   snaparc.c's own check), with a mode within 0777;
 * - a file's bytes add up to its size before its end is reported, and
 *   begin, data and end come in that order;
 * - an input that is refused gets HERALD_ECORRUPT with a message; one that
 *   is accepted begins with the magic and ends with the end tag.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snaparc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_snaparc: %s\n", what);
    abort();
}

typedef struct watch {
    uint64_t hash; /* FNV-1a of everything reported */
    bool open;     /* between begin and end */
    uint64_t size, seen;
    uint64_t files;
} watch;

static void mix(watch *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        w->hash = (w->hash ^ b[i]) * 1099511628211ULL;
}

static void check_path(const char *path)
{
    size_t len = strlen(path);
    if (len == 0 || len > HD_SNAPARC_MAX_PATH) fail("a path of a bad length was reported");
    if (path[0] == '/') fail("an absolute path was reported");
    const char *p = path;
    while (1) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0) fail("a path with an empty component was reported");
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            fail("a path with a . or .. component was reported");
        for (size_t i = 0; i < n; i++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", p[i]))
                fail("a path with a character out of the set was reported");
        if (!slash) break;
        p = slash + 1;
    }
}

static int on_begin(void *ctx, const char *path, uint32_t mode, uint64_t size, herald_error *err)
{
    (void)err;
    watch *w = ctx;
    if (w->open) fail("a file began inside another");
    check_path(path);
    if (mode & ~0777u) fail("a mode beyond 0777 was reported");
    w->open = true;
    w->size = size;
    w->seen = 0;
    mix(w, "B", 1);
    mix(w, path, strlen(path) + 1);
    mix(w, &mode, sizeof mode);
    mix(w, &size, sizeof size);
    return 0;
}

static int on_data(void *ctx, const uint8_t *p, size_t n, herald_error *err)
{
    (void)err;
    watch *w = ctx;
    if (!w->open) fail("data outside a file");
    if (n == 0 || n > w->size - w->seen) fail("more data than the file's size");
    w->seen += n;
    mix(w, p, n);
    return 0;
}

static int on_end(void *ctx, herald_error *err)
{
    (void)err;
    watch *w = ctx;
    if (!w->open || w->seen != w->size) fail("a file ended before its size");
    w->open = false;
    w->files++;
    mix(w, "E", 1);
    return 0;
}

/* Reads `data` in pieces: all at once when `steps` is NULL, else sized by its bytes. */
static int read_all(const uint8_t *data, size_t size, const uint8_t *steps, size_t nsteps, watch *w,
                    herald_error *err)
{
    hd_snaparc_sink sink = {on_begin, on_data, on_end, w};
    hd_snaparc_reader r;
    hd__snaparc_reader_init(&r, &sink);
    for (size_t at = 0, i = 0; at < size; i++) {
        size_t n = steps ? (size_t)(steps[i % nsteps] % 64) + 1 : size;
        if (n > size - at) n = size - at;
        int rc = hd__snaparc_feed(&r, data + at, n, err);
        if (rc) return rc;
        at += n;
    }
    return hd__snaparc_finish(&r, err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    watch whole = {.hash = 14695981039346656037ULL}, pieces = whole;
    herald_error e1 = {0}, e2 = {0};
    int rc1 = read_all(data, size, NULL, 0, &whole, &e1);
    int rc2 = read_all(data, size, size ? data : NULL, size, &pieces, &e2);
    if (rc1 != rc2) fail("whole and in pieces, the same archive read differently");
    if (whole.hash != pieces.hash || whole.files != pieces.files)
        fail("whole and in pieces, the same archive reported different files");
    if (rc1 && (rc1 != HERALD_ECORRUPT || !e1.message[0] || !e2.message[0]))
        fail("a refusal that is not HERALD_ECORRUPT with a message");
    if (!rc1 && (size < 9 || memcmp(data, HD_SNAPARC_MAGIC, 8) || data[size - 1] != 'E'))
        fail("an archive accepted without its magic or its end");
    if (!rc1 && whole.open) fail("an archive accepted inside a file");
    return 0;
}
