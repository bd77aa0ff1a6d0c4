/*
 * The admin key of a data folder.
 *
 * A key is "hk_" and 32 random bytes in base64url. It is written once to
 * <data>/admin.key (mode 0600) for the folder's owner to read; the server
 * knows it only by its SHA-256, in <data>/admin-key.sha256 (mode 0600).
 *
 * Caveats:
 * - The key is never given back in memory: callers get the key file's
 *   path, so that no caller can print or log the key by mistake.
 * - Both files are written to a temporary name created with mode 0600
 *   (never readable by others, not even for an instant), fsynced, renamed,
 *   and the folder is fsynced. A crash leaves the old key or the new one,
 *   and the key file is renamed into place before the hash, so the stored
 *   hash never names a key that is on no disk.
 * - Not thread-safe for one folder: two processes making a key at once
 *   each leave a consistent pair, but which one wins is not defined.
 */
#ifndef HD_ADMINKEY_H
#define HD_ADMINKEY_H

#include <stddef.h>

#include "herald/error.h"

#define HD_ADMINKEY_FILE      "admin.key"
#define HD_ADMINKEY_HASH_FILE "admin-key.sha256"

/*
 * Makes a new admin key for `data_dir` (which must exist), replacing the
 * old one. On success `path` holds the key file's path (absolute when the
 * folder can be resolved; NUL-ended, cut to `path_size`) and `hash` the
 * key's SHA-256. The key itself is wiped from memory before returning.
 * Errors: HERALD_ESTORE (no randomness), HERALD_ENOMEM, HERALD_EIO (names
 * the file that could not be written; neither file was replaced then,
 * unless the error came from the second rename).
 */
int hd__adminkey_new(const char *data_dir, char *path, size_t path_size, unsigned char hash[32],
                     herald_error *err);

/*
 * Reads the stored hash of `data_dir`'s admin key into `hash`.
 * Errors: HERALD_ENOTFOUND (no key was made yet), HERALD_ECORRUPT (the
 * file is not 32 bytes; deleting it makes a new key at the next start).
 */
int hd__adminkey_hash_read(const char *data_dir, unsigned char hash[32], herald_error *err);

/*
 * Reads the `n` random bytes of secret file `name` in `data_dir`, making it
 * first if it does not exist (mode 0600 from the start, fsynced, renamed,
 * the folder fsynced): the key of the file storage's tokens. Errors:
 * HERALD_ECORRUPT (the file is not `n` bytes), HERALD_EIO, HERALD_ESTORE.
 */
int hd__secret_file(const char *data_dir, const char *name, unsigned char *out, size_t n,
                    herald_error *err);

#endif
