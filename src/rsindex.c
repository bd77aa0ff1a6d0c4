/*
 * The read-set index (rsindex.h): from a commit's written keys to the
 * subscriptions whose read sets contain them.
 *
 * It must never look at a range that cannot contain the key being matched
 * (per commit the work follows the matches, not the subscriptions), never
 * recurse deeper than the tree height, and never leave itself half-changed
 * when an allocation fails.
 *
 * Layout. Every distinct (index_id, lo, hi) range is stored once, in one
 * of two places:
 * - A point range [k, k||0x00) (what a `get` reads) holds exactly one key,
 *   so it lives in a hash table keyed by (index_id, k): one probe per
 *   written key finds it, however many there are.
 * - Every other range is a node of a single AVL tree ordered by
 *   (index_id, lo, hi), an unbounded hi sorting last. Each node keeps the
 *   node of greatest (index_id, hi) in its subtree, so a stabbing query
 *   skips every subtree whose ranges all end at or before the key, and
 *   every right subtree whose ranges all start after it: it visits the
 *   search path plus the ancestors of the matches. Comparing index ids
 *   first lets one tree serve every index. The first 16 bytes of that
 *   greatest hi are copied into the node, so the descent rarely reads the
 *   node they come from (one cache miss fewer per level).
 *
 * Owners and ranges are linked many-to-many by pairs of edges that know
 * each other's position (`back`), so unlinking one is a swap-remove in
 * both vectors, O(1) however many owners share a range. Owners are found
 * by id in a second hash table. Each match call has a generation number;
 * a range or owner stamped with it has been seen, so every owner is
 * reported once and no range's owners are walked twice per call.
 *
 * Memory: a node holds its key bytes once (when lo is a prefix of hi, as
 * in a point range, only hi is stored) and its first owner edge inline;
 * an owner record holds its first range edge inline. One owner with one
 * range costs about 190 bytes of heap with a 35-byte key (bench_rsindex).
 */
#include "rsindex.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "herald/error.h"

struct range;
struct owner;

/* One side of an owner-range link; `back` is the other side's index. */
typedef struct edge {
    union {
        struct range *range; /* in an owner's vector */
        struct owner *owner; /* in a range's vector */
    };
    uint32_t back;
} edge;

/* A vector of edges; with cap == 1 its only element is stored inline. */
typedef struct edges {
    union {
        edge one;
        edge *many;
    };
    uint32_t len, cap;
} edges;

/* The head of a key: see head_of(). */
typedef struct head {
    uint64_t w[2];
} head;

typedef struct range {
    struct range *left, *right; /* tree links; unused for a point range */
    struct range *max;          /* the node of greatest (index_id, hi) in this subtree */
    head max_head;              /* the head of max's hi, to compare without reading max */
    uint64_t gen;               /* the last add or match call that visited this node */
    edges owners;
    uint32_t index_id, max_index_id;
    uint32_t lo_len, hi_len, hi_off; /* lo is bytes[0, lo_len), hi bytes[hi_off, +hi_len) */
    int8_t height;
    bool bounded;     /* false: hi is unbounded */
    bool max_bounded; /* max->bounded */
    bool point;       /* [lo, lo||0x00): in the points table, not in the tree */
    uint8_t bytes[];
} range;

typedef struct owner {
    uint64_t id;
    uint64_t gen; /* the last match call that reported this owner */
    edges ranges;
} owner;

/* An open-addressing set of pointers (see ptable_put). */
typedef struct ptable {
    void **slots; /* NULL: a free slot */
    size_t cap, len;
} ptable;

struct hd_rsindex {
    range *root;   /* every range but the points */
    ptable points; /* point ranges by (index_id, lo) */
    ptable owners; /* owners by id */
    size_t nranges;
    uint64_t gen;
    uint64_t *hits; /* owners collected by the current match call */
    size_t nhits, hits_cap;
    size_t visited; /* tree nodes the last match visited */
    long fail_after;
};

/* A range as given, before it is stored. */
typedef struct probe {
    uint32_t index_id;
    const uint8_t *lo, *hi;
    size_t lo_len, hi_len;
    bool bounded;
} probe;

