/*
 * eval.c — the tree walker: scopes, statements, operators and calls, with the limits
 * that keep a hostile template from hanging or exhausting memory (loop iterations,
 * macro call depth, output size; the arena caps the values).
 *
 * Scoping follows jinja2 for what chat templates do: each for-loop iteration and each
 * macro call gets its own scope (assignments inside do not leak out), if-blocks do not;
 * macros see the scope they were defined in as it is when they run.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jinja_impl.h"

enum { FN_RANGE = 1, FN_NAMESPACE, FN_DICT, FN_RAISE, FN_STRFTIME, FN_CALLER_UNUSED };

_Noreturn void jj_fail(jctx *c, kiln_status s, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kiln_fail(s, "template error at line %d: %s", c->line, msg);
    longjmp(c->jmp, (int)s);
}

static _Noreturn void fail_undef(jctx *c, jv v) {
    if (v.u.s.n) jj_fail(c, KILN_ERR_INVALID_ARG, "'%.*s' is undefined", (int)v.u.s.n, v.u.s.p);
    jj_fail(c, KILN_ERR_INVALID_ARG, "undefined value used");
}

/* ---- output ----------------------------------------------------------------------- */
static size_t out_total(jctx *c) {
    size_t t = 0;
    for (int i = 0; i < c->n_outs; i++) t += c->outs[i]->len;
    return t;
}

static void out_add(jctx *c, const char *p, size_t n) {
    kiln_buf *b = c->outs[c->n_outs - 1];
    if (n > JJ_MAX_OUTPUT || out_total(c) + n > JJ_MAX_OUTPUT)
        jj_fail(c, KILN_ERR_INVALID_ARG, "output larger than the limit (%u MiB)", JJ_MAX_OUTPUT >> 20);
    if (n && kiln_buf_append(b, p, n)) jj_fail(c, KILN_ERR_NOMEM, "out of memory");
}

static void push_out(jctx *c) {
    if (c->n_outs >= (int)(sizeof c->outs / sizeof c->outs[0]))
        jj_fail(c, KILN_ERR_INVALID_ARG, "blocks nested too deeply");
    kiln_buf *b = calloc(1, sizeof *b);
    if (!b) jj_fail(c, KILN_ERR_NOMEM, "out of memory");
    c->outs[c->n_outs++] = b;
}

static jv pop_out(jctx *c) {
    kiln_buf *b = c->outs[--c->n_outs];
    jv v = jv_str(ja_strdup(c->a, b->data ? b->data : "", b->len), b->len);
    kiln_buf_free(b);
    free(b);
    return v;
}

/* ---- scopes ----------------------------------------------------------------------- */
static jv builtin(const char *name) {
    static const struct { const char *n; int fn; } g[] = {
        {"range", FN_RANGE}, {"namespace", FN_NAMESPACE}, {"dict", FN_DICT},
        {"raise_exception", FN_RAISE}, {"strftime_now", FN_STRFTIME},
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (!strcmp(g[i].n, name)) {
            jv v = {.t = JV_FUNC};
            v.u.fn = g[i].fn;
            return v;
        }
    return jv_undef(name);
}

static jv lookup(jscope *s, const char *name) {
    size_t n = strlen(name);
    for (; s; s = s->parent) {
        jv *v = jd_get_str(s->vars, name, n);
        if (v) return *v;
    }
    return builtin(name);
}

static void assign(jctx *c, jscope *s, const char *name, jv v) {
    jd_set(c->a, s->vars, jv_str(name, strlen(name)), v);
}

static jscope *new_scope(jctx *c, jscope *parent) {
    jscope *s = ja_alloc(c->a, sizeof *s);
    s->vars = jd_new(c->a);
    s->parent = parent;
    return s;
}

/* ---- iteration -------------------------------------------------------------------- */
jlist *jj_iterate(jctx *c, jv v) {
    switch (v.t) {
    case JV_UNDEF: return jl_new(c->a, 1);
    case JV_LIST: return v.u.l;
    case JV_DICT: case JV_NS: {
        jlist *l = jl_new(c->a, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++) jl_push(c->a, l, v.u.d->k[i]);
        return l;
    }
    case JV_STR: {
        jlist *l = jl_new(c->a, v.u.s.n);
        for (size_t i = 0, adv; i < v.u.s.n; i += adv) {
            ju_decode(v.u.s.p + i, v.u.s.n - i, &adv);
            jl_push(c->a, l, jv_str(v.u.s.p + i, adv));
        }
        return l;
    }
    default:
        jj_fail(c, KILN_ERR_INVALID_ARG, "'%s' object is not iterable", jv_type_name(v));
    }
}

static void count_iteration(jctx *c) {
    if (++c->iterations > JJ_MAX_ITERATIONS)
        jj_fail(c, KILN_ERR_INVALID_ARG, "too many loop iterations (limit %d)", JJ_MAX_ITERATIONS);
}

/* ---- operators -------------------------------------------------------------------- */
static jv escape_html(jctx *c, jv s) {
    jsb b = {.a = c->a};
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        switch (ch) {
        case '&': jsb_adds(&b, "&amp;"); break;
        case '<': jsb_adds(&b, "&lt;"); break;
        case '>': jsb_adds(&b, "&gt;"); break;
        case '"': jsb_adds(&b, "&#34;"); break;
        case '\'': jsb_adds(&b, "&#39;"); break;
        default: jsb_addc(&b, ch);
        }
    }
    return jsb_done(&b);
}

