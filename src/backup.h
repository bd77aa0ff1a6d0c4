/*
 * Hot backups of a data folder (`herald backup`, `herald restore`;
 * docs/operations.md, "Backups").
 *
 * A backup is itself a data folder: `data.mdb`, a compacted copy of the
 * database from one snapshot; `files/<id>`, the file of each `_storage` row
 * of that snapshot and no other; and the folder's secrets, `storage.key`
 * (the key of file URLs) and `admin.key` with `admin-key.sha256` (the admin
 * key), each mode 0600. `herald serve` and `herald check` run on it as they
 * run on the original, and restoring is backing the backup up again into
 * the new data folder.
 *
 * Caveats:
 * - The source may be written meanwhile (a server beside the backup): the
 *   source store is opened read-only and the writer never waits for it.
 * - Everything is written under `<dest>.tmp-XXXXXX`, fsynced, and renamed
 *   to `dest` at the end (then the parent folder is fsynced): a folder named
 *   `dest` is always a finished backup. An interrupted run leaves the
 *   `.tmp-` folder, which nothing reads; delete it.
 */
#ifndef HD_BACKUP_H
#define HD_BACKUP_H

#include <stdint.h>

#include "herald/store.h"

typedef struct hd_backup_info {
    uint64_t version;  /* the commit version of the copied snapshot */
    uint64_t files;    /* stored files copied */
    uint64_t bytes;    /* bytes written: the database and the files */
    unsigned attempts; /* snapshots taken (more than 1 when files were deleted meanwhile) */
} hd_backup_info;

/*
 * Copies store `s`, open (read-only, or as the writer) on data folder
 * `data_dir`, into `dest`, which must not exist or be an empty folder.
 *
 * The files: a row's file is renamed into place before the row commits, so
 * every row of the snapshot has its file when the snapshot is taken; but a
 * server may delete the row afterwards and remove the file once that
 * deletion is durable, before this gets to it. So the files named by the
 * copied snapshot are copied from the source folder (each checked against
 * its row's size and SHA-256, and fsynced); when some have gone, a newer
 * snapshot is copied and only the files still missing are copied, those no
 * longer named removed, until one snapshot has all its files.
 *
 * Errors: HERALD_EINVAL (`dest` is not empty, or not a folder),
 * HERALD_EBUSY (files kept disappearing through 10 snapshots),
 * HERALD_ECORRUPT (a file is not its row's bytes: see `herald check`),
 * HERALD_EIO, HERALD_ENOMEM, and the store's errors. On failure nothing is
 * left at `dest` and the temporary folder is removed.
 */
int hd__backup(herald_store *s, const char *data_dir, const char *dest, hd_backup_info *info,
               herald_error *err);

/* Removes a backup folder (its files/ and files, then itself); nothing else is touched. */
void hd__backup_remove(const char *dir);

#endif
