/*
 * lexer.c — Jinja template text -> tokens.
 *
 * Follows jinja2's lexer with the settings transformers uses: newlines are normalized
 * to "\n" and one trailing newline is dropped (keep_trailing_newline=False);
 * trim_blocks drops the first newline after a block or comment tag; lstrip_blocks drops
 * the spaces and tabs before a block or comment tag that starts its line; "{%-" / "-%}"
 * strip all whitespace on that side and "{%+" / "+%}" turn the two rules off.
 * Inside a tag, brackets are balanced so that "}}" closing a dict literal does not end
 * the tag.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja_impl.h"

_Noreturn void jj_syntax_error(jarena *a, int line, int col, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (col > 0) kiln_fail(KILN_ERR_FORMAT, "template syntax error at line %d:%d: %s", line, col, msg);
    else kiln_fail(KILN_ERR_FORMAT, "template syntax error at line %d: %s", line, msg);
    longjmp(*a->jmp, KILN_ERR_FORMAT);
}

typedef struct {
    jarena *a;
    const char *s;
    size_t n, pos;
    int line;
    size_t line_start;
    jtoks *out;
} lexer;

static jtok *emit(lexer *L, int kind) {
    jtoks *t = L->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        jtok *nt = ja_alloc(L->a, cap * sizeof *nt);
        if (t->n) memcpy(nt, t->toks, t->n * sizeof *nt);
        t->toks = nt;
        t->cap = cap;
    }
    jtok *k = &t->toks[t->n++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    k->line = L->line;
    k->col = (int)(L->pos - L->line_start) + 1;
    return k;
}

static void advance(lexer *L, size_t to) {
    for (size_t i = L->pos; i < to; i++)
        if (L->s[i] == '\n') {
            L->line++;
            L->line_start = i + 1;
        }
    L->pos = to;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static void put_utf8(jsb *b, uint32_t cp) {
    char u[4];
    if (cp < 0x80) { u[0] = (char)cp; jsb_add(b, u, 1); }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 63)); jsb_add(b, u, 2); }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 63)); u[2] = (char)(0x80 | (cp & 63));
        jsb_add(b, u, 3);
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 63));
        u[2] = (char)(0x80 | ((cp >> 6) & 63)); u[3] = (char)(0x80 | (cp & 63));
        jsb_add(b, u, 4);
    }
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* A quoted string with Python's escapes (jinja2 decodes them with "unicode-escape"). */
static void lex_string(lexer *L) {
    jtok *t = emit(L, T_STRING);
    char q = L->s[L->pos];
    size_t i = L->pos + 1;
    jsb b = {.a = L->a};
    for (;;) {
        if (i >= L->n) jj_syntax_error(L->a, t->line, t->col, "unterminated string");
        char c = L->s[i];
        if (c == q) break;
        if (c != '\\') {
            jsb_addc(&b, c);
            i++;
            continue;
        }
        if (i + 1 >= L->n) jj_syntax_error(L->a, t->line, t->col, "unterminated string");
        char e = L->s[i + 1];
        i += 2;
        switch (e) {
        case '\n': break;
        case '\\': jsb_addc(&b, '\\'); break;
        case '\'': jsb_addc(&b, '\''); break;
        case '"': jsb_addc(&b, '"'); break;
        case 'n': jsb_addc(&b, '\n'); break;
        case 't': jsb_addc(&b, '\t'); break;
        case 'r': jsb_addc(&b, '\r'); break;
        case 'a': jsb_addc(&b, '\a'); break;
        case 'b': jsb_addc(&b, '\b'); break;
        case 'f': jsb_addc(&b, '\f'); break;
        case 'v': jsb_addc(&b, '\v'); break;
        case 'x': case 'u': case 'U': {
            int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t cp = 0;
            for (int k = 0; k < nd; k++) {
                int h = i + k < L->n ? hexval(L->s[i + k]) : -1;
                if (h < 0) jj_syntax_error(L->a, t->line, t->col, "bad \\%c escape in string", e);
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF) jj_syntax_error(L->a, t->line, t->col, "bad \\%c escape in string", e);
            i += (size_t)nd;
            put_utf8(&b, cp);
            break;
        }
        default:
            if (e >= '0' && e <= '7') {
                uint32_t cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < L->n && L->s[i] >= '0' && L->s[i] <= '7'; k++) cp = cp * 8 + (uint32_t)(L->s[i++] - '0');
                put_utf8(&b, cp);
            } else {
                jsb_addc(&b, '\\');
                jsb_addc(&b, e);
            }
        }
    }
    jv v = jsb_done(&b);
    t->p = v.u.s.p;
    t->n = v.u.s.n;
    advance(L, i + 1);
}

