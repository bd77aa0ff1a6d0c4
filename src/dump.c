/*
 * Export and import (see dump.h). Files are written to a temporary name,
 * fsynced, then renamed, so an interrupted export never leaves a torn file
 * under its final name. Imports commit in groups of IMPORT_GROUP lines; a bad
 * line stops the import with an error naming the line, and nothing of the
 * group it was in is kept (earlier groups are).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dump.h"
#include "herald/query.h"
#include "store_priv.h"

#define IMPORT_GROUP 1000

typedef struct export_ctx {
    FILE *f;
    herald_error *err;
} export_ctx;

static int write_doc_line(void *ctx, const herald_value *doc)
{
    export_ctx *c = ctx;
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
        export_ctx c = {start_file(dir, name, tmp, sizeof tmp), err};
        if (!c.f) {
            rc = herald_fail(err, HERALD_EIO, "cannot write %s: %s", tmp, strerror(errno));
            break;
        }
        rc = herald_table_scan(t, tab->def->name, write_doc_line, &c, err);
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

/* Commits the open group and starts the next one. */
static int next_group(herald_store *s, herald_group **g, herald_error *err)
{
    int rc = herald_group_commit(*g, err);
    herald_group_free(*g);
    *g = NULL;
    return rc ? rc : herald_group_begin(s, g, err);
}

static int import_line(herald_group *g, const char *table, const char *line, size_t len,
                       herald_error *err)
{
    herald_value doc;
    int rc = herald_value_from_json(line, len, &doc, err);
    if (rc) return rc;
    herald_txn *m;
    if ((rc = herald_mutation_begin(g, &m, err))) goto done;
    if (doc.type == HERALD_OBJECT && herald_object_get(&doc, "_id"))
        rc = herald_insert_raw(m, table, &doc, err);
    else
        rc = herald_insert(m, table, &doc, NULL, err);
    if (rc)
        herald_mutation_abort(m);
    else
        rc = herald_mutation_commit(m, NULL, err);
done:
    herald_value_free(&doc);
    return rc;
}

int hd__import_file(herald_store *s, const char *path, const char *table, uint64_t *count,
                    herald_error *err)
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
            rc = import_line(g, table, line, l, err);
            if (rc == HERALD_EMAPFULL) {
                /* Commit what fits, let the map grow, and try the line again. */
                if (!(rc = next_group(s, &g, err)) && s->map_size > map_before) {
                    map_before = s->map_size;
                    rc = import_line(g, table, line, l, err);
                } else if (!rc) {
                    rc = herald_fail(err, HERALD_EMAPFULL, "the database is full");
                }
            }
            if (rc) break;
            if (++n % IMPORT_GROUP == 0) rc = next_group(s, &g, err);
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
    if (!rc) rc = herald_group_commit(g, err);
    herald_group_free(g);
    free(text);
    if (count) *count = rc ? 0 : n;
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
        if (!hd__table_by_name(s, name)) {
            rc = herald_fail(err, HERALD_ESCHEMA, "the export has table `%s` that the schema lacks",
                             name);
            break;
        }
        uint64_t n = 0;
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, name);
        rc = hd__import_file(s, path, name, &n, err);
        *count += n;
    }
    herald_value_free(&tables);
    return rc;
}
