/*
 * template.c — the entry points of the Jinja interpreter: compile (lex + parse into the
 * template's arena), render (cJSON variables -> values, run, collect the output) and
 * free. Both catch the longjmp that every error takes (see jinja_impl.h).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"
#include "pipelines/chat_template.h"

struct kiln_jinja {
    jarena arena;
    jnode *root;
};

kiln_status kiln_jinja_compile(const char *src, size_t len, kiln_jinja **out) {
    *out = NULL;
    if (!src) return kiln_fail(KILN_ERR_INVALID_ARG, "template: no source");
    kiln_jinja *t = calloc(1, sizeof *t);
    jmp_buf *jmp = malloc(sizeof *jmp);
    if (!t || !jmp) {
        free(t);
        free(jmp);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    t->arena.cap = JJ_MAX_ARENA;
    t->arena.jmp = jmp;
    int rc = setjmp(*jmp);
    if (rc) {
        ja_free(&t->arena);
        free(t);
        free(jmp);
        return (kiln_status)rc;
    }
    jtoks toks = {.a = &t->arena};
    jj_lex(&t->arena, src, len, &toks);
    t->root = jj_parse(&t->arena, &toks);
    t->arena.jmp = NULL;
    free(jmp);
    *out = t;
    return KILN_OK;
}

void kiln_jinja_free(kiln_jinja *t) {
    if (!t) return;
    ja_free(&t->arena);
    free(t);
}

static jv from_json(jctx *c, const cJSON *j, int depth) {
    if (depth > 1000) jj_fail(c, KILN_ERR_INVALID_ARG, "variables nested too deeply");
    if (cJSON_IsNull(j) || cJSON_IsInvalid(j)) return jv_none();
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9.0e15) return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        return jv_str(s, strlen(s));
    }
    if (cJSON_IsArray(j)) {
        jlist *l = jl_new(c->a, (size_t)cJSON_GetArraySize(j) + 1);
        for (const cJSON *x = j->child; x; x = x->next) jl_push(c->a, l, from_json(c, x, depth + 1));
        return jv_list(l);
    }
    jdict *d = jd_new(c->a);
    for (const cJSON *x = j->child; x; x = x->next) {
        const char *k = x->string ? x->string : "";
        jd_set(c->a, d, jv_str(k, strlen(k)), from_json(c, x, depth + 1));
    }
    jv v = {.t = JV_DICT};
    v.u.d = d;
    return v;
}

kiln_status kiln_jinja_render(const kiln_jinja *t, const cJSON *ctx, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return kiln_fail(KILN_ERR_INVALID_ARG, "template: NULL template");
    if (ctx && !cJSON_IsObject(ctx)) return kiln_fail(KILN_ERR_INVALID_ARG, "template: variables must be a JSON object");
    jctx *c = calloc(1, sizeof *c);
    jarena *a = calloc(1, sizeof *a);
    kiln_buf *main_out = calloc(1, sizeof *main_out);
    if (!c || !a || !main_out) {
        free(c);
        free(a);
        free(main_out);
        return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    }
    a->cap = JJ_MAX_ARENA;
    a->jmp = &c->jmp;
    c->a = a;
    c->outs[0] = main_out;
    c->n_outs = 1;
    int rc = setjmp(c->jmp);
    if (rc) {
        for (int i = 0; i < c->n_outs; i++) {
            kiln_buf_free(c->outs[i]);
            free(c->outs[i]);
        }
        ja_free(a);
        free(a);
        free(c);
        return (kiln_status)rc;
    }
    jscope *top = ja_alloc(a, sizeof *top);
    top->vars = jd_new(a);
    if (ctx)
        for (const cJSON *x = ctx->child; x; x = x->next) {
            const char *k = x->string ? x->string : "";
            jd_set(a, top->vars, jv_str(k, strlen(k)), from_json(c, x, 0));
        }
    jj_exec(c, top, t->root);
    kiln_status st = KILN_OK;
    if (!main_out->data && kiln_buf_append(main_out, "", 0)) st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
    if (!st) {
        *out = main_out->data;
        if (out_len) *out_len = main_out->len;
    } else {
        kiln_buf_free(main_out);
    }
    free(main_out);
    ja_free(a);
    free(a);
    free(c);
    return st;
}
