/*
 * Option tables (options.h): the command line, the environment and a
 * configuration file, read through one table, and the help written from it.
 *
 * It never exits or prints an error itself: the command says what failed.
 * It must never store a value its entry does not allow.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

/* The longest value a message repeats: enough to recognise it, never a screenful. */
#define SHOWN_VALUE 60

static bool same_name(const char *name, const char *text, size_t len)
{
    if (!name || strlen(name) != len) return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i] == '_' ? '-' : (char)tolower((unsigned char)text[i]);
        if (c != name[i]) return false;
    }
    return true;
}

const hd_option *hd__option_find(const hd_options *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->n; i++)
        if (same_name(t->opts[i].name, name, len) || same_name(t->opts[i].alias, name, len))
            return &t->opts[i];
    return NULL;
}

void hd__option_env_name(const hd_options *t, const hd_option *o, char *out, size_t n)
{
    int len = snprintf(out, n, "%s%s", t->env_prefix, o->name);
    for (int i = (int)strlen(t->env_prefix); i < len && (size_t)i < n; i++)
        out[i] = out[i] == '-' ? '_' : (char)toupper((unsigned char)out[i]);
}

static bool parse_flag(const char *v, bool *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i])) return *out = true;
        if (!strcasecmp(v, no[i])) return !(*out = false);
    }
    return false;
}

/* A whole number, digits only (no sign, no space, no exponent), as an exact integer. */
static bool parse_whole(const char *v, uint64_t *out)
{
    if (!isdigit((unsigned char)*v)) return false;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (*end || errno) return false;
    *out = n;
    return true;
}

/* Digits with at most one point among them: no sign, exponent, hex or "inf" (strtod's). */
static bool is_decimal(const char *v)
{
    size_t whole = strspn(v, "0123456789");
    if (!whole) return false;
    if (v[whole] == '.') whole += 1 + strspn(v + whole + 1, "0123456789");
    return v[whole] == '\0';
}

static bool one_of(const char *choices, const char *v)
{
    size_t len = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, v, n)) return true;
        p += n + (bar != NULL);
    }
    return false;
}

static void store_unsigned(const hd_option *o, void *field, uint64_t n)
{
    if (o->size == sizeof(uint64_t)) {
        memcpy(field, &n, sizeof n);
    } else if (o->size == sizeof(uint32_t)) {
        uint32_t v = (uint32_t)n;
        memcpy(field, &v, sizeof v);
    }
}

int hd__option_set(const hd_option *o, void *base, const char *value, const char *where,
                   herald_error *err)
{
    void *field = (char *)base + o->offset;
    bool ok = true;
    if (o->kind == HD_OPT_FLAG) {
        bool on = false;
        ok = parse_flag(value, &on);
        if (ok) memcpy(field, &on, sizeof on);
    } else if (o->kind == HD_OPT_NUMBER || o->kind == HD_OPT_SIZE) {
        uint64_t n = 0;
        ok = parse_whole(value, &n) && (double)n >= o->lo && (double)n <= o->hi;
        uint64_t scale = o->kind == HD_OPT_SIZE && o->scale ? o->scale : 1;
        if (!ok) {
        } else if (o->store == HD_STORE_INT) {
            int v = (int)n;
            memcpy(field, &v, sizeof v);
        } else if (o->store == HD_STORE_DOUBLE) {
            double v = (double)(n * scale);
            memcpy(field, &v, sizeof v);
        } else {
            store_unsigned(o, field, n * scale);
        }
    } else if (o->kind == HD_OPT_SECONDS) {
        bool decimal = is_decimal(value);
        double s = decimal ? strtod(value, NULL) : NAN;
        ok = decimal && s >= o->lo && s <= o->hi;
        if (ok && o->store == HD_STORE_DOUBLE) memcpy(field, &s, sizeof s);
        if (ok && o->store == HD_STORE_UNSIGNED) store_unsigned(o, field, (uint64_t)s);
    } else {
        ok = *value && (!o->choices || one_of(o->choices, value)) && (!o->check || o->check(value));
        if (ok) memcpy(field, &value, sizeof value);
    }
    if (ok) return 0;
    const char *expected = o->range     ? o->range
                           : o->choices ? o->choices
                           : o->metavar ? o->metavar
                                        : "true or false";
    return herald_fail(err, HERALD_EINVAL, "%s: bad --%s (%s)", where, o->name, expected);
}

static int unknown(const hd_options *t, herald_error *err, const char *what)
{
    return herald_fail(err, HERALD_ENOTFOUND, "%s: unknown option %.*s", t->command, SHOWN_VALUE,
                       what);
}

int hd__options_args(const hd_options *t, void *base, int argc, char **argv, herald_error *err)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) return 1;
        if (arg[0] == '-' && strncmp(arg, "--", 2)) return unknown(t, err, arg);
        if (strncmp(arg, "--", 2) || !arg[2]) {
            return herald_fail(err, HERALD_EINVAL, "%s: unexpected argument \"%.*s\"", t->command,
                               SHOWN_VALUE, arg);
        }
        const char *name = arg + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const hd_option *o = hd__option_find(t, name, len);
        /* On the command line a name is written with dashes only, as --help shows it. */
        if (!o || memchr(name, '_', len)) return unknown(t, err, arg);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->kind == HD_OPT_FLAG) value = "true";
        if (!value && i + 1 >= argc)
            return herald_fail(err, HERALD_EINVAL, "%s: --%s needs a value (%s)", t->command,
                               o->name, o->metavar);
        if (!value) value = argv[++i];
        int rc = hd__option_set(o, base, value, t->command, err);
        if (rc) return rc;
    }
    return 0;
}

