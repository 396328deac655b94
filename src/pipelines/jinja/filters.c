/*
 * filters.c — Jinja filters (x|name(args)), tests (x is name args) and tojson.
 *
 * tojson is transformers' override: json.dumps(x, ensure_ascii=False, indent=indent,
 * separators=separators, sort_keys=sort_keys), so ", " and ": " separate items by
 * default, ",\n" plus indentation when indent is given, and nothing is HTML-escaped.
 * map/select/reject/selectattr/rejectattr/items/reverse give what jinja2 gives as
 * generators: they iterate fine but have no length and do not serialize.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

jv jj_strip(jv s, jv chars, bool left, bool right);
jv jj_case(jctx *c, jv s, int mode);
jv jj_replace(jctx *c, jv s, jv old, jv new_, int64_t count);

static jv *arg(jv *args, size_t n_pos, const char **kw, size_t n_kw, size_t idx, const char *name) {
    if (idx < n_pos) return &args[idx];
    for (size_t k = 0; k < n_kw; k++)
        if (!strcmp(kw[k], name)) return &args[n_pos + k];
    return NULL;
}

static _Noreturn void fail_undef(jctx *c, jv v) {
    if (v.u.s.n) jj_fail(c, KILN_ERR_INVALID_ARG, "'%.*s' is undefined", (int)v.u.s.n, v.u.s.p);
    jj_fail(c, KILN_ERR_INVALID_ARG, "undefined value used");
}

/* ---- tojson ---------------------------------------------------------------------------- */
static void json_str(jsb *b, jv s, bool ascii) {
    jsb_addc(b, '"');
    for (size_t i = 0, adv; i < s.u.s.n; i += adv) {
        unsigned char ch = (unsigned char)s.u.s.p[i];
        adv = 1;
        char e[16];
        switch (ch) {
        case '"': jsb_adds(b, "\\\""); continue;
        case '\\': jsb_adds(b, "\\\\"); continue;
        case '\n': jsb_adds(b, "\\n"); continue;
        case '\r': jsb_adds(b, "\\r"); continue;
        case '\t': jsb_adds(b, "\\t"); continue;
        case '\b': jsb_adds(b, "\\b"); continue;
        case '\f': jsb_adds(b, "\\f"); continue;
        default: break;
        }
        if (ch < 0x20 || (ascii && ch == 0x7f)) {
            snprintf(e, sizeof e, "\\u%04x", ch);
            jsb_adds(b, e);
        } else if (ch >= 0x80 && ascii) {
            uint32_t cp = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                snprintf(e, sizeof e, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                snprintf(e, sizeof e, "\\u%04x", cp);
            }
            jsb_adds(b, e);
        } else {
            jsb_addc(b, (char)ch);
        }
    }
    jsb_addc(b, '"');
}

static void json_newline(jsb *b, const char *indent, int level) {
    jsb_addc(b, '\n');
    for (int i = 0; i < level; i++) jsb_adds(b, indent);
}

