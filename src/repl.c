/*
 * Replication over NATS JetStream; see repl.h and docs/replication.md.
 *
 * Names, for cluster C: the stream HERALD_C (subject herald.C.log) holds
 * one record per group ("HRG1" and the group's log); the key-value bucket
 * herald_C holds the lease under key `primary` ({"node", "until" (Unix ms),
 * "url"}); forwarded writes go to subject herald.C.write; snapshots live in
 * HERALD_C_SNAP (replsnap.h).
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <nats/nats.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "backup.h"
#include "log.h"
#include "repl.h"
#include "replsnap.h"
#include "writer.h"

/*
 * A record's first four bytes: a whole group ("HRG1"), or the pieces of a
 * group larger than a NATS message may be: the first ("HRGS"), the next
 * ("HRGC"), the last ("HRGE"). A group whose append failed part-way leaves
 * pieces without their last in the stream: the next group's first piece
 * (or whole record) tells the replicas to drop them.
 */
#define MAGIC_LEN   4
#define MAGIC_WHOLE "HRG1"
#define MAGIC_FIRST "HRGS"
#define MAGIC_NEXT  "HRGC"
#define MAGIC_LAST  "HRGE"
/* How long a forwarded write may wait for the primary's answer. */
#define FORWARD_SECONDS 30.0
/* How long a starting replica waits for the primary's first snapshot. */
#define SNAPSHOT_WAIT_SECONDS 60.0
/* In a data folder: the next start must fill it from a snapshot. */
#define BOOTSTRAP_MARK "repl-bootstrap"

enum { ROLE_STARTING, ROLE_REPLICA, ROLE_PROMOTING, ROLE_PRIMARY };
static const char *const role_names[] = {"starting", "replica", "starting", "primary"};

typedef struct pending {
    struct pending *next;
    uint64_t id;
    double deadline;
    hd_wreq *req;
} pending;

struct hd_repl {
    hd_repl_config cfg;
    char node[128], cluster[40], stream[64], subject[96], write_subject[96], bucket[64];
    char reply_prefix[128];
    char data_dir[4096];
    double lease_s;
    int copies; /* replicas of the stream and the bucket: the servers given, at most 3 */
    natsConnection *nc;
    jsCtx *js;
    kvStore *kv;
    herald_store *store;
    struct hd_writer *writer;
    void (*wake)(void *);
    void *wake_ctx;
    _Atomic int role;
    _Atomic uint64_t applied_seq; /* the last record in this node's store */
    _Atomic uint64_t handed_seq;  /* the last whole group handed to the writer */
    _Atomic uint64_t seen_seq;    /* the last record received (a piece, or dropped) */
    _Atomic bool rebootstrap;     /* behind the stream's retention, or a record failed */
    pthread_mutex_t lock;         /* what follows */
    pthread_cond_t cond;
    bool stopping;
    pthread_t thread;
    bool thread_started;
    uint64_t lease_rev;
    double lease_until; /* Unix seconds: this node's lease, while it leads */
    char primary[128];  /* the lease holder's name, as last read */
    /* Following the stream (replica): the subscription, the next sequence it expects,
     * and the pieces of a group received so far (on_record's own). */
    natsSubscription *log_sub;
    bool subscribing; /* follow() is making log_sub */
    uint64_t next_seq;
    hd_buf pieces;
    bool in_group;
    /* The primary's side of forwarded writes, and a replica's writes out at the primary. */
    natsSubscription *write_sub, *reply_sub;
    pending *pending;
    uint64_t next_id;
    /* The writer's own: the stream's last sequence as this primary appended it. */
    uint64_t last_seq;
    /* Snapshots (primary). */
    pthread_t snap_thread;
    _Atomic bool snap_running;
    bool snap_joinable;
    uint64_t snap_seq; /* the sequence of the latest snapshot published */
};

static char **saved_argv;

void hd__repl_set_argv(char **argv)
{
    saved_argv = argv;
}

static double wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int nats_fail(herald_error *err, natsStatus st, jsErrCode jerr, const char *what)
{
    const char *text = nats_GetLastError(NULL);
    if (text && !*text) text = NULL;
    if (jerr)
        return herald_fail(err, HERALD_EIO, "NATS: %s: JetStream error %d (%s)", what, (int)jerr,
                           text ? text : natsStatus_GetText(st));
    return herald_fail(err, HERALD_EIO, "NATS: %s: %s", what, text ? text : natsStatus_GetText(st));
}

bool hd__repl_is_primary(hd_repl *r)
{
    return atomic_load(&r->role) == ROLE_PRIMARY;
}

/* ---- setup ---- */

static bool good_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 32) return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '-' || s[i] == '_' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return false;
    return true;
}

static int connect_nats(hd_repl *r, herald_error *err)
{
    char *urls = strdup(r->cfg.urls);
    const char *list[16];
    int n = 0;
    if (!urls) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    for (char *save = NULL, *t = strtok_r(urls, ",", &save); t && n < 16;
         t = strtok_r(NULL, ",", &save))
        if (*t) list[n++] = t;
    natsOptions *o = NULL;
    natsStatus st = natsOptions_Create(&o);
    char name[160];
    snprintf(name, sizeof name, "herald %s", r->node);
    if (st == NATS_OK) st = natsOptions_SetServers(o, list, n);
    if (st == NATS_OK) st = natsOptions_SetName(o, name);
    if (st == NATS_OK) st = natsOptions_SetMaxReconnect(o, -1);
    if (st == NATS_OK) st = natsOptions_SetReconnectWait(o, 250);
    if (st == NATS_OK) st = natsOptions_SetTimeout(o, 2000);
    if (st == NATS_OK) st = natsOptions_SetMaxPendingMsgs(o, 1 << 20);
    /* tls:// URLs: TLS, the servers' certificates checked against --replicate-ca, else
     * the system's CAs. */
    bool tls = false;
    for (int i = 0; i < n; i++)
        tls |= !strncmp(list[i], "tls://", 6);
    if (st == NATS_OK && (tls || r->cfg.ca)) st = natsOptions_SetSecure(o, true);
    if (st == NATS_OK && (tls || r->cfg.ca))
        st = natsOptions_LoadCATrustedCertificates(
            o, r->cfg.ca ? r->cfg.ca : "/etc/ssl/certs/ca-certificates.crt");
    int rc = 0;
    if (st != NATS_OK) {
        rc = nats_fail(err, st, 0, "options");
    } else {
        /* The cluster may be starting beside this node: try for a while. */
        double until = mono_now() + 30;
        for (bool told = false;
             (st = natsConnection_Connect(&r->nc, o)) != NATS_OK && mono_now() < until;
             told = true) {
            if (!told) {
                const char *why = nats_GetLastError(NULL);
                hd__log(HD_LOG_WARN, "replication_connect",
                        "herald: cannot reach the NATS servers yet (%s): trying for 30 s",
                        why && *why ? why : natsStatus_GetText(st));
            }
            usleep(250 * 1000);
        }
        if (st != NATS_OK) rc = nats_fail(err, st, 0, "cannot connect to --replicate");
    }
    r->copies = n > 3 ? 3 : n < 1 ? 1 : n;
    natsOptions_Destroy(o);
    free(urls);
    if (rc) return rc;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 5000;
    if ((st = natsConnection_JetStream(&r->js, r->nc, &jo)) != NATS_OK)
        return nats_fail(err, st, 0, "JetStream");
    return 0;
}

