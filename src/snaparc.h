/*
 * Snapshot archives: a backup folder (backup.h) as one stream of bytes, so
 * that replication can carry it through JetStream in chunks (replsnap.h)
 * and a replica can rebuild the folder from them.
 *
 * The format: the 8 bytes "HDSNAP01"; then per regular file 'F', the
 * length of its path relative to the folder (u16), the path, its mode's
 * permission bits (u32), its size (u64) and its bytes; then 'E' and
 * nothing after it. Integers are big-endian. A path is 1 to
 * HD_SNAPARC_MAX_PATH bytes of components separated by '/', each of
 * [A-Za-z0-9._-], none empty, "." or "..": never absolute and never out of
 * the folder. Folders are implied by the paths of their files.
 *
 * The archive carries no digest of its own: replsnap.c checks the SHA-256
 * and the length of the whole stream against its manifest. The reader
 * still refuses anything malformed with HERALD_ECORRUPT, whatever the
 * bytes, and never writes outside the folder it unpacks into.
 *
 * Caveats:
 * - Only regular files and folders are archived; the writer refuses a
 *   folder holding anything else (a backup holds nothing else), and skips
 *   the lock files `lock.mdb` and `herald.lock` at the top, which opening
 *   the folder makes again.
 * - Neither side is thread-safe; each reader or unpacker is used by one
 *   thread at a time.
 */
#ifndef HD_SNAPARC_H
#define HD_SNAPARC_H

#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"

#define HD_SNAPARC_MAGIC    "HDSNAP01"
#define HD_SNAPARC_MAX_PATH 255

/*
 * Writes the archive of folder `dir` through `emit`, in pieces of any size
 * (each valid during the call). An error `emit` returns ends the walk and is
 * returned. *files (may be NULL) gets the number of files archived.
 * Errors: HERALD_EINVAL (something in `dir` that is not a regular file or a
 * folder, a name the format cannot carry, a folder nested too deep),
 * HERALD_EIO (reading; a file that changed size while read),
 * HERALD_ENOMEM, and those of `emit`.
 */
typedef int (*hd_snaparc_emit_fn)(void *ctx, const uint8_t *p, size_t n, herald_error *err);
int hd__snaparc_write(const char *dir, hd_snaparc_emit_fn emit, void *ctx, uint64_t *files,
                      herald_error *err);

/*
 * What a reader finds, in order: begin (a file's path, NUL-terminated and
 * already checked as above; mode; size), data (its bytes, in pieces of any
 * size, `size` in all), end. Strings and pieces are valid during the call.
 * A callback's error stops the reader, which returns it. Any callback may
 * be NULL.
 */
typedef struct hd_snaparc_sink {
    int (*begin)(void *ctx, const char *path, uint32_t mode, uint64_t size, herald_error *err);
    int (*data)(void *ctx, const uint8_t *p, size_t n, herald_error *err);
    int (*end)(void *ctx, herald_error *err);
    void *ctx;
} hd_snaparc_sink;

/* A reader's state: owned by the caller (on its stack or in its structures), no allocation. */
typedef struct hd_snaparc_reader {
    hd_snaparc_sink sink;
    int state;                          /* where in the format the next byte goes */
    uint8_t head[12];                   /* the fixed-size field being collected */
    char path[HD_SNAPARC_MAX_PATH + 1]; /* the current file's path */
    size_t have, need;                  /* bytes of the field collected, and needed */
    uint64_t offset;                    /* bytes read so far (for messages) */
    uint64_t left;                      /* bytes of the current file still to come */
    uint64_t files;                     /* files read so far */
    int failed;                         /* the error that stopped it, or 0 */
} hd_snaparc_reader;

void hd__snaparc_reader_init(hd_snaparc_reader *r, const hd_snaparc_sink *sink);
/*
 * Reads `n` more bytes of the archive. HERALD_ECORRUPT (with where and why)
 * for bytes that are not an archive: a bad magic or tag, a path refused as
 * above, a mode outside 0777, anything after the end; or the sink's error.
 * After an error every later call returns it again.
 */
int hd__snaparc_feed(hd_snaparc_reader *r, const uint8_t *p, size_t n, herald_error *err);
/* Whether the archive ended where it should: HERALD_ECORRUPT when it was cut short. */
int hd__snaparc_finish(hd_snaparc_reader *r, herald_error *err);

/*
 * A sink that writes the files into folder `root` (which exists and is
 * new): folders made as paths need them (mode 0700), each file created
 * (never over an existing one: a path twice is HERALD_ECORRUPT) with its
 * mode, written and fsynced; never follows a link. hd__snaparc_unpack_close
 * fsyncs the folders made and frees the rest; call it once, also after a
 * failure (then it only frees). Files written stay for the caller to keep
 * or remove.
 */
typedef struct hd_snaparc_unpack hd_snaparc_unpack;
int hd__snaparc_unpack_open(const char *root, hd_snaparc_unpack **out, hd_snaparc_sink *sink,
                            herald_error *err);
int hd__snaparc_unpack_close(hd_snaparc_unpack *u, herald_error *err);

/*
 * The name of a new folder to unpack into: `dest` without trailing slashes,
 * into `target` (`size` bytes). HERALD_EINVAL when it is empty, too long or
 * exists (anything at that path); HERALD_EIO when it cannot be looked up.
 */
int hd__snaparc_target(const char *dest, char *target, size_t size, herald_error *err);

/*
 * Makes folder `tmp` (a finished unpack) durable under the name `target`:
 * fsyncs it, renames it and fsyncs the folder that holds it. HERALD_EINVAL
 * when `target` exists as a folder that is not empty, HERALD_EIO.
 */
int hd__snaparc_place(const char *tmp, const char *target, herald_error *err);

/* Removes folder `dir` and all it holds, never following links; for temporary folders. */
void hd__snaparc_remove_tree(const char *dir);

#endif
