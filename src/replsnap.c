/*
 * Snapshots through JetStream (replsnap.h): a backup (backup.c) archived
 * (snaparc.c) into chunks on the snapshot stream, a manifest published
 * last, older snapshots purged; and the way back into a new folder.
 *
 * It must never publish a manifest before every chunk it names was
 * acknowledged, never purge the snapshot it just published, and never leave
 * a folder at a fetch's destination that is not the whole, verified
 * snapshot. It knows nothing of replication records: repl.c decides when to
 * publish and what to do with a fetched folder.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backup.h"
#include "replsnap.h"
#include "snaparc.h"

#define CHUNK_HEADER "Herald-Snap-Chunk"
/* The largest integer a JSON number carries exactly. */
#define MAX_EXACT ((uint64_t)1 << 53)
/* Fetches begun again when the snapshot was replaced (and purged) under them. */
#define FETCH_ATTEMPTS 3
/* A manifest is a short JSON object; anything longer is not one. */
#define MAX_MANIFEST 1024

typedef struct snap_names {
    char stream[64];   /* HERALD_<C>_SNAP */
    char all[64];      /* herald.<C>.snap.> */
    char manifest[64]; /* herald.<C>.snap.manifest */
    char data_any[64]; /* herald.<C>.snap.data.* */
} snap_names;