static void lex_number(lexer *L) {
    jtok *t = emit(L, T_INT);
    size_t i = L->pos;
    char buf[128];
    size_t nb = 0;
    bool prev_dot = L->out->n >= 2 && L->out->toks[L->out->n - 2].kind == T_DOT;
#define DIGITS() \
    while (i < L->n && ((L->s[i] >= '0' && L->s[i] <= '9') || (L->s[i] == '_' && i + 1 < L->n && L->s[i + 1] >= '0' && L->s[i + 1] <= '9'))) { \
        if (L->s[i] != '_' && nb < sizeof buf - 1) buf[nb++] = L->s[i]; \
        i++; \
    }
    DIGITS();
    bool is_float = false;
    if (!prev_dot && i + 1 < L->n && L->s[i] == '.' && L->s[i + 1] >= '0' && L->s[i + 1] <= '9') {
        is_float = true;
        buf[nb++] = '.';
        i++;
        DIGITS();
    }
    if (!prev_dot && i < L->n && (L->s[i] == 'e' || L->s[i] == 'E')) {
        size_t j = i + 1;
        if (j < L->n && (L->s[j] == '+' || L->s[j] == '-')) j++;
        if (j < L->n && L->s[j] >= '0' && L->s[j] <= '9') {
            is_float = true;
            if (nb < sizeof buf - 3) { buf[nb++] = 'e'; if (L->s[i + 1] == '-') buf[nb++] = '-'; }
            i = j;
            DIGITS();
        }
    }
#undef DIGITS
    buf[nb] = 0;
    if (is_float) {
        t->kind = T_FLOAT;
        t->f = strtod(buf, NULL);
    } else {
        char *end;
        unsigned long long v = strtoull(buf, &end, 10);
        if (nb > 18 && (nb > 19 || strcmp(buf, "9223372036854775807") > 0))
            jj_syntax_error(L->a, t->line, t->col, "integer literal too large");
        t->i = (int64_t)v;
    }
    advance(L, i);
}

/* Tokens of one tag's inside, up to its end marker ("}}" or "%}"); returns the strip sign
 * before the end ('-', '+' or 0). */
static char lex_tag(lexer *L, bool is_var, int begin_line, int begin_col) {
    int depth = 0;
    for (;;) {
        while (L->pos < L->n && is_ws(L->s[L->pos])) advance(L, L->pos + 1);
        if (L->pos >= L->n)
            jj_syntax_error(L->a, begin_line, begin_col, "unclosed tag: missing '%s'", is_var ? "}}" : "%}");
        const char *p = L->s + L->pos;
        size_t left = L->n - L->pos;
        char endc = is_var ? '}' : '%';
        if (depth == 0) {
            if (left >= 2 && p[0] == endc && p[1] == '}') {
                advance(L, L->pos + 2);
                return 0;
            }
            if (left >= 3 && (p[0] == '-' || p[0] == '+') && p[1] == endc && p[2] == '}' && (p[0] == '-' || !is_var)) {
                advance(L, L->pos + 3);
                return p[0];
            }
        }
        char c = p[0];
        if (c == '\'' || c == '"') { lex_string(L); continue; }
        if (c >= '0' && c <= '9') { lex_number(L); continue; }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            jtok *t = emit(L, T_NAME);
            size_t i = 0;
            while (i < left && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || p[i] == '_' || (p[i] >= '0' && p[i] <= '9'))) i++;
            t->p = ja_strdup(L->a, p, i);
            t->n = i;
            advance(L, L->pos + i);
            continue;
        }
        static const struct { const char *s; int k; } ops[] = {
            {"//", T_FLOORDIV}, {"**", T_POW}, {"==", T_EQ}, {"!=", T_NE}, {"<=", T_LE}, {">=", T_GE},
            {"+", T_ADD}, {"-", T_SUB}, {"*", T_MUL}, {"/", T_DIV}, {"%", T_MOD}, {"~", T_TILDE},
            {"[", T_LBRACKET}, {"]", T_RBRACKET}, {"(", T_LPAREN}, {")", T_RPAREN}, {"{", T_LBRACE},
            {"}", T_RBRACE}, {"<", T_LT}, {">", T_GT}, {"=", T_ASSIGN}, {".", T_DOT}, {":", T_COLON},
            {"|", T_PIPE}, {",", T_COMMA},
        };
        size_t k;
        for (k = 0; k < sizeof ops / sizeof ops[0]; k++) {
            size_t ol = strlen(ops[k].s);
            if (left >= ol && !memcmp(p, ops[k].s, ol)) break;
        }
        if (k == sizeof ops / sizeof ops[0])
            jj_syntax_error(L->a, L->line, (int)(L->pos - L->line_start) + 1, "unexpected character '%c'", c);
        jtok *t = emit(L, ops[k].k);
        if (c == '(' || c == '[' || c == '{') {
            if (++depth > JJ_MAX_NEST) jj_syntax_error(L->a, t->line, t->col, "brackets nested too deeply");
        } else if (c == ')' || c == ']' || c == '}') {
            if (depth == 0) jj_syntax_error(L->a, t->line, t->col, "unexpected '%c'", c);
            depth--;
        }
        advance(L, L->pos + strlen(ops[k].s));
    }
}

