/*
 * store.c — the job store on SQLite (see store.h).
 *
 * One table; params and result are JSON text. WAL journaling lets readers (the CLI,
 * a second process inspecting the file) run beside the writer, and synchronous=FULL
 * makes each commit durable before we report it.
 */
#include "engine/store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/timer.h"

struct kiln_store {
    sqlite3 *db;
};

static const char *g_schema =
    "CREATE TABLE IF NOT EXISTS jobs ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL, program TEXT, model TEXT NOT NULL, params TEXT NOT NULL,"
    " state TEXT NOT NULL, priority INTEGER NOT NULL DEFAULT 0,"
    " created REAL NOT NULL, started REAL, finished REAL,"
    " done INTEGER NOT NULL DEFAULT 0, total INTEGER NOT NULL DEFAULT 0,"
    " result TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,"
    " idem_key TEXT UNIQUE);"
    "CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, priority, seq);";

static kiln_status db_fail(kiln_store *s, const char *what) {
    return kiln_fail(KILN_ERR_IO, "job store: %s: %s", what, sqlite3_errmsg(s->db));
}

static kiln_status exec(kiln_store *s, const char *sql) {
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        kiln_status st = kiln_fail(KILN_ERR_IO, "job store: %s", err ? err : "error");
        sqlite3_free(err);
        return st;
    }
    return KILN_OK;
}

void kiln_store_close(kiln_store *s) {
    if (!s) return;
    sqlite3_close(s->db);
    free(s);
}

static kiln_status recover(kiln_store *s, int max_attempts, int *n_requeued, int *n_failed) {
    /* A job found 'running' was interrupted by a crash or kill. */
    char sql[512];
    kiln_status st = exec(s, "BEGIN IMMEDIATE");
    if (st) return st;
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET state='failed', finished=%.3f, error='the server stopped while this job was running, "
             "%d times; it is not retried again' WHERE state='running' AND attempts >= %d",
             kiln_time_unix(), max_attempts, max_attempts);
    if ((st = exec(s, sql))) goto fail;
    if (n_failed) *n_failed = sqlite3_changes(s->db);
    if ((st = exec(s, "UPDATE jobs SET state='queued', done=0 WHERE state='running'"))) goto fail;
    if (n_requeued) *n_requeued = sqlite3_changes(s->db);
    return exec(s, "COMMIT");
fail:
    exec(s, "ROLLBACK");
    return st;
}

kiln_status kiln_store_open(const char *path, int max_attempts, kiln_store **out, int *n_requeued, int *n_failed) {
    *out = NULL;
    kiln_store *s = calloc(1, sizeof *s);
    if (!s) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        kiln_status st = kiln_fail(KILN_ERR_IO, "cannot open the job store %s: %s", path,
                                   s->db ? sqlite3_errmsg(s->db) : "out of memory");
        kiln_store_close(s);
        return st;
    }
    sqlite3_busy_timeout(s->db, 5000);
    kiln_status st;
    if ((st = exec(s, "PRAGMA journal_mode=WAL")) || (st = exec(s, "PRAGMA synchronous=FULL")) ||
        (st = exec(s, g_schema)) || (st = recover(s, max_attempts < 1 ? 1 : max_attempts, n_requeued, n_failed))) {
        kiln_store_close(s);
        return kiln_fail_prefix(st, "%s", path);
    }
    *out = s;
    return KILN_OK;
}

static void bind_text(sqlite3_stmt *q, int i, const char *s) {
    if (s) sqlite3_bind_text(q, i, s, -1, SQLITE_TRANSIENT);
    else sqlite3_bind_null(q, i);
}

static void bind_json(sqlite3_stmt *q, int i, const cJSON *j) {
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    if (t) sqlite3_bind_text(q, i, t, -1, free);
    else sqlite3_bind_null(q, i);
}

static void bind_time(sqlite3_stmt *q, int i, double t) {
    if (t > 0) sqlite3_bind_double(q, i, t);
    else sqlite3_bind_null(q, i);
}

kiln_status kiln_store_insert(kiln_store *s, kiln_job_rec *j) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO jobs(id,kind,program,model,params,state,priority,created,done,total,attempts,"
                           "idem_key) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                           -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "insert");
    bind_text(q, 1, j->id);
    bind_text(q, 2, kiln_job_kind_name(j->kind));
    bind_text(q, 3, j->program);
    bind_text(q, 4, j->model);
    bind_json(q, 5, j->params);
    bind_text(q, 6, kiln_job_state_name(j->state));
    sqlite3_bind_int(q, 7, j->priority);
    sqlite3_bind_double(q, 8, j->created);
    sqlite3_bind_int64(q, 9, j->done);
    sqlite3_bind_int64(q, 10, j->total);
    sqlite3_bind_int(q, 11, j->attempts);
    bind_text(q, 12, j->idem_key);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_CONSTRAINT) return kiln_fail(KILN_ERR_INVALID_ARG, "a job with this id or Idempotency-Key exists");
    if (rc != SQLITE_DONE) return db_fail(s, "insert");
    j->seq = sqlite3_last_insert_rowid(s->db);
    return KILN_OK;
}

