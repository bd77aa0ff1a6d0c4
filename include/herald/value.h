/*
 * Herald values: the Convex data model in C.
 *
 * A herald_value is a tagged tree: null, int64, float64, boolean, string,
 * bytes, array or object. Trees own all their memory; herald_value_free()
 * releases a whole tree. Objects keep their fields sorted by key (bytewise),
 * which makes lookups logarithmic and gives every object one canonical form.
 *
 * Caveats
 * - Values are plain data with no internal locking; share them between
 *   threads only read-only.
 * - Strings may contain any bytes, including NUL; always use the length.
 *   The JSON text form cannot carry U+0000 inside strings (use bytes).
 * - Limits (SPEC §1) are checked where values enter Herald: JSON parsing
 *   and document validation. Trees built by hand may exceed them until then.
 */
#ifndef HERALD_VALUE_H
#define HERALD_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The order of the tags is Convex's total order across types. */
typedef enum herald_type {
    HERALD_UNDEFINED = 0, /* a missing field; never stored, sorts first */
    HERALD_NULL = 1,
    HERALD_INT64 = 2,
    HERALD_FLOAT64 = 3,
    HERALD_BOOLEAN = 4,
    HERALD_STRING = 5,
    HERALD_BYTES = 6,
    HERALD_ARRAY = 7,
    HERALD_OBJECT = 8,
} herald_type;

#define HERALD_MAX_DOCUMENT_BYTES (1024 * 1024)
#define HERALD_MAX_DEPTH          64
#define HERALD_MAX_FIELDS         1024
#define HERALD_MAX_ARRAY          8192
#define HERALD_MAX_FIELD_NAME     1024

typedef struct herald_value herald_value;
typedef struct herald_field herald_field;

struct herald_value {
    herald_type type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            char *ptr; /* NUL-terminated for convenience; may hold NULs */
            size_t len;
        } s; /* HERALD_STRING and HERALD_BYTES */
        struct {
            herald_value *items;
            size_t len, cap;
        } arr;
        struct {
            herald_field *fields; /* sorted by key, no duplicates */
            size_t len, cap;
        } obj;
    } u;
};

struct herald_field {
    char *key; /* NUL-terminated, no embedded NULs */
    size_t key_len;
    herald_value val;
};

/* Scalars: these never fail and own nothing. */
herald_value herald_null(void);
herald_value herald_int64(int64_t i);
herald_value herald_float64(double f);
herald_value herald_bool(bool b);
herald_value herald_undefined(void);

/* Copies `len` bytes. Return HERALD_ENOMEM on allocation failure. */
int herald_string(herald_value *out, const char *s, size_t len);
int herald_bytes(herald_value *out, const void *p, size_t len);
void herald_array_init(herald_value *out);
void herald_object_init(herald_value *out);

/* Appends `item` to an array, taking ownership of it (also on failure). */
int herald_array_push(herald_value *arr, herald_value item);

/*
 * Sets field `key` of an object, taking ownership of `val` (also on
 * failure). An existing field of that name is replaced and freed.
 */
int herald_object_set(herald_value *obj, const char *key, size_t key_len, herald_value val);

/* Removes field `key`; returns true if it was there. */
bool herald_object_remove(herald_value *obj, const char *key);

/*
 * Returns the field's value or NULL. The pointer is owned by `obj` and is
 * valid until `obj` is next modified or freed.
 */
const herald_value *herald_object_get(const herald_value *obj, const char *key);

/* Follows a dotted path ("metadata.width"); NULL when any step is missing. */
const herald_value *herald_value_path(const herald_value *v, const char *path);

/* Deep copy into *out. */
int herald_value_copy(herald_value *out, const herald_value *in);

/* Frees everything `v` owns and leaves it HERALD_UNDEFINED. NULL is allowed. */
void herald_value_free(herald_value *v);

/*
 * Convex's total order: undefined < null < int64 < float64 < boolean <
 * string < bytes < array < object. Floats use the IEEE total order
 * (-NaN < -inf < ... < -0 < +0 < ... < +inf < +NaN); strings and bytes
 * compare bytewise; arrays lexicographically; objects as sorted lists of
 * (key, value) pairs. Returns <0, 0 or >0.
 */
int herald_value_compare(const herald_value *a, const herald_value *b);
bool herald_value_equal(const herald_value *a, const herald_value *b);

/*
 * Convex JSON encoding.
 *
 * herald_value_from_json() parses JSON text: plain numbers are float64,
 * {"$integer": base64 of 8 little-endian bytes} is int64, {"$float": ...}
 * a float64 (NaN, infinities, -0), {"$bytes": base64} bytes. Keys starting
 * with '$' are refused elsewhere. Depth, field and element limits of
 * SPEC §1 are enforced. On failure *out is left HERALD_UNDEFINED.
 */
int herald_value_from_json(const char *text, size_t len, herald_value *out, herald_error *err);

/*
 * Writes the Convex JSON text of `v` into a new NUL-terminated string that
 * the caller frees with free(). Returns NULL on allocation failure.
 */
char *herald_value_to_json(const herald_value *v);

#ifdef __cplusplus
}
#endif
#endif