/* The stream of records, made by the first node of the cluster. */
static int ensure_stream(hd_repl *r, herald_error *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr);
    if (st == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    if (st != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return nats_fail(err, st, jerr, "reading the stream");
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char *subjects[] = {r->subject};
    sc.Name = r->stream;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = r->copies;
    sc.MaxMsgs = (int64_t)r->cfg.retain;
    sc.Discard = js_DiscardOld;
    jerr = 0;
    st = js_AddStream(&si, r->js, &sc, NULL, &jerr);
    if (st == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    /* Another node made it meanwhile. */
    if (js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr) == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return 0;
    }
    return nats_fail(err, st, jerr, "making the stream");
}

static int ensure_bucket(hd_repl *r, herald_error *err)
{
    natsStatus st = js_KeyValue(&r->kv, r->js, r->bucket);
    if (st == NATS_OK) return 0;
    kvConfig kc;
    kvConfig_Init(&kc);
    kc.Bucket = r->bucket;
    kc.History = 1;
    kc.Replicas = r->copies;
    st = js_CreateKeyValue(&r->kv, r->js, &kc);
    if (st == NATS_OK) return 0;
    if (js_KeyValue(&r->kv, r->js, r->bucket) == NATS_OK) return 0;
    return nats_fail(err, st, 0, "making the lease bucket");
}

static int stream_state(hd_repl *r, uint64_t *first, uint64_t *last, herald_error *err)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, r->js, r->stream, NULL, &jerr);
    if (st != NATS_OK) return nats_fail(err, st, jerr, "reading the stream");
    *first = si->State.FirstSeq;
    *last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return 0;
}

/* The lease as stored: its holder, until when, and its revision; false when there is none. */
static bool read_lease(hd_repl *r, char *node, size_t n, double *until, uint64_t *rev)
{
    kvEntry *e = NULL;
    if (kvStore_Get(&e, r->kv, "primary") != NATS_OK) return false;
    cJSON *j = cJSON_ParseWithLength(kvEntry_Value(e), (size_t)kvEntry_ValueLen(e));
    const cJSON *who = cJSON_GetObjectItemCaseSensitive(j, "node");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "until");
    snprintf(node, n, "%s", cJSON_IsString(who) ? who->valuestring : "");
    *until = cJSON_IsNumber(u) ? u->valuedouble / 1000.0 : 0;
    *rev = kvEntry_Revision(e);
    cJSON_Delete(j);
    kvEntry_Destroy(e);
    return true;
}

/* ---- the data folder at start ---- */

/* The sequence and version of the store in `dir`, read without writing (0: none). */
static int local_state(const char *dir, uint64_t *seq, uint64_t *version, bool *has_db,
                       herald_error *err)
{
    *seq = *version = 0;
    *has_db = false;
    herald_store *s;
    herald_store_options so = {.read_only = true};
    herald_error e2 = {0};
    int rc = herald_store_open(dir, &so, &s, &e2);
    if (rc == HERALD_ENOTFOUND) return 0;
    if (rc) return herald_fail(err, rc, "%s", e2.message);
    *has_db = true;
    rc = herald_store_get_meta(s, "repl_seq", seq, err);
    *version = herald_store_version(s);
    herald_store_close(s);
    return rc;
}

/* Whether `dir` holds anything (a missing folder holds nothing). */
static bool folder_used(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return false;
    bool used = false;
    for (struct dirent *e; (e = readdir(d)) && !used;)
        used = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return used;
}

/*
 * Fills the data folder from the latest snapshot, waiting for one while
 * the primary makes its first; an older folder is moved aside, not deleted.
 */
static int bootstrap(hd_repl *r, const char *dir, bool disposable, herald_error *err)
{
    hd_replsnap_info info;
    double until = mono_now() + SNAPSHOT_WAIT_SECONDS;
    int rc;
    while ((rc = hd__replsnap_latest(r->js, r->cluster, &info, err)) == HERALD_ENOTFOUND &&
           mono_now() < until)
        usleep(200 * 1000);
    if (rc == HERALD_ENOTFOUND)
        return herald_fail(err, HERALD_ENOTFOUND,
                           "no snapshot of cluster `%s` to start from: start the primary first",
                           r->cluster);
    if (rc) return rc;
    char fetched[4200], aside[4200];
    snprintf(fetched, sizeof fetched, "%s.snapshot", dir);
    hd__backup_remove(fetched); /* left by a start that stopped half-way */
    /* A fetch that overlapped a new snapshot's purge, or a slow NATS, may fail; try again. */
    for (int attempt = 1; (rc = hd__replsnap_fetch(r->js, r->cluster, fetched, &info, err)) &&
                          rc == HERALD_EIO && attempt < 3;
         attempt++) {
        hd__log(HD_LOG_WARN, "snapshot_fetch", "herald: fetching a snapshot failed (%s): again",
                err->message);
        sleep(1);
    }
    if (rc) return rc;
    /* A store nothing was ever written to (the app's schema applied before this), or a
     * copy of this cluster's (everything in it is in the snapshot too), goes. */
    if (disposable) hd__backup_remove(dir);
    if (folder_used(dir)) {
        snprintf(aside, sizeof aside, "%s.stale-%ld", dir, (long)time(NULL));
        if (rename(dir, aside) != 0)
            return herald_fail(err, HERALD_EIO, "cannot move %s aside: %s", dir, strerror(errno));
        hd__log(HD_LOG_WARN, "replica_data_moved",
                "herald: the data folder was behind the stream; moved to %s", aside);
    }
    herald_store *s;
    herald_store_options so = {.read_only = true};
    if ((rc = herald_store_open(fetched, &so, &s, err))) return rc;
    hd_backup_info bi;
    rc = hd__backup(s, fetched, dir, &bi, err);
    herald_store_close(s);
    hd__backup_remove(fetched); /* restored, or not: the fetched copy served its purpose */
    if (!rc)
        hd__log(HD_LOG_INFO, "replica_bootstrapped",
                "herald: started from snapshot %s (stream sequence %llu, version %llu)", info.id,
                (unsigned long long)info.seq, (unsigned long long)info.version);
    return rc;
}