static jv concat_str(jctx *c, jv x, jv y, bool safe) {
    char *p = ja_alloc(c->a, x.u.s.n + y.u.s.n + 1);
    memcpy(p, x.u.s.p, x.u.s.n);
    memcpy(p + x.u.s.n, y.u.s.p, y.u.s.n);
    jv r = jv_str(p, x.u.s.n + y.u.s.n);
    r.safe = safe;
    return r;
}

static _Noreturn void bad_operands(jctx *c, const char *op, jv x, jv y) {
    if (x.t == JV_UNDEF) fail_undef(c, x);
    if (y.t == JV_UNDEF) fail_undef(c, y);
    jj_fail(c, KILN_ERR_INVALID_ARG, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(x),
            jv_type_name(y));
}

static int64_t as_int(jv v) { return v.t == JV_BOOL ? v.u.b : v.u.i; }
static bool is_intlike(jv v) { return v.t == JV_INT || v.t == JV_BOOL; }

static jv repeat(jctx *c, jv seq, int64_t k) {
    if (k < 0) k = 0;
    if (seq.t == JV_STR) {
        if (seq.u.s.n && (uint64_t)k > JJ_MAX_ARENA / seq.u.s.n)
            jj_fail(c, KILN_ERR_INVALID_ARG, "string repetition too large");
        jsb b = {.a = c->a};
        for (int64_t i = 0; i < k; i++) jsb_add(&b, seq.u.s.p, seq.u.s.n);
        return jsb_done(&b);
    }
    jlist *l = seq.u.l, *r;
    if (l->n && (uint64_t)k > JJ_MAX_ARENA / (l->n * sizeof(jv)))
        jj_fail(c, KILN_ERR_INVALID_ARG, "list repetition too large");
    r = jl_new(c->a, (size_t)k * l->n + 1);
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < l->n; j++) jl_push(c->a, r, l->v[j]);
    return jv_list(r);
}

