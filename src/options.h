/*
 * Option tables: one entry per option of a command drives its command line
 * (`--name VALUE`, `--name=VALUE`), its environment variable
 * (`HERALD_<NAME>`), its line in a configuration file (`name = value`) and
 * its part of `--help`. Adding an option is adding an entry.
 *
 * Every value is checked against its entry before it is stored, and a bad
 * one is refused naming where it came from; nothing here allocates but the
 * text of a configuration file, or prints a value that is not an option's.
 */
#ifndef HERALD_OPTIONS_H
#define HERALD_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "herald/error.h"

typedef enum hd_opt_kind {
    HD_OPT_FLAG,    /* no value on the command line (`--name=false` clears it); elsewhere
                       1/0, true/false, yes/no, on/off */
    HD_OPT_NUMBER,  /* a whole number in [lo, hi] */
    HD_OPT_SIZE,    /* a whole number of `scale` bytes (1 or 1 MiB) in [lo, hi]; stored in bytes */
    HD_OPT_SECONDS, /* seconds, fractions allowed, in [lo, hi] */
    HD_OPT_STRING,  /* text: one of `choices` when given, else anything `check` accepts */
    HD_OPT_LIST,    /* comma-separated items, kept as written */
} hd_opt_kind;

/* How the field an entry sets is stored (HD_OPT_FIELD finds it). */
typedef enum hd_opt_store {
    HD_STORE_BOOL,
    HD_STORE_INT,
    HD_STORE_UNSIGNED, /* of `size` bytes: size_t, uint64_t, unsigned */
    HD_STORE_DOUBLE,
    HD_STORE_STRING, /* const char *: points into argv, the environment or the file's text */
} hd_opt_store;

typedef struct hd_option {
    const char *name;  /* the long flag without its dashes: "max-connections" */
    const char *alias; /* another name for it, or NULL */
    hd_opt_kind kind;
    const char *metavar; /* the value as --help shows it: "N", "BYTES", "MIB", "ADDR" */
    double lo, hi;       /* numbers, sizes and seconds: the range, in the option's unit */
    uint64_t scale;      /* sizes: bytes of one unit (1 << 20 for MiB); 0 means 1 */
    const char *range;   /* what a bad value is told, and --help shows: "1 to 64" */
    const char *choices; /* strings: the values allowed, "|" between them; NULL: any */
    bool (*check)(const char *value); /* strings: false refuses the value; NULL: any */
    const char *def;                  /* the default, as --help and the docs show it */
    const char *help;                 /* one or more sentences, no line breaks */
    bool secret;         /* its value is never repeated in a message (a key, a password) */
    size_t offset, size; /* where the value goes in the caller's struct */
    hd_opt_store store;
} hd_option;

/* `.offset`, `.size` and `.store` of the entry that sets `member` of a `type`. */
#define HD_OPT_FIELD(type, member)                                                                 \
    .offset = offsetof(type, member), .size = sizeof(((type *)0)->member),                         \
    .store = _Generic(((type *)0)->member,                                                         \
        bool: HD_STORE_BOOL,                                                                       \
        int: HD_STORE_INT,                                                                         \
        double: HD_STORE_DOUBLE,                                                                   \
        const char *: HD_STORE_STRING,                                                             \
        default: HD_STORE_UNSIGNED)

/* An option table and the environment's prefix of its variables ("HERALD_"). */
typedef struct hd_options {
    const hd_option *opts;
    size_t n;
    const char *env_prefix;
    const char *command; /* "serve": its messages start "serve: ..." */
} hd_options;

/* The entry called `name` (its name or alias; '_' matches '-'), or NULL. */
const hd_option *hd__option_find(const hd_options *t, const char *name, size_t len);

/* The environment variable of `o`: prefix, upper case, '-' as '_' ("HERALD_MAX_MESSAGE"). */
void hd__option_env_name(const hd_options *t, const hd_option *o, char *out, size_t n);

/*
 * Checks `value` against `o` and stores it in `base`. A bad value fails with
 * HERALD_EINVAL and err->message "<where>: bad --<name> (<range>)"; `value`
 * stays referenced by string options, so it must outlive `base`'s use.
 */
int hd__option_set(const hd_option *o, void *base, const char *value, const char *where,
                   herald_error *err);

/*
 * The command line, in order: `--name VALUE`, `--name=VALUE`, a flag alone.
 * Returns 0, 1 when it meets --help or -h (nothing after it is read), or
 * HERALD_EINVAL with err->message naming the option, the value or the
 * argument that is not one ("unknown option --x").
 */
int hd__options_args(const hd_options *t, void *base, int argc, char **argv, herald_error *err);

/* Every entry's variable that is set and not empty; a bad value names the variable. */
int hd__options_env(const hd_options *t, void *base, herald_error *err);

/*
 * A configuration file: `name = value` lines (the name as the long flag
 * without dashes, '_' allowed for '-', or the variable's name: MAX_AGE=1 as
 * max-age = 1), blank lines and `#` comments, a value
 * optionally in double quotes (then `#` is part of it). On success *text
 * holds the file's text, which string values point into: the caller frees it
 * after the last use of `base`. Fails with HERALD_ENOTFOUND/HERALD_EIO when
 * the file cannot be read, HERALD_EINVAL for a line that is not an option
 * ("FILE:LINE: ...").
 */
int hd__options_file(const hd_options *t, void *base, const char *path, char **text,
                     herald_error *err);

/* --help's list: per entry "  --name VALUE", its help, "env VAR, default DEF". */
void hd__options_help(const hd_options *t, FILE *out);

/* The names, "--a --b ...", wrapped at 80 columns, each line indented by two spaces. */
void hd__options_list(const hd_options *t, FILE *out);

#endif
