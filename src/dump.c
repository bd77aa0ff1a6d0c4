/*
 * Export and import (see dump.h). Files are written to a temporary name,
 * fsynced, then renamed, so an interrupted export never leaves a torn file
 * under its final name. Imports commit in groups of IMPORT_GROUP lines; a bad
 * line stops the import with an error naming the line, and nothing of the
 * group it was in is kept (earlier groups are).
 *
 * Stored files (docs/storage.md, "Files") travel with their `_storage`
 * rows: export copies each row's bytes to DIR/files/<id> while it reads the
 * row, import copies them back into DATA/files before the row's group
 * commits and removes them again if it does not. Both check each file's
 * size and SHA-256 against its row, and both stream: a file is never held
 * whole in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs.h"
#include "dump.h"
#include "herald/query.h"
#include "store_priv.h"

#define IMPORT_GROUP 1000
#define STORAGE      "_storage"

/* ---- stored files ---- */

/* The data folder of `s`: its LMDB environment is opened on it. */
static int data_dir_of(herald_store *s, const char **dir, herald_error *err)
{
    int rc = mdb_env_get_path(s->env, dir);
    return rc ? hd__mdb_fail(err, rc, "finding the data folder") : 0;
}

static int sync_dir(const char *dir, herald_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0) close(fd);
    return ok ? 0 : herald_fail(err, HERALD_EIO, "cannot sync %s: %s", dir, strerror(errno));
}

int hd__blob_row_of(const herald_value *doc, hd_blob_row *r, herald_error *err)
{
    const herald_value *id = herald_object_get(doc, "_id");
    const herald_value *size = herald_object_get(doc, "size");
    const herald_value *sha = herald_object_get(doc, "sha256");
    if (!id || id->type != HERALD_STRING)
        return herald_fail(err, HERALD_EINVAL, "a `_storage` row needs its `_id` (and its file)");
    if (!size || size->type != HERALD_FLOAT64 || !(size->u.f >= 0) || size->u.f > 9.0e15 ||
        size->u.f != (double)(uint64_t)size->u.f || !sha || sha->type != HERALD_STRING ||
        sha->u.s.len != 64)
        return herald_fail(err, HERALD_EINVAL, "`_storage` row %s has no valid size and sha256",
                           id->u.s.ptr);
    *r = (hd_blob_row){id->u.s.ptr, (uint64_t)size->u.f, sha->u.s.ptr};
    return 0;
}

int hd__blob_copy(const char *from, const hd_blob_row *r, const char *to_dir, uint8_t *buf,
                  hd_blob_writer *w, herald_error *err)
{
    w->path[0] = 0;
    w->fd = -1;
    int in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0)
        return herald_fail(err, errno == ENOENT ? HERALD_ENOTFOUND : HERALD_EIO,
                           "the file of `_storage` row %s, %s, %s", r->id, from,
                           errno == ENOENT ? "is missing" : strerror(errno));
    int rc = hd__blob_begin(to_dir, w, err);
    while (!rc) {
        ssize_t n = read(in, buf, HD_BLOB_COPY_CHUNK);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) rc = herald_fail(err, HERALD_EIO, "reading %s: %s", from, strerror(errno));
        if (n <= 0) break;
        /* Stop at the first byte too many: a wrong file may be large. */
        if (w->size + (uint64_t)n > r->size) {
            rc = herald_fail(err, HERALD_ECORRUPT,
                             "%s is longer than the %llu bytes of its `_storage` row %s", from,
                             (unsigned long long)r->size, r->id);
            break;
        }
        rc = hd__blob_write(w, buf, (size_t)n, err);
        /* Not the map: the disk (a retry after the map grows would not help). */
        if (rc == HERALD_EMAPFULL)
            rc = herald_fail(err, HERALD_EIO, "no space left for %s", w->path);
    }
    close(in);
    char sha[65];
    if (!rc && fsync(w->fd) != 0)
        rc = herald_fail(err, HERALD_EIO, "cannot sync %s: %s", w->path, strerror(errno));
    if (!rc && w->size != r->size)
        rc = herald_fail(err, HERALD_ECORRUPT, "%s has %llu bytes, its `_storage` row %s says %llu",
                         from, (unsigned long long)w->size, r->id, (unsigned long long)r->size);
    if (!rc) rc = hd__blob_finish(w, sha, err);
    if (!rc && strcmp(sha, r->sha256))
        rc = herald_fail(err, HERALD_ECORRUPT,
                         "%s does not match its `_storage` row %s (SHA-256 %.12s..., the row "
                         "says %.12s...)",
                         from, r->id, sha, r->sha256);
    if (rc && w->path[0]) hd__blob_abort(w);
    return rc;
}

