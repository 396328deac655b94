/*
 * jinja_impl.h — internals of kiln's Jinja interpreter (src/pipelines/jinja/).
 *
 * The interpreter renders the chat templates that models ship, the way Hugging Face
 * transformers renders them (python jinja2 ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks, plus raise_exception / strftime_now and a json.dumps
 * based tojson). Files:
 *   lexer.c   template text -> tokens (text, tag delimiters, expression tokens), applying
 *             the whitespace rules (trim_blocks, lstrip_blocks, "-" / "+" markers)
 *   parser.c  tokens -> tree of statements and expressions (jnode)
 *   value.c   values (jv), the arena they live in, Python-like printing and equality
 *   eval.c    the tree walker: scopes, statements, operators, calls, limits
 *   filters.c filters, tests ("is ..."), str/dict/list methods, tojson
 *
 * Memory: the compiled tree lives in the template's arena; every value made while
 * rendering lives in a per-render arena freed at the end, so values need no ownership.
 * Errors: a failure records its message with kiln_fail and longjmps to the entry point
 * (kiln_jinja_compile / kiln_jinja_render), which frees everything and returns the status.
 * Nothing outside the arenas and the tracked output buffers is allocated in between.
 */
#ifndef KILN_PIPELINES_JINJA_IMPL_H
#define KILN_PIPELINES_JINJA_IMPL_H

#include <setjmp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/status.h"

/* ---- limits against hostile templates -------------------------------------------------- */
#define JJ_MAX_NEST 200            /* parser nesting (brackets, unary ops, blocks) */
#define JJ_MAX_CALL_DEPTH 100      /* macro calls in flight */
#define JJ_MAX_ITERATIONS 2000000  /* loop iterations per render, all loops together */
#define JJ_MAX_OUTPUT (64u << 20)  /* bytes of output (and of each captured block) */
#define JJ_MAX_ARENA (512u << 20)  /* bytes of values made by one render */
#define JJ_MAX_RANGE 100000        /* items of one range() (as jinja2's sandbox) */

/* ---- arena --------------------------------------------------------------------------- */
typedef struct jchunk jchunk;
typedef struct {
    jchunk *head;
    size_t total, cap;
    jmp_buf *jmp; /* where to go when the cap is reached */
} jarena;

void *ja_alloc(jarena *a, size_t n); /* zeroed; longjmps with KILN_ERR_INVALID_ARG past cap */
char *ja_strdup(jarena *a, const char *s, size_t n);
void ja_free(jarena *a);

/* ---- values -------------------------------------------------------------------------- */
typedef enum {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT,
    JV_NS,     /* namespace(): a dict whose members may be assigned */
    JV_LOOP,   /* the `loop` variable of a for */
    JV_MACRO,
    JV_FUNC,   /* a global function (range, namespace, raise_exception, ...) */
    JV_METHOD  /* a bound method: "abc".upper, d.items, ... */
} jv_type;

typedef struct jlist jlist;
typedef struct jdict jdict;
typedef struct jloop jloop;
typedef struct jmacro jmacro;
typedef struct jmethod jmethod;

typedef struct {
    uint8_t t;
    uint8_t safe; /* JV_STR: jinja2 Markup (from |safe); Markup + str escapes the str */
    union {
        bool b;
        int64_t i;
        double f;
        struct { const char *p; size_t n; } s; /* JV_STR; JV_UNDEF: the missing name */
        jlist *l;
        jdict *d; /* JV_DICT, JV_NS */
        jloop *loop;
        jmacro *m;
        int fn;
        jmethod *meth;
    } u;
} jv;

struct jlist {
    size_t n, cap;
    jv *v;
    bool tuple; /* prints as (a, b) */
    bool gen;   /* made by map/select...: jinja2 gives a generator (no len, no tojson) */
};
struct jdict {
    size_t n, cap;
    jv *k, *v;
};
struct jloop {
    jlist *items;
    size_t i;
};
struct jmethod {
    jv self;
    const char *name;
};