static void json_value(jctx *c, jsb *b, jv v, const char *indent, int level, const char *isep, const char *ksep,
                       bool sort_keys, bool ascii, int depth) {
    char tmp[40];
    if (depth > 1000) jj_fail(c, KILN_ERR_INVALID_ARG, "tojson: value nested too deeply");
    switch (v.t) {
    case JV_NONE: jsb_adds(b, "null"); return;
    case JV_BOOL: jsb_adds(b, v.u.b ? "true" : "false"); return;
    case JV_INT: snprintf(tmp, sizeof tmp, "%lld", (long long)v.u.i); jsb_adds(b, tmp); return;
    case JV_FLOAT:
        if (isnan(v.u.f)) jsb_adds(b, "NaN");
        else if (isinf(v.u.f)) jsb_adds(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else { jv_float_repr(v.u.f, tmp); jsb_adds(b, tmp); }
        return;
    case JV_STR: json_str(b, v, ascii); return;
    case JV_LIST:
        if (!v.u.l->gen) {
            jlist *l = v.u.l;
            if (!l->n) { jsb_adds(b, "[]"); return; }
            jsb_addc(b, '[');
            for (size_t i = 0; i < l->n; i++) {
                if (i) jsb_adds(b, isep);
                if (indent) json_newline(b, indent, level + 1);
                json_value(c, b, l->v[i], indent, level + 1, isep, ksep, sort_keys, ascii, depth + 1);
            }
            if (indent) json_newline(b, indent, level);
            jsb_addc(b, ']');
            return;
        }
        break;
    case JV_DICT: {
        jdict *d = v.u.d;
        if (!d->n) { jsb_adds(b, "{}"); return; }
        size_t *order = ja_alloc(c->a, d->n * sizeof *order);
        jv *keys = ja_alloc(c->a, d->n * sizeof *keys);
        for (size_t i = 0; i < d->n; i++) {
            order[i] = i;
            jv k = d->k[i];
            if (k.t == JV_STR) keys[i] = k;
            else if (k.t == JV_INT || k.t == JV_FLOAT) {
                jsb kb = {.a = c->a};
                json_value(c, &kb, k, NULL, 0, isep, ksep, false, ascii, depth + 1);
                keys[i] = jsb_done(&kb);
            } else if (k.t == JV_BOOL) keys[i] = jv_str(k.u.b ? "true" : "false", k.u.b ? 4 : 5);
            else if (k.t == JV_NONE) keys[i] = jv_str("null", 4);
            else jj_fail(c, KILN_ERR_INVALID_ARG, "tojson: keys must be str, int, float, bool or None, not %s", jv_type_name(k));
        }
        if (sort_keys) /* insertion sort: dicts in templates are small */
            for (size_t i = 1; i < d->n; i++)
                for (size_t j = i; j > 0 && jj_compare(c, d->k[order[j - 1]], d->k[order[j]]) > 0; j--) {
                    size_t t = order[j];
                    order[j] = order[j - 1];
                    order[j - 1] = t;
                }
        jsb_addc(b, '{');
        for (size_t i = 0; i < d->n; i++) {
            if (i) jsb_adds(b, isep);
            if (indent) json_newline(b, indent, level + 1);
            json_str(b, keys[order[i]], ascii);
            jsb_adds(b, ksep);
            json_value(c, b, d->v[order[i]], indent, level + 1, isep, ksep, sort_keys, ascii, depth + 1);
        }
        if (indent) json_newline(b, indent, level);
        jsb_addc(b, '}');
        return;
    }
    default: break;
    }
    jj_fail(c, KILN_ERR_INVALID_ARG, "tojson: Object of type %s is not JSON serializable", jv_type_name(v));
}

static jv do_tojson(jctx *c, jv v, jv *args, size_t n_pos, const char **kw, size_t n_kw) {
    jv *ind = arg(args, n_pos, kw, n_kw, 0, "indent"), *seps = arg(args, n_pos, kw, n_kw, 99, "separators");
    jv *sk = arg(args, n_pos, kw, n_kw, 99, "sort_keys"), *ea = arg(args, n_pos, kw, n_kw, 99, "ensure_ascii");
    const char *indent = NULL;
    if (ind && ind->t == JV_INT) {
        int64_t k = ind->u.i < 0 ? 0 : ind->u.i > 64 ? 64 : ind->u.i;
        char *s = ja_alloc(c->a, (size_t)k + 1);
        memset(s, ' ', (size_t)k);
        indent = s;
    } else if (ind && ind->t == JV_STR) {
        indent = ja_strdup(c->a, ind->u.s.p, ind->u.s.n);
    } else if (ind && ind->t != JV_NONE) {
        jj_fail(c, KILN_ERR_INVALID_ARG, "tojson: indent must be an integer or a string");
    }
    const char *isep = indent ? "," : ", ", *ksep = ": ";
    if (seps && seps->t == JV_LIST && seps->u.l->n == 2 && seps->u.l->v[0].t == JV_STR && seps->u.l->v[1].t == JV_STR) {
        isep = ja_strdup(c->a, seps->u.l->v[0].u.s.p, seps->u.l->v[0].u.s.n);
        ksep = ja_strdup(c->a, seps->u.l->v[1].u.s.p, seps->u.l->v[1].u.s.n);
    } else if (seps && seps->t != JV_NONE) {
        jj_fail(c, KILN_ERR_INVALID_ARG, "tojson: separators must be a pair of strings");
    }
    jsb b = {.a = c->a};
    json_value(c, &b, v, indent, 0, isep, ksep, sk && jv_truthy(*sk), ea && jv_truthy(*ea), 0);
    return jsb_done(&b);
}

/* ---- tests ----------------------------------------------------------------------------- */
bool jj_test(jctx *c, const char *name, jv v, jv *args, size_t n_args) {
#define IS(s) (!strcmp(name, s))
    jv a0 = n_args ? args[0] : jv_undef(NULL);
    if (IS("defined")) return v.t != JV_UNDEF;
    if (IS("undefined")) return v.t == JV_UNDEF;
    if (IS("none")) return v.t == JV_NONE;
    if (IS("string")) return v.t == JV_STR;
    if (IS("mapping")) return v.t == JV_DICT;
    if (IS("iterable")) return v.t == JV_STR || v.t == JV_LIST || v.t == JV_DICT || v.t == JV_UNDEF;
    if (IS("sequence")) return v.t == JV_STR || (v.t == JV_LIST && !v.u.l->gen) || v.t == JV_DICT || v.t == JV_UNDEF;
    if (IS("number")) return jv_is_num(v);
    if (IS("integer")) return v.t == JV_INT;
    if (IS("float")) return v.t == JV_FLOAT;
    if (IS("boolean")) return v.t == JV_BOOL;
    if (IS("true")) return v.t == JV_BOOL && v.u.b;
    if (IS("false")) return v.t == JV_BOOL && !v.u.b;
    if (IS("callable")) return v.t == JV_MACRO || v.t == JV_FUNC || v.t == JV_METHOD;
    if (IS("equalto") || IS("eq") || IS("==")) return jv_equal(v, a0);
    if (IS("ne") || IS("!=")) return !jv_equal(v, a0);
    if (IS("lt") || IS("lessthan") || IS("<")) return jj_compare(c, v, a0) < 0;
    if (IS("le") || IS("<=")) return jj_compare(c, v, a0) <= 0;
    if (IS("gt") || IS("greaterthan") || IS(">")) return jj_compare(c, v, a0) > 0;
    if (IS("ge") || IS(">=")) return jj_compare(c, v, a0) >= 0;
    if (IS("sameas")) return v.t == a0.t && (v.t == JV_NONE || v.t == JV_UNDEF || jv_equal(v, a0));
    if (IS("in")) {
        if (a0.t == JV_LIST) {
            for (size_t i = 0; i < a0.u.l->n; i++)
                if (jv_equal(a0.u.l->v[i], v)) return true;
            return false;
        }
        if (a0.t == JV_DICT) return jd_get(a0.u.d, v) != NULL;
        if (a0.t == JV_STR && v.t == JV_STR) return strstr(ja_strdup(c->a, a0.u.s.p, a0.u.s.n), ja_strdup(c->a, v.u.s.p, v.u.s.n)) != NULL;
        jj_fail(c, KILN_ERR_INVALID_ARG, "test 'in': bad operands");
    }
    if (IS("divisibleby") || IS("even") || IS("odd")) {
        if (v.t != JV_INT && v.t != JV_BOOL) {
            if (v.t == JV_UNDEF) fail_undef(c, v);
            jj_fail(c, KILN_ERR_INVALID_ARG, "test '%s' needs an integer, got %s", name, jv_type_name(v));
        }
        int64_t x = v.t == JV_INT ? v.u.i : v.u.b;
        if (IS("even")) return x % 2 == 0;
        if (IS("odd")) return x % 2 != 0;
        if (a0.t != JV_INT || a0.u.i == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "divisibleby needs a non-zero integer");
        return x % a0.u.i == 0;
    }
    if (IS("lower") || IS("upper")) {
        if (v.t != JV_STR) return false;
        jv t = jj_case(c, v, IS("lower") ? 0 : 1);
        return jv_equal(t, v);
    }
    jj_fail(c, KILN_ERR_INVALID_ARG, "no test named '%s'", name);
#undef IS
}

/* ---- filters --------------------------------------------------------------------------- */
static jv str_of(jctx *c, jv v) { return jv_to_str(c->a, v); }

static jv gen_list(jlist *l) {
    l->gen = true;
    return jv_list(l);
}

static jv attr_path(jctx *c, jv v, jv attr) {
    /* "a.b" or an integer index, like jinja2's make_attrgetter */
    if (attr.t == JV_INT) return v.t == JV_LIST && attr.u.i >= 0 && (size_t)attr.u.i < v.u.l->n ? v.u.l->v[attr.u.i] : jv_undef(NULL);
    if (attr.t != JV_STR) jj_fail(c, KILN_ERR_INVALID_ARG, "attribute must be a string");
    const char *p = attr.u.s.p, *e = p + attr.u.s.n;
    while (p <= e) {
        const char *d = memchr(p, '.', (size_t)(e - p));
        if (!d) d = e;
        if (v.t == JV_DICT || v.t == JV_NS) {
            jv *x = jd_get_str(v.u.d, p, (size_t)(d - p));
            v = x ? *x : jv_undef(NULL);
        } else if (v.t == JV_UNDEF) {
            return v;
        } else {
            v = jj_getattr(c, v, p, (size_t)(d - p));
        }
        p = d + 1;
    }
    return v;
}

static jlist *seq_of(jctx *c, jv v) {
    if (v.t == JV_UNDEF) return jl_new(c->a, 1);
    return jj_iterate(c, v);
}

static jv select_like(jctx *c, const char *name, jv v, jv *args, size_t n_pos) {
    bool by_attr = strstr(name, "attr") != NULL, keep = name[0] == 's';
    jlist *in = jv_truthy(v) ? seq_of(c, v) : jl_new(c->a, 1), *out = jl_new(c->a, in->n + 1);
    size_t first_test_arg = by_attr ? 1 : 0;
    if (by_attr && n_pos < 1) jj_fail(c, KILN_ERR_INVALID_ARG, "%s needs an attribute name", name);
    const char *test = NULL;
    if (n_pos > first_test_arg) {
        jv t = args[first_test_arg];
        if (t.t != JV_STR) jj_fail(c, KILN_ERR_INVALID_ARG, "%s: test name must be a string", name);
        test = ja_strdup(c->a, t.u.s.p, t.u.s.n);
    }
    for (size_t i = 0; i < in->n; i++) {
        jv x = by_attr ? attr_path(c, in->v[i], args[0]) : in->v[i];
        bool r = test ? jj_test(c, test, x, args + first_test_arg + 1, n_pos - first_test_arg - 1) : jv_truthy(x);
        if (r == keep) jl_push(c->a, out, in->v[i]);
    }
    return gen_list(out);
}

/* stable merge sort of items by key */
static void msort(jctx *c, jv *items, jv *keys, jv *ti, jv *tk, size_t n, bool rev) {
    if (n < 2) return;
    size_t h = n / 2;
    msort(c, items, keys, ti, tk, h, rev);
    msort(c, items + h, keys + h, ti, tk, n - h, rev);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r = jj_compare(c, keys[j], keys[i]);
        bool take_right = rev ? r > 0 : r < 0;
        if (take_right) { ti[k] = items[j]; tk[k++] = keys[j++]; }
        else { ti[k] = items[i]; tk[k++] = keys[i++]; }
    }
    while (i < h) { ti[k] = items[i]; tk[k++] = keys[i++]; }
    while (j < n) { ti[k] = items[j]; tk[k++] = keys[j++]; }
    memcpy(items, ti, n * sizeof *ti);
    memcpy(keys, tk, n * sizeof *tk);
}