int hd__options_env(const hd_options *t, void *base, herald_error *err)
{
    for (size_t i = 0; i < t->n; i++) {
        char var[128], where[128 + SHOWN_VALUE + 2];
        hd__option_env_name(t, &t->opts[i], var, sizeof var);
        const char *value = getenv(var);
        if (!value || !*value) continue;
        snprintf(where, sizeof where, "%s=%.*s", var, SHOWN_VALUE,
                 t->opts[i].secret ? "(not shown)" : value);
        int rc = hd__option_set(&t->opts[i], base, value, where, err);
        if (rc) return rc;
    }
    return 0;
}

static char *trim(char *s, char *end)
{
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    *end = '\0';
    return s;
}

/* One line of a configuration file, changed in place (its value ends where the line did). */
static int file_line(const hd_options *t, void *base, const char *path, int lineno, char *line,
                     herald_error *err)
{
    char *end = line + strlen(line);
    char *text = trim(line, end);
    if (!*text || *text == '#') return 0;
    char *eq = strchr(text, '=');
    if (!eq)
        return herald_fail(err, HERALD_EINVAL, "%s:%d: expected \"name = value\"", path, lineno);
    char *name = trim(text, eq), *value = eq + 1;
    /* A variable's name works too: one file serves as --config and as a list of variables
     * (systemd's EnvironmentFile). */
    size_t prefix = strlen(t->env_prefix);
    const char *bare = strncmp(name, t->env_prefix, prefix) ? name : name + prefix;
    const hd_option *o = hd__option_find(t, bare, strlen(bare));
    if (!o)
        return herald_fail(err, HERALD_ENOTFOUND, "%s:%d: unknown option \"%.*s\"", path, lineno,
                           SHOWN_VALUE, name);
    value = trim(value, value + strlen(value));
    if (*value == '"') {
        char *close = strchr(value + 1, '"');
        char *after = close ? trim(close + 1, close + 1 + strlen(close + 1)) : NULL;
        if (!close || (*after && *after != '#'))
            return herald_fail(err, HERALD_EINVAL, "%s:%d: a quoted value must end its line", path,
                               lineno);
        *close = '\0';
        value++;
    } else {
        /* A comment starts at a '#' after a space: "port = 80  # the proxy's". */
        for (char *p = value; *p; p++)
            if (*p == '#' && p > value && isspace((unsigned char)p[-1])) {
                value = trim(value, p);
                break;
            }
    }
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    return hd__option_set(o, base, value, where, err);
}

int hd__options_file(const hd_options *t, void *base, const char *path, char **text,
                     herald_error *err)
{
    *text = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return herald_fail(err, HERALD_EIO, "cannot read the configuration file %s: %s", path,
                           strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 < cap) continue;
        char *bigger = cap < ((size_t)1 << 20) ? realloc(buf, cap * 2) : NULL;
        if (!bigger) {
            rc = herald_fail(err, HERALD_ELIMIT, "the configuration file %s is over 1 MiB", path);
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!rc && !buf) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc && ferror(f)) rc = herald_fail(err, HERALD_EIO, "cannot read %s", path);
    fclose(f);
    if (!rc && memchr(buf, '\0', len))
        rc = herald_fail(err, HERALD_EINVAL, "%s: not a text file", path);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    int lineno = 1;
    for (char *line = buf; !rc && line; lineno++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        rc = file_line(t, base, path, lineno, line, err);
        line = nl ? nl + 1 : NULL;
    }
    if (rc) {
        free(buf);
        return rc;
    }
    *text = buf;
    return 0;
}

/* Writes `text` as words wrapped at 80 columns, each line indented by `indent`. */
static void wrap(FILE *out, const char *text, int indent)
{
    int col = 0;
    for (const char *p = text; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (!n) break;
        if (col && col + 1 + (int)n > 79) {
            fputc('\n', out);
            col = 0;
        }
        col +=
            col ? fprintf(out, " %.*s", (int)n, p) : fprintf(out, "%*s%.*s", indent, "", (int)n, p);
        p += n;
    }
    if (col) fputc('\n', out);
}

void hd__options_help(const hd_options *t, FILE *out)
{
    for (size_t i = 0; i < t->n; i++) {
        const hd_option *o = &t->opts[i];
        fprintf(out, "  --%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
        if (o->alias) fprintf(out, " (or --%s)", o->alias);
        fputc('\n', out);
        char help[1200], var[128];
        const char *range = o->range ? o->range : o->choices;
        snprintf(help, sizeof help, "%s%s%s%s", o->help, range ? " (" : "", range ? range : "",
                 range ? ")" : "");
        wrap(out, help, 6);
        hd__option_env_name(t, o, var, sizeof var);
        snprintf(help, sizeof help, "env %s, default %s", var, o->def);
        wrap(out, help, 6);
    }
}

void hd__options_list(const hd_options *t, FILE *out)
{
    char line[4096];
    size_t len = 0;
    for (size_t i = 0; i < t->n && len + 40 < sizeof line; i++)
        len += (size_t)snprintf(line + len, sizeof line - len, "%s--%s", i ? " " : "",
                                t->opts[i].name);
    wrap(out, line, 2);
}