typedef struct export_ctx {
    FILE *f;
    herald_error *err;
    /* For `_storage`: where its files are and go, and the copy buffer. */
    char files_from[PATH_MAX], files_to[PATH_MAX];
    uint8_t *buf;
} export_ctx;

/* Copies the file of `_storage` row `doc` to the export's files/<id>. */
static int export_blob(export_ctx *c, const herald_value *doc)
{
    hd_blob_row r = {0};
    char from[PATH_MAX], to[PATH_MAX];
    int rc = hd__blob_row_of(doc, &r, c->err);
    if (rc) return rc;
    if (!hd__blob_path(c->files_from, r.id, from, sizeof from) ||
        !hd__blob_path(c->files_to, r.id, to, sizeof to))
        return herald_fail(c->err, HERALD_EINVAL, "`%.64s` is not a storage id", r.id);
    hd_blob_writer w;
    rc = hd__blob_copy(from, &r, c->files_to, c->buf, &w, c->err);
    if ((rc == HERALD_ENOTFOUND || rc == HERALD_ECORRUPT) && c->err) {
        /* A server beside the export may have deleted the row since the snapshot. */
        size_t n = strlen(c->err->message);
        snprintf(c->err->message + n, sizeof c->err->message - n, "%s",
                 rc == HERALD_ENOTFOUND
                     ? " (deleted while exporting? export again; else see `herald check`)"
                     : " (see `herald check`)");
    }
    if (!rc && rename(w.path, to) != 0) {
        rc = herald_fail(c->err, HERALD_EIO, "cannot rename %s to %s: %s", w.path, to,
                         strerror(errno));
        unlink(w.path);
    }
    return rc;
}

static int write_doc_line(void *ctx, const herald_value *doc)
{
    export_ctx *c = ctx;
    if (c->buf) {
        int rc = export_blob(c, doc);
        if (rc) return rc;
    }
    char *json = herald_value_to_json(doc);
    if (!json) return herald_fail(c->err, HERALD_ENOMEM, "out of memory");
    int ok = fputs(json, c->f) >= 0 && fputc('\n', c->f) != EOF;
    free(json);
    return ok ? 0 : herald_fail(c->err, HERALD_EIO, "writing the export: %s", strerror(errno));
}

/* Opens `dir/name.tmp`; finish_file() fsyncs and renames it to `dir/name`. */
static FILE *start_file(const char *dir, const char *name, char *tmp, size_t n)
{
    snprintf(tmp, n, "%s/%s.tmp", dir, name);
    return fopen(tmp, "w");
}

static int finish_file(FILE *f, const char *tmp, const char *dir, const char *name,
                       herald_error *err)
{
    char final[4096];
    snprintf(final, sizeof final, "%s/%s", dir, name);
    int ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, final) != 0) {
        unlink(tmp);
        return herald_fail(err, HERALD_EIO, "writing %s: %s", final, strerror(errno));
    }
    return 0;
}

static int write_text_file(const char *dir, const char *name, const char *text, herald_error *err)
{
    char tmp[4096];
    FILE *f = start_file(dir, name, tmp, sizeof tmp);
    if (!f)
        return herald_fail(err, HERALD_EIO, "cannot write %s/%s: %s", dir, name, strerror(errno));
    fputs(text, f);
    fputc('\n', f);
    return finish_file(f, tmp, dir, name, err);
}

