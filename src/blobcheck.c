/*
 * `herald check` over stored files (blobcheck.h): the `_storage` rows of
 * one snapshot against DATA/files. It reads and never repairs: removing
 * what has no row is the sweep's job at the next start (blobs.c), and a
 * row without its bytes needs a person (restore the file or delete the
 * row).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blobcheck.h"
#include "blobs.h"
#include "store_priv.h"

#define STORAGE "_storage"
/* Notices past this many are counted, not listed. */
#define MAX_NOTICES 100

typedef struct blob_check {
    herald_report_fn report;
    void *rctx;
    char dir[PATH_MAX]; /* DATA/files */
    uint64_t problems, notices;
    /* Rows whose file was missing in the snapshot, confirmed afterwards. */
    char (*missing)[HERALD_ID_CHARS + 1];
    size_t nmissing, cap;
    herald_error *err;
} blob_check;

static void say(blob_check *c, bool problem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(blob_check *c, bool problem, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (problem)
        c->problems++;
    else if (++c->notices > MAX_NOTICES)
        return;
    if (c->report) c->report(c->rctx, line);
}

static int check_row(void *ctx, const herald_value *doc)
{
    blob_check *c = ctx;
    const herald_value *id = herald_object_get(doc, "_id");
    const herald_value *size = herald_object_get(doc, "size");
    char path[PATH_MAX];
    struct stat st;
    if (!hd__blob_path(c->dir, id->u.s.ptr, path, sizeof path)) {
        say(c, true, "%s: row %s has an id that cannot name a file", STORAGE, id->u.s.ptr);
        return 0;
    }
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT) {
            say(c, true, "%s: row %s: cannot read %s: %s", STORAGE, id->u.s.ptr, path,
                strerror(errno));
            return 0;
        }
        if (c->nmissing == c->cap) {
            size_t cap = c->cap ? 2 * c->cap : 16;
            void *p = realloc(c->missing, cap * sizeof *c->missing);
            if (!p) return herald_fail(c->err, HERALD_ENOMEM, "out of memory");
            c->missing = p;
            c->cap = cap;
        }
        memcpy(c->missing[c->nmissing++], id->u.s.ptr, HERALD_ID_CHARS + 1);
        return 0;
    }
    if (!S_ISREG(st.st_mode)) {
        say(c, true, "%s: row %s: %s is not a regular file", STORAGE, id->u.s.ptr, path);
        return 0;
    }
    double want = size && size->type == HERALD_FLOAT64 ? size->u.f : -1;
    if ((double)st.st_size != want)
        say(c, true, "%s: row %s says %.0f bytes, its file %s has %lld", STORAGE, id->u.s.ptr, want,
            path, (long long)st.st_size);
    return 0;
}

/* Whether row `id` exists in snapshot `t`: 1 yes, 0 no, < 0 an error. */
static int row_exists(herald_txn *t, const char *id, herald_error *err)
{
    herald_value doc;
    herald_error gerr = {0};
    int rc = herald_get(t, STORAGE, id, &doc, NULL, &gerr);
    if (rc == 0) herald_value_free(&doc);
    /* EINVAL: not an id of `_storage` (the sweep takes it for one without a row too). */
    if (rc == 0 || rc == HERALD_ENOTFOUND || rc == HERALD_EINVAL) return rc == 0;
    if (err) *err = gerr;
    return rc;
}

/* The files folder against a fresh snapshot: what has no row, and what is not a stored file. */
static int check_folder(blob_check *c, herald_txn *t)
{
    DIR *d = opendir(c->dir);
    if (!d)
        return errno == ENOENT
                   ? 0
                   : herald_fail(c->err, HERALD_EIO, "cannot read %s: %s", c->dir, strerror(errno));
    int rc = 0;
    struct dirent *e;
    char path[PATH_MAX];
    while (!rc && (e = readdir(d))) {
        const char *name = e->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
        if (!strncmp(name, ".tmp-", 5)) {
            say(c, false,
                "notice: %s/%s is a temporary file (an upload in progress, or left by a crash; "
                "herald serve removes it at start)",
                c->dir, name);
        } else if (!hd__blob_path(c->dir, name, path, sizeof path)) {
            say(c, false, "notice: %s/%s is not a stored file's name (left alone)", c->dir, name);
        } else {
            int has = row_exists(t, name, c->err);
            if (has < 0) rc = has;
            if (has == 0)
                say(c, false,
                    "notice: %s has no %s row (left by a crash or an import that failed, or "
                    "an upload committing now; herald serve removes it at start)",
                    path, STORAGE);
        }
    }
    closedir(d);
    if (c->notices > MAX_NOTICES && c->report) {
        char line[PATH_MAX + 100];
        snprintf(line, sizeof line, "notice: and %llu more notices about %s",
                 (unsigned long long)(c->notices - MAX_NOTICES), c->dir);
        c->report(c->rctx, line);
    }
    return rc;
}

int hd__blobs_check(herald_store *s, herald_report_fn report, void *ctx, uint64_t *problems,
                    herald_error *err)
{
    *problems = 0;
    if (!hd__table_by_name(s, STORAGE)) return 0;
    const char *data_dir;
    int rc = mdb_env_get_path(s->env, &data_dir);
    if (rc) return hd__mdb_fail(err, rc, "finding the data folder");
    blob_check c = {.report = report, .rctx = ctx, .err = err};
    if ((size_t)snprintf(c.dir, sizeof c.dir, "%s/files", data_dir) >= sizeof c.dir)
        return herald_fail(err, HERALD_EINVAL, "the data folder's path is too long");
    herald_txn *t = NULL;
    if ((rc = herald_read_begin(s, &t, err))) return rc;
    rc = herald_table_scan(t, STORAGE, check_row, &c, err);
    herald_txn_end(t);
    t = NULL;
    /* A server beside the check may have deleted rows since: ask a newer snapshot. */
    if (!rc) rc = herald_read_begin(s, &t, err);
    for (size_t i = 0; !rc && i < c.nmissing; i++) {
        int has = row_exists(t, c.missing[i], err);
        if (has < 0) rc = has;
        if (has == 1) {
            char path[PATH_MAX];
            hd__blob_path(c.dir, c.missing[i], path, sizeof path);
            say(&c, true, "%s: row %s has no file (%s is missing)", STORAGE, c.missing[i], path);
        }
    }
    if (!rc) rc = check_folder(&c, t);
    herald_txn_end(t);
    free(c.missing);
    *problems = c.problems;
    return rc;
}

typedef struct counted {
    herald_report_fn report;
    void *rctx;
    uint64_t lines;
} counted;

/* herald_store_check() reports one line per problem. */
static void count_line(void *ctx, const char *line)
{
    counted *c = ctx;
    c->lines++;
    if (c->report) c->report(c->rctx, line);
}

int hd__check(herald_store *s, herald_report_fn report, void *ctx, herald_error *err)
{
    counted c = {report, ctx, 0};
    int rc = herald_store_check(s, count_line, &c, err);
    if (rc && rc != HERALD_ECORRUPT) return rc;
    uint64_t files = 0;
    int frc = hd__blobs_check(s, report, ctx, &files, err);
    if (frc) return frc;
    uint64_t total = c.lines + files;
    if (!total) return rc;
    return herald_fail(err, HERALD_ECORRUPT, "%llu problem%s found", (unsigned long long)total,
                       total == 1 ? "" : "s");
}