static jv sort_key(jctx *c, jv x, jv *attr, bool case_sensitive) {
    if (attr && attr->t != JV_NONE) x = attr_path(c, x, *attr);
    if (!case_sensitive && x.t == JV_STR) x = jj_case(c, x, 0);
    return x;
}

static jv indent_filter(jctx *c, jv s, jv *width, jv *first, jv *blank) {
    jv ind = jv_str("    ", 4);
    if (width && width->t == JV_STR) ind = *width;
    else if (width && (width->t == JV_INT || width->t == JV_BOOL)) {
        int64_t w = width->t == JV_INT ? width->u.i : width->u.b;
        if (w < 0) w = 0;
        if (w > 4096) jj_fail(c, KILN_ERR_INVALID_ARG, "indent width too large");
        char *p = ja_alloc(c->a, (size_t)w + 1);
        memset(p, ' ', (size_t)w);
        ind = jv_str(p, (size_t)w);
    }
    /* lines of s + "\n", as str.splitlines() */
    jlist *lines = jl_new(c->a, 8);
    size_t st = 0, i = 0;
    jsb t = {.a = c->a};
    jsb_add(&t, s.u.s.p, s.u.s.n);
    jsb_addc(&t, '\n');
    while (i < t.n) {
        char ch = t.p[i];
        if (ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f' || (ch >= 0x1c && ch <= 0x1e)) {
            jl_push(c->a, lines, jv_str(t.p + st, i - st));
            i += (ch == '\r' && i + 1 < t.n && t.p[i + 1] == '\n') ? 2 : 1;
            st = i;
        } else {
            i++;
        }
    }
    if (st < t.n) jl_push(c->a, lines, jv_str(t.p + st, t.n - st));
    jsb b = {.a = c->a};
    bool do_blank = blank && jv_truthy(*blank);
    if (first && jv_truthy(*first)) jsb_add(&b, ind.u.s.p, ind.u.s.n);
    for (size_t k = 0; k < lines->n; k++) {
        jv ln = lines->v[k];
        if (k) {
            jsb_addc(&b, '\n');
            if (do_blank || ln.u.s.n) jsb_add(&b, ind.u.s.p, ind.u.s.n);
        }
        jsb_add(&b, ln.u.s.p, ln.u.s.n);
    }
    return jsb_done(&b);
}