static jv arith(jctx *c, int op, jv x, jv y) {
    static const char *names[] = {[T_ADD] = "+", [T_SUB] = "-", [T_MUL] = "*", [T_DIV] = "/",
                                  [T_FLOORDIV] = "//", [T_MOD] = "%", [T_POW] = "**"};
    if (op == T_ADD && x.t == JV_STR && y.t == JV_STR) {
        if (x.safe && !y.safe) y = escape_html(c, y);
        else if (y.safe && !x.safe) x = escape_html(c, x);
        return concat_str(c, x, y, x.safe || y.safe);
    }
    if (op == T_ADD && x.t == JV_LIST && y.t == JV_LIST && x.u.l->tuple == y.u.l->tuple && !x.u.l->gen && !y.u.l->gen) {
        jlist *r = jl_new(c->a, x.u.l->n + y.u.l->n + 1);
        for (size_t i = 0; i < x.u.l->n; i++) jl_push(c->a, r, x.u.l->v[i]);
        for (size_t i = 0; i < y.u.l->n; i++) jl_push(c->a, r, y.u.l->v[i]);
        r->tuple = x.u.l->tuple;
        return jv_list(r);
    }
    if (op == T_MUL && (x.t == JV_STR || (x.t == JV_LIST && !x.u.l->gen)) && is_intlike(y)) return repeat(c, x, as_int(y));
    if (op == T_MUL && (y.t == JV_STR || (y.t == JV_LIST && !y.u.l->gen)) && is_intlike(x)) return repeat(c, y, as_int(x));
    if (!jv_is_num(x) || !jv_is_num(y)) bad_operands(c, names[op], x, y);
    if (is_intlike(x) && is_intlike(y) && op != T_DIV) {
        int64_t a = as_int(x), b = as_int(y), r = 0;
        bool ovf = false;
        switch (op) {
        case T_ADD: ovf = __builtin_add_overflow(a, b, &r); break;
        case T_SUB: ovf = __builtin_sub_overflow(a, b, &r); break;
        case T_MUL: ovf = __builtin_mul_overflow(a, b, &r); break;
        case T_FLOORDIV: case T_MOD:
            if (b == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "integer division or modulo by zero");
            if (a == INT64_MIN && b == -1) { ovf = true; break; }
            r = op == T_FLOORDIV ? a / b : a % b;
            if (op == T_FLOORDIV && (a % b != 0) && ((a < 0) != (b < 0))) r--;
            if (op == T_MOD && r != 0 && ((r < 0) != (b < 0))) r += b;
            break;
        case T_POW:
            if (b < 0) return jv_float(pow((double)a, (double)b));
            r = 1;
            if (a == 0 || a == 1) { r = b == 0 ? 1 : a; break; }
            if (a == -1) { r = b % 2 ? -1 : 1; break; }
            for (int64_t i = 0; i < b && !ovf; i++) ovf = __builtin_mul_overflow(r, a, &r);
            break;
        }
        if (ovf) jj_fail(c, KILN_ERR_INVALID_ARG, "integer overflow in '%s'", names[op]);
        return jv_int(r);
    }
    double a = jv_num(x), b = jv_num(y);
    switch (op) {
    case T_ADD: return jv_float(a + b);
    case T_SUB: return jv_float(a - b);
    case T_MUL: return jv_float(a * b);
    case T_DIV:
        if (b == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "division by zero");
        return jv_float(a / b);
    case T_FLOORDIV:
        if (b == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "float floor division by zero");
        return jv_float(floor(a / b));
    case T_MOD: {
        if (b == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "float modulo by zero");
        double m = fmod(a, b);
        if (m != 0 && ((m < 0) != (b < 0))) m += b;
        return jv_float(m);
    }
    default: return jv_float(pow(a, b));
    }
}

/* <0, 0, >0; type errors fail */
static int compare(jctx *c, jv x, jv y, const char *op, int depth) {
    if (depth > 1000) jj_fail(c, KILN_ERR_INVALID_ARG, "values nested too deeply to compare");
    if (jv_is_num(x) && jv_is_num(y)) {
        if (is_intlike(x) && is_intlike(y)) return as_int(x) < as_int(y) ? -1 : as_int(x) > as_int(y);
        double a = jv_num(x), b = jv_num(y);
        return a < b ? -1 : a > b;
    }
    if (x.t == JV_STR && y.t == JV_STR) {
        size_t n = x.u.s.n < y.u.s.n ? x.u.s.n : y.u.s.n;
        int r = memcmp(x.u.s.p, y.u.s.p, n);
        if (r) return r;
        return x.u.s.n < y.u.s.n ? -1 : x.u.s.n > y.u.s.n;
    }
    if (x.t == JV_LIST && y.t == JV_LIST) {
        for (size_t i = 0; i < x.u.l->n && i < y.u.l->n; i++) {
            if (jv_equal(x.u.l->v[i], y.u.l->v[i])) continue;
            return compare(c, x.u.l->v[i], y.u.l->v[i], op, depth + 1);
        }
        return x.u.l->n < y.u.l->n ? -1 : x.u.l->n > y.u.l->n;
    }
    if (x.t == JV_UNDEF) fail_undef(c, x);
    if (y.t == JV_UNDEF) fail_undef(c, y);
    jj_fail(c, KILN_ERR_INVALID_ARG, "'%s' not supported between instances of '%s' and '%s'", op, jv_type_name(x),
            jv_type_name(y));
}