static int prepare_folder(hd_repl *r, const char *dir, herald_error *err)
{
    uint64_t seq, version, first, last;
    bool has_db;
    int rc = local_state(dir, &seq, &version, &has_db, err);
    if (!rc) rc = stream_state(r, &first, &last, err);
    if (rc) return rc;
    hd_replsnap_info info;
    herald_error ignored;
    bool snapshot = hd__replsnap_latest(r->js, r->cluster, &info, &ignored) == 0;
    char mark[4200];
    snprintf(mark, sizeof mark, "%s/%s", dir, BOOTSTRAP_MARK);
    if (access(mark, F_OK) == 0) {
        hd__log(HD_LOG_WARN, "replica_bootstrap", "herald: %s asks for a start from a snapshot",
                mark);
        rc = bootstrap(r, dir, has_db && (seq > 0 || version == 0), err);
        if (!rc) unlink(mark); /* a folder moved aside took it along */
        return rc;
    }
    if (seq > last)
        return herald_fail(err, HERALD_ECORRUPT,
                           "the data folder holds stream sequence %llu but stream %s ends at %llu: "
                           "it belongs to another cluster (use another --data or --cluster)",
                           (unsigned long long)seq, r->stream, (unsigned long long)last);
    /* A brand-new cluster: this node's folder, empty or not, is where it starts. */
    if (last == 0 && !snapshot) return 0;
    /* The stream still holds every record after this folder's. */
    if (has_db && seq > 0 && seq + 1 >= first) return 0;
    return bootstrap(r, dir, has_db && (seq > 0 || version == 0), err);
}