int hd__export(herald_store *s, const char *dir, herald_error *err)
{
    if (!s->schema) return herald_fail(err, HERALD_ESCHEMA, "the database has no schema yet");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return herald_fail(err, HERALD_EIO, "cannot create %s: %s", dir, strerror(errno));
    herald_txn *t;
    int rc = herald_read_begin(s, &t, err);
    if (rc) return rc;
    herald_value tables;
    herald_object_init(&tables);
    for (size_t i = 0; i < s->ntables && !rc; i++) {
        const hd_table *tab = &s->tables[i];
        char name[600], tmp[4096];
        snprintf(name, sizeof name, "%s.jsonl", tab->def->name);
        rc = herald_object_set(&tables, tab->def->name, strlen(tab->def->name),
                               herald_float64(tab->number));
        if (rc) break;
        export_ctx c = {.err = err};
        if (tab->def->system && !strcmp(tab->def->name, STORAGE)) {
            /* The rows' files, copied while the rows are read, go first: a
             * row is written only once its file is there. */
            const char *data_dir;
            if ((rc = data_dir_of(s, &data_dir, err))) break;
            snprintf(c.files_from, sizeof c.files_from, "%s/files", data_dir);
            snprintf(c.files_to, sizeof c.files_to, "%s/files", dir);
            if (mkdir(c.files_to, 0700) != 0 && errno != EEXIST) {
                rc = herald_fail(err, HERALD_EIO, "cannot create %s: %s", c.files_to,
                                 strerror(errno));
                break;
            }
            if (!(c.buf = malloc(HD_BLOB_COPY_CHUNK))) {
                rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
                break;
            }
        }
        c.f = start_file(dir, name, tmp, sizeof tmp);
        if (!c.f) {
            rc = herald_fail(err, HERALD_EIO, "cannot write %s: %s", tmp, strerror(errno));
            free(c.buf);
            break;
        }
        rc = herald_table_scan(t, tab->def->name, write_doc_line, &c, err);
        if (!rc && c.buf) rc = sync_dir(c.files_to, err);
        free(c.buf);
        if (rc) {
            fclose(c.f);
            unlink(tmp);
            break;
        }
        rc = finish_file(c.f, tmp, dir, name, err);
    }
    herald_txn_end(t);
    char *json = rc ? NULL : herald_value_to_json(&tables);
    char *schema = rc ? NULL : herald_schema_to_json(s->schema);
    if (!rc && (!json || !schema)) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc) rc = write_text_file(dir, "_schema.json", schema, err);
    if (!rc) rc = write_text_file(dir, "_tables.json", json, err);
    free(json);
    free(schema);
    herald_value_free(&tables);
    return rc;
}

static char *read_file(const char *path, size_t *len, herald_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        herald_fail(err, errno == ENOENT ? HERALD_ENOTFOUND : HERALD_EIO, "cannot read %s: %s",
                    path, strerror(errno));
        return NULL;
    }
    hd_buf b = HD_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        hd__buf_append(&b, chunk, n);
    fclose(f);
    hd__buf_byte(&b, 0);
    if (b.failed) {
        hd__buf_free(&b);
        herald_fail(err, HERALD_ENOMEM, "out of memory");
        return NULL;
    }
    size_t total;
    char *text = (char *)hd__buf_take(&b, &total);
    if (len) *len = total - 1;
    return text;
}

/*
 * What importing `_storage` adds to importing a table: each row's file is
 * copied from the export into the data folder's files/ (a temporary name,
 * fsynced, renamed to the row's id) before the row's group commits, and
 * removed again when the group does not commit.
 */
typedef struct blob_import {
    char from[PATH_MAX];                 /* the export's files/ */
    char to[PATH_MAX];                   /* the data folder's files/ */
    char (*placed)[HERALD_ID_CHARS + 1]; /* files renamed into place in the open group */
    size_t nplaced, cap;
    uint8_t *buf;
} blob_import;

