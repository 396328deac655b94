/*
 * parser.c — tokens -> syntax tree, by recursive descent with jinja2's precedence:
 *   ternary (a if c else b) < or < and < not < comparisons (==, in, not in, ...)
 *   < + - < ~ < * / // % < ** < unary - + < primary with postfix (.x, [i], [a:b:c], (...))
 *   and filters / tests (x|f(...), x is t ...), which bind tighter than any operator.
 * Statements: for (else, "if" filter, tuple targets), if/elif/else, set (also dotted
 * namespace targets and block set with filters), macro, filter blocks, break, continue.
 */
#include <string.h>

#include "jinja_impl.h"

typedef struct {
    jarena *a;
    jtok *t;
    size_t i, n;
    int depth;
} parser;

typedef struct {
    jnode **v;
    const char **kw;
    size_t n, cap;
} nvec;

static void nv_push(parser *P, nvec *v, jnode *x, const char *kw) {
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 8;
        jnode **nv = ja_alloc(P->a, cap * sizeof *nv);
        const char **nk = ja_alloc(P->a, cap * sizeof *nk);
        if (v->n) {
            memcpy(nv, v->v, v->n * sizeof *nv);
            memcpy(nk, v->kw, v->n * sizeof *nk);
        }
        v->v = nv;
        v->kw = nk;
        v->cap = cap;
    }
    v->kw[v->n] = kw;
    v->v[v->n++] = x;
}

static jtok *cur(parser *P) { return &P->t[P->i]; }
static jtok *peek(parser *P, size_t k) { return &P->t[P->i + k < P->n ? P->i + k : P->n - 1]; }
static jtok *next(parser *P) {
    jtok *t = &P->t[P->i];
    if (P->i + 1 < P->n) P->i++;
    return t;
}

static const char *tok_desc(jtok *t) {
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_TEXT: return "text";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_END: return "'%}'";
    case T_VAR_BEGIN: return "'{{'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_NAME: return "a name";
    case T_STRING: return "a string";
    case T_INT: case T_FLOAT: return "a number";
    default: return "an operator";
    }
}

_Noreturn static void fail_at(parser *P, jtok *t, const char *what) {
    if (t->kind == T_NAME)
        jj_syntax_error(P->a, t->line, t->col, "%s, got '%.*s'", what, (int)t->n, t->p);
    jj_syntax_error(P->a, t->line, t->col, "%s, got %s", what, tok_desc(t));
}

static bool is_name(jtok *t, const char *s) { return t->kind == T_NAME && t->n == strlen(s) && !memcmp(t->p, s, t->n); }
static bool skip_name(parser *P, const char *s) {
    if (!is_name(cur(P), s)) return false;
    next(P);
    return true;
}
static bool skip(parser *P, int kind) {
    if (cur(P)->kind != kind) return false;
    next(P);
    return true;
}
static jtok *expect(parser *P, int kind, const char *what) {
    if (cur(P)->kind != kind) fail_at(P, cur(P), what);
    return next(P);
}
static const char *expect_name(parser *P, const char *what) {
    if (cur(P)->kind != T_NAME) fail_at(P, cur(P), what);
    return next(P)->p;
}