int jj_compare(jctx *c, jv x, jv y) { return compare(c, x, y, "<", 0); }

static bool contains(jctx *c, jv hay, jv needle) {
    switch (hay.t) {
    case JV_STR:
        if (needle.t != JV_STR)
            jj_fail(c, KILN_ERR_INVALID_ARG, "'in <string>' requires string as left operand, not %s", jv_type_name(needle));
        if (needle.u.s.n == 0) return true;
        for (size_t i = 0; i + needle.u.s.n <= hay.u.s.n; i++)
            if (!memcmp(hay.u.s.p + i, needle.u.s.p, needle.u.s.n)) return true;
        return false;
    case JV_LIST:
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (jv_equal(hay.u.l->v[i], needle)) return true;
        return false;
    case JV_DICT: case JV_NS: return jd_get(hay.u.d, needle) != NULL;
    case JV_UNDEF: return false;
    default:
        jj_fail(c, KILN_ERR_INVALID_ARG, "argument of type '%s' is not iterable", jv_type_name(hay));
    }
}

static bool compare_op(jctx *c, int op, jv x, jv y) {
    switch (op) {
    case T_EQ: return jv_equal(x, y);
    case T_NE: return !jv_equal(x, y);
    case T_LT: return compare(c, x, y, "<", 0) < 0;
    case T_LE: return compare(c, x, y, "<=", 0) <= 0;
    case T_GT: return compare(c, x, y, ">", 0) > 0;
    case T_GE: return compare(c, x, y, ">=", 0) >= 0;
    case T_IN: return contains(c, y, x);
    default: return !contains(c, y, x);
    }
}

/* ---- subscripts ------------------------------------------------------------------- */
static int64_t clamp_index(int64_t i, int64_t n, bool neg_step) {
    if (i < 0) {
        i += n;
        if (i < 0) i = neg_step ? -1 : 0;
    } else if (i >= n) {
        i = neg_step ? n - 1 : n;
    }
    return i;
}

static jv slice(jctx *c, jv obj, jv start, jv stop, jv step) {
    int64_t st = 1;
    if (step.t != JV_NONE && step.t != JV_UNDEF) {
        if (!is_intlike(step)) jj_fail(c, KILN_ERR_INVALID_ARG, "slice indices must be integers");
        st = as_int(step);
        if (st == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "slice step cannot be zero");
    }
    /* items: code points of a string or the list's values */
    jlist *items = obj.t == JV_STR ? jj_iterate(c, obj) : obj.t == JV_LIST ? obj.u.l : NULL;
    if (!items) jj_fail(c, KILN_ERR_INVALID_ARG, "'%s' object is not subscriptable", jv_type_name(obj));
    int64_t n = (int64_t)items->n, a, b;
    if (start.t == JV_NONE || start.t == JV_UNDEF) a = st > 0 ? 0 : n - 1;
    else if (is_intlike(start)) a = clamp_index(as_int(start), n, st < 0);
    else jj_fail(c, KILN_ERR_INVALID_ARG, "slice indices must be integers");
    if (stop.t == JV_NONE || stop.t == JV_UNDEF) b = st > 0 ? n : -1;
    else if (is_intlike(stop)) b = clamp_index(as_int(stop), n, st < 0);
    else jj_fail(c, KILN_ERR_INVALID_ARG, "slice indices must be integers");
    jlist *r = jl_new(c->a, 8);
    for (int64_t i = a; st > 0 ? i < b : i > b; i += st) jl_push(c->a, r, items->v[i]);
    if (obj.t == JV_STR) {
        jsb sb = {.a = c->a};
        for (size_t i = 0; i < r->n; i++) jsb_add(&sb, r->v[i].u.s.p, r->v[i].u.s.n);
        return jsb_done(&sb);
    }
    r->tuple = obj.u.l->tuple;
    return jv_list(r);
}