static int import_blob(blob_import *b, const herald_value *doc, herald_error *err)
{
    hd_blob_row r = {0};
    char from[PATH_MAX], to[PATH_MAX];
    int rc = hd__blob_row_of(doc, &r, err);
    if (rc) return rc;
    if (!hd__blob_path(b->from, r.id, from, sizeof from) ||
        !hd__blob_path(b->to, r.id, to, sizeof to))
        return herald_fail(err, HERALD_EINVAL, "`%.64s` is not a storage id", r.id);
    if (b->nplaced == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        void *p = realloc(b->placed, cap * sizeof *b->placed);
        if (!p) return herald_fail(err, HERALD_ENOMEM, "out of memory");
        b->placed = p;
        b->cap = cap;
    }
    hd_blob_writer w;
    if ((rc = hd__blob_copy(from, &r, b->to, b->buf, &w, err))) {
        if (rc == HERALD_ENOTFOUND)
            rc = herald_fail(err, HERALD_ENOTFOUND,
                             "`_storage` row %s has no file in the export (%s is missing)", r.id,
                             from);
        return rc;
    }
    /* The folder is synced once per group, before the group commits (commit_group). */
    if (rename(w.path, to) != 0) {
        rc =
            herald_fail(err, HERALD_EIO, "cannot rename %s to %s: %s", w.path, to, strerror(errno));
        unlink(w.path);
        return rc;
    }
    memcpy(b->placed[b->nplaced++], r.id, HERALD_ID_CHARS + 1);
    return 0;
}

/* Removes the files placed since the last commit: their rows will not be. */
static void unplace_blobs(blob_import *b, size_t keep)
{
    for (; b && b->nplaced > keep; b->nplaced--) {
        char path[PATH_MAX];
        if (hd__blob_path(b->to, b->placed[b->nplaced - 1], path, sizeof path)) unlink(path);
    }
}

/* Commits the open group: its files' names durable first, then its rows. */
static int commit_group(herald_group *g, blob_import *b, herald_error *err)
{
    int rc = b && b->nplaced ? sync_dir(b->to, err) : 0;
    if (!rc) rc = herald_group_commit(g, err);
    if (rc)
        unplace_blobs(b, 0);
    else if (b)
        b->nplaced = 0;
    return rc;
}

/* Commits the open group and starts the next one. */
static int next_group(herald_store *s, herald_group **g, blob_import *b, herald_error *err)
{
    int rc = commit_group(*g, b, err);
    herald_group_free(*g);
    *g = NULL;
    return rc ? rc : herald_group_begin(s, g, err);
}

static int import_line(herald_group *g, const char *table, const char *line, size_t len,
                       blob_import *b, herald_error *err)
{
    herald_value doc;
    int rc = herald_value_from_json(line, len, &doc, err);
    if (rc) return rc;
    herald_txn *m;
    size_t placed = b ? b->nplaced : 0;
    if ((rc = herald_mutation_begin(g, &m, err))) goto done;
    if (doc.type == HERALD_OBJECT && herald_object_get(&doc, "_id"))
        rc = herald_insert_raw(m, table, &doc, err);
    else
        rc = herald_insert(m, table, &doc, NULL, err);
    /* The row first: an id that exists already is refused before its file is touched. */
    if (!rc && b) rc = import_blob(b, &doc, err);
    if (rc)
        herald_mutation_abort(m);
    else
        rc = herald_mutation_commit(m, NULL, err);
    if (rc) unplace_blobs(b, placed);
done:
    herald_value_free(&doc);
    return rc;
}

/* Imports `path` into `table`; `b` copies the files of `_storage` rows (NULL for other tables). */
static int import_jsonl(herald_store *s, const char *path, const char *table, blob_import *b,
                        uint64_t *count, herald_error *err)
{
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return err ? err->code : HERALD_EIO;
    herald_group *g = NULL;
    int rc = herald_group_begin(s, &g, err);
    uint64_t n = 0, lineno = 0;
    size_t map_before = s->map_size;
    for (char *line = text; !rc && line < text + len;) {
        char *end = memchr(line, '\n', (size_t)(text + len - line));
        if (!end) end = text + len;
        lineno++;
        size_t l = (size_t)(end - line);
        bool blank = true;
        for (size_t i = 0; i < l && blank; i++)
            blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\r';
        if (!blank) {
            rc = import_line(g, table, line, l, b, err);
            if (rc == HERALD_EMAPFULL) {
                /* Commit what fits, let the map grow, and try the line again. */
                if (!(rc = next_group(s, &g, b, err)) && s->map_size > map_before) {
                    map_before = s->map_size;
                    rc = import_line(g, table, line, l, b, err);
                } else if (!rc) {
                    rc = herald_fail(err, HERALD_EMAPFULL, "the database is full");
                }
            }
            if (rc) break;
            if (++n % IMPORT_GROUP == 0) rc = next_group(s, &g, b, err);
        }
        line = end + 1;
    }
    if (rc && err) {
        char msg[sizeof err->message + 80];
        snprintf(msg, sizeof msg, "%s line %llu: %s", path, (unsigned long long)lineno,
                 err->message);
        memcpy(err->message, msg, sizeof err->message - 1);
        err->message[sizeof err->message - 1] = 0;
    }
    if (!rc) rc = commit_group(g, b, err);
    /* Nothing of a group that did not commit stays: neither rows nor files. */
    unplace_blobs(b, 0);
    herald_group_free(g);
    free(text);
    if (count) *count = rc ? 0 : n;
    return rc;
}

