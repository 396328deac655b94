/*
 * value.c — the Jinja interpreter's values: the arena they live in, lists and
 * (insertion-ordered) dicts, Python truthiness and equality, and Python's str()/repr()
 * printing (floats use the shortest round-trip form, as Python's repr does).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

/* ---- arena ---------------------------------------------------------------------------- */
struct jchunk {
    jchunk *next;
    size_t used, size;
    _Alignas(16) unsigned char mem[];
};

void *ja_alloc(jarena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    jchunk *h = a->head;
    if (!h || h->size - h->used < n) {
        size_t size = n > 60000 ? n : 64000;
        if (a->total + size > a->cap || n > a->cap) {
            kiln_fail(KILN_ERR_INVALID_ARG, "template: out of memory limit (%zu MiB of values)",
                      a->cap >> 20);
            longjmp(*a->jmp, KILN_ERR_INVALID_ARG);
        }
        jchunk *c = malloc(sizeof *c + size);
        if (!c) {
            kiln_fail(KILN_ERR_NOMEM, "template: out of memory");
            longjmp(*a->jmp, KILN_ERR_NOMEM);
        }
        a->total += size;
        c->used = 0;
        c->size = size;
        if (n > 60000 && h) { /* a big block: keep the current chunk for small ones */
            c->next = h->next;
            h->next = c;
        } else {
            c->next = h;
            a->head = c;
        }
        h = c;
    }
    void *p = h->mem + h->used;
    h->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strdup(jarena *a, const char *s, size_t n) {
    char *p = ja_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void ja_free(jarena *a) {
    for (jchunk *c = a->head, *next; c; c = next) {
        next = c->next;
        free(c);
    }
    a->head = NULL;
    a->total = 0;
}

/* ---- lists and dicts ------------------------------------------------------------------ */
jlist *jl_new(jarena *a, size_t cap) {
    jlist *l = ja_alloc(a, sizeof *l);
    l->cap = cap ? cap : 4;
    l->v = ja_alloc(a, l->cap * sizeof *l->v);
    return l;
}

void jl_push(jarena *a, jlist *l, jv v) {
    if (l->n == l->cap) {
        jv *nv = ja_alloc(a, 2 * l->cap * sizeof *nv);
        memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap *= 2;
    }
    l->v[l->n++] = v;
}

jv jv_list(jlist *l) {
    jv v = {.t = JV_LIST};
    v.u.l = l;
    return v;
}

jdict *jd_new(jarena *a) {
    jdict *d = ja_alloc(a, sizeof *d);
    d->cap = 4;
    d->k = ja_alloc(a, d->cap * sizeof *d->k);
    d->v = ja_alloc(a, d->cap * sizeof *d->v);
    return d;
}

jv *jd_get(jdict *d, jv key) {
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

jv *jd_get_str(jdict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, k, n)) return &d->v[i];
    return NULL;
}

void jd_set(jarena *a, jdict *d, jv key, jv val) {
    jv *slot = jd_get(d, key);
    if (slot) {
        *slot = val;
        return;
    }
    if (d->n == d->cap) {
        jv *nk = ja_alloc(a, 2 * d->cap * sizeof *nk), *nv = ja_alloc(a, 2 * d->cap * sizeof *nv);
        memcpy(nk, d->k, d->n * sizeof *nk);
        memcpy(nv, d->v, d->n * sizeof *nv);
        d->k = nk;
        d->v = nv;
        d->cap *= 2;
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
}

/* ---- truthiness, equality, types ------------------------------------------------------ */
bool jv_truthy(jv v) {
    switch (v.t) {
    case JV_UNDEF: case JV_NONE: return false;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0;
    case JV_STR: return v.u.s.n != 0;
    case JV_LIST: return v.u.l->n != 0;
    case JV_DICT: return v.u.d->n != 0;
    default: return true;
    }
}

bool jv_is_num(jv v) { return v.t == JV_BOOL || v.t == JV_INT || v.t == JV_FLOAT; }

double jv_num(jv v) {
    return v.t == JV_FLOAT ? v.u.f : v.t == JV_INT ? (double)v.u.i : v.t == JV_BOOL ? v.u.b : 0;
}

static bool equal_d(jv a, jv b, int depth);
bool jv_equal(jv a, jv b) { return equal_d(a, b, 0); }

static bool equal_d(jv a, jv b, int depth) {
    if (depth > 1000) return false;
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.t != JV_FLOAT && b.t != JV_FLOAT) {
            int64_t x = a.t == JV_INT ? a.u.i : a.u.b, y = b.t == JV_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return jv_num(a) == jv_num(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case JV_UNDEF: case JV_NONE: return true;
    case JV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case JV_LIST:
        if (a.u.l->n != b.u.l->n || a.u.l->tuple != b.u.l->tuple) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!equal_d(a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        return true;
    case JV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jd_get(b.u.d, a.u.d->k[i]);
            if (!o || !equal_d(a.u.d->v[i], *o, depth + 1)) return false;
        }
        return true;
    case JV_NS: return a.u.d == b.u.d;
    case JV_LOOP: return a.u.loop == b.u.loop;
    case JV_MACRO: return a.u.m == b.u.m;
    case JV_FUNC: return a.u.fn == b.u.fn;
    default: return false;
    }
}

const char *jv_type_name(jv v) {
    switch (v.t) {
    case JV_UNDEF: return "Undefined";
    case JV_NONE: return "NoneType";
    case JV_BOOL: return "bool";
    case JV_INT: return "int";
    case JV_FLOAT: return "float";
    case JV_STR: return "str";
    case JV_LIST: return v.u.l->gen ? "generator" : v.u.l->tuple ? "tuple" : "list";
    case JV_DICT: return "dict";
    case JV_NS: return "Namespace";
    case JV_LOOP: return "LoopContext";
    case JV_MACRO: return "Macro";
    default: return "function";
    }
}

/* ---- UTF-8 ---------------------------------------------------------------------------- */
uint32_t ju_decode(const char *s, size_t n, size_t *adv) {
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0) { *adv = 0; return 0; }
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (len > n) len = 1;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xC0) != 0x80) { len = 1; break; }
    *adv = len;
    if (len == 1) return c;
    uint32_t cp = c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) cp = (cp << 6) | (p[i] & 0x3F);
    return cp;
}

