/*
 * Herald schemas: tables, validators and indexes (SPEC §2).
 *
 * A schema is loaded from the app's canonical `schema.json` or from a
 * `schema.ts` written in Convex's defineSchema / defineTable / v.* form,
 * which Herald parses itself (no JavaScript engine) into the same JSON.
 * The JSON form is documented in docs/schema.md.
 *
 * Caveats
 * - A herald_schema is immutable once loaded and may be shared read-only
 *   between threads. The store keeps its own reference to the schema it
 *   runs with (see herald_store_set_schema()).
 * - Every table has the system fields `_id` and `_creationTime` and the
 *   system indexes `by_id` and `by_creation_time`; they are not declared.
 */
#ifndef HERALD_SCHEMA_H
#define HERALD_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "herald/error.h"
#include "herald/value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum herald_vkind {
    HERALD_V_ANY = 0,
    HERALD_V_NULL,
    HERALD_V_NUMBER, /* float64; Convex's v.number() */
    HERALD_V_INT64,
    HERALD_V_BOOLEAN,
    HERALD_V_STRING,
    HERALD_V_BYTES,
    HERALD_V_ID, /* a document id of `table` */
    HERALD_V_LITERAL,
    HERALD_V_ARRAY,
    HERALD_V_OBJECT,
    HERALD_V_RECORD,
    HERALD_V_UNION,
} herald_vkind;

typedef struct herald_validator herald_validator;
typedef struct herald_vfield {
    char *name;
    bool optional;
    herald_validator *v;
} herald_vfield;

struct herald_validator {
    herald_vkind kind;
    char *table;             /* HERALD_V_ID */
    herald_value literal;    /* HERALD_V_LITERAL */
    herald_validator *items; /* HERALD_V_ARRAY element; HERALD_V_RECORD values */
    herald_validator *keys;  /* HERALD_V_RECORD keys */
    herald_vfield *fields;   /* HERALD_V_OBJECT, sorted by name */
    size_t nfields;
    herald_validator **members; /* HERALD_V_UNION */
    size_t nmembers;
};

typedef struct herald_index_def {
    char *name;
    char **fields; /* dotted paths; `_creationTime` and `_id` are implicit */
    size_t nfields;
} herald_index_def;

typedef struct herald_search_index_def {
    char *name;
    char *search_field;
    char **filter_fields;
    size_t nfilter_fields;
} herald_search_index_def;

typedef struct herald_vector_index_def {
    char *name;
    char *vector_field;
    int dimensions;
    char **filter_fields;
    size_t nfilter_fields;
} herald_vector_index_def;

typedef struct herald_table_def {
    char *name;
    herald_validator *document; /* an object, a union of objects, or any */
    herald_index_def *indexes;  /* user indexes only, in declaration order */
    size_t nindexes;
    herald_search_index_def *search_indexes;
    size_t nsearch_indexes;
    herald_vector_index_def *vector_indexes;
    size_t nvector_indexes;
    /* A system table (`_storage`), which every store has besides its schema's
     * tables: written only by Herald itself (hd__system_schema()). */
    bool system;
} herald_table_def;

typedef struct herald_schema {
    herald_table_def *tables; /* sorted by name */
    size_t ntables;
    bool schema_validation; /* defineSchema(..., {schemaValidation}) ; default true */
} herald_schema;

/*
 * Parses the canonical JSON form. `source` names the origin in messages.
 * On success *out is a new schema the caller frees with herald_schema_free().
 */
int herald_schema_from_json(const char *text, size_t len, const char *source, herald_schema **out,
                            herald_error *err);

/*
 * Parses a Convex-style schema.ts. A syntax error names file, line and
 * column; an unsupported construct says which one.
 */
int herald_schema_from_ts(const char *text, size_t len, const char *filename, herald_schema **out,
                          herald_error *err);

/* Reads `path`, choosing the parser by its extension (.json or .ts). */
int herald_schema_load_file(const char *path, herald_schema **out, herald_error *err);

/*
 * Canonical JSON text of the schema, newly allocated (free()); NULL on
 * allocation failure. herald_schema_from_json() of it gives an equal schema.
 */
char *herald_schema_to_json(const herald_schema *s);

void herald_schema_free(herald_schema *s);

const herald_table_def *herald_schema_table(const herald_schema *s, const char *name);

/*
 * Checks `v` against validator `val`. On failure the message names the
 * path of the offending field ("metadata.width: expected number, got
 * string"). `path` prefixes the message and may be NULL.
 */
int herald_validate(const herald_validator *val, const herald_value *v, const char *path,
                    herald_error *err);

/* Canonical JSON of a single validator (free()); used in messages and tools. */
char *herald_validator_to_json(const herald_validator *v);

#ifdef __cplusplus
}
#endif
#endif
