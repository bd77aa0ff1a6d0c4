/*
 * Export and import of a store as JSON lines, one file per table, so that
 * an export imported into an empty data folder gives back the same
 * documents, ids and creation times included.
 *
 * Folder layout: `_tables.json` ({"table": number, ...}), `_schema.json`
 * (the canonical schema), and `<table>.jsonl` (one document per line).
 */
#ifndef HD_DUMP_H
#define HD_DUMP_H

#include "herald/store.h"

/* Writes every table of `s` into folder `dir` (created if needed). */
int hd__export(herald_store *s, const char *dir, herald_error *err);

/*
 * Imports folder `dir` (as written by hd__export) into `s`. When the store
 * has no schema yet, `_schema.json` of the folder is installed first.
 * *count receives the number of documents imported.
 */
int hd__import_dir(herald_store *s, const char *dir, uint64_t *count, herald_error *err);

/*
 * Imports one JSON-lines file into `table`. Lines with `_id` keep their id
 * and `_creationTime`; others are inserted as new documents. Errors name
 * the line.
 */
int hd__import_file(herald_store *s, const char *path, const char *table, uint64_t *count,
                    herald_error *err);

#endif
