/*
 * schema.ts reader: translates a Convex-style `schema.ts` into Herald's
 * canonical schema JSON (docs/schema.md) with a hand-written tokenizer and
 * a recursive-descent parser.
 *
 * The file is read in two passes. The parser turns the token stream into a
 * small generic expression tree (literals, identifiers, member accesses,
 * calls, object and array literals); `const` bindings are resolved while
 * parsing, so a name can only refer to something declared above it and the
 * tree has no cycles. The evaluator then walks the `export default`
 * expression knowing what each position must hold (a schema, a table, a
 * validator, a string...) and builds the cJSON tree.
 *
 * This module must never execute or approximate JavaScript: anything
 * outside the documented subset is refused with "file:line:col: unsupported
 * construct: ...". No input, however malformed, may crash it, recurse
 * without bound or make it build an unbounded tree: bracket nesting is
 * capped at MAX_NESTING and the evaluation of shared constants at
 * MAX_EVAL_NODES. Semantic rules (names, indexes, id tables, limits) belong
 * to hd__schema_from_cjson() so that both schema forms obey the same ones;
 * only what the JSON cannot show any more (duplicate keys) is checked here.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "buf.h"
#include "schema_priv.h"

#define MAX_NESTING    64
#define MAX_EVAL_NODES 200000

/* ---------------------------------------------------------------- tokens */

enum tok_kind { T_EOF, T_IDENT, T_STRING, T_NUMBER, T_BIGINT, T_PUNCT };

struct token {
    enum tok_kind kind;
    size_t start, end; /* byte offsets in the source */
    int line, col;
    char *text;    /* T_IDENT and T_STRING: decoded, NUL-terminated, owned */
    double num;    /* T_NUMBER */
    uint64_t big;  /* T_BIGINT: magnitude */
    char punct[4]; /* T_PUNCT */
};

enum node_kind {
    N_STRING,
    N_NUMBER,
    N_BIGINT,
    N_BOOL,
    N_NULL,
    N_IDENT,
    N_MEMBER,
    N_CALL,
    N_OBJECT,
    N_ARRAY,
    N_PROP,
    N_SPREAD,
};

/*
 * One expression. `target` is the bound expression of an N_IDENT (not
 * owned; NULL when unbound), the object of an N_MEMBER, the callee of an
 * N_CALL and the value of an N_PROP or N_SPREAD. Every node is also on the
 * parser's allocation list, which is how they are freed.
 */
struct node {
    enum node_kind kind;
    int line, col;   /* where the expression starts */
    int pline, pcol; /* N_MEMBER: where the property name is */
    char *text;      /* N_STRING value, N_IDENT name, N_MEMBER property, N_PROP key */
    double num;
    uint64_t big;
    bool neg; /* N_BIGINT */
    bool b;   /* N_BOOL */
    struct node *target;
    struct node **kids; /* N_CALL arguments, N_OBJECT members, N_ARRAY elements */
    size_t nkids, capkids;
    struct node *next_alloc;
};

struct binding {
    char *name;
    struct node *expr;
};

struct parser {
    const char *src;
    size_t len, pos;
    int line, col;
    const char *file;
    herald_error *err;
    struct token tok;   /* the current, not yet consumed token */
    int prev_line;      /* line of the last consumed token's end */
    int depth;          /* bracket nesting while parsing, validator nesting while evaluating */
    long budget;        /* nodes the evaluator may still visit */
    struct node *nodes; /* allocation list */
    struct binding *bindings;
    size_t nbindings, capbindings;
    struct node *schema; /* the `export default` expression */
    int schema_line, schema_col;
};

static int oom(struct parser *p)
{
    return herald_fail(p->err, HERALD_ENOMEM, "%s: out of memory", p->file);
}