static int names_of(const char *cluster, snap_names *n, herald_error *err)
{
    size_t len = cluster ? strlen(cluster) : 0;
    bool ok = len >= 1 && len <= 32;
    for (size_t i = 0; ok && i < len; i++) {
        char c = cluster[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-';
    }
    if (!ok)
        return herald_fail(err, HERALD_EINVAL,
                           "bad cluster name (1 to 32 of A-Z, a-z, 0-9, _ and -)");
    snprintf(n->stream, sizeof n->stream, "HERALD_%s_SNAP", cluster);
    snprintf(n->all, sizeof n->all, "herald.%s.snap.>", cluster);
    snprintf(n->manifest, sizeof n->manifest, "herald.%s.snap.manifest", cluster);
    snprintf(n->data_any, sizeof n->data_any, "herald.%s.snap.data.*", cluster);
    return 0;
}

static void data_subject(const snap_names *n, const char *id, char *out, size_t size)
{
    /* data_any without its "*" */
    snprintf(out, size, "%.*s%s", (int)strlen(n->data_any) - 1, n->data_any, id);
}

/* HERALD_EIO for a NATS failure: the client's status, JetStream's code and the last error's text.
 */
static int nats_fail(herald_error *err, natsStatus s, jsErrCode jerr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int nats_fail(herald_error *err, natsStatus s, jsErrCode jerr, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    /* The thread's last error says more, when it is this failure's (same status). */
    natsStatus last = NATS_OK;
    const char *detail = nats_GetLastError(&last);
    if (!detail || last != s) detail = "";
    if (jerr)
        return herald_fail(err, HERALD_EIO, "%s: %s (JetStream error %d%s%.200s)", what,
                           natsStatus_GetText(s), (int)jerr, *detail ? ": " : "", detail);
    return herald_fail(err, HERALD_EIO, "%s: %s%s%.200s%s", what, natsStatus_GetText(s),
                       *detail ? " (" : "", detail, *detail ? ")" : "");
}

static void request_opts(jsOptions *o)
{
    jsOptions_Init(o);
    o->Wait = HD_REPLSNAP_WAIT_MS;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e3 + (double)(ts.tv_nsec / 1000000);
}

int hd__replsnap_ensure(jsCtx *js, const char *cluster, int replicas, herald_error *err)
{
    snap_names n;
    int rc = names_of(cluster, &n, err);
    if (rc) return rc;
    if (replicas < 1 || replicas > 3)
        return herald_fail(err, HERALD_EINVAL, "snapshot stream replicas: give 1 to 3, not %d",
                           replicas);
    jsOptions o;
    request_opts(&o);
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, js, n.stream, &o, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK) return 0;
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return nats_fail(err, s, jerr, "looking up stream %s", n.stream);
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {n.all};
    sc.Name = n.stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = replicas;
    si = NULL;
    jerr = 0;
    s = js_AddStream(&si, js, &sc, &o, &jerr);
    jsStreamInfo_Destroy(si);
    /* Made by another node meanwhile: as good. */
    if (s == NATS_OK || jerr == JSStreamNameExistErr) return 0;
    return nats_fail(err, s, jerr, "creating stream %s", n.stream);
}

/* ---- the snapshot's version and seq, from its own database ---- */

static int read_meta(const char *dir, bool read_only, uint64_t *version, uint64_t *seq,
                     herald_error *err)
{
    herald_store *s;
    herald_store_options so = {.read_only = read_only, .owner = "herald snapshot"};
    int rc = herald_store_open(dir, &so, &s, err);
    if (rc) return rc;
    herald_txn *t = NULL;
    if (!(rc = herald_read_begin(s, &t, err))) {
        *version = herald_txn_version(t);
        rc = herald_txn_get_meta(t, "repl_seq", seq, err);
    }
    herald_txn_end(t);
    herald_store_close(s);
    return rc;
}

/* ---- publishing ---- */

typedef struct publisher {
    jsCtx *js;
    const snap_names *names;
    char subject[96];
    uint8_t *buf;
    size_t fill;
    uint64_t chunks, bytes;
    uint64_t first_seq; /* the stream sequence of chunk 0 */
    EVP_MD_CTX *md;
} publisher;

/* Publishes `data` on `subject` and waits for JetStream's ack; *seq its stream sequence. */
static int publish_one(jsCtx *js, const snap_names *n, const char *subject, const void *data,
                       size_t len, const char *chunk, uint64_t *seq, herald_error *err)
{
    natsMsg *m = NULL;
    jsPubAck *ack = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = HD_REPLSNAP_WAIT_MS;
    po.ExpectStream = n->stream;
    natsStatus s = natsMsg_Create(&m, subject, NULL, data, (int)len);
    if (s == NATS_OK && chunk) s = natsMsgHeader_Set(m, CHUNK_HEADER, chunk);
    if (s == NATS_OK) s = js_PublishMsg(&ack, js, m, &po, &jerr);
    if (s == NATS_OK) *seq = ack->Sequence;
    jsPubAck_Destroy(ack);
    natsMsg_Destroy(m);
    return s == NATS_OK ? 0 : nats_fail(err, s, jerr, "publishing on %s", subject);
}

static int flush_chunk(publisher *p, herald_error *err)
{
    char index[24];
    uint64_t seq = 0;
    snprintf(index, sizeof index, "%llu", (unsigned long long)p->chunks);
    int rc = publish_one(p->js, p->names, p->subject, p->buf, p->fill, index, &seq, err);
    if (rc) return rc;
    if (p->chunks == 0) p->first_seq = seq;
    p->chunks++;
    p->fill = 0;
    return 0;
}

static int emit_bytes(void *ctx, const uint8_t *data, size_t n, herald_error *err)
{
    publisher *p = ctx;
    if (EVP_DigestUpdate(p->md, data, n) != 1)
        return herald_fail(err, HERALD_ENOMEM, "snapshot digest failed");
    p->bytes += n;
    while (n) {
        size_t take = HD_REPLSNAP_CHUNK - p->fill < n ? HD_REPLSNAP_CHUNK - p->fill : n;
        memcpy(p->buf + p->fill, data, take);
        p->fill += take;
        data += take;
        n -= take;
        int rc = p->fill == HD_REPLSNAP_CHUNK ? flush_chunk(p, err) : 0;
        if (rc) return rc;
    }
    return 0;
}

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* Purges the messages on `subject` (a filter) whose sequence is below `below`. */
static int purge(jsCtx *js, const snap_names *n, const char *subject, uint64_t below,
                 herald_error *err)
{
    /* Nothing is older than the stream's first message; and JetStream reads
     * a purge up to sequence 1 as one with no bound, which would take all. */
    if (below <= 1) return 0;
    jsOptions o;
    request_opts(&o);
    o.Stream.Purge.Subject = subject;
    o.Stream.Purge.Sequence = below;
    jsErrCode jerr = 0;
    natsStatus s = js_PurgeStream(js, n->stream, &o, &jerr);
    return s == NATS_OK ? 0 : nats_fail(err, s, jerr, "purging %s of %s", subject, n->stream);
}

/* Archives folder `dir` into chunks, then the manifest; *info is it. */
static int publish_folder(jsCtx *js, const snap_names *n, const char *dir, hd_replsnap_info *info,
                          herald_error *err)
{
    uint8_t raw[8], digest[EVP_MAX_MD_SIZE];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return herald_fail(err, HERALD_ESTORE, "no randomness for a snapshot id");
    hex_of(raw, sizeof raw, info->id);
    publisher p = {.js = js, .names = n};
    data_subject(n, info->id, p.subject, sizeof p.subject);
    p.buf = malloc(HD_REPLSNAP_CHUNK);
    p.md = EVP_MD_CTX_new();
    int rc = p.buf && p.md ? 0 : herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc && EVP_DigestInit_ex(p.md, EVP_sha256(), NULL) != 1)
        rc = herald_fail(err, HERALD_ENOMEM, "snapshot digest failed");
    if (!rc) rc = hd__snaparc_write(dir, emit_bytes, &p, NULL, err);
    if (!rc && p.fill) rc = flush_chunk(&p, err);
    unsigned dlen = 0;
    if (!rc && EVP_DigestFinal_ex(p.md, digest, &dlen) != 1)
        rc = herald_fail(err, HERALD_ENOMEM, "snapshot digest failed");
    EVP_MD_CTX_free(p.md);
    free(p.buf);
    if (rc) return rc;
    char sha[2 * EVP_MAX_MD_SIZE + 1], manifest[MAX_MANIFEST];
    hex_of(digest, dlen, sha);
    info->chunks = p.chunks;
    info->bytes = p.bytes;
    int len = snprintf(
        manifest, sizeof manifest,
        "{\"id\":\"%s\",\"seq\":%llu,\"version\":%llu,\"chunks\":%llu,\"bytes\":%llu,"
        "\"sha256\":\"%s\",\"created\":%.0f}",
        info->id, (unsigned long long)info->seq, (unsigned long long)info->version,
        (unsigned long long)info->chunks, (unsigned long long)info->bytes, sha, info->created_ms);
    uint64_t manifest_seq = 0;
    if ((rc = publish_one(js, n, n->manifest, manifest, (size_t)len, NULL, &manifest_seq, err)))
        return rc;
    /* Older manifests first: the chunks they name go next. */
    if (!(rc = purge(js, n, n->manifest, manifest_seq, err)))
        rc = purge(js, n, n->data_any, p.first_seq, err);
    return rc;
}

