/*
 * methods.c — attribute access (obj.name) and the Python methods templates call on
 * values: str (strip, split, startswith, replace, upper, ...), dict (items, keys,
 * values, get), list (index, count) and the loop variable (loop.index, loop.cycle ...).
 * As in jinja2, obj.name on a dict finds a method of that name before the key, and
 * ImmutableSandboxedEnvironment refuses methods that modify a list or dict.
 */
#include <string.h>
#include <utf8proc.h>

#include "jinja_impl.h"

static bool name_in(const char *name, size_t n, const char *const *set) {
    for (; *set; set++)
        if (strlen(*set) == n && !memcmp(*set, name, n)) return true;
    return false;
}

static const char *const k_dict_methods[] = {"items", "keys", "values", "get", "copy", "update", "pop",
                                             "popitem", "setdefault", "clear", NULL};
static const char *const k_str_methods[] = {"strip", "lstrip", "rstrip", "split", "rsplit", "startswith",
                                            "endswith", "upper", "lower", "replace", "title", "capitalize",
                                            "find", "rfind", "count", "join", "splitlines", "isdigit",
                                            "isalpha", "isspace", "format", NULL};
static const char *const k_list_methods[] = {"index", "count", "append", "pop", "insert", "extend", "remove",
                                             "sort", "reverse", "clear", NULL};

static jv method(jctx *c, jv self, const char *name, size_t n) {
    jmethod *m = ja_alloc(c->a, sizeof *m);
    m->self = self;
    m->name = ja_strdup(c->a, name, n);
    jv v = {.t = JV_METHOD};
    v.u.meth = m;
    return v;
}

jv jj_getattr(jctx *c, jv obj, const char *name, size_t n) {
    switch (obj.t) {
    case JV_UNDEF:
        if (obj.u.s.n) jj_fail(c, KILN_ERR_INVALID_ARG, "'%.*s' is undefined", (int)obj.u.s.n, obj.u.s.p);
        jj_fail(c, KILN_ERR_INVALID_ARG, "undefined value has no attribute '%.*s'", (int)n, name);
    case JV_DICT: {
        if (name_in(name, n, k_dict_methods)) return method(c, obj, name, n);
        jv *v = jd_get_str(obj.u.d, name, n);
        return v ? *v : jv_undef(NULL);
    }
    case JV_NS: {
        jv *v = jd_get_str(obj.u.d, name, n);
        return v ? *v : jv_undef(NULL);
    }
    case JV_STR:
        if (name_in(name, n, k_str_methods)) return method(c, obj, name, n);
        return jv_undef(NULL);
    case JV_LIST:
        if (name_in(name, n, k_list_methods) && !obj.u.l->gen) return method(c, obj, name, n);
        return jv_undef(NULL);
    case JV_LOOP: {
        jloop *lp = obj.u.loop;
        int64_t i = (int64_t)lp->i, len = (int64_t)lp->items->n;
#define IS(s) (n == strlen(s) && !memcmp(name, s, n))
        if (IS("index")) return jv_int(i + 1);
        if (IS("index0")) return jv_int(i);
        if (IS("revindex")) return jv_int(len - i);
        if (IS("revindex0")) return jv_int(len - i - 1);
        if (IS("first")) return jv_bool(i == 0);
        if (IS("last")) return jv_bool(i == len - 1);
        if (IS("length")) return jv_int(len);
        if (IS("depth")) return jv_int(1);
        if (IS("depth0")) return jv_int(0);
        if (IS("previtem")) return i > 0 ? lp->items->v[i - 1] : jv_undef("previtem");
        if (IS("nextitem")) return i + 1 < len ? lp->items->v[i + 1] : jv_undef("nextitem");
        if (IS("cycle")) return method(c, obj, name, n);
#undef IS
        return jv_undef(NULL);
    }
    default: return jv_undef(NULL);
    }
}

/* ---- string helpers (shared with filters.c) ---------------------------------------- */
static bool in_chars(uint32_t cp, jv chars) {
    for (size_t i = 0, adv; i < chars.u.s.n; i += adv)
        if (ju_decode(chars.u.s.p + i, chars.u.s.n - i, &adv) == cp) return true;
    return false;
}

