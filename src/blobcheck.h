/*
 * `herald check` over stored files (docs/storage.md, "Files"): every
 * `_storage` row has its file, of the row's size, in DATA/files.
 */
#ifndef HD_BLOBCHECK_H
#define HD_BLOBCHECK_H

#include <stdint.h>

#include "herald/store.h"

/*
 * Checks the files of `s` (opened on its data folder, read-only or not)
 * against its `_storage` rows. Reports through `report`, one line each:
 * as problems, counted in *problems, a row whose file is missing and a
 * file whose size is not its row's; as notices ("notice: ..."), not
 * counted, files without a row and temporary files (what a crash or an
 * upload in progress leaves; `herald serve` removes them at start).
 * Beside a running server, a row deleted during the check is not a
 * problem: a missing file is confirmed against a fresh snapshot. Returns
 * 0, or an error when the files or the store cannot be read. A store
 * without `_storage` (written before it existed, opened read-only) has
 * nothing to check.
 */
int hd__blobs_check(herald_store *s, herald_report_fn report, void *ctx, uint64_t *problems,
                    herald_error *err);

/*
 * herald_store_check() and then hd__blobs_check(), reported through the
 * same `report`: HERALD_ECORRUPT ("N problems found") when either found a
 * problem, as herald_store_check() alone returns it.
 */
int hd__check(herald_store *s, herald_report_fn report, void *ctx, herald_error *err);

#endif