jv jj_filter(jctx *c, const char *name, jv v, jv *args, size_t n_pos, const char **kw, size_t n_kw) {
#define IS(s) (!strcmp(name, s))
#define A(i, nm) arg(args, n_pos, kw, n_kw, i, nm)
    if (IS("tojson")) return do_tojson(c, v, args, n_pos, kw, n_kw);
    if (IS("safe")) {
        jv s = str_of(c, v);
        s.safe = 1;
        return s;
    }
    if (IS("string")) return v.t == JV_STR ? v : str_of(c, v);
    if (IS("trim")) {
        jv *ch = A(0, "chars");
        return jj_strip(str_of(c, v), ch && ch->t == JV_STR ? *ch : jv_none(), true, true);
    }
    if (IS("upper")) return jj_case(c, str_of(c, v), 1);
    if (IS("lower")) return jj_case(c, str_of(c, v), 0);
    if (IS("capitalize")) return jj_case(c, str_of(c, v), 2);
    if (IS("title")) { /* jinja2: words split at [-\s({\[<]+; first letter upper, rest lower */
        jv s = str_of(c, v);
        jsb b = {.a = c->a};
        bool start = true;
        for (size_t i = 0, adv; i < s.u.s.n; i += adv) {
            uint32_t cp = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
            bool sep = ju_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
            jv ch = jj_case(c, jv_str(s.u.s.p + i, adv), sep ? 0 : start ? 1 : 0);
            if (sep) ch = jv_str(s.u.s.p + i, adv);
            jsb_add(&b, ch.u.s.p, ch.u.s.n);
            start = sep;
        }
        return jsb_done(&b);
    }
    if (IS("replace")) {
        jv *o = A(0, "old"), *n = A(1, "new"), *cnt = A(2, "count");
        if (!o || !n || o->t != JV_STR) jj_fail(c, KILN_ERR_INVALID_ARG, "replace needs two strings");
        return jj_replace(c, str_of(c, v), *o, str_of(c, *n), cnt && cnt->t == JV_INT ? cnt->u.i : -1);
    }
    if (IS("length") || IS("count")) {
        switch (v.t) {
        case JV_STR: return jv_int((int64_t)ju_len(v.u.s.p, v.u.s.n));
        case JV_LIST: if (!v.u.l->gen) return jv_int((int64_t)v.u.l->n); break;
        case JV_DICT: case JV_NS: return jv_int((int64_t)v.u.d->n);
        case JV_UNDEF: return jv_int(0);
        default: break;
        }
        jj_fail(c, KILN_ERR_INVALID_ARG, "object of type '%s' has no len()", jv_type_name(v));
    }
    if (IS("default") || IS("d")) {
        jv *def = A(0, "default_value"), *boolean = A(1, "boolean");
        bool use = v.t == JV_UNDEF || (boolean && jv_truthy(*boolean) && !jv_truthy(v));
        return use ? (def ? *def : jv_str("", 0)) : v;
    }
    if (IS("list")) {
        jlist *in = seq_of(c, v), *out = jl_new(c->a, in->n + 1);
        for (size_t i = 0; i < in->n; i++) jl_push(c->a, out, in->v[i]);
        return jv_list(out);
    }
    if (IS("items")) {
        if (v.t == JV_UNDEF) return gen_list(jl_new(c->a, 1));
        if (v.t != JV_DICT) jj_fail(c, KILN_ERR_INVALID_ARG, "items filter: can only get item pairs from a mapping, not %s", jv_type_name(v));
        jlist *out = jl_new(c->a, v.u.d->n + 1);
        for (size_t i = 0; i < v.u.d->n; i++) {
            jlist *t = jl_new(c->a, 2);
            jl_push(c->a, t, v.u.d->k[i]);
            jl_push(c->a, t, v.u.d->v[i]);
            t->tuple = true;
            jl_push(c->a, out, jv_list(t));
        }
        return gen_list(out);
    }
    if (IS("join")) {
        jv *d = A(0, "d"), *attr = A(1, "attribute");
        jv sep = d ? str_of(c, *d) : jv_str("", 0);
        jlist *in = seq_of(c, v);
        jsb b = {.a = c->a};
        for (size_t i = 0; i < in->n; i++) {
            if (i) jsb_add(&b, sep.u.s.p, sep.u.s.n);
            jv x = attr && attr->t != JV_NONE ? attr_path(c, in->v[i], *attr) : in->v[i];
            jv_str_to(&b, x);
        }
        return jsb_done(&b);
    }
    if (IS("first")) {
        jlist *in = seq_of(c, v);
        return in->n ? in->v[0] : jv_undef(NULL);
    }
    if (IS("last")) {
        if (v.t == JV_LIST && v.u.l->gen) jj_fail(c, KILN_ERR_INVALID_ARG, "last: a generator cannot be reversed, use |list first");
        jlist *in = seq_of(c, v);
        return in->n ? in->v[in->n - 1] : jv_undef(NULL);
    }
    if (IS("reverse")) {
        jlist *in = seq_of(c, v), *out = jl_new(c->a, in->n + 1);
        for (size_t i = in->n; i > 0; i--) jl_push(c->a, out, in->v[i - 1]);
        if (v.t == JV_STR) {
            jsb b = {.a = c->a};
            for (size_t i = 0; i < out->n; i++) jsb_add(&b, out->v[i].u.s.p, out->v[i].u.s.n);
            return jsb_done(&b);
        }
        return gen_list(out);
    }
    if (IS("map")) {
        jv *attr = A(99, "attribute"), *def = A(99, "default");
        jlist *in = jv_truthy(v) ? seq_of(c, v) : jl_new(c->a, 1), *out = jl_new(c->a, in->n + 1);
        for (size_t i = 0; i < in->n; i++) {
            jv x;
            if (attr) {
                x = attr_path(c, in->v[i], *attr);
                if (x.t == JV_UNDEF && def) x = *def;
            } else {
                if (n_pos < 1 || args[0].t != JV_STR) jj_fail(c, KILN_ERR_INVALID_ARG, "map needs a filter name or attribute=");
                x = jj_filter(c, ja_strdup(c->a, args[0].u.s.p, args[0].u.s.n), in->v[i], args + 1, n_pos - 1, kw, n_kw);
            }
            jl_push(c->a, out, x);
        }
        return gen_list(out);
    }
    if (IS("select") || IS("reject") || IS("selectattr") || IS("rejectattr")) return select_like(c, name, v, args, n_pos);
    if (IS("unique")) {
        jv *cs = A(0, "case_sensitive"), *attr = A(1, "attribute");
        bool sens = cs && jv_truthy(*cs);
        jlist *in = seq_of(c, v), *out = jl_new(c->a, in->n + 1), *seen = jl_new(c->a, in->n + 1);
        for (size_t i = 0; i < in->n; i++) {
            jv k = sort_key(c, in->v[i], attr, sens);
            bool dup = false;
            for (size_t j = 0; j < seen->n && !dup; j++) dup = jv_equal(seen->v[j], k);
            if (dup) continue;
            jl_push(c->a, seen, k);
            jl_push(c->a, out, in->v[i]);
        }
        return gen_list(out);
    }
    if (IS("sort")) {
        jv *rev = A(0, "reverse"), *cs = A(1, "case_sensitive"), *attr = A(2, "attribute");
        jlist *in = seq_of(c, v), *out = jl_new(c->a, in->n + 1);
        size_t n = in->n;
        jv *keys = ja_alloc(c->a, (n + 1) * sizeof *keys), *ti = ja_alloc(c->a, (n + 1) * sizeof *ti),
           *tk = ja_alloc(c->a, (n + 1) * sizeof *tk);
        for (size_t i = 0; i < n; i++) {
            jl_push(c->a, out, in->v[i]);
            keys[i] = sort_key(c, in->v[i], attr, cs && jv_truthy(*cs));
        }
        msort(c, out->v, keys, ti, tk, n, rev && jv_truthy(*rev));
        return jv_list(out);
    }
    if (IS("abs")) {
        if (v.t == JV_INT) {
            if (v.u.i == INT64_MIN) jj_fail(c, KILN_ERR_INVALID_ARG, "integer overflow");
            return jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        }
        if (v.t == JV_BOOL) return jv_int(v.u.b);
        if (v.t == JV_FLOAT) return jv_float(fabs(v.u.f));
        jj_fail(c, KILN_ERR_INVALID_ARG, "bad operand type for abs(): '%s'", jv_type_name(v));
    }
    if (IS("int") || IS("float")) {
        jv *def = A(0, "default");
        bool want_int = IS("int");
        jv fallback = def ? *def : want_int ? jv_int(0) : jv_float(0);
        double d = 0;
        if (v.t == JV_INT || v.t == JV_BOOL) return want_int ? jv_int(v.t == JV_INT ? v.u.i : v.u.b) : jv_float(jv_num(v));
        if (v.t == JV_FLOAT) d = v.u.f;
        else if (v.t == JV_STR) {
            jv s = jj_strip(v, jv_none(), true, true);
            char *z = ja_strdup(c->a, s.u.s.p, s.u.s.n), *end;
            if (!*z) return fallback;
            if (want_int) {
                long long x = strtoll(z, &end, 10);
                if (!*end) return jv_int(x);
            }
            d = strtod(z, &end);
            if (*end) return fallback;
        } else {
            return fallback;
        }
        if (!want_int) return jv_float(d);
        if (!isfinite(d) || fabs(d) > 9.2e18) return fallback;
        return jv_int((int64_t)d);
    }
    if (IS("round")) {
        jv *prec = A(0, "precision"), *method = A(1, "method");
        int64_t p = prec && prec->t == JV_INT ? prec->u.i : 0;
        if (!jv_is_num(v)) jj_fail(c, KILN_ERR_INVALID_ARG, "round needs a number");
        double x = jv_num(v), m = pow(10.0, (double)p);
        const char *how = method && method->t == JV_STR ? method->u.s.p : "common";
        if (!strncmp(how, "ceil", 4)) return jv_float(ceil(x * m) / m);
        if (!strncmp(how, "floor", 5)) return jv_float(floor(x * m) / m);
        char buf[400];
        if (p < 0 || p > 300) return jv_float(x);
        snprintf(buf, sizeof buf, "%.*f", (int)p, x);
        return jv_float(strtod(buf, NULL));
    }
    if (IS("indent")) {
        return indent_filter(c, str_of(c, v), A(0, "width"), A(1, "first"), A(2, "blank"));
    }
    if (IS("wordcount")) {
        jv s = str_of(c, v);
        int64_t k = 0;
        bool in = false;
        for (size_t i = 0; i < s.u.s.n; i++) {
            unsigned char ch = (unsigned char)s.u.s.p[i];
            bool w = ch >= 0x80 || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
            if (w && !in) k++;
            in = w;
        }
        return jv_int(k);
    }
    if (v.t == JV_UNDEF) fail_undef(c, v);
    jj_fail(c, KILN_ERR_INVALID_ARG, "no filter named '%s'", name);
#undef IS
#undef A
}