/* Python str.strip/lstrip/rstrip: whitespace, or the code points of chars. */
jv jj_strip(jv s, jv chars, bool left, bool right) {
    bool ws = chars.t != JV_STR;
    const char *p = s.u.s.p;
    size_t a = 0, b = s.u.s.n, adv;
    while (left && a < b) {
        uint32_t cp = ju_decode(p + a, b - a, &adv);
        if (ws ? !ju_isspace(cp) : !in_chars(cp, chars)) break;
        a += adv;
    }
    while (right && b > a) {
        size_t k = b - 1;
        while (k > a && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
        uint32_t cp = ju_decode(p + k, b - k, &adv);
        if (ws ? !ju_isspace(cp) : !in_chars(cp, chars)) break;
        b = k;
    }
    return jv_str(p + a, b - a);
}

/* case mapping: mode 0 lower, 1 upper, 2 capitalize, 3 Python str.title */
jv jj_case(jctx *c, jv s, int mode) {
    jsb b = {.a = c->a};
    bool prev_cased = false;
    for (size_t i = 0, adv; i < s.u.s.n; i += adv) {
        uint32_t cp = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
        uint32_t lo = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), up = (uint32_t)utf8proc_toupper((utf8proc_int32_t)cp);
        uint32_t out = mode == 0 ? lo : mode == 1 ? up : mode == 2 ? (i == 0 ? up : lo) : (prev_cased ? lo : up);
        bool cased = lo != up || (utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LL) ||
                     (utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_LU);
        prev_cased = cased;
        if (cp == 0xDF && (mode == 1 || (mode == 3 && !prev_cased) || (mode == 2 && i == 0))) {
            jsb_adds(&b, mode == 1 ? "SS" : "Ss"); /* Python's full case mapping of ß */
            continue;
        }
        if (out == cp) {
            jsb_add(&b, s.u.s.p + i, adv);
        } else {
            utf8proc_uint8_t u[4];
            utf8proc_ssize_t k = utf8proc_encode_char((utf8proc_int32_t)out, u);
            jsb_add(&b, (const char *)u, (size_t)k);
        }
    }
    return jsb_done(&b);
}

jv jj_replace(jctx *c, jv s, jv old, jv new_, int64_t count) {
    jsb b = {.a = c->a};
    size_t i = 0;
    int64_t done = 0;
    if (old.u.s.n == 0) { /* Python inserts new between every code point */
        for (size_t adv; i <= s.u.s.n; i += adv) {
            if (count < 0 || done < count) {
                jsb_add(&b, new_.u.s.p, new_.u.s.n);
                done++;
            }
            if (i == s.u.s.n) break;
            ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
            jsb_add(&b, s.u.s.p + i, adv);
        }
        return jsb_done(&b);
    }
    while (i < s.u.s.n) {
        if ((count < 0 || done < count) && i + old.u.s.n <= s.u.s.n && !memcmp(s.u.s.p + i, old.u.s.p, old.u.s.n)) {
            jsb_add(&b, new_.u.s.p, new_.u.s.n);
            i += old.u.s.n;
            done++;
        } else {
            jsb_addc(&b, s.u.s.p[i++]);
        }
    }
    return jsb_done(&b);
}

static jv split(jctx *c, jv s, jv sep, int64_t maxsplit) {
    jlist *l = jl_new(c->a, 8);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n, i = 0, adv;
    if (sep.t != JV_STR) {
        for (;;) {
            while (i < n && ju_isspace(ju_decode(p + i, n - i, &adv))) i += adv;
            if (i >= n) break;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                size_t e = n;
                jv rest = jj_strip(jv_str(p + i, e - i), jv_none(), false, true);
                jl_push(c->a, l, rest);
                break;
            }
            size_t st = i;
            while (i < n && !ju_isspace(ju_decode(p + i, n - i, &adv))) i += adv;
            jl_push(c->a, l, jv_str(p + st, i - st));
        }
        return jv_list(l);
    }
    if (sep.u.s.n == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "empty separator");
    size_t st = 0;
    while (i + sep.u.s.n <= n) {
        if ((maxsplit < 0 || (int64_t)l->n < maxsplit) && !memcmp(p + i, sep.u.s.p, sep.u.s.n)) {
            jl_push(c->a, l, jv_str(p + st, i - st));
            i += sep.u.s.n;
            st = i;
        } else {
            i++;
        }
    }
    jl_push(c->a, l, jv_str(p + st, n - st));
    return jv_list(l);
}