int hd__repl_open(const hd_repl_config *cfg, const char *data_dir, int port, hd_repl **out,
                  herald_error *err)
{
    *out = NULL;
    hd_repl *r = calloc(1, sizeof *r);
    if (!r) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    r->cfg = *cfg;
    if (!r->cfg.retain) r->cfg.retain = 1000000;
    if (!r->cfg.snapshot_every) r->cfg.snapshot_every = 10000;
    r->lease_s = cfg->lease > 0 ? cfg->lease : 5;
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    snprintf(r->cluster, sizeof r->cluster, "%s", cfg->cluster ? cfg->cluster : "herald");
    snprintf(r->data_dir, sizeof r->data_dir, "%s", data_dir);
    if (cfg->node) {
        snprintf(r->node, sizeof r->node, "%s", cfg->node);
    } else {
        char host[100] = "herald";
        gethostname(host, sizeof host - 1);
        snprintf(r->node, sizeof r->node, "%s-%d", host, port);
    }
    int rc = 0;
    const char *role = cfg->role ? cfg->role : "auto";
    if (!good_name(r->cluster))
        rc = herald_fail(err, HERALD_EINVAL, "--cluster: 1 to 32 letters, digits, - or _");
    else if (strcmp(role, "auto") && strcmp(role, "primary") && strcmp(role, "replica"))
        rc = herald_fail(err, HERALD_EINVAL, "--role must be auto, primary or replica");
    else if (strlen(r->node) == 0 || strpbrk(r->node, "\"\\ \t\r\n"))
        rc = herald_fail(err, HERALD_EINVAL, "--node: a name without spaces or quotes");
    if (rc) {
        hd__repl_free(r);
        return rc;
    }
    snprintf(r->stream, sizeof r->stream, "HERALD_%s", r->cluster);
    snprintf(r->subject, sizeof r->subject, "herald.%s.log", r->cluster);
    snprintf(r->write_subject, sizeof r->write_subject, "herald.%s.write", r->cluster);
    snprintf(r->bucket, sizeof r->bucket, "herald_%s", r->cluster);
    atomic_store(&r->role, ROLE_STARTING);
    if ((rc = connect_nats(r, err)) || (rc = ensure_stream(r, err)) ||
        (rc = ensure_bucket(r, err)) ||
        (rc = hd__replsnap_ensure(r->js, r->cluster, r->copies, err))) {
        hd__repl_free(r);
        return rc;
    }
    if (!strcmp(role, "primary")) {
        char holder[128];
        double until;
        uint64_t rev;
        if (read_lease(r, holder, sizeof holder, &until, &rev) && until > wall_now() &&
            strcmp(holder, r->node)) {
            rc = herald_fail(err, HERALD_EBUSY,
                             "--role primary: node `%s` holds the primary's lease of cluster `%s`",
                             holder, r->cluster);
            hd__repl_free(r);
            return rc;
        }
    }
    if ((rc = prepare_folder(r, data_dir, err))) {
        hd__repl_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- following the stream ---- */

static void on_record(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    hd_repl *r = closure;
    jsMsgMetaData *meta = NULL;
    uint64_t seq = 0;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
    }
    pthread_mutex_lock(&r->lock);
    bool current = (r->log_sub == sub || (r->subscribing && !r->log_sub)) && !r->stopping;
    if (!current || seq == 0 || seq < r->next_seq) {
        /* A record of an older subscription, or one this node has already. */
        pthread_mutex_unlock(&r->lock);
        natsMsg_Destroy(msg);
        return;
    }
    if (seq > r->next_seq) {
        /* Records this node needs are gone from the stream. */
        pthread_mutex_unlock(&r->lock);
        natsMsg_Destroy(msg);
        if (!atomic_exchange(&r->rebootstrap, true))
            hd__log(HD_LOG_WARN, "replica_behind",
                    "herald: stream records %llu to %llu are gone (retention): starting again "
                    "from a snapshot",
                    (unsigned long long)r->next_seq, (unsigned long long)seq - 1);
        pthread_cond_signal(&r->cond);
        return;
    }
    r->next_seq = seq + 1;
    pthread_mutex_unlock(&r->lock);
    atomic_store(&r->seen_seq, seq);
    const char *data = natsMsg_GetData(msg);
    int len = natsMsg_GetDataLength(msg);
    const char *kind = len >= MAGIC_LEN ? data : "";
    bool whole = !strncmp(kind, MAGIC_WHOLE, MAGIC_LEN);
    bool first = !strncmp(kind, MAGIC_FIRST, MAGIC_LEN);
    bool next = !strncmp(kind, MAGIC_NEXT, MAGIC_LEN);
    bool last = !strncmp(kind, MAGIC_LAST, MAGIC_LEN);
    int rc = whole || first || next || last ? 0 : HERALD_ECORRUPT;
    if (whole || first) {
        /* Pieces of a group whose append failed part-way are dropped. */
        r->pieces.len = 0;
        r->in_group = first;
    }
    if (!rc && (r->in_group || whole))
        hd__buf_append(&r->pieces, data + MAGIC_LEN, (size_t)len - MAGIC_LEN);
    natsMsg_Destroy(msg);
    if (first || next || (last && !r->in_group)) {
        /* Not the end of a group (or a piece of one this node never saw begin). */
        if (!rc && !r->pieces.failed) return;
    }
    r->in_group = false;
    hd_wreq *w = rc || r->pieces.failed ? NULL : calloc(1, sizeof *w);
    if (w) {
        w->repl_len = r->pieces.len;
        w->repl_log = hd__buf_take(&r->pieces, &w->repl_len);
        w->repl_seq = seq;
    }
    r->pieces = (hd_buf)HD_BUF_INIT;
    if (!w || !w->repl_log) {
        herald_error e = {0};
        herald_fail(&e, rc ? rc : HERALD_ENOMEM, "stream record %llu is not Herald's",
                    (unsigned long long)seq);
        hd__wreq_free(w);
        hd__repl_apply_failed(r, &e);
        return;
    }
    atomic_store(&r->handed_seq, seq);
    hd__writer_submit(r->writer, w);
}

/*
 * Starts following the stream after this node's last record, unless it
 * does. The subscription is made without `lock` held (it waits on the
 * network); records it delivers meanwhile are taken as its.
 */
static int follow(hd_repl *r, herald_error *err)
{
    pthread_mutex_lock(&r->lock);
    if (r->log_sub || r->subscribing) {
        pthread_mutex_unlock(&r->lock);
        return 0;
    }
    uint64_t from = atomic_load(&r->applied_seq) + 1;
    r->next_seq = from;
    hd__buf_free(&r->pieces); /* this node's store ends where a group ends */
    atomic_store(&r->seen_seq, from - 1);
    atomic_store(&r->handed_seq, from - 1);
    r->in_group = false;
    r->subscribing = true;
    pthread_mutex_unlock(&r->lock);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    jsErrCode jerr = 0;
    natsSubscription *sub = NULL;
    natsStatus st = js_Subscribe(&sub, r->js, r->subject, on_record, r, NULL, &so, &jerr);
    if (st == NATS_OK) natsSubscription_SetPendingLimits(sub, -1, -1);
    pthread_mutex_lock(&r->lock);
    r->subscribing = false;
    if (st == NATS_OK) r->log_sub = sub;
    pthread_mutex_unlock(&r->lock);
    return st == NATS_OK ? 0 : nats_fail(err, st, jerr, "following the stream");
}

static void unfollow(hd_repl *r)
{
    pthread_mutex_lock(&r->lock);
    natsSubscription *sub = r->log_sub;
    r->log_sub = NULL;
    pthread_mutex_unlock(&r->lock);
    if (!sub) return;
    /* Unsubscribing waits for nothing; records still delivered see they are not current. */
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
}

/* ---- forwarded writes ---- */

static char *request_json(const hd_wreq *q)
{
    cJSON *j = cJSON_CreateObject();
    char *text = NULL;
    bool ok = j != NULL;
    if (ok && q->fn_path) ok = cJSON_AddStringToObject(j, "path", q->fn_path) != NULL;
    const herald_value *vals[] = {&q->fn_args, &q->ops, &q->identity};
    const char *names[] = {"args", "ops", "identity"};
    for (int i = 0; i < 3 && ok; i++) {
        if (vals[i]->type == HERALD_UNDEFINED) continue;
        char *t = herald_value_to_json(vals[i]);
        cJSON *v = t ? cJSON_Parse(t) : NULL;
        free(t);
        ok = v && cJSON_AddItemToObject(j, names[i], v);
        if (!ok) cJSON_Delete(v);
    }
    if (ok && q->idempotency_key)
        ok = cJSON_AddStringToObject(j, "idempotencyKey", q->idempotency_key) != NULL;
    if (ok)
        ok = cJSON_AddBoolToObject(j, "admin", q->admin) &&
             cJSON_AddBoolToObject(j, "internal", q->internal);
    if (ok) text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

static int value_of(const cJSON *j, const char *name, herald_value *out, herald_error *err)
{
    *out = herald_undefined();
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    if (!v) return 0;
    char *t = cJSON_PrintUnformatted(v);
    if (!t) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    int rc = herald_value_from_json(t, strlen(t), out, err);
    free(t);
    return rc;
}

/* A pending write's answer (or failure) goes back through the writer. */
static void settle(hd_repl *r, hd_wreq *q)
{
    hd__writer_submit_forwarded(r->writer, q);
}

static void fail_forward(hd_repl *r, hd_wreq *q, int code, const char *msg)
{
    q->rc = herald_fail(&q->err, code, "%s", msg);
    settle(r, q);
}

static void on_reply(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    hd_repl *r = closure;
    const char *subj = natsMsg_GetSubject(msg);
    const char *dot = strrchr(subj, '.');
    uint64_t id = dot ? strtoull(dot + 1, NULL, 10) : 0;
    pthread_mutex_lock(&r->lock);
    hd_wreq *q = NULL;
    for (pending **p = &r->pending; *p; p = &(*p)->next)
        if ((*p)->id == id) {
            pending *hit = *p;
            *p = hit->next;
            q = hit->req;
            free(hit);
            break;
        }
    pthread_mutex_unlock(&r->lock);
    if (!q) {
        natsMsg_Destroy(msg);
        return;
    }
    if (natsMsg_IsNoResponders(msg)) {
        natsMsg_Destroy(msg);
        fail_forward(r, q, HERALD_EBUSY, "no primary right now (a new one is taking over): retry");
        return;
    }
    cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
    const cJSON *rc = cJSON_GetObjectItemCaseSensitive(j, "rc");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(j, "message");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(j, "version");
    herald_error perr = {0};
    if (!cJSON_IsNumber(rc)) {
        q->rc = herald_fail(&q->err, HERALD_EIO, "the primary's answer is not Herald's");
    } else if (rc->valueint) {
        q->rc = herald_fail(&q->err, rc->valueint, "%s",
                            cJSON_IsString(message) ? message->valuestring : "failed");
        value_of(j, "errorData", &q->error_data, &perr);
    } else if (value_of(j, "result", &q->result, &perr)) {
        q->rc = herald_fail(&q->err, perr.code ? perr.code : HERALD_EIO, "%s", perr.message);
    } else {
        q->rc = 0;
        q->version = cJSON_IsNumber(version) ? (uint64_t)version->valuedouble : 0;
    }
    cJSON_Delete(j);
    settle(r, q);
}

void hd__repl_forward(hd_repl *r, hd_wreq *q)
{
    if (q->upload_tmp || q->system || q->scheduled_id || q->cron || q->sched_start ||
        q->sched_finish) {
        fail_forward(r, q, HERALD_EBUSY,
                     "this node is a replica: uploads and scheduled runs happen on the primary");
        return;
    }
    if (atomic_load(&r->role) == ROLE_PROMOTING) {
        fail_forward(r, q, HERALD_EBUSY, "this node is becoming the primary: retry");
        return;
    }
    char *body = request_json(q);
    pending *p = calloc(1, sizeof *p);
    if (!body || !p) {
        free(body);
        free(p);
        fail_forward(r, q, HERALD_ENOMEM, "out of memory");
        return;
    }
    pthread_mutex_lock(&r->lock);
    p->id = ++r->next_id;
    p->req = q;
    p->deadline = mono_now() + FORWARD_SECONDS;
    p->next = r->pending;
    r->pending = p;
    uint64_t id = p->id;
    pthread_mutex_unlock(&r->lock);
    char reply[200];
    snprintf(reply, sizeof reply, "%s.%llu", r->reply_prefix, (unsigned long long)id);
    natsStatus st =
        natsConnection_PublishRequest(r->nc, r->write_subject, reply, body, (int)strlen(body));
    free(body);
    if (st == NATS_OK) return;
    /* Not sent: answered now, unless a sweep took it meanwhile. */
    bool mine = false;
    pthread_mutex_lock(&r->lock);
    for (pending **pp = &r->pending; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            mine = true;
            break;
        }
    pthread_mutex_unlock(&r->lock);
    if (!mine) return;
    free(p);
    char why[200];
    snprintf(why, sizeof why, "the write could not be sent to the primary: %s",
             natsStatus_GetText(st));
    fail_forward(r, q, st == NATS_MAX_PAYLOAD ? HERALD_ELIMIT : HERALD_EBUSY, why);
}

/* Forwarded writes the primary did not answer in time (all of them: the primary is gone). */
static void sweep_pending(hd_repl *r, bool all)
{
    double now = all ? INFINITY : mono_now();
    pending *late = NULL;
    pthread_mutex_lock(&r->lock);
    for (pending **p = &r->pending; *p;) {
        if ((*p)->deadline > now) {
            p = &(*p)->next;
            continue;
        }
        pending *x = *p;
        *p = x->next;
        x->next = late;
        late = x;
    }
    pthread_mutex_unlock(&r->lock);
    while (late) {
        pending *x = late;
        late = x->next;
        fail_forward(
            r, x->req, HERALD_EBUSY,
            all ? "the primary went away: the write may or may not have been applied"
                : "the primary did not answer: the write may or may not have been applied");
        free(x);
    }
}

/* The primary: a write from another node, run like one of its own clients'. */
static void on_write(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    hd_repl *r = closure;
    const char *reply = natsMsg_GetReply(msg);
    /* A node that is not the primary (any more) says nothing: the primary answers, and
     * a refusal from here could reach the replica before the primary's commit does. */
    if (!reply || !hd__repl_is_primary(r)) {
        natsMsg_Destroy(msg);
        return;
    }
    hd_wreq *q = calloc(1, sizeof *q);
    cJSON *j = cJSON_ParseWithLength(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg));
    herald_error e = {0};
    int rc = q && j ? 0 : herald_fail(&e, HERALD_EINVAL, "a forwarded write that is not JSON");
    if (!rc) {
        const cJSON *path = cJSON_GetObjectItemCaseSensitive(j, "path");
        const cJSON *idem = cJSON_GetObjectItemCaseSensitive(j, "idempotencyKey");
        q->admin = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "admin"));
        q->internal = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "internal"));
        if ((cJSON_IsString(path) && !(q->fn_path = strdup(path->valuestring))) ||
            (cJSON_IsString(idem) && !(q->idempotency_key = strdup(idem->valuestring))) ||
            !(q->forward_reply = strdup(reply)))
            rc = herald_fail(&e, HERALD_ENOMEM, "out of memory");
        if (!rc) rc = value_of(j, "args", &q->fn_args, &e);
        if (!rc) rc = value_of(j, "ops", &q->ops, &e);
        if (!rc) rc = value_of(j, "identity", &q->identity, &e);
        if (!rc && !q->fn_path && q->ops.type == HERALD_UNDEFINED)
            rc = herald_fail(&e, HERALD_EINVAL, "a forwarded write without a function or ops");
    }
    cJSON_Delete(j);
    if (rc) {
        char body[400];
        hd_buf b = HD_BUF_INIT;
        snprintf(body, sizeof body, "{\"rc\":%d,\"message\":", rc);
        hd__buf_str(&b, body);
        cJSON *m = cJSON_CreateString(e.message);
        char *ms = m ? cJSON_PrintUnformatted(m) : NULL;
        hd__buf_str(&b, ms ? ms : "\"\"");
        hd__buf_byte(&b, '}');
        free(ms);
        cJSON_Delete(m);
        /* `reply` is the message's: it goes after the answer. */
        if (!b.failed) natsConnection_Publish(nc, reply, b.p, (int)b.len);
        hd__buf_free(&b);
        hd__wreq_free(q);
        natsMsg_Destroy(msg);
        return;
    }
    natsMsg_Destroy(msg);
    hd__writer_submit(r->writer, q);
}