/* ---- allocation (with the failure injection used by tests) ---- */

static bool may_allocate(hd_rsindex *x)
{
    if (x->fail_after < 0) return true;
    if (x->fail_after == 0) return false;
    x->fail_after--;
    return true;
}

static void *xmalloc(hd_rsindex *x, size_t n)
{
    return may_allocate(x) ? malloc(n) : NULL;
}

static void *xrealloc(hd_rsindex *x, void *p, size_t n)
{
    return may_allocate(x) ? realloc(p, n) : NULL;
}

void hd__rsindex_fail_after(hd_rsindex *x, long n)
{
    x->fail_after = n < 0 ? -1 : n;
}

/* ---- edge vectors ---- */

static const edges EDGES_EMPTY = {.len = 0, .cap = 1};

static edge *edges_at(edges *v)
{
    return v->cap == 1 ? &v->one : v->many;
}

static const edge *edges_at_const(const edges *v)
{
    return v->cap == 1 ? &v->one : v->many;
}

static int edges_reserve(hd_rsindex *x, edges *v, size_t want)
{
    if (want <= v->cap) return 0;
    if (want > UINT32_MAX) return HERALD_ENOMEM;
    size_t cap = (size_t)v->cap * 2;
    if (cap < want) cap = want;
    if (cap < 4) cap = 4;
    if (cap > UINT32_MAX) cap = UINT32_MAX;
    if (v->cap == 1) {
        edge *many = xmalloc(x, cap * sizeof *many);
        if (!many) return HERALD_ENOMEM;
        if (v->len) many[0] = v->one;
        v->many = many;
    } else {
        edge *many = xrealloc(x, v->many, cap * sizeof *many);
        if (!many) return HERALD_ENOMEM;
        v->many = many;
    }
    v->cap = (uint32_t)cap;
    return 0;
}

/*
 * Gives back memory once a vector is a quarter full, so that an owner or a
 * range that once had many links does not keep their room. Positions do
 * not change, so the `back` indexes stay valid.
 */
static void edges_shrink(edges *v)
{
    if (v->cap == 1 || v->len > v->cap / 4) return;
    if (v->len <= 1) {
        edge *many = v->many;
        if (v->len) v->one = many[0];
        free(many);
        v->cap = 1;
        return;
    }
    edge *many = realloc(v->many, (size_t)(v->cap / 2) * sizeof *many);
    if (!many) return; /* keeping the larger block is harmless */
    v->many = many;
    v->cap /= 2;
}

static void edges_free(edges *v)
{
    if (v->cap != 1) free(v->many);
    *v = EDGES_EMPTY;
}

/* ---- key order ---- */

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return (alen > blen) - (alen < blen);
}

static int cmp_u32(uint32_t a, uint32_t b)
{
    return (a > b) - (a < b);
}

static const uint8_t *range_lo(const range *r)
{
    return r->bytes;
}

static const uint8_t *range_hi(const range *r)
{
    return r->bytes + r->hi_off;
}

/* (index_id, lo, hi) of `p` against the node `r`; an unbounded hi is last. */
static int cmp_probe(const probe *p, const range *r)
{
    int c = cmp_u32(p->index_id, r->index_id);
    if (c) return c;
    c = cmp_bytes(p->lo, p->lo_len, range_lo(r), r->lo_len);
    if (c) return c;
    if (!p->bounded || !r->bounded) return (int)!p->bounded - (int)!r->bounded;
    return cmp_bytes(p->hi, p->hi_len, range_hi(r), r->hi_len);
}

static int cmp_nodes(const range *a, const range *b)
{
    probe p = {a->index_id, range_lo(a), range_hi(a), a->lo_len, a->hi_len, a->bounded};
    return cmp_probe(&p, b);
}

/* (index_id, hi) of `a` against that of `b`, an unbounded hi greatest. */
static int cmp_hi(const range *a, const range *b)
{
    int c = cmp_u32(a->index_id, b->index_id);
    if (c) return c;
    if (!a->bounded || !b->bounded) return (int)!a->bounded - (int)!b->bounded;
    return cmp_bytes(range_hi(a), a->hi_len, range_hi(b), b->hi_len);
}