static const char *find_open(const char *s, size_t n, size_t from) {
    for (size_t i = from; i + 1 < n; i++)
        if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) return s + i;
    return NULL;
}

void jj_lex(jarena *a, const char *src, size_t len, jtoks *out) {
    /* normalize newlines, drop one trailing newline */
    char *s = ja_alloc(a, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    lexer L = {.a = a, .s = s, .n = n, .line = 1, .out = out};
    while (L.pos < n) {
        const char *o = find_open(s, n, L.pos);
        size_t tstart = L.pos, tend = o ? (size_t)(o - s) : n;
        char kind = o ? o[1] : 0;
        char sign = (o && tend + 2 < n && (s[tend + 2] == '-' || s[tend + 2] == '+')) ? s[tend + 2] : 0;
        if (kind == '{' && sign == '+') sign = 0; /* "{{+" is not a marker */
        size_t keep = tend;
        if (sign == '-') {
            while (keep > tstart && is_ws(s[keep - 1])) keep--;
        } else if (sign != '+' && (kind == '%' || kind == '#')) {
            size_t l = keep;
            while (l > tstart && s[l - 1] != '\n') l--;
            bool line_starting = tstart == 0 || s[tstart - 1] == '\n';
            if (l > tstart || line_starting) {
                size_t j = l;
                while (j < keep && (s[j] == ' ' || s[j] == '\t' || s[j] == '\f' || s[j] == '\v' || s[j] == '\r')) j++;
                if (j == keep) keep = l;
            }
        }
        if (keep > tstart) {
            jtok *t = emit(&L, T_TEXT);
            t->p = s + tstart;
            t->n = keep - tstart;
        }
        advance(&L, tend);
        if (!o) break;
        int bl = L.line, bc = (int)(L.pos - L.line_start) + 1;
        advance(&L, tend + 2 + (sign ? 1 : 0));
        char end_sign;
        if (kind == '#') {
            size_t i = L.pos;
            while (i + 1 < n && !(s[i] == '#' && s[i + 1] == '}')) i++;
            if (i + 1 >= n) jj_syntax_error(a, bl, bc, "unclosed comment: missing '#}'");
            end_sign = (i > L.pos && (s[i - 1] == '-' || s[i - 1] == '+')) ? s[i - 1] : 0;
            advance(&L, i + 2);
        } else {
            emit(&L, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN)->line = bl;
            end_sign = lex_tag(&L, kind == '{', bl, bc);
            emit(&L, kind == '{' ? T_VAR_END : T_BLOCK_END);
        }
        if (end_sign == '-') {
            size_t i = L.pos;
            while (i < n && is_ws(s[i])) i++;
            advance(&L, i);
        } else if (end_sign != '+' && kind != '{' && L.pos < n && s[L.pos] == '\n') {
            advance(&L, L.pos + 1);
        }
    }
    emit(&L, T_EOF);
}