void hd__repl_answer(hd_repl *r, const hd_wreq *q)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return;
    cJSON_AddNumberToObject(j, "rc", q->rc);
    if (q->rc) {
        cJSON_AddStringToObject(j, "message", q->err.message);
        if (q->error_data.type != HERALD_UNDEFINED) {
            char *t = herald_value_to_json(&q->error_data);
            cJSON *v = t ? cJSON_Parse(t) : NULL;
            free(t);
            if (v) cJSON_AddItemToObject(j, "errorData", v);
        }
    } else {
        cJSON_AddNumberToObject(j, "version", (double)q->version);
        char *t = herald_value_to_json(&q->result);
        cJSON *v = t ? cJSON_Parse(t) : NULL;
        free(t);
        if (v) cJSON_AddItemToObject(j, "result", v);
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (text) natsConnection_Publish(r->nc, q->forward_reply, text, (int)strlen(text));
    free(text);
}

/* ---- the primary's appends ---- */

int hd__repl_append(hd_repl *r, const uint8_t *log, size_t len, uint64_t *seq, herald_error *err)
{
    *seq = 0;
    if (!len) return 0;
    pthread_mutex_lock(&r->lock);
    bool leased = wall_now() < r->lease_until;
    pthread_mutex_unlock(&r->lock);
    if (!leased || !hd__repl_is_primary(r)) {
        atomic_store(&r->role, ROLE_REPLICA);
        pthread_cond_signal(&r->cond);
        return herald_fail(err, HERALD_EBUSY,
                           "this node's primary lease lapsed: nothing was written, retry");
    }
    /* A group larger than a NATS message goes in pieces, each appended after the last. */
    int64_t max = natsConnection_GetMaxPayload(r->nc);
    size_t piece = max > 4096 ? (size_t)max - 1024 : 3072;
    size_t npieces = (len + piece - 1) / piece;
    uint8_t *msg = malloc((len < piece ? len : piece) + MAGIC_LEN);
    if (!msg) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    natsStatus st = NATS_OK;
    jsErrCode jerr = 0;
    jsPubAck *ack = NULL;
    for (size_t i = 0; i < npieces && st == NATS_OK; i++) {
        size_t at = i * piece, n = len - at < piece ? len - at : piece;
        const char *kind = npieces == 1      ? MAGIC_WHOLE
                           : i == 0          ? MAGIC_FIRST
                           : i + 1 < npieces ? MAGIC_NEXT
                                             : MAGIC_LAST;
        memcpy(msg, kind, MAGIC_LEN);
        memcpy(msg + MAGIC_LEN, log + at, n);
        jsPubOptions po;
        jsPubOptions_Init(&po);
        po.ExpectStream = r->stream;
        /* Fencing: the stream must end where this primary last appended. */
        if (r->last_seq)
            po.ExpectLastSeq = r->last_seq;
        else
            po.ExpectNoMessage = true;
        jsPubAck_Destroy(ack);
        ack = NULL;
        st = js_Publish(&ack, r->js, r->subject, msg, (int)(n + MAGIC_LEN), &po, &jerr);
        if (st == NATS_OK && ack) r->last_seq = ack->Sequence;
        if (st == NATS_OK && !ack) st = NATS_ERR;
    }
    free(msg);
    if (st == NATS_OK) {
        *seq = ack->Sequence;
        jsPubAck_Destroy(ack);
        return 0;
    }
    jsPubAck_Destroy(ack);
    /* Fenced off, or the append's fate is unknown: this node follows the stream again
     * (which holds the group if it was appended after all) before it may lead. */
    atomic_store(&r->role, ROLE_REPLICA);
    pthread_cond_signal(&r->cond);
    if (jerr == JSStreamWrongLastSequenceErr)
        return herald_fail(err, HERALD_EBUSY,
                           "another node has become the primary: nothing was written, retry");
    hd__log(HD_LOG_WARN, "replication_append_failed", "herald: appending to %s failed: %s",
            r->stream,
            nats_GetLastError(NULL) && *nats_GetLastError(NULL) ? nats_GetLastError(NULL)
                                                                : natsStatus_GetText(st));
    return herald_fail(err, HERALD_EBUSY,
                       "the replication stream did not confirm the write (%s): it may have been "
                       "applied; check before retrying without an idempotency key",
                       natsStatus_GetText(st));
}