size_t ju_len(const char *p, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80) k++;
    return k;
}

bool ju_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/* ---- string builder ------------------------------------------------------------------- */
void jsb_add(jsb *b, const char *p, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *np = ja_alloc(b->a, cap);
        if (b->n) memcpy(np, b->p, b->n);
        b->p = np;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}
void jsb_addc(jsb *b, char c) { jsb_add(b, &c, 1); }
void jsb_adds(jsb *b, const char *s) { jsb_add(b, s, strlen(s)); }
jv jsb_done(jsb *b) {
    if (!b->p) jsb_add(b, "", 0);
    return jv_str(b->p, b->n);
}

/* ---- printing ------------------------------------------------------------------------- */
/* Python's repr(float): the shortest digits that read back the same, in fixed notation
 * for exponents -4..15 and scientific (1e+16, 1e-05) elsewhere. */
void jv_float_repr(double f, char out[40]) {
    if (isnan(f)) { strcpy(out, "nan"); return; }
    if (isinf(f)) { strcpy(out, f < 0 ? "-inf" : "inf"); return; }
    char tmp[40];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    char digits[24];
    int nd = 0;
    const char *q = tmp;
    bool neg = *q == '-';
    if (neg) q++;
    for (; *q && *q != 'e'; q++)
        if (*q != '.') digits[nd++] = *q;
    int exp = atoi(q + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    char *o = out;
    if (neg) *o++ = '-';
    if (exp >= -4 && exp < 16) {
        if (exp >= 0) {
            for (int i = 0; i <= exp; i++) *o++ = i < nd ? digits[i] : '0';
            *o++ = '.';
            if (nd > exp + 1)
                for (int i = exp + 1; i < nd; i++) *o++ = digits[i];
            else
                *o++ = '0';
        } else {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp - 1; i++) *o++ = '0';
            for (int i = 0; i < nd; i++) *o++ = digits[i];
        }
        *o = 0;
    } else {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            for (int i = 1; i < nd; i++) *o++ = digits[i];
        }
        sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    }
}

static void repr_str(jsb *b, const char *p, size_t n) {
    char q = (memchr(p, '\'', n) && !memchr(p, '"', n)) ? '"' : '\'';
    jsb_addc(b, q);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char e[8];
        if (c == '\\' || c == (unsigned char)q) { jsb_addc(b, '\\'); jsb_addc(b, (char)c); }
        else if (c == '\n') jsb_adds(b, "\\n");
        else if (c == '\r') jsb_adds(b, "\\r");
        else if (c == '\t') jsb_adds(b, "\\t");
        else if (c < 0x20 || c == 0x7f) { snprintf(e, sizeof e, "\\x%02x", c); jsb_adds(b, e); }
        else jsb_addc(b, (char)c);
    }
    jsb_addc(b, q);
}

static void print_value(jsb *b, jv v, bool repr, int depth) {
    char tmp[40];
    if (depth > 1000) {
        kiln_fail(KILN_ERR_INVALID_ARG, "template: value nested too deeply to print");
        longjmp(*b->a->jmp, KILN_ERR_INVALID_ARG);
    }
    switch (v.t) {
    case JV_UNDEF: if (repr) jsb_adds(b, "Undefined"); return;
    case JV_NONE: jsb_adds(b, "None"); return;
    case JV_BOOL: jsb_adds(b, v.u.b ? "True" : "False"); return;
    case JV_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); jsb_adds(b, tmp); return;
    case JV_FLOAT: jv_float_repr(v.u.f, tmp); jsb_adds(b, tmp); return;
    case JV_STR:
        if (repr) repr_str(b, v.u.s.p, v.u.s.n);
        else jsb_add(b, v.u.s.p, v.u.s.n);
        return;
    case JV_LIST: {
        jlist *l = v.u.l;
        jsb_addc(b, l->tuple ? '(' : '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) jsb_adds(b, ", ");
            print_value(b, l->v[i], true, depth + 1);
        }
        if (l->tuple && l->n == 1) jsb_addc(b, ',');
        jsb_addc(b, l->tuple ? ')' : ']');
        return;
    }
    case JV_DICT: case JV_NS: {
        jdict *d = v.u.d;
        jsb_adds(b, v.t == JV_NS ? "<Namespace {" : "{");
        for (size_t i = 0; i < d->n; i++) {
            if (i) jsb_adds(b, ", ");
            print_value(b, d->k[i], true, depth + 1);
            jsb_adds(b, ": ");
            print_value(b, d->v[i], true, depth + 1);
        }
        jsb_adds(b, v.t == JV_NS ? "}>" : "}");
        return;
    }
    case JV_LOOP: jsb_adds(b, "<LoopContext>"); return;
    case JV_MACRO: jsb_adds(b, "<Macro>"); return;
    default: jsb_adds(b, "<function>"); return;
    }
}

void jv_str_to(jsb *b, jv v) { print_value(b, v, false, 0); }
void jv_repr_to(jsb *b, jv v) { print_value(b, v, true, 0); }

jv jv_to_str(jarena *a, jv v) {
    if (v.t == JV_STR) return v;
    jsb b = {.a = a};
    jv_str_to(&b, v);
    return jsb_done(&b);
}