kiln_status kiln_store_update(kiln_store *s, const kiln_job_rec *j) {
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE jobs SET state=?,started=?,finished=?,done=?,total=?,result=?,error=?,attempts=? "
                           "WHERE id=?",
                           -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "update");
    bind_text(q, 1, kiln_job_state_name(j->state));
    bind_time(q, 2, j->started);
    bind_time(q, 3, j->finished);
    sqlite3_bind_int64(q, 4, j->done);
    sqlite3_bind_int64(q, 5, j->total);
    bind_json(q, 6, j->result);
    bind_text(q, 7, j->error);
    sqlite3_bind_int(q, 8, j->attempts);
    bind_text(q, 9, j->id);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? KILN_OK : db_fail(s, "update");
}

#define COLS "seq,id,kind,program,model,params,state,priority,created,started,finished,done,total,result,error," \
             "attempts,idem_key"

static char *col_str(sqlite3_stmt *q, int i) {
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? kiln_strdup((const char *)t) : NULL;
}

static cJSON *col_json(sqlite3_stmt *q, int i) {
    const unsigned char *t = sqlite3_column_text(q, i);
    return t ? cJSON_Parse((const char *)t) : NULL;
}

static void read_row(sqlite3_stmt *q, kiln_job_rec *j) {
    memset(j, 0, sizeof *j);
    j->seq = sqlite3_column_int64(q, 0);
    const unsigned char *id = sqlite3_column_text(q, 1);
    snprintf(j->id, sizeof j->id, "%s", id ? (const char *)id : "");
    const unsigned char *kind = sqlite3_column_text(q, 2);
    kiln_job_kind k = KILN_JOB_TEXT;
    if (kind) kiln_job_kind_parse((const char *)kind, &k);
    j->kind = k;
    j->program = col_str(q, 3);
    j->model = col_str(q, 4);
    j->params = col_json(q, 5);
    const unsigned char *state = sqlite3_column_text(q, 6);
    int sidx = kiln_job_state_parse(state ? (const char *)state : "");
    j->state = sidx < 0 ? KILN_JOB_FAILED : (kiln_job_state)sidx;
    j->priority = sqlite3_column_int(q, 7);
    j->created = sqlite3_column_double(q, 8);
    j->started = sqlite3_column_double(q, 9);
    j->finished = sqlite3_column_double(q, 10);
    j->done = sqlite3_column_int64(q, 11);
    j->total = sqlite3_column_int64(q, 12);
    j->result = col_json(q, 13);
    j->error = col_str(q, 14);
    j->attempts = sqlite3_column_int(q, 15);
    j->idem_key = col_str(q, 16);
}

static kiln_status get_by(kiln_store *s, const char *col, const char *val, kiln_job_rec *out) {
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " COLS " FROM jobs WHERE %s=?", col);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return db_fail(s, "get");
    bind_text(q, 1, val);
    int rc = sqlite3_step(q);
    kiln_status st = KILN_OK;
    if (rc == SQLITE_ROW) read_row(q, out);
    else if (rc == SQLITE_DONE) st = kiln_fail(KILN_ERR_NOT_FOUND, "no job '%s'", val);
    else st = db_fail(s, "get");
    sqlite3_finalize(q);
    return st;
}

kiln_status kiln_store_get(kiln_store *s, const char *id, kiln_job_rec *out) { return get_by(s, "id", id, out); }

kiln_status kiln_store_find_idem(kiln_store *s, const char *key, kiln_job_rec *out) {
    return get_by(s, "idem_key", key, out);
}

kiln_status kiln_store_list(kiln_store *s, int state, int limit, kiln_job_rec **out, size_t *n) {
    *out = NULL;
    *n = 0;
    char sql[512];
    const char *order = state == KILN_JOB_QUEUED ? "priority DESC, seq ASC" : "seq DESC";
    snprintf(sql, sizeof sql, "SELECT " COLS " FROM jobs %s ORDER BY %s LIMIT %d",
             state >= 0 ? "WHERE state=?" : "", order, limit > 0 ? limit : -1);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK) return db_fail(s, "list");
    if (state >= 0) bind_text(q, 1, kiln_job_state_name((kiln_job_state)state));
    size_t cap = 0;
    kiln_job_rec *v = NULL;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 16;
            kiln_job_rec *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                sqlite3_finalize(q);
                kiln_job_recs_free(v, *n);
                *n = 0;
                return kiln_fail(KILN_ERR_NOMEM, "out of memory");
            }
            v = nv;
            cap = nc;
        }
        read_row(q, &v[(*n)++]);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        kiln_job_recs_free(v, *n);
        *n = 0;
        return db_fail(s, "list");
    }
    *out = v;
    return KILN_OK;
}

kiln_status kiln_store_counts(kiln_store *s, int64_t counts[KILN_JOB_STATE_COUNT]) {
    memset(counts, 0, sizeof(int64_t) * KILN_JOB_STATE_COUNT);
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(s->db, "SELECT state, COUNT(*) FROM jobs GROUP BY state", -1, &q, NULL) != SQLITE_OK)
        return db_fail(s, "count");
    while (sqlite3_step(q) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(q, 0);
        int i = kiln_job_state_parse(t ? (const char *)t : "");
        if (i >= 0) counts[i] = sqlite3_column_int64(q, 1);
    }
    sqlite3_finalize(q);
    return KILN_OK;
}
