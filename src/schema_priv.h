/*
 * Private schema helpers shared by the schema parsers and the store.
 */
#ifndef HD_SCHEMA_PRIV_H
#define HD_SCHEMA_PRIV_H

#include <cjson/cJSON.h>

#include "herald/schema.h"

/*
 * Resolves the text form of a document id to the name of its table, or
 * NULL when the id is not well formed or names no table. Used to check
 * v.id(table) fields; the store passes its own resolver.
 */
typedef const char *(*hd_id_table_fn)(void *ctx, const char *id, size_t len);

/*
 * herald_validate() with an id resolver (`fn` may be NULL: then a v.id()
 * field only has to be a string).
 */
int hd__validate(const herald_validator *val, const herald_value *v, const char *path,
                 hd_id_table_fn fn, void *ctx, herald_error *err);

/*
 * Translates a Convex-style schema.ts into the canonical JSON form as a
 * cJSON tree (caller frees with cJSON_Delete). Errors name
 * "file:line:col".
 */
int hd__schema_ts_to_json(const char *text, size_t len, const char *filename, cJSON **out,
                          herald_error *err);

/* herald_schema_from_json() from an already parsed cJSON tree. */
int hd__schema_from_cjson(const cJSON *root, const char *source, herald_schema **out,
                          herald_error *err);

/*
 * One validator from its canonical JSON (docs/schema.md), for function
 * arguments and return values: v.id() tables are resolved in `schema`
 * (NULL: any table name). `optional` may be NULL; otherwise the validator
 * may carry "optional" and *optional tells whether it did. *out is freed
 * with hd__validator_free().
 */
int hd__validator_from_cjson(const cJSON *j, const herald_schema *schema, const char *source,
                             bool *optional, herald_validator **out, herald_error *err);
void hd__validator_free(herald_validator *v);
/*
 * Herald's system tables (`_storage`, docs/storage.md "Files"), as a schema
 * of their own that lives as long as the process; NULL when out of memory.
 */
const herald_schema *hd__system_schema(void);

/* True when the two validators accept exactly the same documents (same tree). */
int hd__validator_equal(const herald_validator *a, const herald_validator *b);

/*
 * An app folder's schema file: `app`/schema.json if present, else
 * `app`/schema.ts, written to `out` (n bytes). Returns 0, or -1 when the
 * folder has neither.
 */
int hd__schema_app_path(const char *app, char *out, size_t n);
/* Loads the app folder's schema file (HERALD_ENOTFOUND when it has none). */
int hd__schema_load_app(const char *app, herald_schema **out, herald_error *err);

#endif