int hd__replsnap_publish(jsCtx *js, const char *cluster, herald_store *s, const char *data_dir,
                         const char *tmp_parent, hd_replsnap_info *info, herald_error *err)
{
    *info = (hd_replsnap_info){.created_ms = now_ms()};
    snap_names n;
    int rc = names_of(cluster, &n, err);
    if (rc) return rc;
    char work[PATH_MAX], backup[PATH_MAX + 16];
    if (snprintf(work, sizeof work, "%s/herald-snap-XXXXXX", tmp_parent) >= (int)sizeof work)
        return herald_fail(err, HERALD_EINVAL, "%s: path too long", tmp_parent);
    if (!mkdtemp(work))
        return herald_fail(err, HERALD_EIO, "cannot create %s: %s", work, strerror(errno));
    snprintf(backup, sizeof backup, "%s/backup", work);
    hd_backup_info bi;
    rc = hd__backup(s, data_dir, backup, &bi, err);
    /* Its own database says what it holds: that snapshot is what counts, not the live store. */
    if (!rc) rc = read_meta(backup, true, &info->version, &info->seq, err);
    if (!rc && (info->seq > MAX_EXACT || info->version > MAX_EXACT))
        rc = herald_fail(err, HERALD_ELIMIT, "snapshot: seq %llu or version %llu is above 2^53",
                         (unsigned long long)info->seq, (unsigned long long)info->version);
    if (!rc) rc = publish_folder(js, &n, backup, info, err);
    hd__snaparc_remove_tree(work);
    return rc;
}