uint64_t hd__repl_applied_seq(hd_repl *r)
{
    return atomic_load(&r->applied_seq);
}

void hd__repl_committed(hd_repl *r, uint64_t seq)
{
    atomic_store(&r->applied_seq, seq);
    pthread_cond_signal(&r->cond);
}

void hd__repl_apply_failed(hd_repl *r, const herald_error *err)
{
    hd__log(HD_LOG_ERROR, "replica_apply_failed",
            "herald: a stream record did not apply (%s): starting again from a snapshot",
            err ? err->message : "");
    atomic_store(&r->rebootstrap, true);
    pthread_cond_signal(&r->cond);
}

/* ---- the lease ---- */

static int lease_value(hd_repl *r, char *out, size_t n, double until)
{
    return snprintf(out, n, "{\"node\":\"%s\",\"until\":%.0f}", r->node, until * 1000.0);
}

/* Renews this node's lease; false when it is lost (another node holds it, or it lapsed). */
static bool renew(hd_repl *r)
{
    char v[300];
    double now = wall_now();
    int n = lease_value(r, v, sizeof v, now + r->lease_s);
    uint64_t rev = 0;
    natsStatus st = kvStore_Update(&rev, r->kv, "primary", v, n, r->lease_rev);
    pthread_mutex_lock(&r->lock);
    bool ok = st == NATS_OK;
    if (ok) {
        r->lease_rev = rev;
        r->lease_until = now + r->lease_s;
    }
    /* Unreachable NATS keeps the lease only while it has not lapsed. */
    bool kept = ok || (st != NATS_ERR && now < r->lease_until);
    pthread_mutex_unlock(&r->lock);
    return kept;
}

/* Stops listening for the replicas' writes (a node that does not lead). */
static void stop_listening(hd_repl *r)
{
    pthread_mutex_lock(&r->lock);
    natsSubscription *ws = r->write_sub;
    r->write_sub = NULL;
    pthread_mutex_unlock(&r->lock);
    if (ws) {
        natsSubscription_Unsubscribe(ws);
        natsSubscription_Destroy(ws);
    }
}

static void step_down(hd_repl *r, const char *why)
{
    int was = atomic_exchange(&r->role, ROLE_REPLICA);
    pthread_mutex_lock(&r->lock);
    r->lease_until = 0;
    bool stopping = r->stopping;
    pthread_mutex_unlock(&r->lock);
    herald_error err = {0};
    if (!stopping && follow(r, &err))
        hd__log(HD_LOG_WARN, "replica_follow", "herald: %s", err.message);
    stop_listening(r);
    if (was == ROLE_PRIMARY || was == ROLE_PROMOTING)
        hd__log(HD_LOG_WARN, "primary_stepped_down", "herald: node %s is a replica again: %s",
                r->node, why);
    r->wake(r->wake_ctx);
}

/* The snapshot thread: one at a time, while this node leads. */
static void *snapshot_main(void *arg)
{
    hd_repl *r = arg;
    hd_replsnap_info info;
    herald_error err = {0};
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s", r->data_dir);
    char *slash = strrchr(tmp, '/');
    if (slash && slash != tmp)
        *slash = 0;
    else
        snprintf(tmp, sizeof tmp, ".");
    if (hd__replsnap_publish(r->js, r->cluster, r->store, r->data_dir, tmp, &info, &err) == 0) {
        pthread_mutex_lock(&r->lock);
        r->snap_seq = info.seq;
        pthread_mutex_unlock(&r->lock);
        hd__log(HD_LOG_INFO, "snapshot_published",
                "herald: snapshot %s published (stream sequence %llu, %llu bytes)", info.id,
                (unsigned long long)info.seq, (unsigned long long)info.bytes);
    } else {
        hd__log(HD_LOG_WARN, "snapshot_failed", "herald: snapshot not published: %s", err.message);
    }
    atomic_store(&r->snap_running, false);
    return NULL;
}

static void maybe_snapshot(hd_repl *r, bool force)
{
    if (atomic_load(&r->snap_running)) return;
    pthread_mutex_lock(&r->lock);
    uint64_t since = atomic_load(&r->applied_seq) - r->snap_seq;
    bool joinable = r->snap_joinable;
    pthread_mutex_unlock(&r->lock);
    if (!force && since < r->cfg.snapshot_every) return;
    if (joinable) pthread_join(r->snap_thread, NULL);
    atomic_store(&r->snap_running, true);
    pthread_mutex_lock(&r->lock);
    r->snap_joinable = pthread_create(&r->snap_thread, NULL, snapshot_main, r) == 0;
    if (!r->snap_joinable) atomic_store(&r->snap_running, false);
    pthread_mutex_unlock(&r->lock);
}

/*
 * This node took the lease: it applies the stream to its end, stops
 * following it, and leads. Gives up (a replica again) if it cannot catch
 * up while its lease lives.
 */