static jv getitem(jctx *c, jv obj, jv key) {
    switch (obj.t) {
    case JV_UNDEF: fail_undef(c, obj);
    case JV_DICT: case JV_NS: {
        jv *v = jd_get(obj.u.d, key);
        if (v) return *v;
        break;
    }
    case JV_LIST:
        if (is_intlike(key)) {
            int64_t i = as_int(key), n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return obj.u.l->v[i];
            return jv_undef(NULL);
        }
        break;
    case JV_STR:
        if (is_intlike(key)) {
            jlist *cs = jj_iterate(c, obj);
            int64_t i = as_int(key), n = (int64_t)cs->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) return cs->v[i];
            return jv_undef(NULL);
        }
        break;
    default: break;
    }
    if (key.t == JV_STR) return jj_getattr(c, obj, key.u.s.p, key.u.s.n);
    return jv_undef(NULL);
}

/* ---- calls ------------------------------------------------------------------------ */
static jv call_macro(jctx *c, jmacro *m, jv *args, size_t n_pos, const char **kw, size_t n_kw) {
    jnode *def = m->def;
    if (n_pos > def->n_kids)
        jj_fail(c, KILN_ERR_INVALID_ARG, "macro '%s' takes not more than %zu argument(s)", def->name, def->n_kids);
    if (c->depth >= JJ_MAX_CALL_DEPTH)
        jj_fail(c, KILN_ERR_INVALID_ARG, "macro calls nested too deeply (limit %d): runaway recursion?", JJ_MAX_CALL_DEPTH);
    jscope *s = new_scope(c, m->closure);
    for (size_t i = 0; i < def->n_kids; i++) {
        jv v;
        bool have = false;
        if (i < n_pos) {
            v = args[i];
            have = true;
        }
        for (size_t k = 0; k < n_kw; k++)
            if (!strcmp(kw[k], def->kw[i])) {
                if (have) jj_fail(c, KILN_ERR_INVALID_ARG, "macro '%s' got multiple values for argument '%s'", def->name, kw[k]);
                v = args[n_pos + k];
                have = true;
            }
        if (!have) v = def->kids[i] ? jj_eval(c, s, def->kids[i]) : jv_undef(def->kw[i]);
        assign(c, s, def->kw[i], v);
    }
    for (size_t k = 0; k < n_kw; k++) {
        bool known = false;
        for (size_t i = 0; i < def->n_kids; i++) known |= !strcmp(kw[k], def->kw[i]);
        if (!known) jj_fail(c, KILN_ERR_INVALID_ARG, "macro '%s' takes no keyword argument '%s'", def->name, kw[k]);
    }
    c->depth++;
    int line = c->line;
    push_out(c);
    jj_exec(c, s, def->body);
    jv r = pop_out(c);
    c->line = line;
    c->depth--;
    return r;
}