/* ---- the latest manifest ---- */

static bool exact_u64(const cJSON *o, const char *name, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= (double)MAX_EXACT) || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

static bool hex_string(const cJSON *v, size_t min, size_t max)
{
    if (!cJSON_IsString(v)) return false;
    size_t len = strlen(v->valuestring);
    if (len < min || len > max) return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789abcdef", v->valuestring[i])) return false;
    return true;
}

/* Reads manifest text `p` (n bytes) into *info and its digest into sha. */
static int parse_manifest(const char *p, size_t n, hd_replsnap_info *info, char sha[65],
                          herald_error *err)
{
    cJSON *o = n <= MAX_MANIFEST ? cJSON_ParseWithLength(p, n) : NULL;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    const cJSON *digest = cJSON_GetObjectItemCaseSensitive(o, "sha256");
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(o, "created");
    *info = (hd_replsnap_info){0};
    bool ok = cJSON_IsObject(o) && hex_string(id, 1, sizeof info->id - 1) &&
              hex_string(digest, 64, 64) && cJSON_IsNumber(created) &&
              exact_u64(o, "seq", &info->seq) && exact_u64(o, "version", &info->version) &&
              exact_u64(o, "chunks", &info->chunks) && exact_u64(o, "bytes", &info->bytes) &&
              /* Every chunk but the last is full. */
              info->bytes >= 1 &&
              info->chunks == (info->bytes + HD_REPLSNAP_CHUNK - 1) / HD_REPLSNAP_CHUNK;
    if (ok) {
        snprintf(info->id, sizeof info->id, "%s", id->valuestring);
        snprintf(sha, 65, "%s", digest->valuestring);
        info->created_ms = created->valuedouble;
    }
    cJSON_Delete(o);
    return ok ? 0 : herald_fail(err, HERALD_ECORRUPT, "the latest snapshot manifest is not one");
}

static int latest(jsCtx *js, const snap_names *n, hd_replsnap_info *info, char sha[65],
                  herald_error *err)
{
    jsOptions o;
    request_opts(&o);
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetLastMsg(&m, js, n->stream, n->manifest, &o, &jerr);
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr || jerr == JSStreamNotFoundErr) {
        natsMsg_Destroy(m);
        return herald_fail(err, HERALD_ENOTFOUND, "no snapshot in stream %s", n->stream);
    }
    if (s != NATS_OK) return nats_fail(err, s, jerr, "reading the manifest of %s", n->stream);
    int rc = parse_manifest(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), info, sha, err);
    natsMsg_Destroy(m);
    return rc;
}

int hd__replsnap_latest(jsCtx *js, const char *cluster, hd_replsnap_info *info, herald_error *err)
{
    snap_names n;
    char sha[65];
    *info = (hd_replsnap_info){0};
    int rc = names_of(cluster, &n, err);
    return rc ? rc : latest(js, &n, info, sha, err);
}

/* ---- fetching ---- */

typedef struct fetcher {
    jsCtx *js;
    const snap_names *names;
    const hd_replsnap_info *info;
    const char *sha;
    char subject[96];
    natsSubscription *sub;
    EVP_MD_CTX *md;
    hd_snaparc_reader reader;
    uint64_t bytes;
} fetcher;

/* How many chunks of the snapshot the stream holds. */
static int count_chunks(fetcher *f, uint64_t *count, herald_error *err)
{
    jsOptions o;
    request_opts(&o);
    o.Stream.Info.SubjectsFilter = f->subject;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, f->js, f->names->stream, &o, &jerr);
    if (s != NATS_OK) return nats_fail(err, s, jerr, "looking up stream %s", f->names->stream);
    *count = 0;
    for (int i = 0; si->State.Subjects && i < si->State.Subjects->Count; i++)
        if (!strcmp(si->State.Subjects->List[i].Subject, f->subject))
            *count += si->State.Subjects->List[i].Msgs;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* Takes chunk `i` (message `m`): its index, size and place, its bytes into digest and reader. */
