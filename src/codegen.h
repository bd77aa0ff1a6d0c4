/*
 * `herald codegen`: TypeScript types for a Convex frontend (docs/codegen.md).
 *
 * Writes `api.js`, `api.d.ts` and `dataModel.d.ts` as Convex's own codegen
 * lays them out in `convex/_generated/`, from an app's schema and its
 * functions' `args` and `returns` validators, so that a frontend written
 * against the `convex` npm package imports `api` and type-checks its calls.
 *
 * This module only reads a loaded schema and runtime and writes files; it
 * must never run a function or open a data folder.
 */
#ifndef HD_CODEGEN_H
#define HD_CODEGEN_H

#include "fn.h"
#include "herald/error.h"
#include "herald/schema.h"

/*
 * Writes the three files into `out_dir` (created with its parents if
 * missing). Each file is written under a temporary name, fsynced, and only
 * once all three are complete are they renamed over the old ones, so a
 * failure leaves the previous files as they were (a crash between renames
 * may leave some new and some old). `rt` must have been built from
 * `schema`. Fails with HERALD_EIO naming the path that could not be
 * written, HERALD_EINVAL when two functions would have the same place in
 * `api` (module `a` exporting `b` beside a module `a/b`), HERALD_ENOMEM.
 */
int hd__codegen_write(const herald_schema *schema, const hd_fnrt *rt, const char *out_dir,
                      herald_error *err);

#endif