/* True if (r.index_id, r.lo) <= (index_id, key). */
static bool lo_at_or_before(const range *r, uint32_t index_id, const uint8_t *key, size_t len)
{
    if (r->index_id != index_id) return r->index_id < index_id;
    return cmp_bytes(range_lo(r), r->lo_len, key, len) <= 0;
}

/* True if (r.index_id, r.hi) > (index_id, key). */
static bool hi_after(const range *r, uint32_t index_id, const uint8_t *key, size_t len)
{
    if (r->index_id != index_id) return r->index_id > index_id;
    return !r->bounded || cmp_bytes(range_hi(r), r->hi_len, key, len) > 0;
}

/*
 * The head of a key: its first 16 bytes as two big-endian numbers,
 * zero-padded. If the heads of two keys differ, they order the keys; if
 * they are equal, the keys may still differ. 16 bytes hold an encoded
 * string of up to 13 characters, as many index prefixes are.
 */
static uint64_t load_be64(const uint8_t *p)
{
    return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
           (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
           (uint64_t)p[6] << 8 | (uint64_t)p[7];
}

static head head_of(const uint8_t *key, size_t len)
{
    uint8_t padded[16] = {0};
    if (len) memcpy(padded, key, len < 16 ? len : 16);
    return (head){{load_be64(padded), load_be64(padded + 8)}};
}

static int cmp_head(const head *a, const head *b)
{
    if (a->w[0] != b->w[0]) return a->w[0] > b->w[0] ? 1 : -1;
    return (a->w[1] > b->w[1]) - (a->w[1] < b->w[1]);
}

/*
 * True if the greatest (index_id, hi) in the subtree `t` is after the key
 * whose head is `kh`. Decided from `t` itself unless the heads are equal:
 * reading t->max would mostly cost one more cache miss per tree level.
 */
static bool subtree_hi_after(const range *t, uint32_t index_id, const uint8_t *key, size_t len,
                             const head *kh)
{
    if (t->max_index_id != index_id) return t->max_index_id > index_id;
    if (!t->max_bounded) return true;
    int c = cmp_head(&t->max_head, kh);
    if (c) return c > 0;
    return hi_after(t->max, index_id, key, len);
}

/* ---- the AVL tree ---- */

static int height(const range *r)
{
    return r ? r->height : 0;
}

/* Recomputes the height and the subtree maximum of `r` from its children. */
static void update(range *r)
{
    int hl = height(r->left), hr = height(r->right);
    r->height = (int8_t)(1 + (hl > hr ? hl : hr));
    const range *max = r, *from = NULL;
    if (r->left && cmp_hi(r->left->max, max) > 0) max = r->left->max, from = r->left;
    if (r->right && cmp_hi(r->right->max, max) > 0) max = r->right->max, from = r->right;
    if (from) {
        r->max = from->max;
        r->max_head = from->max_head;
        r->max_index_id = from->max_index_id;
        r->max_bounded = from->max_bounded;
    } else if (r->max != r) {
        /* When r->max == r the fields already describe r: its bytes never change. */
        r->max = r;
        r->max_head = head_of(range_hi(r), r->bounded ? r->hi_len : 0);
        r->max_index_id = r->index_id;
        r->max_bounded = r->bounded;
    }
}

static range *rotate_right(range *r)
{
    range *l = r->left;
    r->left = l->right;
    l->right = r;
    update(r);
    update(l);
    return l;
}

static range *rotate_left(range *r)
{
    range *l = r->right;
    r->right = l->left;
    l->left = r;
    update(r);
    update(l);
    return l;
}

static range *rebalance(range *r)
{
    update(r);
    int balance = height(r->left) - height(r->right);
    if (balance > 1) {
        if (height(r->left->left) < height(r->left->right)) r->left = rotate_left(r->left);
        return rotate_right(r);
    }
    if (balance < -1) {
        if (height(r->right->right) < height(r->right->left)) r->right = rotate_right(r->right);
        return rotate_left(r);
    }
    return r;
}

/* Inserts `n`, whose key is not in the tree yet. Cannot fail. */
static range *tree_insert(range *t, range *n)
{
    if (!t) {
        n->left = n->right = NULL;
        update(n);
        return n;
    }
    if (cmp_nodes(n, t) < 0)
        t->left = tree_insert(t->left, n);
    else
        t->right = tree_insert(t->right, n);
    return rebalance(t);
}

static range *tree_remove_min(range *t, range **min)
{
    if (!t->left) {
        *min = t;
        return t->right;
    }
    t->left = tree_remove_min(t->left, min);
    return rebalance(t);
}

/*
 * Unlinks the node `n` (which is in the tree). Nodes are relinked, never
 * copied into each other, so the edges pointing at other nodes stay valid;
 * every ancestor of `n` is updated on the way back, so no subtree maximum
 * points at `n` afterwards.
 */
static range *tree_remove(range *t, const range *n)
{
    if (t != n) {
        if (cmp_nodes(n, t) < 0)
            t->left = tree_remove(t->left, n);
        else
            t->right = tree_remove(t->right, n);
        return rebalance(t);
    }
    if (!t->left) return t->right;
    if (!t->right) return t->left;
    range *min;
    range *right = tree_remove_min(t->right, &min);
    min->left = t->left;
    min->right = right;
    return rebalance(min);
}

static range *tree_find(range *t, const probe *p)
{
    while (t) {
        int c = cmp_probe(p, t);
        if (c == 0) return t;
        t = c < 0 ? t->left : t->right;
    }
    return NULL;
}

static range *range_new(hd_rsindex *x, const probe *p)
{
    if (p->lo_len > UINT32_MAX || p->hi_len > UINT32_MAX) return NULL;
    /* A point range [k, k||0x00) and any range whose lo is a prefix of hi
     * store the bytes of hi alone. */
    bool shared = p->bounded && p->lo_len <= p->hi_len &&
                  (p->lo_len == 0 || memcmp(p->lo, p->hi, p->lo_len) == 0);
    size_t nbytes = shared ? p->hi_len : p->lo_len + (p->bounded ? p->hi_len : 0);
    range *r = xmalloc(x, sizeof *r + nbytes);
    if (!r) return NULL;
    *r = (range){.owners = EDGES_EMPTY,
                 .index_id = p->index_id,
                 .lo_len = (uint32_t)p->lo_len,
                 .hi_len = p->bounded ? (uint32_t)p->hi_len : 0,
                 .hi_off = shared ? 0 : (uint32_t)p->lo_len,
                 .bounded = p->bounded};
    if (shared) {
        if (p->hi_len) memcpy(r->bytes, p->hi, p->hi_len);
    } else {
        if (p->lo_len) memcpy(r->bytes, p->lo, p->lo_len);
        if (p->bounded && p->hi_len) memcpy(r->bytes + p->lo_len, p->hi, p->hi_len);
    }
    return r;
}

/* ---- hash tables: owners by id, point ranges by key ---- */

/*
 * An open-addressing set of pointers: linear probing, at most half full,
 * backward-shift deletion (no tombstones, so probes stay short however
 * long the index lives). Lookups are written out by each user.
 */
typedef uint64_t (*hash_fn)(const void *item);

static uint64_t mix64(uint64_t h)
{
    /* splitmix64's finaliser: owner ids are often sequential. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static uint64_t hash_key(uint32_t index_id, const uint8_t *key, size_t len)
{
    uint64_t h = mix64(((uint64_t)index_id << 32) ^ len);
    for (; len >= 8; key += 8, len -= 8) {
        uint64_t w;
        memcpy(&w, key, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    if (len) memcpy(&w, key, len);
    return mix64(h ^ w);
}

static uint64_t owner_hash(const void *item)
{
    return mix64(((const owner *)item)->id);
}

static uint64_t point_hash(const void *item)
{
    const range *r = item;
    return hash_key(r->index_id, range_lo(r), r->lo_len);
}

static void ptable_put(ptable *t, void *item, uint64_t h)
{
    size_t mask = t->cap - 1, i = (size_t)h & mask;
    while (t->slots[i])
        i = (i + 1) & mask;
    t->slots[i] = item;
    t->len++;
}

/* Makes room for one more item. */
static int ptable_reserve(hd_rsindex *x, ptable *t, hash_fn hash)
{
    if ((t->len + 1) * 2 <= t->cap) return 0;
    ptable grown = {.cap = t->cap ? t->cap * 2 : 16};
    grown.slots = xmalloc(x, grown.cap * sizeof *grown.slots);
    if (!grown.slots) return HERALD_ENOMEM;
    memset(grown.slots, 0, grown.cap * sizeof *grown.slots);
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i]) ptable_put(&grown, t->slots[i], hash(t->slots[i]));
    free(t->slots);
    *t = grown;
    return 0;
}