static int take_chunk(fetcher *f, natsMsg *m, uint64_t i, herald_error *err)
{
    const char *index = NULL;
    char want[24];
    snprintf(want, sizeof want, "%llu", (unsigned long long)i);
    const char *id = f->info->id;
    if (natsMsgHeader_Get(m, CHUNK_HEADER, &index) != NATS_OK || strcmp(index, want))
        return herald_fail(err, HERALD_ECORRUPT, "snapshot %s: chunk %s is missing (found %.24s)",
                           id, want, index ? index : "a message without an index");
    int len = natsMsg_GetDataLength(m);
    if (len < 0 || (size_t)len > HD_REPLSNAP_CHUNK || f->bytes + (uint64_t)len > f->info->bytes)
        return herald_fail(err, HERALD_ECORRUPT, "snapshot %s: chunk %s is too large", id, want);
    jsMsgMetaData *meta = NULL;
    if (natsMsg_GetMetaData(&meta, m) != NATS_OK)
        return herald_fail(err, HERALD_ECORRUPT, "snapshot %s: chunk %s has no stream metadata", id,
                           want);
    uint64_t pending = meta->NumPending;
    jsMsgMetaData_Destroy(meta);
    /* The publisher stored every chunk before the manifest: what follows is all there is. */
    if (pending != f->info->chunks - 1 - i)
        return herald_fail(
            err, HERALD_ECORRUPT, "snapshot %s: %llu chunks follow chunk %s, where %llu should", id,
            (unsigned long long)pending, want, (unsigned long long)(f->info->chunks - 1 - i));
    const uint8_t *p = (const uint8_t *)natsMsg_GetData(m);
    f->bytes += (uint64_t)len;
    if (len && EVP_DigestUpdate(f->md, p, (size_t)len) != 1)
        return herald_fail(err, HERALD_ENOMEM, "snapshot digest failed");
    return hd__snaparc_feed(&f->reader, p, (size_t)len, err);
}

/* Reads every chunk in order into the archive reader, then checks length and digest. */
static int read_chunks(fetcher *f, herald_error *err)
{
    const hd_replsnap_info *info = f->info;
    uint64_t count = 0;
    int rc = count_chunks(f, &count, err);
    if (!rc && count != info->chunks)
        rc = herald_fail(err, HERALD_ECORRUPT,
                         "snapshot %s: the stream holds %llu chunks of its %llu", info->id,
                         (unsigned long long)count, (unsigned long long)info->chunks);
    jsOptions o;
    request_opts(&o);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = f->names->stream;
    so.Ordered = true;
    jsErrCode jerr = 0;
    natsStatus s = NATS_OK;
    if (!rc && (s = js_SubscribeSync(&f->sub, f->js, f->subject, &o, &so, &jerr)) != NATS_OK)
        rc = nats_fail(err, s, jerr, "reading snapshot %s", info->id);
    for (uint64_t i = 0; !rc && i < info->chunks; i++) {
        natsMsg *m = NULL;
        s = natsSubscription_NextMsg(&m, f->sub, HD_REPLSNAP_WAIT_MS);
        if (s != NATS_OK)
            rc = nats_fail(err, s, 0, "reading chunk %llu of snapshot %s", (unsigned long long)i,
                           info->id);
        else
            rc = take_chunk(f, m, i, err);
        natsMsg_Destroy(m);
    }
    if (!rc) rc = hd__snaparc_finish(&f->reader, err);
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    char sha[2 * EVP_MAX_MD_SIZE + 1];
    if (!rc && f->bytes != info->bytes)
        rc = herald_fail(err, HERALD_ECORRUPT,
                         "snapshot %s: %llu bytes, where the manifest says %llu", info->id,
                         (unsigned long long)f->bytes, (unsigned long long)info->bytes);
    if (!rc && EVP_DigestFinal_ex(f->md, digest, &dlen) != 1)
        rc = herald_fail(err, HERALD_ENOMEM, "snapshot digest failed");
    if (!rc) hex_of(digest, dlen, sha);
    if (!rc && strcmp(sha, f->sha))
        rc = herald_fail(err, HERALD_ECORRUPT, "snapshot %s: its SHA-256 is not the manifest's",
                         info->id);
    return rc;
}