static void promote(hd_repl *r)
{
    atomic_store(&r->role, ROLE_PROMOTING);
    herald_error err = {0};
    uint64_t first, last;
    bool ok = false;
    double give_up = mono_now() + 30;
    while (mono_now() < give_up) {
        pthread_mutex_lock(&r->lock);
        bool stopping = r->stopping;
        pthread_mutex_unlock(&r->lock);
        if (stopping) {
            herald_fail(&err, HERALD_EBUSY, "the server stops");
            break;
        }
        if (stream_state(r, &first, &last, &err)) break;
        /* Every record received (pieces of a group never finished are dropped), and every
         * group handed to the writer applied. */
        uint64_t applied = atomic_load(&r->applied_seq);
        if (applied >= last ||
            (atomic_load(&r->seen_seq) >= last && applied >= atomic_load(&r->handed_seq))) {
            ok = true;
            break;
        }
        if (follow(r, &err)) break;
        usleep(20 * 1000);
        if (!renew(r)) break;
    }
    if (!ok) {
        step_down(r, err.message[0] ? err.message : "it could not catch up with the stream");
        return;
    }
    unfollow(r);
    /* Records handed to the writer meanwhile are applied by now (applied_seq == last). */
    r->last_seq = last;
    hd_replsnap_info info;
    herald_error ignored;
    bool fresh = hd__replsnap_latest(r->js, r->cluster, &info, &ignored) == 0 &&
                 info.seq + 1 >= first && (first > 0 || info.seq == 0);
    pthread_mutex_lock(&r->lock);
    if (fresh) r->snap_seq = info.seq;
    snprintf(r->primary, sizeof r->primary, "%s", r->node);
    bool listening = r->write_sub != NULL;
    pthread_mutex_unlock(&r->lock);
    /* Leading before listening: a forwarded write is never dropped as if this node did not
     * lead. One subscription at most (a node that failed an append has its own until the
     * lease thread drops it), or each write would run twice. */
    atomic_store(&r->role, ROLE_PRIMARY);
    natsSubscription *ws = NULL;
    if (!listening &&
        natsConnection_Subscribe(&ws, r->nc, r->write_subject, on_write, r) != NATS_OK) {
        step_down(r, "it cannot receive the replicas' writes");
        return;
    }
    pthread_mutex_lock(&r->lock);
    if (ws) r->write_sub = ws;
    pthread_mutex_unlock(&r->lock);
    hd__log(HD_LOG_INFO, "primary", "herald: node %s is the primary of cluster %s (stream at %llu)",
            r->node, r->cluster, (unsigned long long)last);
    /* A replica can start only from a snapshot the stream still continues. */
    if (!fresh) maybe_snapshot(r, true);
    r->wake(r->wake_ctx);
}

/* A replica that may lead: takes a lapsed or missing lease, preferring the most caught up. */
static void try_acquire(hd_repl *r)
{
    char holder[128] = "", v[300];
    double until = 0;
    uint64_t rev = 0, newrev = 0;
    bool have = read_lease(r, holder, sizeof holder, &until, &rev);
    double now = wall_now();
    pthread_mutex_lock(&r->lock);
    snprintf(r->primary, sizeof r->primary, "%s", have && until > now ? holder : "");
    bool mine = have && until > now && !strcmp(holder, r->node);
    if (mine) {
        /* Still this node's (an append failed, the lease did not): lead again once
         * the stream is applied to its end. */
        r->lease_rev = rev;
        r->lease_until = until;
    }
    pthread_mutex_unlock(&r->lock);
    if (mine) {
        promote(r);
        return;
    }
    if (have && until > now) return;
    /* The lease lapsed: writes still out at its holder will not be answered. */
    sweep_pending(r, true);
    /* The most caught-up replica tries first: each record behind waits 20 ms more. */
    uint64_t first, last;
    herald_error err;
    if (!stream_state(r, &first, &last, &err)) {
        uint64_t behind = last - atomic_load(&r->applied_seq);
        usleep((useconds_t)((behind > 50 ? 50 : behind) * 20 * 1000 + (unsigned)rand() % 50000));
    }
    now = wall_now();
    int n = lease_value(r, v, sizeof v, now + r->lease_s);
    natsStatus st = have ? kvStore_Update(&newrev, r->kv, "primary", v, n, rev)
                         : kvStore_Create(&newrev, r->kv, "primary", v, n);
    if (st != NATS_OK) return; /* another node was quicker */
    pthread_mutex_lock(&r->lock);
    r->lease_rev = newrev;
    r->lease_until = now + r->lease_s;
    pthread_mutex_unlock(&r->lock);
    hd__log(HD_LOG_INFO, "lease_taken", "herald: node %s took the primary's lease", r->node);
    promote(r);
}

/* Set once a replica must start again from a snapshot (hd__repl_restart_wanted). */
static _Atomic bool restart_wanted;

/*
 * The stream no longer continues this node's store: the server stops as on
 * SIGTERM, and `herald serve` starts again from its command line, which
 * fills the data folder from a snapshot before the store opens.
 */
static void restart_process(hd_repl *r)
{
    if (atomic_exchange(&restart_wanted, true)) return;
    /* The next start fills the folder from a snapshot whatever its sequence says
     * (a record that does not apply would not apply again). */
    char mark[4200];
    snprintf(mark, sizeof mark, "%s/%s", r->data_dir, BOOTSTRAP_MARK);
    FILE *f = fopen(mark, "w");
    if (f) fclose(f);
    hd__log(HD_LOG_WARN, "replica_restart", "herald: node %s stops, to start again from a snapshot",
            r->node);
    kill(getpid(), SIGTERM);
}

void hd__repl_restart_if_wanted(void)
{
    if (!atomic_load(&restart_wanted) || !saved_argv) return;
    /* Nothing of this run may stay open in the next one. */
    for (int fd = 3; fd < 65536; fd++)
        close(fd);
    execv("/proc/self/exe", saved_argv);
    hd__log(HD_LOG_ERROR, "replica_restart", "herald: cannot start again: %s", strerror(errno));
}

/* What a replica received last, and since when it has not received more. */
typedef struct progress {
    uint64_t seen;
    double since;
} progress;

/* Seconds a replica may receive nothing while the stream holds more before it follows anew. */
#define STALL_SECONDS 10.0

/*
 * A replica that receives nothing while the stream holds records it has not
 * seen (its subscription did not come back after its NATS server did) takes
 * a new subscription from its last record: records gone meanwhile then show
 * as a gap, and it starts again from a snapshot.
 */