static void ptable_delete(ptable *t, const void *item, uint64_t h, hash_fn hash)
{
    size_t mask = t->cap - 1, i = (size_t)h & mask;
    while (t->slots[i] != item)
        i = (i + 1) & mask;
    t->slots[i] = NULL;
    for (size_t j = (i + 1) & mask; t->slots[j]; j = (j + 1) & mask) {
        size_t home = (size_t)hash(t->slots[j]) & mask;
        /* An item stays if its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        t->slots[i] = t->slots[j];
        t->slots[j] = NULL;
        i = j;
    }
    t->len--;
}

static owner *owner_find(const hd_rsindex *x, uint64_t id)
{
    const ptable *t = &x->owners;
    if (!t->cap) return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)mix64(id) & mask; t->slots[i]; i = (i + 1) & mask) {
        owner *o = t->slots[i];
        if (o->id == id) return o;
    }
    return NULL;
}

/* Takes `o` (already unlinked from every range) out of the table, frees it. */
static void owner_delete(hd_rsindex *x, owner *o)
{
    ptable_delete(&x->owners, o, owner_hash(o), owner_hash);
    edges_free(&o->ranges);
    free(o);
}

/* The point range [key, key||0x00) of `index_id`, or NULL. */
static range *point_find(const hd_rsindex *x, uint32_t index_id, const uint8_t *key, size_t len,
                         uint64_t h)
{
    const ptable *t = &x->points;
    if (!t->cap) return NULL;
    size_t mask = t->cap - 1;
    for (size_t i = (size_t)h & mask; t->slots[i]; i = (i + 1) & mask) {
        range *r = t->slots[i];
        if (r->index_id == index_id && r->lo_len == len && (!len || !memcmp(r->bytes, key, len)))
            return r;
    }
    return NULL;
}

static bool probe_is_point(const probe *p)
{
    return p->bounded && p->hi_len == p->lo_len + 1 && p->hi[p->lo_len] == 0x00 &&
           (!p->lo_len || !memcmp(p->lo, p->hi, p->lo_len));
}

/* ---- links ---- */

/* Links `o` to `r`; both vectors have room. */
static void link(owner *o, range *r)
{
    edge *oe = edges_at(&o->ranges), *re = edges_at(&r->owners);
    oe[o->ranges.len] = (edge){.range = r, .back = r->owners.len};
    re[r->owners.len] = (edge){.owner = o, .back = o->ranges.len};
    o->ranges.len++;
    r->owners.len++;
}

/*
 * Removes the range side of `o`'s i-th edge (the owner side is the
 * caller's to drop) and deletes the range if it has no owner left.
 */
static void unlink_range_side(hd_rsindex *x, owner *o, uint32_t i)
{
    edge e = edges_at(&o->ranges)[i];
    range *r = e.range;
    edge *re = edges_at(&r->owners);
    uint32_t last = r->owners.len - 1;
    if (e.back != last) {
        re[e.back] = re[last];
        edges_at(&re[e.back].owner->ranges)[re[e.back].back].back = e.back;
    }
    r->owners.len = last;
    if (last) {
        edges_shrink(&r->owners);
        return;
    }
    if (r->point)
        ptable_delete(&x->points, r, point_hash(r), point_hash);
    else
        x->root = tree_remove(x->root, r);
    x->nranges--;
    edges_free(&r->owners);
    free(r);
}

/* ---- the interface ---- */

int hd__rsindex_new(hd_rsindex **out)
{
    hd_rsindex *x = calloc(1, sizeof *x);
    if (!x) return HERALD_ENOMEM;
    x->fail_after = -1;
    *out = x;
    return 0;
}

static void free_tree(range *t)
{
    /* Iterative: rotate left children up so the walk needs no stack. */
    while (t) {
        if (t->left) {
            range *l = t->left;
            t->left = l->right;
            l->right = t;
            t = l;
            continue;
        }
        range *next = t->right;
        edges_free(&t->owners);
        free(t);
        t = next;
    }
}

void hd__rsindex_free(hd_rsindex *x)
{
    if (!x) return;
    free_tree(x->root);
    for (size_t i = 0; i < x->points.cap; i++) {
        range *r = x->points.slots[i];
        if (!r) continue;
        edges_free(&r->owners);
        free(r);
    }
    free(x->points.slots);
    for (size_t i = 0; i < x->owners.cap; i++) {
        owner *o = x->owners.slots[i];
        if (!o) continue;
        edges_free(&o->ranges);
        free(o);
    }
    free(x->owners.slots);
    free(x->hits);
    free(x);
}

static probe probe_of(const herald_read_range *rr)
{
    return (probe){rr->index_id,  rr->lo, rr->hi, rr->lo_len, rr->hi ? rr->hi_len : 0,
                   rr->hi != NULL};
}

static bool probe_empty(const probe *p)
{
    return p->bounded && cmp_bytes(p->lo, p->lo_len, p->hi, p->hi_len) >= 0;
}

/*
 * The new ranges are linked after the old ones, then the old ones are
 * unlinked: on failure only the new links are undone, and a range kept
 * from one run to the next is never deleted and re-created.
 */
int hd__rsindex_add(hd_rsindex *x, uint64_t id, const herald_read_set *rs)
{
    size_t nnew = 0;
    for (size_t i = 0; i < rs->len; i++) {
        probe p = probe_of(&rs->ranges[i]);
        nnew += !probe_empty(&p);
    }
    owner *o = owner_find(x, id);
    bool created = false;
    if (!o) {
        if (!nnew) return 0;
        if (ptable_reserve(x, &x->owners, owner_hash)) return HERALD_ENOMEM;
        o = xmalloc(x, sizeof *o);
        if (!o) return HERALD_ENOMEM;
        *o = (owner){.id = id, .ranges = EDGES_EMPTY};
        ptable_put(&x->owners, o, owner_hash(o));
        created = true;
    }
    uint32_t nold = o->ranges.len;
    if (edges_reserve(x, &o->ranges, (size_t)nold + nnew)) goto fail;

    uint64_t gen = ++x->gen;
    for (size_t i = 0; i < rs->len; i++) {
        probe p = probe_of(&rs->ranges[i]);
        if (probe_empty(&p)) continue;
        bool point = probe_is_point(&p);
        uint64_t h = point ? hash_key(p.index_id, p.lo, p.lo_len) : 0;
        range *r = point ? point_find(x, p.index_id, p.lo, p.lo_len, h) : tree_find(x->root, &p);
        if (r && r->gen == gen) continue; /* twice in this read set */
        if (!r) {
            if (point && ptable_reserve(x, &x->points, point_hash)) goto fail;
            r = range_new(x, &p);
            if (!r) goto fail;
            if (edges_reserve(x, &r->owners, 1)) {
                free(r);
                goto fail;
            }
            r->point = point;
            if (point)
                ptable_put(&x->points, r, h);
            else
                x->root = tree_insert(x->root, r);
            x->nranges++;
        } else if (edges_reserve(x, &r->owners, (size_t)r->owners.len + 1)) {
            goto fail;
        }
        r->gen = gen;
        link(o, r);
    }

    for (uint32_t i = 0; i < nold; i++)
        unlink_range_side(x, o, i);
    edge *oe = edges_at(&o->ranges);
    for (uint32_t i = nold; i < o->ranges.len; i++) {
        oe[i - nold] = oe[i];
        edges_at(&oe[i - nold].range->owners)[oe[i - nold].back].back = i - nold;
    }
    o->ranges.len -= nold;
    if (!o->ranges.len) {
        owner_delete(x, o);
        return 0;
    }
    edges_shrink(&o->ranges);
    return 0;

fail:
    while (o->ranges.len > nold)
        unlink_range_side(x, o, --o->ranges.len);
    if (created)
        owner_delete(x, o);
    else
        edges_shrink(&o->ranges);
    return HERALD_ENOMEM;
}

void hd__rsindex_remove(hd_rsindex *x, uint64_t id)
{
    owner *o = owner_find(x, id);
    if (!o) return;
    for (uint32_t i = 0; i < o->ranges.len; i++)
        unlink_range_side(x, o, i);
    o->ranges.len = 0;
    owner_delete(x, o);
}

static int collect(hd_rsindex *x, range *r)
{
    const edge *re = edges_at(&r->owners);
    for (uint32_t i = 0; i < r->owners.len; i++) {
        owner *o = re[i].owner;
        if (o->gen == x->gen) continue;
        if (x->nhits == x->hits_cap) {
            size_t cap = x->hits_cap ? x->hits_cap * 2 : 64;
            uint64_t *hits = xrealloc(x, x->hits, cap * sizeof *hits);
            if (!hits) return HERALD_ENOMEM;
            x->hits = hits;
            x->hits_cap = cap;
        }
        o->gen = x->gen;
        x->hits[x->nhits++] = o->id;
    }
    return 0;
}

/*
 * Collects the owners of every node of `t` containing the key. Recurses
 * only into left children, so the depth is at most the tree height.
 */
static int stab(hd_rsindex *x, range *t, uint32_t index_id, const uint8_t *key, size_t len,
                const head *kh)
{
    for (; t && subtree_hi_after(t, index_id, key, len, kh); t = t->right) {
        x->visited++;
        if (t->left && stab(x, t->left, index_id, key, len, kh)) return HERALD_ENOMEM;
        /* Every node to the right starts at or after this one. */
        if (!lo_at_or_before(t, index_id, key, len)) break;
        if (t->gen != x->gen && hi_after(t, index_id, key, len)) {
            t->gen = x->gen;
            if (collect(x, t)) return HERALD_ENOMEM;
        }
    }
    return 0;
}

static int match_keys(hd_rsindex *x, const herald_write_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const herald_write_key *k = &keys[i];
        if (x->points.len) {
            uint64_t h = hash_key(k->index_id, k->key, k->key_len);
            range *r = point_find(x, k->index_id, k->key, k->key_len, h);
            if (r && r->gen != x->gen) {
                r->gen = x->gen;
                if (collect(x, r)) return HERALD_ENOMEM;
            }
        }
        if (x->root) {
            head kh = head_of(k->key, k->key_len);
            if (stab(x, x->root, k->index_id, k->key, k->key_len, &kh)) return HERALD_ENOMEM;
        }
    }
    return 0;
}

int hd__rsindex_match(hd_rsindex *x, const herald_write_set *const *ws, size_t nws,
                      void (*fn)(void *ctx, uint64_t owner), void *ctx)
{
    x->gen++;
    x->nhits = 0;
    x->visited = 0;
    if (!x->nranges) return 0;
    for (size_t i = 0; i < nws; i++) {
        if (match_keys(x, ws[i]->removed, ws[i]->nremoved) ||
            match_keys(x, ws[i]->added, ws[i]->nadded))
            return HERALD_ENOMEM;
    }
    /* Detach the hits so that `fn` may call in again (even match). */
    uint64_t *hits = x->hits;
    size_t nhits = x->nhits, cap = x->hits_cap;
    x->hits = NULL;
    x->nhits = x->hits_cap = 0;
    for (size_t i = 0; i < nhits; i++)
        fn(ctx, hits[i]);
    if (!x->hits) {
        x->hits = hits;
        x->hits_cap = cap;
    } else {
        free(hits);
    }
    return 0;
}

size_t hd__rsindex_count(const hd_rsindex *x)
{
    return x->nranges;
}

size_t hd__rsindex_owners(const hd_rsindex *x)
{
    return x->owners.len;
}

size_t hd__rsindex_visited(const hd_rsindex *x)
{
    return x->visited;
}

/* ---- invariants, for tests ---- */

/* The links of one range, its bounds, and that no owner holds it twice. */
static bool check_range(const range *r)
{
    if (r->bounded && cmp_bytes(range_lo(r), r->lo_len, range_hi(r), r->hi_len) >= 0) return false;
    probe p = {r->index_id, range_lo(r), range_hi(r), r->lo_len, r->hi_len, r->bounded};
    if (probe_is_point(&p) != r->point) return false;
    if (r->owners.len == 0 || r->owners.len > r->owners.cap) return false;
    const edge *re = edges_at_const(&r->owners);
    for (uint32_t i = 0; i < r->owners.len; i++) {
        const owner *o = re[i].owner;
        if (re[i].back >= o->ranges.len) return false;
        const edge *oe = &edges_at_const(&o->ranges)[re[i].back];
        if (oe->range != r || oe->back != i) return false;
        if (r->owners.len <= 64)
            for (uint32_t j = 0; j < i; j++)
                if (re[j].owner == o) return false;
    }
    return true;
}

/* Checks the subtree `t`; returns its node count or -1. */
static long check_tree(const range *t, const range **prev)
{
    if (!t) return 0;
    long nl = check_tree(t->left, prev);
    if (nl < 0) return -1;
    if (*prev && cmp_nodes(*prev, t) >= 0) return -1;
    *prev = t;
    if (t->point || !check_range(t)) return -1;
    long nr = check_tree(t->right, prev);
    if (nr < 0) return -1;
    int hl = height(t->left), hr = height(t->right);
    if (t->height != 1 + (hl > hr ? hl : hr) || hl - hr > 1 || hr - hl > 1) return -1;
    const range *max = t;
    if (t->left && cmp_hi(t->left->max, max) > 0) max = t->left->max;
    if (t->right && cmp_hi(t->right->max, max) > 0) max = t->right->max;
    if (cmp_hi(max, t->max) != 0) return -1;
    if (t->max_index_id != max->index_id || t->max_bounded != max->bounded) return -1;
    head mh = head_of(range_hi(max), max->bounded ? max->hi_len : 0);
    if (cmp_head(&mh, &t->max_head) != 0) return -1;
    return nl + 1 + nr;
}

static bool check_table(const ptable *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->cap; i++)
        n += t->slots[i] != NULL;
    return n == t->len && (!t->cap || (t->cap & (t->cap - 1)) == 0) && t->len * 2 <= t->cap;
}