static jv call_builtin(jctx *c, int fn, jv *args, size_t n_pos, const char **kw, size_t n_kw) {
    switch (fn) {
    case FN_RANGE: {
        if (n_kw || n_pos < 1 || n_pos > 3) jj_fail(c, KILN_ERR_INVALID_ARG, "range() takes 1 to 3 integer arguments");
        for (size_t i = 0; i < n_pos; i++)
            if (!is_intlike(args[i])) jj_fail(c, KILN_ERR_INVALID_ARG, "range() arguments must be integers, not '%s'", jv_type_name(args[i]));
        int64_t a = n_pos > 1 ? as_int(args[0]) : 0, b = n_pos > 1 ? as_int(args[1]) : as_int(args[0]);
        int64_t st = n_pos > 2 ? as_int(args[2]) : 1;
        if (st == 0) jj_fail(c, KILN_ERR_INVALID_ARG, "range() arg 3 must not be zero");
        double count = st > 0 ? ceil(((double)b - (double)a) / (double)st) : ceil(((double)a - (double)b) / (double)-st);
        if (count > JJ_MAX_RANGE)
            jj_fail(c, KILN_ERR_INVALID_ARG, "range too big (%.0f items, limit %d)", count, JJ_MAX_RANGE);
        jlist *l = jl_new(c->a, count > 0 ? (size_t)count : 1);
        for (int64_t i = a; st > 0 ? i < b : i > b; i += st) jl_push(c->a, l, jv_int(i));
        return jv_list(l);
    }
    case FN_NAMESPACE: case FN_DICT: {
        jdict *d = jd_new(c->a);
        if (n_pos > 1) jj_fail(c, KILN_ERR_INVALID_ARG, "%s() takes at most one positional argument", fn == FN_DICT ? "dict" : "namespace");
        if (n_pos == 1) {
            if (args[0].t != JV_DICT && args[0].t != JV_NS) jj_fail(c, KILN_ERR_INVALID_ARG, "%s() argument must be a mapping", fn == FN_DICT ? "dict" : "namespace");
            for (size_t i = 0; i < args[0].u.d->n; i++) jd_set(c->a, d, args[0].u.d->k[i], args[0].u.d->v[i]);
        }
        for (size_t k = 0; k < n_kw; k++) jd_set(c->a, d, jv_str(kw[k], strlen(kw[k])), args[n_pos + k]);
        jv v = {.t = fn == FN_DICT ? JV_DICT : JV_NS};
        v.u.d = d;
        return v;
    }
    case FN_RAISE: {
        jv msg = n_pos ? jv_to_str(c->a, args[0]) : jv_str("", 0);
        kiln_fail(KILN_ERR_INVALID_ARG, "%.*s", (int)msg.u.s.n, msg.u.s.p);
        longjmp(c->jmp, KILN_ERR_INVALID_ARG);
    }
    case FN_STRFTIME: {
        if (n_pos != 1 || args[0].t != JV_STR) jj_fail(c, KILN_ERR_INVALID_ARG, "strftime_now() takes one format string");
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char buf[256];
        const char *fmt = ja_strdup(c->a, args[0].u.s.p, args[0].u.s.n);
        size_t n = strftime(buf, sizeof buf, fmt, &tmv);
        return jv_str(ja_strdup(c->a, buf, n), n);
    }
    default: jj_fail(c, KILN_ERR_INVALID_ARG, "not callable");
    }
}

jv jj_call(jctx *c, jv fn, jv *args, size_t n_pos, const char **kw, size_t n_kw) {
    switch (fn.t) {
    case JV_MACRO: return call_macro(c, fn.u.m, args, n_pos, kw, n_kw);
    case JV_FUNC: return call_builtin(c, fn.u.fn, args, n_pos, kw, n_kw);
    case JV_METHOD: return jj_call_method(c, fn.u.meth, args, n_pos, kw, n_kw);
    case JV_UNDEF: fail_undef(c, fn);
    default: jj_fail(c, KILN_ERR_INVALID_ARG, "'%s' object is not callable", jv_type_name(fn));
    }
}

static jv *eval_args(jctx *c, jscope *s, jnode *n) {
    jv *args = ja_alloc(c->a, (n->n_kids + 1) * sizeof *args);
    for (size_t i = 0; i < n->n_kids; i++) args[i] = jj_eval(c, s, n->kids[i]);
    return args;
}