static void check_progress(hd_repl *r, progress *p)
{
    uint64_t seen = atomic_load(&r->seen_seq), first, last;
    double now = mono_now();
    herald_error err = {0};
    if (seen != p->seen || p->since == 0) {
        p->seen = seen;
        p->since = now;
        return;
    }
    if (now - p->since < STALL_SECONDS || stream_state(r, &first, &last, &err) || last <= seen)
        return;
    hd__log(HD_LOG_WARN, "replica_stalled",
            "herald: node %s received nothing for %.0f s while the stream holds records %llu to "
            "%llu: following it anew",
            r->node, now - p->since, (unsigned long long)seen + 1, (unsigned long long)last);
    p->since = now;
    unfollow(r);
    if (follow(r, &err)) hd__log(HD_LOG_WARN, "replica_follow", "herald: %s", err.message);
}

static void *lease_main(void *arg)
{
    hd_repl *r = arg;
    const char *role = r->cfg.role ? r->cfg.role : "auto";
    bool may_lead = strcmp(role, "replica") != 0;
    progress stall = {0};
    for (;;) {
        pthread_mutex_lock(&r->lock);
        if (!r->stopping) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            long step = (long)(r->lease_s * 1e9 / 4);
            if (step > 1000000000L) step = 1000000000L;
            until.tv_nsec += step;
            while (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&r->cond, &r->lock, &until);
        }
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->lock);
        if (stop) break;
        if (atomic_load(&r->rebootstrap)) restart_process(r);
        sweep_pending(r, false);
        int role_now = atomic_load(&r->role);
        if (role_now == ROLE_PRIMARY) {
            if (!renew(r)) {
                step_down(r, "its lease could not be renewed");
                continue;
            }
            maybe_snapshot(r, false);
        } else {
            /* A primary that failed an append is a replica: it follows the stream first. */
            stop_listening(r);
            herald_error err = {0};
            if (follow(r, &err)) hd__log(HD_LOG_WARN, "replica_follow", "herald: %s", err.message);
            check_progress(r, &stall);
            if (may_lead)
                try_acquire(r);
            else {
                char holder[128] = "";
                double until = 0;
                uint64_t rev;
                bool have = read_lease(r, holder, sizeof holder, &until, &rev);
                bool live = have && until > wall_now();
                pthread_mutex_lock(&r->lock);
                snprintf(r->primary, sizeof r->primary, "%s", live ? holder : "");
                pthread_mutex_unlock(&r->lock);
                if (have && !live) sweep_pending(r, true);
            }
        }
    }
    return NULL;
}

static void on_reply_sub_error(hd_repl *r, natsStatus st, herald_error *err)
{
    nats_fail(err, st, 0, "listening for the primary's answers");
    (void)r;
}

int hd__repl_run(hd_repl *r, herald_store *s, struct hd_writer *w, const char *data_dir,
                 void (*wake)(void *), void *wake_ctx, herald_error *err)
{
    r->store = s;
    r->writer = w;
    r->wake = wake;
    r->wake_ctx = wake_ctx;
    snprintf(r->data_dir, sizeof r->data_dir, "%s", data_dir);
    uint64_t seq;
    int rc = herald_store_get_meta(s, "repl_seq", &seq, err);
    if (rc) return rc;
    atomic_store(&r->applied_seq, seq);
    char inbox[100];
    natsInbox *ib = NULL;
    if (natsInbox_Create(&ib) != NATS_OK) return herald_fail(err, HERALD_ENOMEM, "out of memory");
    snprintf(inbox, sizeof inbox, "%s", (const char *)ib);
    natsInbox_Destroy(ib);
    snprintf(r->reply_prefix, sizeof r->reply_prefix, "%s", inbox);
    char wildcard[140];
    snprintf(wildcard, sizeof wildcard, "%s.*", inbox);
    natsStatus st = natsConnection_Subscribe(&r->reply_sub, r->nc, wildcard, on_reply, r);
    if (st != NATS_OK) {
        on_reply_sub_error(r, st, err);
        return HERALD_EIO;
    }
    hd__writer_set_repl(w, r);
    atomic_store(&r->role, ROLE_REPLICA);
    if ((rc = follow(r, err))) return rc;
    if (pthread_create(&r->thread, NULL, lease_main, r) != 0)
        return herald_fail(err, HERALD_ENOMEM, "cannot start the lease thread");
    r->thread_started = true;
    hd__log(HD_LOG_INFO, "replication",
            "herald: node %s in cluster %s, following stream %s from sequence %llu", r->node,
            r->cluster, r->stream, (unsigned long long)atomic_load(&r->applied_seq) + 1);
    return 0;
}

void hd__repl_stop(hd_repl *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_signal(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (r->thread_started) pthread_join(r->thread, NULL);
    r->thread_started = false;
    if (r->snap_joinable) pthread_join(r->snap_thread, NULL);
    r->snap_joinable = false;
    unfollow(r);
    pthread_mutex_lock(&r->lock);
    natsSubscription *ws = r->write_sub, *rs = r->reply_sub;
    r->write_sub = r->reply_sub = NULL;
    pthread_mutex_unlock(&r->lock);
    /* A primary that stops gives its lease up at once: a replica need not wait it out. */
    if (atomic_load(&r->role) == ROLE_PRIMARY && r->kv) {
        char v[300];
        int n = lease_value(r, v, sizeof v, 0);
        uint64_t rev;
        kvStore_Update(&rev, r->kv, "primary", v, n, r->lease_rev);
    }
    atomic_store(&r->role, ROLE_STARTING);
    if (ws) {
        natsSubscription_Unsubscribe(ws);
        natsSubscription_Destroy(ws);
    }
    if (rs) {
        natsSubscription_Unsubscribe(rs);
        natsSubscription_Destroy(rs);
    }
    sweep_pending(r, true);
}

void hd__repl_free(hd_repl *r)
{
    if (!r) return;
    hd__repl_stop(r);
    for (pending *p = r->pending, *n; p; p = n) {
        n = p->next;
        hd__wreq_free(p->req);
        free(p);
    }
    hd__buf_free(&r->pieces);
    kvStore_Destroy(r->kv);
    jsCtx_Destroy(r->js);
    if (r->nc) natsConnection_Close(r->nc);
    natsConnection_Destroy(r->nc);
    /* The client's threads hold the library until they have unwound. */
    nats_CloseAndWait(2000);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

void hd__repl_status_json(hd_repl *r, hd_buf *b)
{
    int role = atomic_load(&r->role);
    pthread_mutex_lock(&r->lock);
    char primary[128];
    snprintf(primary, sizeof primary, "%s", role == ROLE_PRIMARY ? r->node : r->primary);
    pthread_mutex_unlock(&r->lock);
    hd__buf_printf(b, "{\"role\":\"%s\",\"node\":\"%s\",\"cluster\":\"%s\",\"primary\":",
                   role_names[role], r->node, r->cluster);
    if (primary[0])
        hd__buf_printf(b, "\"%s\"", primary);
    else
        hd__buf_str(b, "null");
    hd__buf_printf(b, ",\"seq\":%llu,\"version\":%llu}",
                   (unsigned long long)atomic_load(&r->applied_seq),
                   (unsigned long long)(r->store ? herald_store_version(r->store) : 0));
}