static inline jv jv_undef(const char *name) {
    jv v = {.t = JV_UNDEF};
    v.u.s.p = name;
    v.u.s.n = name ? __builtin_strlen(name) : 0;
    return v;
}
static inline jv jv_none(void) { jv v = {.t = JV_NONE}; return v; }
static inline jv jv_bool(bool b) { jv v = {.t = JV_BOOL}; v.u.b = b; return v; }
static inline jv jv_int(int64_t i) { jv v = {.t = JV_INT}; v.u.i = i; return v; }
static inline jv jv_float(double f) { jv v = {.t = JV_FLOAT}; v.u.f = f; return v; }
static inline jv jv_str(const char *p, size_t n) {
    jv v = {.t = JV_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

jlist *jl_new(jarena *a, size_t cap);
void jl_push(jarena *a, jlist *l, jv v);
jv jv_list(jlist *l);
jdict *jd_new(jarena *a);
jv *jd_get(jdict *d, jv key);          /* NULL if absent */
jv *jd_get_str(jdict *d, const char *k, size_t n);
void jd_set(jarena *a, jdict *d, jv key, jv val);

bool jv_truthy(jv v);
bool jv_equal(jv a, jv b);
const char *jv_type_name(jv v);        /* Python's type name: 'int', 'str', 'NoneType' ... */
bool jv_is_num(jv v);                  /* bool, int or float */
double jv_num(jv v);

/* str(v) and repr(v) as Python prints them, appended to the builder. */
typedef struct {
    jarena *a;
    char *p;
    size_t n, cap;
} jsb;
void jsb_add(jsb *b, const char *p, size_t n);
void jsb_addc(jsb *b, char c);
void jsb_adds(jsb *b, const char *s);
jv jsb_done(jsb *b);
void jv_str_to(jsb *b, jv v);
void jv_repr_to(jsb *b, jv v);
void jv_float_repr(double f, char buf[40]);
jv jv_to_str(jarena *a, jv v);        /* str(v) as a JV_STR (v itself if already one) */

/* UTF-8 helpers */
size_t ju_len(const char *p, size_t n);                           /* code points */
uint32_t ju_decode(const char *p, size_t n, size_t *adv);         /* one code point */
bool ju_isspace(uint32_t c);                                      /* Python str.isspace */

/* ---- syntax tree --------------------------------------------------------------------- */
typedef enum {
    /* expressions */
    N_CONST, N_NAME, N_LIST, N_TUPLE, N_DICT, N_ATTR, N_ITEM, N_SLICE, N_CALL, N_FILTER,
    N_TEST, N_UNARY, N_BINARY, N_AND, N_OR, N_NOT, N_COND, N_CONCAT, N_COMPARE,
    /* statements */
    N_TEXT, N_OUTPUT, N_FOR, N_IF, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK,
    N_BREAK, N_CONTINUE, N_BODY
} jnode_kind;

typedef struct jnode jnode;
struct jnode {
    uint8_t kind;
    int op;        /* N_BINARY/N_UNARY/N_COMPARE: token kind; N_TEST: negated */
    int line;
    jv cval;       /* N_CONST, N_TEXT */
    const char *name; /* N_NAME, N_ATTR, N_FILTER, N_TEST, N_MACRO, kwarg names */
    jnode *a, *b, *c; /* operands; N_FOR: a=target b=iter c=cond; N_IF: a=cond */
    jnode **kids;  /* list/dict items, call args, body statements */
    size_t n_kids;
    const char **kw; /* N_CALL/N_FILTER/N_TEST/N_MACRO: names of kids[n_pos..] (NULL for positional) */
    size_t n_pos;    /* number of positional kids */
    jnode *body, *orelse; /* N_FOR, N_IF, N_MACRO, blocks */
};

/* ---- lexer / parser ------------------------------------------------------------------ */
enum {
    T_EOF, T_TEXT, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT,
    T_ADD, T_SUB, T_MUL, T_DIV, T_FLOORDIV, T_MOD, T_POW, T_TILDE,
    T_LBRACKET, T_RBRACKET, T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE,
    T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_ASSIGN, T_DOT, T_COLON, T_PIPE, T_COMMA,
    T_IN, T_NOTIN /* compare ops made by the parser */
};

typedef struct {
    int kind, line, col;
    const char *p; /* T_TEXT, T_NAME, T_STRING (decoded, in the arena) */
    size_t n;
    int64_t i;
    double f;
} jtok;

typedef struct {
    jarena *a;
    jtok *toks;
    size_t n, cap;
} jtoks;

/* Tokenizes src into toks (in the arena); syntax errors longjmp. */
void jj_lex(jarena *a, const char *src, size_t len, jtoks *out);
/* Parses the tokens into a body node; syntax errors longjmp. */
jnode *jj_parse(jarena *a, jtoks *toks);

/* Records a KILN_ERR_FORMAT "line L:C: ..." message and longjmps to a->jmp. */
_Noreturn void jj_syntax_error(jarena *a, int line, int col, const char *fmt, ...) KILN_PRINTF(4, 5);

/* ---- evaluation ---------------------------------------------------------------------- */
typedef struct jscope jscope;
struct jscope {
    jdict *vars;
    jscope *parent;
};

struct jmacro {
    jnode *def;
    jscope *closure;
};

typedef struct {
    jarena *a;
    jmp_buf jmp;
    kiln_buf *outs[JJ_MAX_CALL_DEPTH * 2 + 8]; /* output stack: [0] the render, more for captures */
    int n_outs;
    int depth;          /* macro calls in flight */
    uint64_t iterations;
    int line;           /* line of the node being evaluated, for messages */
    int flow;           /* break / continue pending */
} jctx;

_Noreturn void jj_fail(jctx *c, kiln_status s, const char *fmt, ...) KILN_PRINTF(3, 4);
jv jj_eval(jctx *c, jscope *s, jnode *n);
void jj_exec(jctx *c, jscope *s, jnode *body);
jv jj_call(jctx *c, jv fn, jv *args, size_t n_pos, const char **kw, size_t n_kw);
jlist *jj_iterate(jctx *c, jv v); /* the items a for loop sees; error if not iterable */
int jj_compare(jctx *c, jv x, jv y); /* Python's <, for sort; type errors fail */

/* filters.c */
jv jj_filter(jctx *c, const char *name, jv v, jv *args, size_t n_pos, const char **kw, size_t n_kw);
bool jj_test(jctx *c, const char *name, jv v, jv *args, size_t n_args);
jv jj_getattr(jctx *c, jv obj, const char *name, size_t n);
jv jj_call_method(jctx *c, jmethod *m, jv *args, size_t n_pos, const char **kw, size_t n_kw);
void jj_tojson(jctx *c, jsb *b, jv v, const char *indent, int level, const char *item_sep,
               const char *key_sep, bool sort_keys, int depth);

#endif
