/*
 * What the fuzz targets that work on a store share: failing loudly, a
 * store in a fresh temporary folder with documents of fixed ids, and
 * removing that folder. Everything is static: each target includes this
 * header from its one .c file.
 *
 * Fixed ids and creation times make every process build the same store,
 * so runs are deterministic and corpus inputs can name real documents:
 * document i of table number T has id bytes T (big-endian), then sixteen
 * bytes of value i + 1, and _creationTime 1.7e12 + 1000 T + i.
 */
#ifndef HD_FUZZ_COMMON_H
#define HD_FUZZ_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald/schema.h"
#include "herald/store.h"
#include "herald/value.h"
#include "store_priv.h"

/* A broken setup or a broken promise: abort, so libFuzzer (or the replay run) reports the input. */
static inline void fz_die(const char *what, const herald_error *err)
{
    fprintf(stderr, "%s: %s%s%s\n", program_invocation_short_name, what, err ? ": " : "",
            err ? err->message : "");
    abort();
}

/* Removes the files directly inside `dir`, then `dir` itself. */
static inline void fz_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* The text form of the fixed id of document `i` of table number `number`. */
static inline void fz_id(uint32_t number, size_t i, char out[HERALD_ID_CHARS + 1])
{
    uint8_t id[HERALD_ID_BYTES];
    hd__put_be32(id, number);
    memset(id + 4, (int)i + 1, HERALD_ID_BYTES - 4);
    hd__id_format(id, out);
}

/*
 * Inserts `docs` (JSON texts) into `table` with fixed ids and creation
 * times (herald_insert_raw); their ids go to `ids` unless it is NULL.
 */
static inline void fz_insert_all(herald_txn *m, const char *table, const char *const *docs,
                                 size_t n, char (*ids)[HERALD_ID_CHARS + 1])
{
    herald_error err = {0};
    uint32_t number;
    if (herald_table_number(m, table, &number)) fz_die(table, NULL);
    for (size_t i = 0; i < n; i++) {
        char id[HERALD_ID_CHARS + 1];
        fz_id(number, i, id);
        if (ids) memcpy(ids[i], id, sizeof id);
        herald_value v, field;
        if (herald_value_from_json(docs[i], strlen(docs[i]), &v, &err)) fz_die(docs[i], &err);
        if (herald_string(&field, id, HERALD_ID_CHARS) || herald_object_set(&v, "_id", 3, field) ||
            herald_object_set(&v, "_creationTime", 13,
                              herald_float64(1.7e12 + 1000.0 * number + (double)i)))
            abort();
        if (herald_insert_raw(m, table, &v, &err)) fz_die(docs[i], &err);
        herald_value_free(&v);
    }
}

/* One table's documents for fz_store_new. */
typedef struct fz_table {
    const char *name;
    const char *const *docs;
    size_t ndocs;
    char (*ids)[HERALD_ID_CHARS + 1]; /* where their ids go, or NULL */
    uint32_t number; /* the table's number, so that ids are known beforehand; 0: any */
} fz_table;

/*
 * Opens a new store in a folder made from `dir` (a mkdtemp template,
 * rewritten in place), installs `schema` (taken over) and inserts the
 * tables' documents in one commit. The caller removes the folder when it
 * wants (the store keeps its files open, so right away is fine).
 */
static inline herald_store *fz_store_new(char *dir, const herald_store_options *opts,
                                         herald_schema *schema, const fz_table *tables,
                                         size_t ntables)
{
    herald_error err = {0};
    herald_store *store = NULL;
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    if (herald_store_open(dir, opts, &store, &err)) fz_die("open", &err);
    for (size_t t = 0; t < ntables; t++)
        if (tables[t].number &&
            herald_store_reserve_table(store, tables[t].name, tables[t].number, &err))
            fz_die(tables[t].name, &err);
    if (herald_store_set_schema(store, schema, &err)) fz_die("set schema", &err);
    herald_group *g;
    herald_txn *m;
    if (herald_group_begin(store, &g, &err)) fz_die("group", &err);
    if (herald_mutation_begin(g, &m, &err)) fz_die("mutation", &err);
    for (size_t t = 0; t < ntables; t++)
        fz_insert_all(m, tables[t].name, tables[t].docs, tables[t].ndocs, tables[t].ids);
    if (herald_mutation_commit(m, NULL, &err)) fz_die("commit", &err);
    if (herald_group_commit(g, &err)) fz_die("group commit", &err);
    herald_group_free(g);
    return store;
}

/* Parses a schema given as JSON text (fixed in the target: any error is a bug). */
static inline herald_schema *fz_schema(const char *json)
{
    herald_error err = {0};
    herald_schema *schema = NULL;
    if (herald_schema_from_json(json, strlen(json), "fuzz.json", &schema, &err))
        fz_die("schema", &err);
    return schema;
}

#endif