static int fail_at(struct parser *p, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_at(struct parser *p, int line, int col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return herald_fail(p->err, HERALD_ESCHEMA, "%s:%d:%d: %s", p->file, line, col, msg);
}

/* ------------------------------------------------------------- tokenizer */

static int peekc(const struct parser *p, size_t ahead)
{
    return p->pos + ahead < p->len ? (unsigned char)p->src[p->pos + ahead] : -1;
}

/* Columns count characters, not bytes: UTF-8 continuation bytes add none. */
static void advance(struct parser *p)
{
    unsigned char c = (unsigned char)p->src[p->pos++];
    if (c == '\n') {
        p->line++;
        p->col = 1;
    } else if ((c & 0xC0) != 0x80) {
        p->col++;
    }
}

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static bool is_ident_char(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_utf8(hd_buf *b, uint32_t cp)
{
    if (cp < 0x80) {
        hd__buf_byte(b, (uint8_t)cp);
    } else if (cp < 0x800) {
        hd__buf_byte(b, (uint8_t)(0xC0 | (cp >> 6)));
        hd__buf_byte(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        hd__buf_byte(b, (uint8_t)(0xE0 | (cp >> 12)));
        hd__buf_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        hd__buf_byte(b, (uint8_t)(0x80 | (cp & 0x3F)));
    } else {
        hd__buf_byte(b, (uint8_t)(0xF0 | (cp >> 18)));
        hd__buf_byte(b, (uint8_t)(0x80 | ((cp >> 12) & 0x3F)));
        hd__buf_byte(b, (uint8_t)(0x80 | ((cp >> 6) & 0x3F)));
        hd__buf_byte(b, (uint8_t)(0x80 | (cp & 0x3F)));
    }
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    size_t need;
    uint32_t cp;
    if (s[0] < 0x80) return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        need = 2;
        cp = s[0] & 0x1F;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        need = 3;
        cp = s[0] & 0x0F;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        need = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < need) return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && cp < 0x800) || (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

/* Reads \u escapes: XXXX or {X...}; the backslash and `u` are consumed. */
static int lex_unicode_escape(struct parser *p, uint32_t *cp, int line, int col)
{
    uint32_t v = 0;
    if (peekc(p, 0) == '{') {
        advance(p);
        int digits = 0;
        while (peekc(p, 0) != '}') {
            int h = hexval(peekc(p, 0));
            if (h < 0 || v > 0x10FFFF) return fail_at(p, line, col, "invalid unicode escape");
            v = v * 16 + (uint32_t)h;
            digits++;
            advance(p);
        }
        advance(p);
        if (digits == 0 || v > 0x10FFFF) return fail_at(p, line, col, "invalid unicode escape");
    } else {
        for (int i = 0; i < 4; i++) {
            int h = hexval(peekc(p, 0));
            if (h < 0) return fail_at(p, line, col, "invalid unicode escape");
            v = v * 16 + (uint32_t)h;
            advance(p);
        }
    }
    *cp = v;
    return 0;
}

static int lex_string(struct parser *p, struct token *t)
{
    int quote = peekc(p, 0);
    hd_buf b = HD_BUF_INIT;
    uint32_t high = 0; /* a pending high surrogate from a \u escape */
    int rc;

    advance(p);
    for (;;) {
        int c = peekc(p, 0);
        int line = p->line, col = p->col;
        if (c < 0 || ((c == '\n' || c == '\r') && quote != '`')) {
            rc = fail_at(p, t->line, t->col, "unterminated string");
            goto fail;
        }
        if (c == quote) {
            advance(p);
            break;
        }
        if (quote == '`' && c == '$' && peekc(p, 1) == '{') {
            rc =
                fail_at(p, line, col, "unsupported construct: template literal interpolation `${`");
            goto fail;
        }
        uint32_t cp = 0;
        if (c == '\\') {
            advance(p);
            int e = peekc(p, 0);
            if (e < 0) continue; /* reported as unterminated */
            advance(p);
            switch (e) {
            case 'n':
                cp = '\n';
                break;
            case 't':
                cp = '\t';
                break;
            case 'r':
                cp = '\r';
                break;
            case 'b':
                cp = '\b';
                break;
            case 'f':
                cp = '\f';
                break;
            case 'v':
                cp = '\v';
                break;
            case '\r':
                if (peekc(p, 0) == '\n') advance(p);
                continue; /* line continuation */
            case '\n':
                continue;
            case 'x': {
                int h1 = hexval(peekc(p, 0)), h2 = hexval(peekc(p, 1));
                if (h1 < 0 || h2 < 0) {
                    rc = fail_at(p, line, col, "invalid `\\x` escape");
                    goto fail;
                }
                advance(p);
                advance(p);
                cp = (uint32_t)(h1 * 16 + h2);
                break;
            }
            case 'u':
                if ((rc = lex_unicode_escape(p, &cp, line, col)) < 0) goto fail;
                break;
            default:
                if (e >= '0' && e <= '9') {
                    /* \0 would put a NUL in a name; octal escapes are legacy. */
                    rc = fail_at(p, line, col, "unsupported construct: `\\%c` escape", e);
                    goto fail;
                }
                if (e >= 0x80) {
                    /* An escaped non-ASCII character is itself. */
                    p->pos--;
                    p->col--;
                    size_t n = utf8_seq((const unsigned char *)p->src + p->pos, p->len - p->pos);
                    if (n == 0) {
                        rc = fail_at(p, line, col, "invalid UTF-8 in string");
                        goto fail;
                    }
                    hd__buf_append(&b, p->src + p->pos, n);
                    for (size_t i = 0; i < n; i++)
                        advance(p);
                    continue;
                }
                cp = (uint32_t)e;
                break;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (high) {
                    rc = fail_at(p, line, col, "unpaired surrogate in string");
                    goto fail;
                }
                high = cp;
                continue;
            }
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                if (!high) {
                    rc = fail_at(p, line, col, "unpaired surrogate in string");
                    goto fail;
                }
                cp = 0x10000 + ((high - 0xD800) << 10) + (cp - 0xDC00);
                high = 0;
            }
        } else {
            size_t n = utf8_seq((const unsigned char *)p->src + p->pos, p->len - p->pos);
            if (n == 0) {
                rc = fail_at(p, line, col, "invalid UTF-8 in string");
                goto fail;
            }
            if (high) {
                rc = fail_at(p, line, col, "unpaired surrogate in string");
                goto fail;
            }
            hd__buf_append(&b, p->src + p->pos, n);
            for (size_t i = 0; i < n; i++)
                advance(p);
            continue;
        }
        if (high) {
            rc = fail_at(p, line, col, "unpaired surrogate in string");
            goto fail;
        }
        if (cp == 0) {
            rc = fail_at(p, line, col, "NUL character in string");
            goto fail;
        }
        put_utf8(&b, cp);
    }
    if (high) {
        rc = fail_at(p, t->line, t->col, "unpaired surrogate in string");
        goto fail;
    }
    hd__buf_byte(&b, 0);
    if (hd__buf_failed(&b)) {
        rc = oom(p);
        goto fail;
    }
    t->kind = T_STRING;
    t->text = (char *)hd__buf_take(&b, NULL);
    return 0;
fail:
    hd__buf_free(&b);
    return rc;
}

static int lex_number(struct parser *p, struct token *t)
{
    char digits[128];
    size_t nd = 0;
    int base = 10;
    bool is_float = false, has_exp = false;

    if (peekc(p, 0) == '0' && peekc(p, 1) >= 0 && strchr("xXoObB", peekc(p, 1))) {
        int c = peekc(p, 1) | 0x20;
        base = c == 'x' ? 16 : c == 'o' ? 8 : 2;
        advance(p);
        advance(p);
    }
    for (;;) {
        int c = peekc(p, 0);
        if (c == '_') {
            advance(p);
            continue;
        }
        bool ok;
        if (base != 10) {
            int h = hexval(c);
            ok = h >= 0 && h < base;
        } else if (c >= '0' && c <= '9') {
            ok = true;
        } else if (c == '.' && !is_float) {
            ok = true;
            is_float = true;
        } else if ((c == 'e' || c == 'E') && !has_exp &&
                   (is_digit(peekc(p, 1)) ||
                    ((peekc(p, 1) == '+' || peekc(p, 1) == '-') && is_digit(peekc(p, 2))))) {
            if (nd + 3 >= sizeof digits) goto bad;
            digits[nd++] = (char)c;
            advance(p);
            if (!is_digit(peekc(p, 0))) {
                digits[nd++] = (char)peekc(p, 0);
                advance(p);
            }
            is_float = has_exp = true;
            continue;
        } else {
            ok = false;
        }
        if (!ok) break;
        if (nd + 1 >= sizeof digits) goto bad;
        digits[nd++] = (char)c;
        advance(p);
    }
    digits[nd] = 0;
    if (nd == 0 || (nd == 1 && digits[0] == '.')) goto bad;
    if (peekc(p, 0) == 'n' && !is_float) {
        advance(p);
        uint64_t v = 0;
        for (size_t i = 0; i < nd; i++) {
            uint64_t d = (uint64_t)hexval(digits[i]);
            if (v > (UINT64_MAX - d) / (uint64_t)base) {
                return fail_at(p, t->line, t->col, "bigint literal out of range");
            }
            v = v * (uint64_t)base + d;
        }
        if (is_ident_char(peekc(p, 0))) goto bad;
        t->kind = T_BIGINT;
        t->big = v;
        return 0;
    }
    if (is_ident_char(peekc(p, 0))) goto bad;
    if (base == 10) {
        errno = 0;
        t->num = strtod(digits, NULL);
    } else {
        double v = 0;
        for (size_t i = 0; i < nd; i++)
            v = v * base + hexval(digits[i]);
        t->num = v;
    }
    if (!isfinite(t->num)) return fail_at(p, t->line, t->col, "number literal out of range");
    t->kind = T_NUMBER;
    return 0;
bad:
    return fail_at(p, t->line, t->col, "invalid number literal");
}

/* Skips whitespace and comments. */
static int skip_space(struct parser *p)
{
    for (;;) {
        int c = peekc(p, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
            advance(p);
        } else if (c == '/' && peekc(p, 1) == '/') {
            while (peekc(p, 0) >= 0 && peekc(p, 0) != '\n')
                advance(p);
        } else if (c == '/' && peekc(p, 1) == '*') {
            int line = p->line, col = p->col;
            advance(p);
            advance(p);
            for (;;) {
                if (peekc(p, 0) < 0) return fail_at(p, line, col, "unterminated comment");
                if (peekc(p, 0) == '*' && peekc(p, 1) == '/') break;
                advance(p);
            }
            advance(p);
            advance(p);
        } else if (c == 0xC2 && peekc(p, 1) == 0xA0) {
            advance(p); /* NO-BREAK SPACE, which editors sometimes leave */
            advance(p);
        } else {
            return 0;
        }
    }
}

/* Replaces p->tok with the next token. */
static int next(struct parser *p)
{
    struct token *t = &p->tok;
    int rc;

    free(t->text);
    memset(t, 0, sizeof *t);
    if ((rc = skip_space(p)) < 0) return rc;
    t->start = p->pos;
    t->line = p->line;
    t->col = p->col;
    int c = peekc(p, 0);
    if (c < 0) {
        t->kind = T_EOF;
    } else if (is_ident_start(c)) {
        while (is_ident_char(peekc(p, 0)))
            advance(p);
        t->kind = T_IDENT;
        t->text = strndup(p->src + t->start, p->pos - t->start);
        if (!t->text) return oom(p);
    } else if (c == '"' || c == '\'' || c == '`') {
        if ((rc = lex_string(p, t)) < 0) return rc;
    } else if ((c >= '0' && c <= '9') || (c == '.' && peekc(p, 1) >= '0' && peekc(p, 1) <= '9')) {
        if ((rc = lex_number(p, t)) < 0) return rc;
    } else if (c == '.' && peekc(p, 1) == '.' && peekc(p, 2) == '.') {
        t->kind = T_PUNCT;
        strcpy(t->punct, "...");
        advance(p);
        advance(p);
        advance(p);
    } else if ((c == '=' && peekc(p, 1) == '>') || (c == '?' && peekc(p, 1) == '.')) {
        t->kind = T_PUNCT;
        t->punct[0] = (char)c;
        t->punct[1] = (char)peekc(p, 1);
        advance(p);
        advance(p);
    } else if (c > 0x20 && c < 0x7F) {
        t->kind = T_PUNCT;
        t->punct[0] = (char)c;
        advance(p);
    } else if (c >= 0x80 && utf8_seq((const unsigned char *)p->src + p->pos, p->len - p->pos)) {
        return fail_at(p, t->line, t->col, "unsupported construct: non-ASCII character");
    } else {
        return fail_at(p, t->line, t->col, "unexpected byte 0x%02x", (unsigned)c);
    }
    t->end = p->pos;
    return 0;
}

/* Consumes the current token, reading the next one. */
static int consume(struct parser *p)
{
    p->prev_line = p->line;
    return next(p);
}

static bool is_punct(const struct parser *p, const char *s)
{
    return p->tok.kind == T_PUNCT && strcmp(p->tok.punct, s) == 0;
}

static bool is_word(const struct parser *p, const char *s)
{
    return p->tok.kind == T_IDENT && strcmp(p->tok.text, s) == 0;
}

/* The current token as it appears in messages. */
static void describe_tok(const struct parser *p, char *buf, size_t size)
{
    const struct token *t = &p->tok;
    if (t->kind == T_EOF) {
        snprintf(buf, size, "end of file");
        return;
    }
    size_t n = t->end - t->start;
    bool cut = n > 32;
    if (cut) n = 32;
    /* A cut may split a character; keep the message valid UTF-8. */
    while (cut && n > 0 && ((unsigned char)p->src[t->start + n] & 0xC0) == 0x80)
        n--;
    snprintf(buf, size, "`%.*s%s`", (int)n, p->src + t->start, cut ? "..." : "");
}

static int expected(struct parser *p, const char *what)
{
    char found[64];
    describe_tok(p, found, sizeof found);
    return fail_at(p, p->tok.line, p->tok.col, "expected %s but found %s", what, found);
}

static int expect_punct(struct parser *p, const char *s)
{
    if (!is_punct(p, s)) {
        char what[16];
        snprintf(what, sizeof what, "`%s`", s);
        return expected(p, what);
    }
    return consume(p);
}

/* ---------------------------------------------------------------- parser */

static struct node *new_node(struct parser *p, enum node_kind kind, int line, int col)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->line = line;
    n->col = col;
    n->next_alloc = p->nodes;
    p->nodes = n;
    return n;
}

static int add_kid(struct parser *p, struct node *n, struct node *kid)
{
    if (n->nkids == n->capkids) {
        size_t cap = n->capkids ? n->capkids * 2 : 4;
        struct node **k = realloc(n->kids, cap * sizeof *k);
        if (!k) return oom(p);
        n->kids = k;
        n->capkids = cap;
    }
    n->kids[n->nkids++] = kid;
    return 0;
}

static struct node *lookup(const struct parser *p, const char *name)
{
    for (size_t i = p->nbindings; i-- > 0;)
        if (strcmp(p->bindings[i].name, name) == 0) return p->bindings[i].expr;
    return NULL;
}

static int enter(struct parser *p)
{
    if (++p->depth > MAX_NESTING)
        return fail_at(p, p->tok.line, p->tok.col, "nesting deeper than %d levels", MAX_NESTING);
    return 0;
}

static int parse_expr(struct parser *p, struct node **out);

/* Elements of an array literal or call: `close` ends the list. */
static int parse_list(struct parser *p, struct node *n, const char *close)
{
    int rc;
    char sep[16];
    snprintf(sep, sizeof sep, "`,` or `%s`", close);
    while (!is_punct(p, close)) {
        struct node *kid;
        if (is_punct(p, "...")) {
            kid = new_node(p, N_SPREAD, p->tok.line, p->tok.col);
            if (!kid) return oom(p);
            if ((rc = consume(p)) < 0) return rc;
            if ((rc = parse_expr(p, &kid->target)) < 0) return rc;
        } else if ((rc = parse_expr(p, &kid)) < 0) {
            return rc;
        }
        if ((rc = add_kid(p, n, kid)) < 0) return rc;
        if (is_punct(p, ",")) {
            if ((rc = consume(p)) < 0) return rc;
        } else if (!is_punct(p, close)) {
            return expected(p, sep);
        }
    }
    return consume(p);
}

static int parse_object(struct parser *p, struct node **out)
{
    int rc;
    struct node *obj = new_node(p, N_OBJECT, p->tok.line, p->tok.col);
    if (!obj) return oom(p);
    if ((rc = enter(p)) < 0 || (rc = consume(p)) < 0) return rc;
    while (!is_punct(p, "}")) {
        struct node *prop;
        int line = p->tok.line, col = p->tok.col;
        if (is_punct(p, "...")) {
            prop = new_node(p, N_SPREAD, line, col);
            if (!prop) return oom(p);
            if ((rc = consume(p)) < 0) return rc;
            if ((rc = parse_expr(p, &prop->target)) < 0) return rc;
        } else if (p->tok.kind == T_IDENT || p->tok.kind == T_STRING) {
            bool ident = p->tok.kind == T_IDENT;
            prop = new_node(p, N_PROP, line, col);
            if (!prop) return oom(p);
            prop->text = p->tok.text;
            p->tok.text = NULL;
            if ((rc = consume(p)) < 0) return rc;
            if (is_punct(p, ":")) {
                if ((rc = consume(p)) < 0) return rc;
                if ((rc = parse_expr(p, &prop->target)) < 0) return rc;
            } else if (ident && (is_punct(p, ",") || is_punct(p, "}"))) {
                /* Shorthand `name,` means `name: name`. */
                struct node *id = new_node(p, N_IDENT, line, col);
                if (!id) return oom(p);
                id->text = strdup(prop->text);
                if (!id->text) return oom(p);
                id->target = lookup(p, id->text);
                prop->target = id;
            } else {
                return expected(p, "`:`");
            }
        } else if (p->tok.kind == T_NUMBER || p->tok.kind == T_BIGINT) {
            return fail_at(p, line, col, "unsupported construct: numeric property name");
        } else if (is_punct(p, "[")) {
            return fail_at(p, line, col, "unsupported construct: computed property name");
        } else {
            return expected(p, "a property name");
        }
        if ((rc = add_kid(p, obj, prop)) < 0) return rc;
        if (is_punct(p, ",")) {
            if ((rc = consume(p)) < 0) return rc;
        } else if (!is_punct(p, "}")) {
            return expected(p, "`,` or `}`");
        }
    }
    if ((rc = consume(p)) < 0) return rc;
    p->depth--;
    *out = obj;
    return 0;
}

static int parse_primary(struct parser *p, struct node **out)
{
    int rc;
    int line = p->tok.line, col = p->tok.col;
    struct node *n = NULL;

    switch (p->tok.kind) {
    case T_STRING:
        if (!(n = new_node(p, N_STRING, line, col))) return oom(p);
        n->text = p->tok.text;
        p->tok.text = NULL;
        break;
    case T_NUMBER:
        if (!(n = new_node(p, N_NUMBER, line, col))) return oom(p);
        n->num = p->tok.num;
        break;
    case T_BIGINT:
        if (!(n = new_node(p, N_BIGINT, line, col))) return oom(p);
        n->big = p->tok.big;
        break;
    case T_IDENT:
        if (is_word(p, "true") || is_word(p, "false")) {
            if (!(n = new_node(p, N_BOOL, line, col))) return oom(p);
            n->b = is_word(p, "true");
        } else if (is_word(p, "null")) {
            if (!(n = new_node(p, N_NULL, line, col))) return oom(p);
        } else {
            if (!(n = new_node(p, N_IDENT, line, col))) return oom(p);
            n->text = p->tok.text;
            p->tok.text = NULL;
            n->target = lookup(p, n->text);
        }
        break;
    case T_PUNCT:
        if (is_punct(p, "{")) return parse_object(p, out);
        if (is_punct(p, "[")) {
            if (!(n = new_node(p, N_ARRAY, line, col))) return oom(p);
            if ((rc = enter(p)) < 0 || (rc = consume(p)) < 0) return rc;
            if ((rc = parse_list(p, n, "]")) < 0) return rc;
            p->depth--;
            *out = n;
            return 0;
        }
        if (is_punct(p, "(")) {
            if ((rc = enter(p)) < 0 || (rc = consume(p)) < 0) return rc;
            if ((rc = parse_expr(p, out)) < 0) return rc;
            if ((rc = expect_punct(p, ")")) < 0) return rc;
            p->depth--;
            return 0;
        }
        if (is_punct(p, "-")) {
            if ((rc = consume(p)) < 0) return rc;
            if (p->tok.kind == T_NUMBER) {
                if (!(n = new_node(p, N_NUMBER, line, col))) return oom(p);
                n->num = -p->tok.num;
                break;
            }
            if (p->tok.kind == T_BIGINT) {
                if (!(n = new_node(p, N_BIGINT, line, col))) return oom(p);
                n->big = p->tok.big;
                n->neg = true;
                break;
            }
            return fail_at(p, line, col, "unsupported construct: `-` before a non-number");
        }
        return expected(p, "an expression");
    default:
        return expected(p, "an expression");
    }
    *out = n;
    return consume(p);
}

static int parse_expr(struct parser *p, struct node **out)
{
    int rc;
    struct node *n;

    if ((rc = parse_primary(p, &n)) < 0) return rc;
    for (;;) {
        if (is_punct(p, ".")) {
            if ((rc = consume(p)) < 0) return rc;
            if (p->tok.kind != T_IDENT) return expected(p, "a property name");
            struct node *m = new_node(p, N_MEMBER, n->line, n->col);
            if (!m) return oom(p);
            m->pline = p->tok.line;
            m->pcol = p->tok.col;
            m->text = p->tok.text;
            p->tok.text = NULL;
            m->target = n;
            n = m;
            if ((rc = consume(p)) < 0) return rc;
        } else if (is_punct(p, "(")) {
            struct node *c = new_node(p, N_CALL, n->line, n->col);
            if (!c) return oom(p);
            c->target = n;
            if ((rc = enter(p)) < 0 || (rc = consume(p)) < 0) return rc;
            if ((rc = parse_list(p, c, ")")) < 0) return rc;
            p->depth--;
            n = c;
        } else if (is_punct(p, "?.")) {
            return fail_at(p, p->tok.line, p->tok.col, "unsupported construct: optional chaining");
        } else if (is_punct(p, "[")) {
            return fail_at(p, p->tok.line, p->tok.col,
                           "unsupported construct: computed member access");
        } else if ((is_word(p, "as") || is_word(p, "satisfies")) && p->tok.line == p->prev_line) {
            return fail_at(p, p->tok.line, p->tok.col, "unsupported construct: `%s` expression",
                           p->tok.text);
        } else {
            break;
        }
    }
    *out = n;
    return 0;
}

/* A statement ends with `;`, a line break, `}` or the end of the file. */
static int end_statement(struct parser *p)
{
    if (is_punct(p, ";")) return consume(p);
    if (p->tok.kind == T_EOF || p->tok.line != p->prev_line) return 0;
    return expected(p, "`;`");
}

static int parse_import(struct parser *p)
{
    int rc, braces = 0;
    if ((rc = consume(p)) < 0) return rc;
    if (p->tok.kind == T_STRING) { /* import "side-effect"; */
        if ((rc = consume(p)) < 0) return rc;
        return end_statement(p);
    }
    for (;;) {
        if (p->tok.kind == T_EOF || (braces == 0 && is_punct(p, ";"))) return expected(p, "`from`");
        if (is_punct(p, "{")) braces++;
        if (is_punct(p, "}")) braces--;
        if (braces == 0 && is_word(p, "from")) break;
        if ((rc = consume(p)) < 0) return rc;
    }
    if ((rc = consume(p)) < 0) return rc;
    if (p->tok.kind != T_STRING) return expected(p, "a module name");
    if ((rc = consume(p)) < 0) return rc;
    return end_statement(p);
}

static int parse_declaration(struct parser *p)
{
    int rc;
    char *name = NULL;
    struct node *expr;

    if ((rc = consume(p)) < 0) goto fail; /* const / let / var */
    if (p->tok.kind != T_IDENT) {
        rc = expected(p, "a name");
        goto fail;
    }
    if (lookup(p, p->tok.text)) {
        rc = fail_at(p, p->tok.line, p->tok.col, "`%s` is declared twice", p->tok.text);
        goto fail;
    }
    name = p->tok.text;
    p->tok.text = NULL;
    if ((rc = consume(p)) < 0) goto fail;
    if (is_punct(p, ":")) {
        rc = fail_at(p, p->tok.line, p->tok.col, "unsupported construct: type annotation");
        goto fail;
    }
    if ((rc = expect_punct(p, "=")) < 0) goto fail;
    if ((rc = parse_expr(p, &expr)) < 0) goto fail;
    if (p->nbindings == p->capbindings) {
        size_t cap = p->capbindings ? p->capbindings * 2 : 8;
        struct binding *b = realloc(p->bindings, cap * sizeof *b);
        if (!b) {
            rc = oom(p);
            goto fail;
        }
        p->bindings = b;
        p->capbindings = cap;
    }
    p->bindings[p->nbindings].name = name;
    p->bindings[p->nbindings].expr = expr;
    p->nbindings++;
    return end_statement(p);
fail:
    free(name);
    return rc;
}

static int parse_program(struct parser *p)
{
    int rc;
    while (p->tok.kind != T_EOF) {
        if (is_punct(p, ";")) {
            if ((rc = consume(p)) < 0) return rc;
            continue;
        }
        if (is_word(p, "import")) {
            if ((rc = parse_import(p)) < 0) return rc;
            continue;
        }
        bool exported = false;
        if (is_word(p, "export")) {
            exported = true;
            if ((rc = consume(p)) < 0) return rc;
            if (is_word(p, "default")) {
                int line = p->tok.line, col = p->tok.col;
                if (p->schema)
                    return fail_at(p, line, col, "second `export default` (first at %d:%d)",
                                   p->schema_line, p->schema_col);
                if ((rc = consume(p)) < 0) return rc;
                if ((rc = parse_expr(p, &p->schema)) < 0) return rc;
                p->schema_line = line;
                p->schema_col = col;
                if ((rc = end_statement(p)) < 0) return rc;
                continue;
            }
        }
        if (is_word(p, "const") || is_word(p, "let") || is_word(p, "var")) {
            if ((rc = parse_declaration(p)) < 0) return rc;
            continue;
        }
        if (exported) return expected(p, "`const` or `default`");
        if (p->tok.kind == T_IDENT)
            return fail_at(p, p->tok.line, p->tok.col,
                           "unsupported construct: statement starting with `%s`", p->tok.text);
        return expected(p, "a statement");
    }
    return 0;
}

/* ------------------------------------------------------------- evaluator */

/* Follows identifiers to the constant they name. */
static const struct node *deref(const struct node *n)
{
    while (n->kind == N_IDENT && n->target)
        n = n->target;
    return n;
}

/* The method name when `n` is `v.name(...)` with `v` not redeclared. */
static const char *v_call(const struct node *n)
{
    if (n->kind != N_CALL) return NULL;
    const struct node *callee = n->target;
    if (callee->kind != N_MEMBER) return NULL;
    const struct node *obj = callee->target;
    if (obj->kind != N_IDENT || obj->target || strcmp(obj->text, "v") != 0) return NULL;
    return callee->text;
}

/* True when `n` is a call of the global function `name`. */
static bool global_call(const struct node *n, const char *name)
{
    return n->kind == N_CALL && n->target->kind == N_IDENT && !n->target->target &&
           strcmp(n->target->text, name) == 0;
}

/*
 * Refuses `at` where `what` was expected, saying what it is (or what the
 * constant it names is).
 */
static int refuse(struct parser *p, const struct node *at, const char *what)
{
    char desc[128];
    const struct node *n = deref(at);
    const struct node *callee = n->kind == N_CALL ? n->target : NULL;
    switch (n->kind) {
    case N_STRING:
        snprintf(desc, sizeof desc, "a string");
        break;
    case N_NUMBER:
    case N_BIGINT:
        snprintf(desc, sizeof desc, "a number");
        break;
    case N_BOOL:
        snprintf(desc, sizeof desc, "a boolean");
        break;
    case N_NULL:
        snprintf(desc, sizeof desc, "null");
        break;
    case N_IDENT:
        return fail_at(p, at->line, at->col, "unknown identifier `%.64s`", n->text);
    case N_MEMBER:
        if (n->target->kind == N_IDENT)
            snprintf(desc, sizeof desc, "`%.40s.%.40s`", n->target->text, n->text);
        else
            snprintf(desc, sizeof desc, "property access `.%.40s`", n->text);
        break;
    case N_CALL:
        if (v_call(n)) {
            return fail_at(p, callee->pline, callee->pcol,
                           "unsupported construct: `v.%.40s()` where %s was expected", callee->text,
                           what);
        } else if (callee->kind == N_IDENT) {
            snprintf(desc, sizeof desc, "call to `%.40s()`", callee->text);
        } else if (callee->kind == N_MEMBER) {
            return fail_at(p, callee->pline, callee->pcol,
                           "unsupported construct: method call `.%.40s()` where %s was expected",
                           callee->text, what);
        } else {
            snprintf(desc, sizeof desc, "a call");
        }
        break;
    case N_OBJECT:
        snprintf(desc, sizeof desc, "an object literal");
        break;
    case N_ARRAY:
        snprintf(desc, sizeof desc, "an array literal");
        break;
    case N_SPREAD:
        snprintf(desc, sizeof desc, "spread `...`");
        break;
    default:
        snprintf(desc, sizeof desc, "an expression");
        break;
    }
    return fail_at(p, at->line, at->col, "unsupported construct: %s where %s was expected", desc,
                   what);
}

static int spend(struct parser *p, const struct node *n)
{
    if (--p->budget < 0)
        return fail_at(p, n->line, n->col,
                       "schema too large (more than %d validators after expanding constants)",
                       MAX_EVAL_NODES);
    return 0;
}

static int nargs(struct parser *p, const struct node *call, size_t min, size_t max,
                 const char *name)
{
    for (size_t i = 0; i < call->nkids; i++)
        if (call->kids[i]->kind == N_SPREAD)
            return fail_at(p, call->kids[i]->line, call->kids[i]->col,
                           "unsupported construct: spread `...` in the arguments of `%s`", name);
    if (call->nkids < min || call->nkids > max) {
        if (min == max)
            return fail_at(p, call->line, call->col, "`%s` takes %zu argument%s, not %zu", name,
                           min, min == 1 ? "" : "s", call->nkids);
        return fail_at(p, call->line, call->col, "`%s` takes %zu to %zu arguments, not %zu", name,
                       min, max, call->nkids);
    }
    return 0;
}

/* Adds `item` to object `obj` (or to array `obj` when key is NULL), freeing it on failure. */
static int add(struct parser *p, cJSON *obj, const char *key, cJSON *item)
{
    if (key ? cJSON_AddItemToObject(obj, key, item) : cJSON_AddItemToArray(obj, item)) return 0;
    cJSON_Delete(item);
    return oom(p);
}

static int eval_string(struct parser *p, const struct node *n, const char *what, cJSON **out)
{
    const struct node *d = deref(n);
    if (d->kind != N_STRING) return refuse(p, n, what);
    if (!(*out = cJSON_CreateString(d->text))) return oom(p);
    return 0;
}

static int eval_string_array(struct parser *p, const struct node *n, const char *what, cJSON **out)
{
    int rc;
    const struct node *d = deref(n);
    if (d->kind != N_ARRAY) return refuse(p, n, what);
    cJSON *arr = cJSON_CreateArray();
    if (!arr) return oom(p);
    for (size_t i = 0; i < d->nkids; i++) {
        cJSON *s = NULL;
        if ((rc = spend(p, d->kids[i])) < 0 ||
            (rc = eval_string(p, d->kids[i], "a field name string", &s)) < 0) {
            cJSON_Delete(arr);
            return rc;
        }
        if ((rc = add(p, arr, NULL, s)) < 0) {
            cJSON_Delete(arr);
            return rc;
        }
    }
    *out = arr;
    return 0;
}

/* {"<key>": base64 of the 8 little-endian bytes of `u`}: Convex's int64 and special floats. */
static int encoded_literal(struct parser *p, const char *key, uint64_t u, cJSON **out)
{
    uint8_t le[8];
    hd_buf b = HD_BUF_INIT;
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(u >> (8 * i));
    hd__base64_encode(&b, le, sizeof le, false);
    hd__buf_byte(&b, 0);
    *out = hd__buf_failed(&b) ? NULL : cJSON_CreateObject();
    if (*out && !cJSON_AddStringToObject(*out, key, (const char *)b.p)) {
        cJSON_Delete(*out);
        *out = NULL;
    }
    hd__buf_free(&b);
    return *out ? 0 : oom(p);
}

/* The Convex JSON of a literal value. */
static int eval_literal_value(struct parser *p, const struct node *n, cJSON **out)
{
    const struct node *d = deref(n);
    switch (d->kind) {
    case N_STRING:
        *out = cJSON_CreateString(d->text);
        break;
    case N_NUMBER:
        if (d->num == 0 && signbit(d->num)) {
            /* JSON numbers cannot carry -0; Convex writes it as {"$float": ...}. */
            uint64_t bits;
            memcpy(&bits, &d->num, sizeof bits);
            return encoded_literal(p, "$float", bits, out);
        }
        *out = cJSON_CreateNumber(d->num);
        break;
    case N_BOOL:
        *out = cJSON_CreateBool(d->b);
        break;
    case N_NULL:
        *out = cJSON_CreateNull();
        break;
    case N_BIGINT:
        if (d->big > (d->neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
            return fail_at(p, d->line, d->col, "bigint literal out of the int64 range");
        return encoded_literal(p, "$integer", d->neg ? (uint64_t)0 - d->big : d->big, out);
    default:
        return refuse(p, n, "a string, number, bigint, boolean or null");
    }
    return *out ? 0 : oom(p);
}

static int eval_validator(struct parser *p, const struct node *n, bool field, cJSON **out);

/* `{a: v.string(), ...}` as the "fields" of an object validator. */
static int eval_fields(struct parser *p, const struct node *n, cJSON **out)
{
    int rc;
    const struct node *d = deref(n);
    cJSON *fields;

    if (d->kind != N_OBJECT) return refuse(p, n, "an object of field validators");
    if (!(fields = cJSON_CreateObject())) return oom(p);
    for (size_t i = 0; i < d->nkids; i++) {
        const struct node *prop = d->kids[i];
        cJSON *val = NULL;
        if (prop->kind == N_SPREAD) {
            rc = fail_at(p, prop->line, prop->col, "unsupported construct: spread `...`");
            goto fail;
        }
        if (cJSON_GetObjectItemCaseSensitive(fields, prop->text)) {
            rc = fail_at(p, prop->line, prop->col, "duplicate field `%.64s`", prop->text);
            goto fail;
        }
        if ((rc = eval_validator(p, prop->target, true, &val)) < 0) goto fail;
        if ((rc = add(p, fields, prop->text, val)) < 0) goto fail;
    }
    *out = fields;
    return 0;
fail:
    cJSON_Delete(fields);
    return rc;
}

/* A type with no parameters: v.string() and friends. */
static const struct {
    const char *method, *type;
} simple_types[] = {
    {"string", "string"}, {"number", "number"}, {"float64", "number"},
    {"int64", "int64"},   {"bigint", "int64"},  {"boolean", "boolean"},
    {"null", "null"},     {"any", "any"},       {"bytes", "bytes"},
};

static int eval_validator_call(struct parser *p, const struct node *d, const char *m, cJSON *v)
{
    int rc;
    cJSON *sub = NULL;
    char name[64];
    snprintf(name, sizeof name, "v.%.40s()", m);

    for (size_t i = 0; i < sizeof simple_types / sizeof simple_types[0]; i++) {
        if (strcmp(m, simple_types[i].method) == 0) {
            if ((rc = nargs(p, d, 0, 0, name)) < 0) return rc;
            return cJSON_AddStringToObject(v, "type", simple_types[i].type) ? 0 : oom(p);
        }
    }
    if (!cJSON_AddStringToObject(v, "type", strcmp(m, "nullable") == 0 ? "union" : m))
        return oom(p);
    if (strcmp(m, "id") == 0) {
        if ((rc = nargs(p, d, 1, 1, name)) < 0) return rc;
        if ((rc = eval_string(p, d->kids[0], "a table name string", &sub)) < 0) return rc;
        if ((rc = add(p, v, "table", sub)) < 0) return rc;
    } else if (strcmp(m, "literal") == 0) {
        if ((rc = nargs(p, d, 1, 1, name)) < 0) return rc;
        if ((rc = eval_literal_value(p, d->kids[0], &sub)) < 0) return rc;
        if ((rc = add(p, v, "value", sub)) < 0) return rc;
    } else if (strcmp(m, "array") == 0) {
        if ((rc = nargs(p, d, 1, 1, name)) < 0) return rc;
        if ((rc = eval_validator(p, d->kids[0], false, &sub)) < 0) return rc;
        if ((rc = add(p, v, "items", sub)) < 0) return rc;
    } else if (strcmp(m, "object") == 0) {
        if ((rc = nargs(p, d, 1, 1, name)) < 0) return rc;
        if ((rc = eval_fields(p, d->kids[0], &sub)) < 0) return rc;
        if ((rc = add(p, v, "fields", sub)) < 0) return rc;
    } else if (strcmp(m, "record") == 0) {
        if ((rc = nargs(p, d, 2, 2, name)) < 0) return rc;
        if ((rc = eval_validator(p, d->kids[0], false, &sub)) < 0) return rc;
        if ((rc = add(p, v, "keys", sub)) < 0) return rc;
        if ((rc = eval_validator(p, d->kids[1], false, &sub)) < 0) return rc;
        if ((rc = add(p, v, "values", sub)) < 0) return rc;
    } else if (strcmp(m, "union") == 0 || strcmp(m, "nullable") == 0) {
        bool nullable = m[0] == 'n';
        if ((rc = nargs(p, d, 1, nullable ? 1 : SIZE_MAX, name)) < 0) return rc;
        cJSON *members = cJSON_AddArrayToObject(v, "members");
        if (!members) return oom(p);
        for (size_t i = 0; i < d->nkids; i++) {
            if ((rc = eval_validator(p, d->kids[i], false, &sub)) < 0) return rc;
            if ((rc = add(p, members, NULL, sub)) < 0) return rc;
        }
        if (nullable) {
            if (!(sub = cJSON_CreateObject()) || !cJSON_AddStringToObject(sub, "type", "null")) {
                cJSON_Delete(sub);
                return oom(p);
            }
            if ((rc = add(p, members, NULL, sub)) < 0) return rc;
        }
    } else {
        return fail_at(p, d->target->pline, d->target->pcol, "unsupported construct: `v.%.40s()`",
                       m);
    }
    return 0;
}

/* paginationOptsValidator (convex/server), the same as v.paginationOpts() in Lua. */
#define PAGINATION_OPTS_JSON                                                                       \
    "{\"type\":\"object\",\"fields\":{\"numItems\":{\"type\":\"number\"},"                         \
    "\"cursor\":{\"type\":\"union\",\"members\":[{\"type\":\"string\"},{\"type\":\"null\"}]},"     \
    "\"endCursor\":{\"type\":\"union\",\"optional\":true,\"members\":[{\"type\":\"string\"},"      \
    "{\"type\":\"null\"}]},\"id\":{\"type\":\"number\",\"optional\":true},"                        \
    "\"maximumRowsRead\":{\"type\":\"number\",\"optional\":true},"                                 \
    "\"maximumBytesRead\":{\"type\":\"number\",\"optional\":true}}}"

static int eval_validator(struct parser *p, const struct node *n, bool field, cJSON **out)
{
    int rc;
    const struct node *d = deref(n);
    const char *m = v_call(d);
    cJSON *v;

    if (!m && d->kind == N_IDENT && !d->target && !strcmp(d->text, "paginationOptsValidator")) {
        /* convex/server's validator of a paginated query's paginationOpts. */
        if ((rc = spend(p, n)) < 0) return rc;
        v = cJSON_Parse(PAGINATION_OPTS_JSON);
        if (!v) return oom(p);
        *out = v;
        return 0;
    }
    if (!m) {
        if (d->kind == N_OBJECT)
            return fail_at(p, d->line, d->col,
                           "unsupported construct: an object literal where a validator was "
                           "expected (use v.object({...}))");
        return refuse(p, n, "a validator");
    }
    if ((rc = spend(p, n)) < 0) return rc;
    if (++p->depth > MAX_NESTING) {
        return fail_at(p, n->line, n->col, "validators nested deeper than %d levels", MAX_NESTING);
    }
    if (strcmp(m, "optional") == 0) {
        /* The inner validator itself, marked optional. */
        if (!field)
            return fail_at(p, d->target->pline, d->target->pcol,
                           "unsupported construct: `v.optional()` outside an object field");
        if ((rc = nargs(p, d, 1, 1, "v.optional()")) < 0) return rc;
        if ((rc = eval_validator(p, d->kids[0], false, &v)) < 0) return rc;
        if (!cJSON_AddTrueToObject(v, "optional")) {
            cJSON_Delete(v);
            return oom(p);
        }
    } else {
        if (!(v = cJSON_CreateObject())) return oom(p);
        if ((rc = eval_validator_call(p, d, m, v)) < 0) {
            cJSON_Delete(v);
            return rc;
        }
    }
    p->depth--;
    *out = v;
    return 0;
}

/* The options object of .searchIndex() and .vectorIndex(). */
static int eval_index_options(struct parser *p, const struct node *n, const char *method,
                              cJSON *def)
{
    int rc;
    const struct node *d = deref(n);
    bool vector = strcmp(method, "vectorIndex") == 0;
    const char *field_key = vector ? "vectorField" : "searchField";
    bool seen_field = false, seen_dims = false, seen_filter = false;

    if (d->kind != N_OBJECT) return refuse(p, n, "an options object");
    for (size_t i = 0; i < d->nkids; i++) {
        const struct node *prop = d->kids[i];
        cJSON *val = NULL;
        if (prop->kind == N_SPREAD)
            return fail_at(p, prop->line, prop->col, "unsupported construct: spread `...`");
        if (strcmp(prop->text, field_key) == 0 && !seen_field) {
            seen_field = true;
            if ((rc = eval_string(p, prop->target, "a field name string", &val)) < 0) return rc;
        } else if (strcmp(prop->text, "filterFields") == 0 && !seen_filter) {
            seen_filter = true;
            if ((rc = eval_string_array(p, prop->target, "an array of field names", &val)) < 0)
                return rc;
        } else if (vector && strcmp(prop->text, "dimensions") == 0 && !seen_dims) {
            const struct node *num = deref(prop->target);
            seen_dims = true;
            if (num->kind != N_NUMBER) return refuse(p, prop->target, "a number");
            if (!(val = cJSON_CreateNumber(num->num))) return oom(p);
        } else {
            return fail_at(p, prop->line, prop->col,
                           "unsupported construct: `.%s()` option `%.64s`", method, prop->text);
        }
        if ((rc = add(p, def, prop->text, val)) < 0) return rc;
    }
    if (!seen_field) return fail_at(p, d->line, d->col, "`.%s()` needs `%s`", method, field_key);
    if (vector && !seen_dims)
        return fail_at(p, d->line, d->col, "`.vectorIndex()` needs `dimensions`");
    if (!seen_filter && !cJSON_AddArrayToObject(def, "filterFields")) return oom(p);
    return 0;
}

/* One `.index()`, `.searchIndex()` or `.vectorIndex()` call on a table. */
static int eval_table_method(struct parser *p, const struct node *call, cJSON *table)
{
    int rc;
    const char *m = call->target->text;
    const char *list = strcmp(m, "index") == 0         ? "indexes"
                       : strcmp(m, "searchIndex") == 0 ? "searchIndexes"
                                                       : "vectorIndexes";
    char name[64];
    cJSON *def, *sub = NULL;

    snprintf(name, sizeof name, ".%s()", m);
    if ((rc = nargs(p, call, 2, 2, name)) < 0) return rc;
    if (!(def = cJSON_CreateObject())) return oom(p);
    if ((rc = eval_string(p, call->kids[0], "an index name string", &sub)) < 0) goto fail;
    if ((rc = add(p, def, "name", sub)) < 0) goto fail;
    if (list[0] == 'i') {
        if ((rc = eval_string_array(p, call->kids[1], "an array of field names", &sub)) < 0)
            goto fail;
        if ((rc = add(p, def, "fields", sub)) < 0) goto fail;
    } else if ((rc = eval_index_options(p, call->kids[1], m, def)) < 0) {
        goto fail;
    }
    return add(p, cJSON_GetObjectItemCaseSensitive(table, list), NULL, def);
fail:
    cJSON_Delete(def);
    return rc;
}

static bool is_table_method(const struct node *n)
{
    if (n->kind != N_CALL || n->target->kind != N_MEMBER) return false;
    const char *m = n->target->text;
    return strcmp(m, "index") == 0 || strcmp(m, "searchIndex") == 0 ||
           strcmp(m, "vectorIndex") == 0;
}

/*
 * `defineTable(...)` followed by index calls. The chain is walked
 * iteratively (a table may have many indexes) and applied from the inside
 * out, which is declaration order.
 */
static int eval_table(struct parser *p, const struct node *n, cJSON **out)
{
    int rc = 0;
    const struct node **chain = NULL;
    size_t nchain = 0, cap = 0;
    const struct node *d = deref(n);
    cJSON *table = NULL, *doc = NULL;

    while (is_table_method(d)) {
        if ((rc = spend(p, d)) < 0) goto done;
        if (nchain == cap) {
            cap = cap ? cap * 2 : 8;
            const struct node **c = realloc(chain, cap * sizeof *c);
            if (!c) {
                rc = oom(p);
                goto done;
            }
            chain = c;
        }
        chain[nchain++] = d;
        d = deref(d->target->target);
    }
    if (!global_call(d, "defineTable")) {
        rc = refuse(p, d, "defineTable(...)");
        goto done;
    }
    if ((rc = nargs(p, d, 1, 1, "defineTable")) < 0) goto done;
    const struct node *arg = deref(d->kids[0]);
    if (arg->kind == N_OBJECT) {
        cJSON *fields;
        if (!(doc = cJSON_CreateObject()) || !cJSON_AddStringToObject(doc, "type", "object")) {
            rc = oom(p);
            goto done;
        }
        if ((rc = eval_fields(p, arg, &fields)) < 0) goto done;
        if ((rc = add(p, doc, "fields", fields)) < 0) goto done;
    } else if ((rc = eval_validator(p, d->kids[0], false, &doc)) < 0) {
        goto done;
    }
    if (!(table = cJSON_CreateObject())) {
        rc = oom(p);
        goto done;
    }
    rc = add(p, table, "document", doc);
    doc = NULL;
    if (rc < 0) goto done;
    if (!cJSON_AddArrayToObject(table, "indexes") ||
        !cJSON_AddArrayToObject(table, "searchIndexes") ||
        !cJSON_AddArrayToObject(table, "vectorIndexes")) {
        rc = oom(p);
        goto done;
    }
    for (size_t i = nchain; i-- > 0;)
        if ((rc = eval_table_method(p, chain[i], table)) < 0) goto done;
    *out = table;
    table = NULL;
done:
    cJSON_Delete(doc);
    cJSON_Delete(table);
    free(chain);
    return rc;
}

static int eval_schema_options(struct parser *p, const struct node *n, cJSON *root)
{
    const struct node *d = deref(n);
    if (d->kind != N_OBJECT) return refuse(p, n, "an options object");
    for (size_t i = 0; i < d->nkids; i++) {
        const struct node *prop = d->kids[i];
        if (prop->kind == N_SPREAD)
            return fail_at(p, prop->line, prop->col, "unsupported construct: spread `...`");
        bool validation = strcmp(prop->text, "schemaValidation") == 0;
        if (!validation && strcmp(prop->text, "strictTableNameTypes") != 0)
            return fail_at(p, prop->line, prop->col,
                           "unsupported construct: defineSchema option `%.64s`", prop->text);
        const struct node *val = deref(prop->target);
        if (val->kind != N_BOOL) return refuse(p, prop->target, "true or false");
        /* strictTableNameTypes only affects TypeScript's generated types. */
        if (validation) {
            cJSON *b = cJSON_CreateBool(val->b);
            if (!b || !cJSON_ReplaceItemInObjectCaseSensitive(root, "schemaValidation", b)) {
                cJSON_Delete(b);
                return oom(p);
            }
        }
    }
    return 0;
}

static int eval_schema(struct parser *p, const struct node *n, cJSON **out)
{
    int rc;
    const struct node *d = deref(n);
    cJSON *root = NULL, *tables;

    if (!global_call(d, "defineSchema")) return refuse(p, n, "defineSchema(...)");
    if ((rc = nargs(p, d, 1, 2, "defineSchema")) < 0) return rc;
    const struct node *obj = deref(d->kids[0]);
    if (obj->kind != N_OBJECT) return refuse(p, d->kids[0], "an object of tables");
    if (!(root = cJSON_CreateObject()) || !cJSON_AddTrueToObject(root, "schemaValidation") ||
        !(tables = cJSON_AddObjectToObject(root, "tables"))) {
        rc = oom(p);
        goto fail;
    }
    for (size_t i = 0; i < obj->nkids; i++) {
        const struct node *prop = obj->kids[i];
        cJSON *table = NULL;
        if (prop->kind == N_SPREAD) {
            rc = fail_at(p, prop->line, prop->col, "unsupported construct: spread `...`");
            goto fail;
        }
        if (cJSON_GetObjectItemCaseSensitive(tables, prop->text)) {
            rc = fail_at(p, prop->line, prop->col, "duplicate table `%.64s`", prop->text);
            goto fail;
        }
        if ((rc = eval_table(p, prop->target, &table)) < 0) goto fail;
        if ((rc = add(p, tables, prop->text, table)) < 0) goto fail;
    }
    if (d->nkids == 2 && (rc = eval_schema_options(p, d->kids[1], root)) < 0) goto fail;
    *out = root;
    return 0;
fail:
    cJSON_Delete(root);
    return rc;
}

int hd__schema_ts_to_json(const char *text, size_t len, const char *filename, cJSON **out,
                          herald_error *err)
{
    struct parser p;
    int rc;

    *out = NULL;
    memset(&p, 0, sizeof p);
    p.src = text ? text : "";
    p.len = text ? len : 0;
    p.line = p.col = 1;
    p.file = filename ? filename : "schema.ts";
    p.err = err;
    p.budget = MAX_EVAL_NODES;
    if (p.len >= 3 && memcmp(p.src, "\xEF\xBB\xBF", 3) == 0) p.pos = 3; /* byte order mark */
    if (p.len - p.pos >= 2 && p.src[p.pos] == '#' && p.src[p.pos + 1] == '!')
        while (p.pos < p.len && p.src[p.pos] != '\n')
            p.pos++; /* #! line */
    if ((rc = next(&p)) < 0 || (rc = parse_program(&p)) < 0) goto done;
    if (!p.schema) {
        rc = fail_at(&p, p.tok.line, p.tok.col, "no `export default defineSchema(...)`");
        goto done;
    }
    p.depth = 0;
    rc = eval_schema(&p, p.schema, out);
done:
    free(p.tok.text);
    while (p.nodes) {
        struct node *n = p.nodes;
        p.nodes = n->next_alloc;
        free(n->text);
        free(n->kids);
        free(n);
    }
    for (size_t i = 0; i < p.nbindings; i++)
        free(p.bindings[i].name);
    free(p.bindings);
    return rc;
}