int hd__rsindex_check(const hd_rsindex *x)
{
    const range *prev = NULL;
    long n = check_tree(x->root, &prev);
    if (n < 0 || !check_table(&x->points) || !check_table(&x->owners)) return -1;
    if ((size_t)n + x->points.len != x->nranges) return -1;
    for (size_t i = 0; i < x->points.cap; i++) {
        const range *r = x->points.slots[i];
        if (!r) continue;
        if (!r->point || !check_range(r)) return -1;
        uint64_t h = point_hash(r);
        if (point_find(x, r->index_id, range_lo(r), r->lo_len, h) != r) return -1;
    }
    for (size_t i = 0; i < x->owners.cap; i++) {
        const owner *o = x->owners.slots[i];
        if (!o) continue;
        if (owner_find(x, o->id) != o) return -1;
        if (o->ranges.len == 0 || o->ranges.len > o->ranges.cap) return -1;
        const edge *oe = edges_at_const(&o->ranges);
        for (uint32_t j = 0; j < o->ranges.len; j++) {
            const range *r = oe[j].range;
            if (oe[j].back >= r->owners.len) return -1;
            const edge *re = &edges_at_const(&r->owners)[oe[j].back];
            if (re->owner != o || re->back != j) return -1;
        }
    }
    return 0;
}