static jnode *node(parser *P, int kind, jtok *at) {
    jnode *n = ja_alloc(P->a, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = at->line;
    return n;
}
static void set_kids(jnode *n, nvec *v, size_t n_pos) {
    n->kids = v->v;
    n->kw = v->kw;
    n->n_kids = v->n;
    n->n_pos = n_pos;
}
static void enter(parser *P) {
    if (++P->depth > JJ_MAX_NEST) jj_syntax_error(P->a, cur(P)->line, cur(P)->col, "template nested too deeply");
}

static jnode *parse_expr(parser *P, bool with_condexpr);
static jnode *parse_tuple(parser *P, bool with_condexpr, bool explicit_parens);
static jnode *parse_unary(parser *P, bool with_filter);
static jnode *parse_primary(parser *P);

/* (args) after a callee, filter or test; kwargs are name=expr */
static void parse_args(parser *P, nvec *v, size_t *n_pos) {
    expect(P, T_LPAREN, "expected '('");
    *n_pos = 0;
    bool kw_seen = false;
    while (cur(P)->kind != T_RPAREN) {
        if (v->n) expect(P, T_COMMA, "expected ',' or ')' in call");
        if (cur(P)->kind == T_RPAREN) break;
        if (cur(P)->kind == T_NAME && peek(P, 1)->kind == T_ASSIGN) {
            const char *k = next(P)->p;
            next(P);
            nv_push(P, v, parse_expr(P, true), k);
            kw_seen = true;
        } else {
            if (kw_seen) fail_at(P, cur(P), "positional argument after keyword argument");
            nv_push(P, v, parse_expr(P, true), NULL);
            (*n_pos)++;
        }
    }
    next(P);
}

static jnode *parse_postfix(parser *P, jnode *n) {
    for (;;) {
        jtok *t = cur(P);
        if (t->kind == T_DOT) {
            next(P);
            jtok *k = cur(P);
            if (k->kind == T_NAME) {
                jnode *x = node(P, N_ATTR, k);
                x->a = n;
                x->name = next(P)->p;
                n = x;
            } else if (k->kind == T_INT) {
                jnode *x = node(P, N_ITEM, k), *c = node(P, N_CONST, k);
                c->cval = jv_int(next(P)->i);
                x->a = n;
                x->b = c;
                n = x;
            } else {
                fail_at(P, k, "expected an attribute name after '.'");
            }
        } else if (t->kind == T_LBRACKET) {
            next(P);
            jnode *parts[3] = {0};
            int np = 0;
            bool slice = false;
            for (;;) {
                if (cur(P)->kind != T_COLON && cur(P)->kind != T_RBRACKET) parts[np] = parse_expr(P, true);
                if (cur(P)->kind == T_COLON && np < 2) {
                    next(P);
                    slice = true;
                    np++;
                    continue;
                }
                break;
            }
            expect(P, T_RBRACKET, "expected ']'");
            if (!slice && !parts[0]) fail_at(P, t, "expected a subscript");
            jnode *x = node(P, slice ? N_SLICE : N_ITEM, t);
            x->a = n;
            x->b = parts[0];
            if (slice) {
                x->c = parts[1];
                x->body = parts[2]; /* step */
            }
            n = x;
        } else if (t->kind == T_LPAREN) {
            jnode *x = node(P, N_CALL, t);
            nvec v = {0};
            size_t np;
            parse_args(P, &v, &np);
            x->a = n;
            set_kids(x, &v, np);
            n = x;
        } else {
            return n;
        }
    }
}

static jnode *parse_filter_expr(parser *P, jnode *n) {
    for (;;) {
        jtok *t = cur(P);
        if (t->kind == T_PIPE) {
            next(P);
            jnode *f = node(P, N_FILTER, t);
            f->name = expect_name(P, "expected a filter name after '|'");
            while (cur(P)->kind == T_DOT && peek(P, 1)->kind == T_NAME) { /* dotted names */
                next(P);
                next(P);
            }
            f->a = n;
            if (cur(P)->kind == T_LPAREN) {
                nvec v = {0};
                size_t np;
                parse_args(P, &v, &np);
                set_kids(f, &v, np);
            }
            n = f;
        } else if (is_name(t, "is")) {
            next(P);
            jnode *x = node(P, N_TEST, t);
            x->op = skip_name(P, "not");
            x->name = expect_name(P, "expected a test name after 'is'");
            x->a = n;
            jtok *k = cur(P);
            if (k->kind == T_LPAREN) {
                nvec v = {0};
                size_t np;
                parse_args(P, &v, &np);
                set_kids(x, &v, np);
            } else if ((k->kind == T_NAME || k->kind == T_STRING || k->kind == T_INT || k->kind == T_FLOAT ||
                        k->kind == T_LBRACKET || k->kind == T_LBRACE) &&
                       !is_name(k, "else") && !is_name(k, "or") && !is_name(k, "and") && !is_name(k, "if") &&
                       !is_name(k, "in") && !is_name(k, "not")) {
                if (is_name(k, "is")) fail_at(P, k, "cannot chain tests with 'is'");
                nvec v = {0};
                nv_push(P, &v, parse_postfix(P, parse_primary(P)), NULL);
                set_kids(x, &v, 1);
            }
            n = x;
        } else if (t->kind == T_LPAREN) {
            n = parse_postfix(P, n);
        } else {
            return n;
        }
    }
}

static jnode *parse_primary(parser *P) {
    jtok *t = cur(P);
    jnode *n;
    switch (t->kind) {
    case T_NAME:
        next(P);
        n = node(P, N_CONST, t);
        if (is_name(t, "true") || is_name(t, "True")) n->cval = jv_bool(true);
        else if (is_name(t, "false") || is_name(t, "False")) n->cval = jv_bool(false);
        else if (is_name(t, "none") || is_name(t, "None")) n->cval = jv_none();
        else {
            n->kind = N_NAME;
            n->name = t->p;
        }
        return n;
    case T_STRING: {
        jsb b = {.a = P->a};
        while (cur(P)->kind == T_STRING) {
            jtok *s = next(P);
            jsb_add(&b, s->p, s->n);
        }
        n = node(P, N_CONST, t);
        n->cval = jsb_done(&b);
        return n;
    }
    case T_INT: case T_FLOAT:
        next(P);
        n = node(P, N_CONST, t);
        n->cval = t->kind == T_INT ? jv_int(t->i) : jv_float(t->f);
        return n;
    case T_LPAREN:
        next(P);
        n = parse_tuple(P, true, true);
        expect(P, T_RPAREN, "expected ')'");
        return n;
    case T_LBRACKET: case T_LBRACE: {
        bool is_list = t->kind == T_LBRACKET;
        int close = is_list ? T_RBRACKET : T_RBRACE;
        next(P);
        nvec v = {0};
        size_t items = 0;
        while (cur(P)->kind != close) {
            if (items) expect(P, T_COMMA, is_list ? "expected ',' or ']'" : "expected ',' or '}'");
            if (cur(P)->kind == close) break;
            nv_push(P, &v, parse_expr(P, true), NULL);
            if (!is_list) {
                expect(P, T_COLON, "expected ':' in dict literal");
                nv_push(P, &v, parse_expr(P, true), NULL);
            }
            items++;
        }
        next(P);
        n = node(P, is_list ? N_LIST : N_DICT, t);
        set_kids(n, &v, v.n);
        return n;
    }
    default:
        fail_at(P, t, "expected an expression");
    }
}

static jnode *parse_unary(parser *P, bool with_filter) {
    enter(P);
    jtok *t = cur(P);
    jnode *n;
    if (t->kind == T_SUB || t->kind == T_ADD) {
        next(P);
        n = node(P, N_UNARY, t);
        n->op = t->kind;
        n->a = parse_unary(P, false);
    } else {
        n = parse_primary(P);
    }
    n = parse_postfix(P, n);
    if (with_filter) n = parse_filter_expr(P, n);
    P->depth--;
    return n;
}

static jnode *binary(parser *P, jtok *t, int op, jnode *a, jnode *b) {
    jnode *n = node(P, N_BINARY, t);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static jnode *parse_pow(parser *P) {
    jnode *n = parse_unary(P, true);
    while (cur(P)->kind == T_POW) {
        jtok *t = next(P);
        n = binary(P, t, T_POW, n, parse_unary(P, true));
    }
    return n;
}

static jnode *parse_math2(parser *P) {
    jnode *n = parse_pow(P);
    for (;;) {
        int k = cur(P)->kind;
        if (k != T_MUL && k != T_DIV && k != T_FLOORDIV && k != T_MOD) return n;
        jtok *t = next(P);
        n = binary(P, t, k, n, parse_pow(P));
    }
}

static jnode *parse_concat(parser *P) {
    jnode *n = parse_math2(P);
    while (cur(P)->kind == T_TILDE) {
        jtok *t = next(P);
        n = binary(P, t, T_TILDE, n, parse_math2(P));
    }
    return n;
}

static jnode *parse_math1(parser *P) {
    jnode *n = parse_concat(P);
    for (;;) {
        int k = cur(P)->kind;
        if (k != T_ADD && k != T_SUB) return n;
        jtok *t = next(P);
        n = binary(P, t, k, n, parse_concat(P));
    }
}

static jnode *parse_compare(parser *P) {
    jnode *left = parse_math1(P), *result = NULL;
    for (;;) {
        jtok *t = cur(P);
        int op;
        if (t->kind >= T_EQ && t->kind <= T_GE) op = t->kind, next(P);
        else if (is_name(t, "in")) op = T_IN, next(P);
        else if (is_name(t, "not") && is_name(peek(P, 1), "in")) op = T_NOTIN, next(P), next(P);
        else return result ? result : left;
        jnode *right = parse_math1(P);
        jnode *c = node(P, N_COMPARE, t);
        c->op = op;
        c->a = left;
        c->b = right;
        if (result) { /* a < b < c == (a < b) and (b < c) */
            jnode *x = node(P, N_AND, t);
            x->a = result;
            x->b = c;
            result = x;
        } else {
            result = c;
        }
        left = right;
    }
}

static jnode *parse_not(parser *P) {
    jtok *t = cur(P);
    if (is_name(t, "not")) {
        enter(P);
        next(P);
        jnode *n = node(P, N_NOT, t);
        n->a = parse_not(P);
        P->depth--;
        return n;
    }
    return parse_compare(P);
}

static jnode *parse_and(parser *P) {
    jnode *n = parse_not(P);
    while (is_name(cur(P), "and")) {
        jtok *t = next(P);
        jnode *x = node(P, N_AND, t);
        x->a = n;
        x->b = parse_not(P);
        n = x;
    }
    return n;
}

static jnode *parse_or(parser *P) {
    jnode *n = parse_and(P);
    while (is_name(cur(P), "or")) {
        jtok *t = next(P);
        jnode *x = node(P, N_OR, t);
        x->a = n;
        x->b = parse_and(P);
        n = x;
    }
    return n;
}

static jnode *parse_expr(parser *P, bool with_condexpr) {
    enter(P);
    jnode *n = parse_or(P);
    while (with_condexpr && is_name(cur(P), "if")) {
        jtok *t = next(P);
        jnode *x = node(P, N_COND, t);
        x->a = n;               /* value if true */
        x->b = parse_or(P);     /* condition */
        if (skip_name(P, "else")) x->c = parse_expr(P, true);
        n = x;
    }
    P->depth--;
    return n;
}

/* expr, or a tuple of exprs separated by commas */
static jnode *parse_tuple(parser *P, bool with_condexpr, bool explicit_parens) {
    jtok *t = cur(P);
    nvec v = {0};
    bool comma = false;
    for (;;) {
        int k = cur(P)->kind;
        if (v.n && (k == T_VAR_END || k == T_BLOCK_END || k == T_RPAREN || is_name(cur(P), "if"))) break;
        if (explicit_parens && !v.n && k == T_RPAREN) break;
        nv_push(P, &v, parse_expr(P, with_condexpr), NULL);
        if (!skip(P, T_COMMA)) break;
        comma = true;
    }
    if (v.n == 1 && !comma) return v.v[0];
    if (!v.n && !explicit_parens) fail_at(P, t, "expected an expression");
    jnode *n = node(P, N_TUPLE, t);
    set_kids(n, &v, v.n);
    return n;
}

/* for/set targets: name, name.attr (set only), or a, b */
static jnode *parse_target(parser *P, bool allow_attr) {
    jtok *t = cur(P);
    nvec v = {0};
    bool paren = skip(P, T_LPAREN);
    for (;;) {
        jtok *k = cur(P);
        jnode *n = node(P, N_NAME, k);
        n->name = expect_name(P, "expected a variable name");
        if (allow_attr && cur(P)->kind == T_DOT) {
            next(P);
            jnode *x = node(P, N_ATTR, k);
            x->a = n;
            x->name = expect_name(P, "expected an attribute name");
            n = x;
        }
        nv_push(P, &v, n, NULL);
        if (!skip(P, T_COMMA)) break;
    }
    if (paren) expect(P, T_RPAREN, "expected ')'");
    if (v.n == 1) return v.v[0];
    jnode *n = node(P, N_TUPLE, t);
    set_kids(n, &v, v.n);
    return n;
}

static jnode *parse_body(parser *P, const char *const *ends, jtok *opener);

static void end_tag(parser *P) { expect(P, T_BLOCK_END, "expected '%}'"); }

/* Current token is the name after {% that closed a body; consume "{% name" for the caller. */
static bool at_tag(parser *P, const char *name) { return is_name(cur(P), name); }

/* "| f(args) | g" chain of a filter block or block set: N_FILTER nodes with a == NULL */
static void parse_filter_chain(parser *P, jnode *owner, bool need_first) {
    nvec v = {0};
    if (!need_first && cur(P)->kind != T_PIPE) return;
    do {
        jtok *t = cur(P);
        jnode *f = node(P, N_FILTER, t);
        f->name = expect_name(P, "expected a filter name");
        if (cur(P)->kind == T_LPAREN) {
            nvec a = {0};
            size_t np;
            parse_args(P, &a, &np);
            set_kids(f, &a, np);
        }
        nv_push(P, &v, f, NULL);
    } while (skip(P, T_PIPE));
    set_kids(owner, &v, v.n);
}

static jnode *parse_statement(parser *P, jtok *open) {
    jtok *t = cur(P);
    if (t->kind != T_NAME) fail_at(P, t, "expected a tag name");
    next(P);
    jnode *n;
    if (is_name(t, "for")) {
        n = node(P, N_FOR, t);
        n->a = parse_target(P, false);
        if (!skip_name(P, "in")) fail_at(P, cur(P), "expected 'in' in for loop");
        n->b = parse_tuple(P, false, false);
        if (skip_name(P, "if")) n->c = parse_expr(P, true);
        if (is_name(cur(P), "recursive")) fail_at(P, cur(P), "recursive loops are not supported");
        end_tag(P);
        static const char *const ends[] = {"endfor", "else", NULL};
        n->body = parse_body(P, ends, t);
        if (skip_name(P, "else")) {
            end_tag(P);
            static const char *const ends2[] = {"endfor", NULL};
            n->orelse = parse_body(P, ends2, t);
        }
        next(P);
        end_tag(P);
    } else if (is_name(t, "if")) {
        n = node(P, N_IF, t);
        n->a = parse_tuple(P, true, false);
        end_tag(P);
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        jnode *cur_if = n;
        for (;;) {
            cur_if->body = parse_body(P, ends, t);
            if (at_tag(P, "elif")) {
                jtok *e = next(P);
                jnode *x = node(P, N_IF, e);
                x->a = parse_tuple(P, true, false);
                end_tag(P);
                jnode *wrap = node(P, N_BODY, e);
                nvec v = {0};
                nv_push(P, &v, x, NULL);
                set_kids(wrap, &v, 1);
                cur_if->orelse = wrap;
                cur_if = x;
                continue;
            }
            if (skip_name(P, "else")) {
                end_tag(P);
                static const char *const ends2[] = {"endif", NULL};
                cur_if->orelse = parse_body(P, ends2, t);
            }
            break;
        }
        next(P);
        end_tag(P);
    } else if (is_name(t, "set")) {
        jnode *target = parse_target(P, true);
        if (skip(P, T_ASSIGN)) {
            n = node(P, N_SET, t);
            n->a = target;
            n->b = parse_tuple(P, true, false);
            end_tag(P);
        } else {
            n = node(P, N_SETBLOCK, t);
            n->a = target;
            if (target->kind == N_TUPLE) fail_at(P, cur(P), "expected '='");
            if (skip(P, T_PIPE)) parse_filter_chain(P, n, true);
            end_tag(P);
            static const char *const ends[] = {"endset", NULL};
            n->body = parse_body(P, ends, t);
            next(P);
            end_tag(P);
        }
    } else if (is_name(t, "macro")) {
        n = node(P, N_MACRO, t);
        n->name = expect_name(P, "expected a macro name");
        expect(P, T_LPAREN, "expected '(' after the macro name");
        nvec v = {0};
        while (cur(P)->kind != T_RPAREN) {
            if (v.n) expect(P, T_COMMA, "expected ',' or ')'");
            const char *pn = expect_name(P, "expected a parameter name");
            nv_push(P, &v, skip(P, T_ASSIGN) ? parse_expr(P, true) : NULL, pn);
        }
        next(P);
        set_kids(n, &v, v.n);
        end_tag(P);
        static const char *const ends[] = {"endmacro", NULL};
        n->body = parse_body(P, ends, t);
        next(P);
        if (cur(P)->kind == T_NAME) next(P);
        end_tag(P);
    } else if (is_name(t, "filter")) {
        n = node(P, N_FILTERBLOCK, t);
        parse_filter_chain(P, n, true);
        end_tag(P);
        static const char *const ends[] = {"endfilter", NULL};
        n->body = parse_body(P, ends, t);
        next(P);
        end_tag(P);
    } else if (is_name(t, "break") || is_name(t, "continue")) {
        n = node(P, is_name(t, "break") ? N_BREAK : N_CONTINUE, t);
        end_tag(P);
    } else {
        jj_syntax_error(P->a, t->line, t->col, "unknown or unexpected tag '%.*s'", (int)t->n, t->p);
    }
    (void)open;
    return n;
}

/* Statements up to one of the end tags (left as the current token, after its "{%"). */
static jnode *parse_body(parser *P, const char *const *ends, jtok *opener) {
    enter(P);
    jnode *body = node(P, N_BODY, cur(P));
    nvec v = {0};
    for (;;) {
        jtok *t = cur(P);
        if (t->kind == T_EOF) {
            if (ends)
                jj_syntax_error(P->a, t->line, 0, "unexpected end of template: the '%.*s' tag of line %d is not closed (expected '%s')",
                                (int)opener->n, opener->p, opener->line, ends[0]);
            break;
        }
        if (t->kind == T_TEXT) {
            jnode *x = node(P, N_TEXT, t);
            x->cval = jv_str(t->p, t->n);
            nv_push(P, &v, x, NULL);
            next(P);
        } else if (t->kind == T_VAR_BEGIN) {
            next(P);
            jnode *x = node(P, N_OUTPUT, t);
            x->a = parse_tuple(P, true, false);
            expect(P, T_VAR_END, "expected '}}'");
            nv_push(P, &v, x, NULL);
        } else if (t->kind == T_BLOCK_BEGIN) {
            next(P);
            bool is_end = false;
            for (size_t k = 0; ends && ends[k]; k++)
                if (is_name(cur(P), ends[k])) is_end = true;
            if (is_end) break;
            jtok *k = cur(P);
            if (k->kind == T_NAME && (!strncmp(k->p, "end", 3) || is_name(k, "else") || is_name(k, "elif")))
                jj_syntax_error(P->a, k->line, k->col, "unexpected '%.*s'%s", (int)k->n, k->p,
                                ends ? "" : " (no block is open)");
            nv_push(P, &v, parse_statement(P, t), NULL);
        } else {
            fail_at(P, t, "unexpected token");
        }
    }
    set_kids(body, &v, v.n);
    P->depth--;
    return body;
}

jnode *jj_parse(jarena *a, jtoks *toks) {
    parser P = {.a = a, .t = toks->toks, .n = toks->n};
    return parse_body(&P, NULL, NULL);
}