/* ---- expressions ------------------------------------------------------------------ */
jv jj_eval(jctx *c, jscope *s, jnode *n) {
    c->line = n->line;
    switch (n->kind) {
    case N_CONST: return n->cval;
    case N_NAME: return lookup(s, n->name);
    case N_LIST: case N_TUPLE: {
        jlist *l = jl_new(c->a, n->n_kids);
        for (size_t i = 0; i < n->n_kids; i++) jl_push(c->a, l, jj_eval(c, s, n->kids[i]));
        l->tuple = n->kind == N_TUPLE;
        return jv_list(l);
    }
    case N_DICT: {
        jdict *d = jd_new(c->a);
        for (size_t i = 0; i + 1 < n->n_kids; i += 2) {
            jv k = jj_eval(c, s, n->kids[i]);
            if (k.t == JV_LIST && !k.u.l->tuple) jj_fail(c, KILN_ERR_INVALID_ARG, "unhashable type: 'list'");
            if (k.t == JV_DICT) jj_fail(c, KILN_ERR_INVALID_ARG, "unhashable type: 'dict'");
            jd_set(c->a, d, k, jj_eval(c, s, n->kids[i + 1]));
        }
        jv v = {.t = JV_DICT};
        v.u.d = d;
        return v;
    }
    case N_ATTR: {
        jv o = jj_eval(c, s, n->a);
        c->line = n->line;
        return jj_getattr(c, o, n->name, strlen(n->name));
    }
    case N_ITEM: {
        jv o = jj_eval(c, s, n->a), k = jj_eval(c, s, n->b);
        c->line = n->line;
        return getitem(c, o, k);
    }
    case N_SLICE: {
        jv o = jj_eval(c, s, n->a);
        jv a = n->b ? jj_eval(c, s, n->b) : jv_none(), b = n->c ? jj_eval(c, s, n->c) : jv_none();
        jv st = n->body ? jj_eval(c, s, n->body) : jv_none();
        c->line = n->line;
        if (o.t == JV_UNDEF) fail_undef(c, o);
        return slice(c, o, a, b, st);
    }
    case N_CALL: {
        jv fn = jj_eval(c, s, n->a);
        jv *args = eval_args(c, s, n);
        c->line = n->line;
        return jj_call(c, fn, args, n->n_pos, n->kw + n->n_pos, n->n_kids - n->n_pos);
    }
    case N_FILTER: {
        jv v = jj_eval(c, s, n->a);
        jv *args = eval_args(c, s, n);
        c->line = n->line;
        return jj_filter(c, n->name, v, args, n->n_pos, n->kw + n->n_pos, n->n_kids - n->n_pos);
    }
    case N_TEST: {
        jv v = jj_eval(c, s, n->a);
        jv *args = eval_args(c, s, n);
        c->line = n->line;
        bool r = jj_test(c, n->name, v, args, n->n_kids);
        return jv_bool(n->op ? !r : r);
    }
    case N_UNARY: {
        jv v = jj_eval(c, s, n->a);
        c->line = n->line;
        if (!jv_is_num(v)) {
            if (v.t == JV_UNDEF) fail_undef(c, v);
            jj_fail(c, KILN_ERR_INVALID_ARG, "bad operand type for unary %c: '%s'", n->op == T_SUB ? '-' : '+', jv_type_name(v));
        }
        if (n->op == T_ADD) return v.t == JV_BOOL ? jv_int(v.u.b) : v;
        if (v.t == JV_FLOAT) return jv_float(-v.u.f);
        if (as_int(v) == INT64_MIN) jj_fail(c, KILN_ERR_INVALID_ARG, "integer overflow");
        return jv_int(-as_int(v));
    }
    case N_BINARY: {
        jv x = jj_eval(c, s, n->a), y = jj_eval(c, s, n->b);
        c->line = n->line;
        if (n->op == T_TILDE) {
            jv a = jv_to_str(c->a, x), b = jv_to_str(c->a, y);
            return concat_str(c, a, b, false);
        }
        return arith(c, n->op, x, y);
    }
    case N_AND: {
        jv x = jj_eval(c, s, n->a);
        return jv_truthy(x) ? jj_eval(c, s, n->b) : x;
    }
    case N_OR: {
        jv x = jj_eval(c, s, n->a);
        return jv_truthy(x) ? x : jj_eval(c, s, n->b);
    }
    case N_NOT: return jv_bool(!jv_truthy(jj_eval(c, s, n->a)));
    case N_COND:
        if (jv_truthy(jj_eval(c, s, n->b))) return jj_eval(c, s, n->a);
        return n->c ? jj_eval(c, s, n->c) : jv_undef(NULL);
    case N_COMPARE: {
        jv x = jj_eval(c, s, n->a), y = jj_eval(c, s, n->b);
        c->line = n->line;
        return jv_bool(compare_op(c, n->op, x, y));
    }
    default: jj_fail(c, KILN_ERR_UNSUPPORTED, "bad expression node %d", n->kind);
    }
}

/* ---- statements ------------------------------------------------------------------- */
static void assign_target(jctx *c, jscope *s, jnode *t, jv v) {
    if (t->kind == N_NAME) {
        assign(c, s, t->name, v);
    } else if (t->kind == N_ATTR) {
        jv ns = jj_eval(c, s, t->a);
        c->line = t->line;
        if (ns.t != JV_NS) jj_fail(c, KILN_ERR_INVALID_ARG, "cannot assign attribute on non-namespace object");
        jd_set(c->a, ns.u.d, jv_str(t->name, strlen(t->name)), v);
    } else {
        jlist *items = jj_iterate(c, v);
        if (items->n != t->n_kids)
            jj_fail(c, KILN_ERR_INVALID_ARG, "cannot unpack %zu values into %zu names", items->n, t->n_kids);
        for (size_t i = 0; i < t->n_kids; i++) assign_target(c, s, t->kids[i], items->v[i]);
    }
}

