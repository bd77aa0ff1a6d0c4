/*
 * Stored files (docs/storage.md, "Files"): the bytes of each `_storage` row
 * in DATA/files/<id>, written to a temporary name first, fsynced, and
 * renamed into place only by the mutation that inserts the row; and the
 * tokens that make upload and read URLs unguessable.
 *
 * A file never lingers without its row for long: what a crash leaves (a
 * temporary file, or a file renamed into place whose row did not commit)
 * is removed at start (hd__blobs_sweep), and a row's file is removed once
 * the row's deletion is durable.
 */
#ifndef HD_BLOBS_H
#define HD_BLOBS_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/store.h"

#define HD_BLOB_KEY_BYTES 32
/* Upload token: expiry (8) · nonce (16) · MAC (16), base64url. */
#define HD_UPLOAD_TOKEN_CHARS 54
/* Read token: MAC (24) of the id, base64url. */
#define HD_READ_TOKEN_CHARS 32

/* A file being received. */
typedef struct hd_blob_writer {
    int fd; /* -1 when none */
    char path[4200];
    EVP_MD_CTX *sha;
    uint64_t size;
    uint64_t flushed; /* bytes whose writeback was started (the writer's fsync then waits less) */
} hd_blob_writer;

/* The folder of the files: DATA/files (made when missing). */
int hd__blobs_dir(const char *data_dir, char *out, size_t n, herald_error *err);
/* Opens a new temporary file in `dir`. */
int hd__blob_begin(const char *dir, hd_blob_writer *w, herald_error *err);
int hd__blob_write(hd_blob_writer *w, const void *p, size_t n, herald_error *err);
/* Closes the file; `sha256` gets the hex digest. The writer makes it durable (place). */
int hd__blob_finish(hd_blob_writer *w, char sha256[65], herald_error *err);
/* Closes (if open) and removes the temporary file. */
void hd__blob_abort(hd_blob_writer *w);
/* Renames the finished temporary file `tmp` (synced by the caller) to its row's name `id`
 * (same folder), and syncs the folder. */
int hd__blob_place(const char *tmp, const char *id, herald_error *err);
/* The path of row `id`'s file in `dir`; false for a malformed id. */
bool hd__blob_path(const char *dir, const char *id, char *out, size_t n);
/* Removes row `id`'s file (after its deletion is durable). */
void hd__blob_remove(const char *dir, const char *id);
/*
 * At start, before anything is served: removes temporary files and files
 * whose `_storage` row does not exist (both left by a crash).
 */
int hd__blobs_sweep(herald_store *s, const char *dir, size_t *removed, herald_error *err);

/* The data folder's key for the tokens (DATA/storage.key, 0600; made when missing). */
int hd__blob_key(const char *data_dir, uint8_t key[HD_BLOB_KEY_BYTES], herald_error *err);
/* An upload token valid until `expires` (Unix seconds); `nonce` gets its 16 random bytes. */
int hd__upload_token(const uint8_t key[HD_BLOB_KEY_BYTES], double expires,
                     char out[HD_UPLOAD_TOKEN_CHARS + 1]);
/* Checks an upload token; on success *nonce_hex is its nonce (the upload's once-only key). */
bool hd__upload_token_ok(const uint8_t key[HD_BLOB_KEY_BYTES], const char *token, double now,
                         char nonce_hex[33]);
/* The read token of row `id`. */
void hd__read_token(const uint8_t key[HD_BLOB_KEY_BYTES], const char *id,
                    char out[HD_READ_TOKEN_CHARS + 1]);
bool hd__read_token_ok(const uint8_t key[HD_BLOB_KEY_BYTES], const char *id, const char *token);

/*
 * A Range header for a file of `size` bytes: one range "bytes=A-B",
 * "bytes=A-" or "bytes=-N" sets [*from, *to] (inclusive, within the file)
 * and gives 0; a range starting past the end gives 1 (416); anything else,
 * several ranges included, gives -1 (the header is ignored: the whole file).
 */
int hd__range_parse(const char *h, uint64_t size, uint64_t *from, uint64_t *to);
/* A media type as RFC 9110 writes it: token "/" token, then parameters; printable ASCII. */
bool hd__media_type_ok(const char *t);

#endif