static bool has_prefix(jv s, jv x, bool suffix) {
    if (x.u.s.n > s.u.s.n) return false;
    return !memcmp(s.u.s.p + (suffix ? s.u.s.n - x.u.s.n : 0), x.u.s.p, x.u.s.n);
}

static jv *arg(jv *args, size_t n_pos, const char **kw, size_t n_kw, size_t idx, const char *name) {
    if (idx < n_pos) return &args[idx];
    for (size_t k = 0; k < n_kw; k++)
        if (!strcmp(kw[k], name)) return &args[n_pos + k];
    return NULL;
}

static jv need_str(jctx *c, jv *v, const char *what) {
    if (!v || v->t != JV_STR) jj_fail(c, KILN_ERR_INVALID_ARG, "%s must be a string", what);
    return *v;
}

jv jj_call_method(jctx *c, jmethod *m, jv *args, size_t n_pos, const char **kw, size_t n_kw) {
    jv self = m->self;
    const char *name = m->name;
#define A(i, nm) arg(args, n_pos, kw, n_kw, i, nm)
    if (self.t == JV_LOOP) { /* loop.cycle(a, b, ...) */
        if (!n_pos) jj_fail(c, KILN_ERR_INVALID_ARG, "no items for cycling given");
        return args[self.u.loop->i % n_pos];
    }
    if (self.t == JV_DICT) {
        jdict *d = self.u.d;
        if (!strcmp(name, "items") || !strcmp(name, "keys") || !strcmp(name, "values")) {
            jlist *l = jl_new(c->a, d->n + 1);
            for (size_t i = 0; i < d->n; i++) {
                if (name[0] == 'k') jl_push(c->a, l, d->k[i]);
                else if (name[0] == 'v') jl_push(c->a, l, d->v[i]);
                else {
                    jlist *t = jl_new(c->a, 2);
                    jl_push(c->a, t, d->k[i]);
                    jl_push(c->a, t, d->v[i]);
                    t->tuple = true;
                    jl_push(c->a, l, jv_list(t));
                }
            }
            return jv_list(l);
        }
        if (!strcmp(name, "get")) {
            jv *k = A(0, "key"), *def = A(1, "default");
            if (!k) jj_fail(c, KILN_ERR_INVALID_ARG, "get expected at least 1 argument");
            jv *v = jd_get(d, *k);
            return v ? *v : def ? *def : jv_none();
        }
        if (!strcmp(name, "copy")) {
            jdict *nd = jd_new(c->a);
            for (size_t i = 0; i < d->n; i++) jd_set(c->a, nd, d->k[i], d->v[i]);
            jv v = {.t = JV_DICT};
            v.u.d = nd;
            return v;
        }
        jj_fail(c, KILN_ERR_INVALID_ARG, "dict.%s is not allowed: the template sandbox is immutable", name);
    }
    if (self.t == JV_LIST) {
        if (!strcmp(name, "index") || !strcmp(name, "count")) {
            if (n_pos < 1) jj_fail(c, KILN_ERR_INVALID_ARG, "list.%s takes one argument", name);
            int64_t k = 0;
            for (size_t i = 0; i < self.u.l->n; i++)
                if (jv_equal(self.u.l->v[i], args[0])) {
                    if (name[0] == 'i') return jv_int((int64_t)i);
                    k++;
                }
            if (name[0] == 'i') jj_fail(c, KILN_ERR_INVALID_ARG, "list.index(x): x not in list");
            return jv_int(k);
        }
        jj_fail(c, KILN_ERR_INVALID_ARG, "list.%s is not allowed: the template sandbox is immutable", name);
    }
    /* str */
    jv s = self;
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        jv *ch = A(0, "chars");
        jv r = jj_strip(s, ch && ch->t == JV_STR ? *ch : jv_none(), name[0] != 'r', name[0] != 'l');
        return r;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        jv *sep = A(0, "sep"), *mx = A(1, "maxsplit");
        int64_t maxsplit = mx && mx->t == JV_INT ? mx->u.i : -1;
        if (name[0] == 'r' && maxsplit >= 0) jj_fail(c, KILN_ERR_INVALID_ARG, "rsplit with maxsplit is not supported");
        return split(c, s, sep && sep->t == JV_STR ? *sep : jv_none(), maxsplit);
    }
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        jv *x = A(0, "prefix");
        bool suffix = name[0] == 'e';
        if (x && x->t == JV_LIST) {
            for (size_t i = 0; i < x->u.l->n; i++)
                if (x->u.l->v[i].t == JV_STR && has_prefix(s, x->u.l->v[i], suffix)) return jv_bool(true);
            return jv_bool(false);
        }
        return jv_bool(has_prefix(s, need_str(c, x, name), suffix));
    }
    if (!strcmp(name, "upper")) return jj_case(c, s, 1);
    if (!strcmp(name, "lower")) return jj_case(c, s, 0);
    if (!strcmp(name, "capitalize")) return jj_case(c, s, 2);
    if (!strcmp(name, "title")) return jj_case(c, s, 3);
    if (!strcmp(name, "replace")) {
        jv *cnt = A(2, "count");
        return jj_replace(c, s, need_str(c, A(0, "old"), "replace() argument 1"), need_str(c, A(1, "new"), "replace() argument 2"),
                          cnt && cnt->t == JV_INT ? cnt->u.i : -1);
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "count")) {
        jv x = need_str(c, A(0, "sub"), name);
        int64_t found = -1, k = 0;
        for (size_t i = 0; i + x.u.s.n <= s.u.s.n;) {
            if (!memcmp(s.u.s.p + i, x.u.s.p, x.u.s.n)) {
                if (found < 0 || name[0] == 'r') found = (int64_t)ju_len(s.u.s.p, i);
                k++;
                if (name[0] == 'f') break;
                i += x.u.s.n ? x.u.s.n : 1;
            } else {
                i++;
            }
        }
        if (name[0] == 'c') return jv_int(x.u.s.n ? k : (int64_t)ju_len(s.u.s.p, s.u.s.n) + 1);
        return jv_int(found);
    }
    if (!strcmp(name, "join")) {
        jv *it = A(0, "iterable");
        if (!it) jj_fail(c, KILN_ERR_INVALID_ARG, "join() takes one argument");
        jlist *l = jj_iterate(c, *it);
        jsb b = {.a = c->a};
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != JV_STR)
                jj_fail(c, KILN_ERR_INVALID_ARG, "sequence item %zu: expected str instance, %s found", i, jv_type_name(l->v[i]));
            if (i) jsb_add(&b, s.u.s.p, s.u.s.n);
            jsb_add(&b, l->v[i].u.s.p, l->v[i].u.s.n);
        }
        return jsb_done(&b);
    }
    if (!strcmp(name, "splitlines")) {
        jlist *l = jl_new(c->a, 8);
        size_t st = 0, i = 0;
        while (i < s.u.s.n) {
            char ch = s.u.s.p[i];
            if (ch == '\n' || ch == '\r') {
                jl_push(c->a, l, jv_str(s.u.s.p + st, i - st));
                i += (ch == '\r' && i + 1 < s.u.s.n && s.u.s.p[i + 1] == '\n') ? 2 : 1;
                st = i;
            } else {
                i++;
            }
        }
        if (st < s.u.s.n) jl_push(c->a, l, jv_str(s.u.s.p + st, s.u.s.n - st));
        return jv_list(l);
    }
    if (!strcmp(name, "isdigit") || !strcmp(name, "isalpha") || !strcmp(name, "isspace")) {
        if (!s.u.s.n) return jv_bool(false);
        for (size_t i = 0, adv; i < s.u.s.n; i += adv) {
            uint32_t cp = ju_decode(s.u.s.p + i, s.u.s.n - i, &adv);
            utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)cp);
            bool ok = name[2] == 'd' ? cat == UTF8PROC_CATEGORY_ND
                    : name[2] == 's' ? ju_isspace(cp)
                                     : (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO);
            if (!ok) return jv_bool(false);
        }
        return jv_bool(true);
    }
    jj_fail(c, KILN_ERR_INVALID_ARG, "str.%s() is not supported", name);
#undef A
}