static jv apply_filters(jctx *c, jscope *s, jnode *owner, jv v) {
    for (size_t i = 0; i < owner->n_kids; i++) {
        jnode *f = owner->kids[i];
        jv *args = eval_args(c, s, f);
        c->line = f->line;
        v = jj_filter(c, f->name, v, args, f->n_pos, f->kw + f->n_pos, f->n_kids - f->n_pos);
    }
    return v;
}

enum { FLOW_NONE, FLOW_BREAK, FLOW_CONTINUE }; /* jctx.flow: set by break/continue */

static void exec_for(jctx *c, jscope *s, jnode *n) {
    jv seq = jj_eval(c, s, n->b);
    c->line = n->line;
    jlist *all = jj_iterate(c, seq), *items = all;
    if (n->c) { /* "for x in y if cond": filter first, loop.length counts what is kept */
        items = jl_new(c->a, all->n);
        for (size_t i = 0; i < all->n; i++) {
            count_iteration(c);
            jscope *fs = new_scope(c, s);
            assign_target(c, fs, n->a, all->v[i]);
            if (jv_truthy(jj_eval(c, fs, n->c))) jl_push(c->a, items, all->v[i]);
        }
    }
    jloop *lp = ja_alloc(c->a, sizeof *lp);
    lp->items = items;
    jv lv = {.t = JV_LOOP};
    lv.u.loop = lp;
    for (size_t i = 0; i < items->n; i++) {
        count_iteration(c);
        lp->i = i;
        jscope *is = new_scope(c, s);
        assign(c, is, "loop", lv);
        assign_target(c, is, n->a, items->v[i]);
        jj_exec(c, is, n->body);
        int flow = c->flow;
        c->flow = FLOW_NONE;
        if (flow == FLOW_BREAK) break;
    }
    if (items->n == 0 && n->orelse) jj_exec(c, s, n->orelse);
}

void jj_exec(jctx *c, jscope *s, jnode *body) {
    for (size_t k = 0; k < body->n_kids; k++) {
        jnode *n = body->kids[k];
        c->line = n->line;
        switch (n->kind) {
        case N_TEXT: out_add(c, n->cval.u.s.p, n->cval.u.s.n); break;
        case N_OUTPUT: {
            jv v = jj_eval(c, s, n->a);
            c->line = n->line;
            if (v.t == JV_LIST && v.u.l->gen)
                jj_fail(c, KILN_ERR_INVALID_ARG, "cannot print a generator (jinja2 prints its address): use |list");
            jv str = jv_to_str(c->a, v);
            out_add(c, str.u.s.p, str.u.s.n);
            break;
        }
        case N_FOR: exec_for(c, s, n); break;
        case N_IF:
            if (jv_truthy(jj_eval(c, s, n->a))) jj_exec(c, s, n->body);
            else if (n->orelse) jj_exec(c, s, n->orelse);
            break;
        case N_SET: assign_target(c, s, n->a, jj_eval(c, s, n->b)); break;
        case N_SETBLOCK: {
            push_out(c);
            jj_exec(c, s, n->body);
            jv v = pop_out(c);
            assign_target(c, s, n->a, apply_filters(c, s, n, v));
            break;
        }
        case N_FILTERBLOCK: {
            push_out(c);
            jj_exec(c, s, n->body);
            jv v = jv_to_str(c->a, apply_filters(c, s, n, pop_out(c)));
            out_add(c, v.u.s.p, v.u.s.n);
            break;
        }
        case N_MACRO: {
            jmacro *m = ja_alloc(c->a, sizeof *m);
            m->def = n;
            m->closure = s;
            jv v = {.t = JV_MACRO};
            v.u.m = m;
            assign(c, s, n->name, v);
            break;
        }
        case N_BREAK: c->flow = FLOW_BREAK; return;
        case N_CONTINUE: c->flow = FLOW_CONTINUE; return;
        default: jj_fail(c, KILN_ERR_UNSUPPORTED, "bad statement node %d", n->kind);
        }
        if (c->flow) return;
    }
}
