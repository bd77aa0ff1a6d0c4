/*
 * Export and import of a store as JSON lines, one file per table, so that
 * an export imported into an empty data folder gives back the same
 * documents, ids and creation times included.
 *
 * Folder layout: `_tables.json` ({"table": number, ...}), `_schema.json`
 * (the canonical schema), `<table>.jsonl` (one document per line, the
 * system table `_storage` too), and `files/<id>`, the bytes of each
 * `_storage` row (docs/storage.md, "Files"). `_tables.json` is written
 * last: a folder without it is not a finished export.
 */
#ifndef HD_DUMP_H
#define HD_DUMP_H

#include "blobs.h"
#include "herald/store.h"

/* Stored files are copied through a buffer of this size. */
#define HD_BLOB_COPY_CHUNK ((size_t)256 * 1024)

/* A `_storage` row's id, size and SHA-256 (pointers into the row's value). */
typedef struct hd_blob_row {
    const char *id;
    uint64_t size;
    const char *sha256;
} hd_blob_row;

/* Reads them from row `doc`: HERALD_EINVAL for a row Herald did not write. */
int hd__blob_row_of(const herald_value *doc, hd_blob_row *r, herald_error *err);

/*
 * Copies `from` (a stored file, row `r`) into a new temporary file in
 * folder `to_dir` through `buf` (HD_BLOB_COPY_CHUNK bytes), fsyncs it, and
 * checks its size and SHA-256 against the row; on success `w->path` names
 * the durable temporary file, which the caller renames. Errors name the
 * row and the file: HERALD_ENOTFOUND (no file), HERALD_ECORRUPT (not the
 * row's bytes), HERALD_EIO.
 */
int hd__blob_copy(const char *from, const hd_blob_row *r, const char *to_dir, uint8_t *buf,
                  hd_blob_writer *w, herald_error *err);

/*
 * Writes every table of `s` into folder `dir` (created if needed), from one
 * read snapshot, and copies each `_storage` row's file from the data folder
 * (streamed, fsynced, renamed into place) while it reads the row. Fails
 * with HERALD_ENOTFOUND naming the row when a row's file is missing (a
 * server beside the export deleted it since the snapshot, or the folder is
 * damaged), HERALD_ECORRUPT when a file's size or SHA-256 is not its row's.
 * The snapshot is held while files are copied.
 */
int hd__export(herald_store *s, const char *dir, herald_error *err);

/*
 * Imports folder `dir` (as written by hd__export) into `s`. When the store
 * has no schema yet, `_schema.json` of the folder is installed first.
 * *count receives the number of documents imported. Each `_storage` row's
 * file is copied from `dir/files/<id>` into the data folder's files/ under
 * a temporary name, checked against the row (size, SHA-256), fsynced and
 * renamed to the row's id before the row's group commits; a group that
 * does not commit takes its files away again. A row whose file is missing
 * fails with HERALD_ENOTFOUND naming it; a wrong file with HERALD_ECORRUPT.
 * (After a crash mid-import, files renamed into place whose rows did not
 * commit are what the next `herald serve` sweeps.)
 */
int hd__import_dir(herald_store *s, const char *dir, uint64_t *count, herald_error *err);

/*
 * Imports one JSON-lines file into `table`. Lines with `_id` keep their id
 * and `_creationTime`; others are inserted as new documents. Errors name
 * the line. `_storage` is refused (HERALD_EINVAL): its rows come with their
 * files, through hd__import_dir.
 */
int hd__import_file(herald_store *s, const char *path, const char *table, uint64_t *count,
                    herald_error *err);

#endif