int hd__import_file(herald_store *s, const char *path, const char *table, uint64_t *count,
                    herald_error *err)
{
    if (!strcmp(table, STORAGE))
        return herald_fail(err, HERALD_EINVAL,
                           "`_storage` rows come with their files: import the export folder "
                           "(herald import DIR)");
    return import_jsonl(s, path, table, NULL, count, err);
}

/* Imports the export's `_storage` rows and their files (DIR/files/<id>). */
static int import_storage(herald_store *s, const char *dir, const char *path, uint64_t *count,
                          herald_error *err)
{
    blob_import b = {0};
    const char *data_dir;
    int rc = data_dir_of(s, &data_dir, err);
    if (!rc) rc = hd__blobs_dir(data_dir, b.to, sizeof b.to, err);
    if (!rc && (size_t)snprintf(b.from, sizeof b.from, "%s/files", dir) >= sizeof b.from)
        rc = herald_fail(err, HERALD_EINVAL, "the export's path is too long");
    if (!rc && !(b.buf = malloc(HD_BLOB_COPY_CHUNK)))
        rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc) rc = import_jsonl(s, path, STORAGE, &b, count, err);
    free(b.buf);
    free(b.placed);
    return rc;
}

int hd__import_dir(herald_store *s, const char *dir, uint64_t *count, herald_error *err)
{
    char path[4096];
    size_t len;
    *count = 0;
    snprintf(path, sizeof path, "%s/_tables.json", dir);
    char *text = read_file(path, &len, err);
    if (!text) return err ? err->code : HERALD_EIO;
    herald_value tables;
    int rc = herald_value_from_json(text, len, &tables, err);
    free(text);
    if (rc) return rc;
    if (tables.type != HERALD_OBJECT)
        rc = herald_fail(err, HERALD_EINVAL, "%s is not an object", path);
    for (size_t i = 0; !rc && i < tables.u.obj.len; i++) {
        const herald_field *f = &tables.u.obj.fields[i];
        if (f->val.type != HERALD_FLOAT64 || f->val.u.f < 1 || f->val.u.f > 4294967295.0)
            rc = herald_fail(err, HERALD_EINVAL, "%s: bad number for `%s`", path, f->key);
        else
            rc = herald_store_reserve_table(s, f->key, (uint32_t)f->val.u.f, err);
    }
    /* Table numbers first, so that the schema's tables get the exported ones. */
    if (!rc && !s->schema) {
        snprintf(path, sizeof path, "%s/_schema.json", dir);
        herald_schema *schema;
        rc = herald_schema_load_file(path, &schema, err);
        if (!rc) rc = herald_store_set_schema(s, schema, err);
    }
    for (size_t i = 0; !rc && i < tables.u.obj.len; i++) {
        const char *name = tables.u.obj.fields[i].key;
        const hd_table *tab = hd__table_by_name(s, name);
        if (!tab) {
            rc = herald_fail(err, HERALD_ESCHEMA, "the export has table `%s` that the schema lacks",
                             name);
            break;
        }
        uint64_t n = 0;
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, name);
        rc = tab->def->system && !strcmp(name, STORAGE)
                 ? import_storage(s, dir, path, &n, err)
                 : import_jsonl(s, path, name, NULL, &n, err);
        *count += n;
    }
    herald_value_free(&tables);
    return rc;
}