/* One attempt: the snapshot of manifest `info` into new temporary folder `tmp`. */
static int fetch_into(jsCtx *js, const snap_names *n, const hd_replsnap_info *info, const char *sha,
                      const char *tmp, herald_error *err)
{
    fetcher f = {.js = js, .names = n, .info = info, .sha = sha};
    data_subject(n, info->id, f.subject, sizeof f.subject);
    hd_snaparc_unpack *u = NULL;
    hd_snaparc_sink sink = {0};
    int rc = hd__snaparc_unpack_open(tmp, &u, &sink, err);
    if (!rc && !(f.md = EVP_MD_CTX_new())) rc = herald_fail(err, HERALD_ENOMEM, "out of memory");
    if (!rc && EVP_DigestInit_ex(f.md, EVP_sha256(), NULL) != 1)
        rc = herald_fail(err, HERALD_ENOMEM, "snapshot digest failed");
    hd__snaparc_reader_init(&f.reader, &sink);
    if (!rc) rc = read_chunks(&f, err);
    if (f.sub) {
        /* Takes the ephemeral consumer away now rather than at its inactivity threshold. */
        natsSubscription_Unsubscribe(f.sub);
        natsSubscription_Destroy(f.sub);
    }
    EVP_MD_CTX_free(f.md);
    herald_error close_err = {0};
    int closed = hd__snaparc_unpack_close(u, &close_err);
    if (!rc && closed) {
        rc = closed;
        if (err) *err = close_err;
    }
    /* The database must be the one the manifest describes. Opened as the
     * writer once, as hd__backup does: its lock files are made. */
    uint64_t version = 0, seq = 0;
    if (!rc) rc = read_meta(tmp, false, &version, &seq, err);
    if (!rc && (version != info->version || seq != info->seq))
        rc = herald_fail(err, HERALD_ECORRUPT,
                         "snapshot %s holds version %llu, seq %llu; its manifest says %llu, %llu",
                         info->id, (unsigned long long)version, (unsigned long long)seq,
                         (unsigned long long)info->version, (unsigned long long)info->seq);
    return rc;
}

int hd__replsnap_fetch(jsCtx *js, const char *cluster, const char *dest, hd_replsnap_info *info,
                       herald_error *err)
{
    *info = (hd_replsnap_info){0};
    snap_names n;
    int rc = names_of(cluster, &n, err);
    if (rc) return rc;
    char target[PATH_MAX], tmp[PATH_MAX + 16];
    if ((rc = hd__snaparc_target(dest, target, sizeof target, err))) return rc;
    char sha[65];
    for (int attempt = 1;; attempt++) {
        if ((rc = latest(js, &n, info, sha, err))) return rc;
        snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", target);
        if (!mkdtemp(tmp))
            return herald_fail(err, HERALD_EIO, "cannot create %s: %s", tmp, strerror(errno));
        rc = fetch_into(js, &n, info, sha, tmp, err);
        if (!rc) rc = hd__snaparc_place(tmp, target, err);
        if (!rc) return 0;
        hd__snaparc_remove_tree(tmp);
        if ((rc != HERALD_ECORRUPT && rc != HERALD_EIO) || attempt == FETCH_ATTEMPTS) return rc;
        /* Purged under it by a newer snapshot (its chunks missing, or never coming)? Then
         * that one is fetched instead. */
        hd_replsnap_info now;
        char now_sha[65];
        herald_error latest_err = {0};
        if (latest(js, &n, &now, now_sha, &latest_err) || !strcmp(now.id, info->id)) return rc;
    }
}
