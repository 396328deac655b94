/*
 * sd_prompt.c — attention weights and 75-token chunks of Stable Diffusion prompts
 * (sd_prompt.h), with AUTOMATIC1111's rules: brackets scale the weight of every piece
 * of text written since they opened, so nesting multiplies; ":w)" closes the
 * innermost round bracket with weight w instead of 1.1.
 */
#include "pipelines/sd_prompt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/status.h"

typedef struct {
    kiln_prompt_piece *v;
    size_t n, cap;
} pieces;

static kiln_status push(pieces *p, const char *text, size_t len, double w, bool brk) {
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        kiln_prompt_piece *nv = realloc(p->v, nc * sizeof *nv);
        if (!nv) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        p->v = nv;
        p->cap = nc;
    }
    char *t = brk ? NULL : kiln_strndup(text, len);
    if (!brk && !t) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
    p->v[p->n++] = (kiln_prompt_piece){t, w, brk};
    return KILN_OK;
}

static void scale(pieces *p, size_t from, double m) {
    for (size_t i = from; i < p->n; i++)
        if (!p->v[i].brk) p->v[i].weight *= m;
}

static bool word_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

/* A run of plain text, split at the word BREAK (and the whitespace around it). */
static kiln_status push_text(pieces *p, const char *s, size_t n) {
    for (size_t i = 0; i + 5 <= n; i++) {
        if (memcmp(s + i, "BREAK", 5) || (i && word_char(s[i - 1])) || (i + 5 < n && word_char(s[i + 5]))) continue;
        size_t a = i, b = i + 5;
        while (a > 0 && isspace((unsigned char)s[a - 1])) a--;
        while (b < n && isspace((unsigned char)s[b])) b++;
        kiln_status st = a ? push(p, s, a, 1.0, false) : KILN_OK;
        if (!st) st = push(p, NULL, 0, -1, true);
        return st ? st : push_text(p, s + b, n - b);
    }
    return n ? push(p, s, n, 1.0, false) : KILN_OK;
}

/* ":" spaces number spaces ")" at s (s[0] == ':'): the number's value and the length
 * matched, or 0 if it is not that. */
static size_t weight_close(const char *s, double *w) {
    size_t i = 1;
    while (isspace((unsigned char)s[i])) i++;
    size_t start = i;
    if (s[i] == '+' || s[i] == '-') i++;
    while (isdigit((unsigned char)s[i]) || s[i] == '.') i++;
    if (i == start || (i == start + 1 && (s[start] == '+' || s[start] == '-'))) return 0;
    char num[64];
    if (i - start >= sizeof num) return 0;
    memcpy(num, s + start, i - start);
    num[i - start] = 0;
    char *end;
    *w = strtod(num, &end);
    if (*end) return 0; /* "1.2.3" */
    while (isspace((unsigned char)s[i])) i++;
    return s[i] == ')' ? i + 1 : 0;
}

kiln_status kiln_prompt_parse(const char *prompt, kiln_prompt_piece **out, size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!prompt) return kiln_fail(KILN_ERR_INVALID_ARG, "no prompt");
    pieces p = {0};
    size_t *round = NULL, *square = NULL, nr = 0, ns = 0, len = strlen(prompt);
    round = kiln_malloc_array(len + 1, sizeof *round);
    square = kiln_malloc_array(len + 1, sizeof *square);
    kiln_status st = round && square ? KILN_OK : kiln_fail(KILN_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < len && !st;) {
        const char c = prompt[i];
        double w;
        size_t k;
        if (c == '\\' && i + 1 < len && strchr("()[]\\", prompt[i + 1])) {
            st = push(&p, prompt + i + 1, 1, 1.0, false);
            i += 2;
        } else if (c == '(') {
            round[nr++] = p.n, i++;
        } else if (c == '[') {
            square[ns++] = p.n, i++;
        } else if (c == ':' && (k = weight_close(prompt + i, &w)) && nr) {
            scale(&p, round[--nr], w);
            i += k;
        } else if (c == ')' && nr) {
            scale(&p, round[--nr], 1.1);
            i++;
        } else if (c == ']' && ns) {
            scale(&p, square[--ns], 1 / 1.1);
            i++;
        } else if (c == ':' && (k = weight_close(prompt + i, &w))) {
            st = push(&p, prompt + i, k, 1.0, false); /* a weight with no bracket open: text */
            i += k;
        } else if (c == '\\') {
            i++; /* a backslash escaping nothing is dropped, as AUTOMATIC1111 does */
        } else if (strchr("()[]:", c)) {
            st = push(&p, prompt + i, 1, 1.0, false);
            i++;
        } else {
            size_t j = i;
            while (j < len && !strchr("\\()[]:", prompt[j])) j++;
            st = push_text(&p, prompt + i, j - i);
            i = j;
        }
    }
    while (!st && nr) scale(&p, round[--nr], 1.1);
    while (!st && ns) scale(&p, square[--ns], 1 / 1.1);
    free(round);
    free(square);
    if (!st && p.n == 0) st = push(&p, "", 0, 1.0, false);
    /* merge neighbours of equal weight */
    size_t m = 0;
    for (size_t i = 0; i < p.n && !st; i++) {
        if (m && !p.v[i].brk && !p.v[m - 1].brk && p.v[m - 1].weight == p.v[i].weight) {
            size_t a = strlen(p.v[m - 1].text), b = strlen(p.v[i].text);
            char *t = realloc(p.v[m - 1].text, a + b + 1);
            if (!t) {
                st = kiln_fail(KILN_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(t + a, p.v[i].text, b + 1);
            p.v[m - 1].text = t;
            free(p.v[i].text);
            p.v[i].text = NULL;
        } else {
            p.v[m++] = p.v[i];
        }
    }
    if (st) {
        kiln_prompt_pieces_free(p.v, p.n);
        return st;
    }
    *out = p.v;
    *n_out = m;
    return KILN_OK;
}

void kiln_prompt_pieces_free(kiln_prompt_piece *p, size_t n) {
    for (size_t i = 0; p && i < n; i++) free(p[i].text);
    free(p);
}

/* ---- chunks ------------------------------------------------------------------------ */

typedef struct {
    kiln_clip_chunk *v;
    size_t n, cap;
    int32_t ids[KILN_CLIP_CHUNK];
    float w[KILN_CLIP_CHUNK];
    int len, last_comma;
    int32_t bos, eos, pad;
} chunker;

static kiln_status next_chunk(chunker *c) {
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 4;
        kiln_clip_chunk *nv = realloc(c->v, nc * sizeof *nv);
        if (!nv) return kiln_fail(KILN_ERR_NOMEM, "out of memory");
        c->v = nv;
        c->cap = nc;
    }
    kiln_clip_chunk *k = &c->v[c->n++];
    k->ids[0] = c->bos;
    k->weights[0] = 1.0f;
    for (int i = 0; i < KILN_CLIP_CHUNK; i++) {
        k->ids[1 + i] = i < c->len ? c->ids[i] : c->pad;
        k->weights[1 + i] = i < c->len ? c->w[i] : 1.0f;
    }
    k->ids[KILN_CLIP_CHUNK + 1] = c->eos;
    k->weights[KILN_CLIP_CHUNK + 1] = 1.0f;
    c->len = 0;
    c->last_comma = -1;
    return KILN_OK;
}

#define COMMA_BACKTRACK 20 /* AUTOMATIC1111's default "comma padding backtrack" */

kiln_status kiln_prompt_chunks(const kiln_clip_tok *t, const char *prompt, int32_t pad_id, kiln_clip_chunk **chunks,
                               size_t *n) {
    *chunks = NULL;
    *n = 0;
    kiln_prompt_piece *pc = NULL;
    size_t np = 0;
    kiln_status st = kiln_prompt_parse(prompt, &pc, &np);
    chunker c = {.last_comma = -1, .bos = kiln_clip_tok_bos(t), .eos = kiln_clip_tok_eos(t), .pad = pad_id};
    const int32_t comma = kiln_clip_tok_find(t, ",</w>");
    for (size_t i = 0; i < np && !st; i++) {
        if (pc[i].brk) {
            st = next_chunk(&c);
            continue;
        }
        int32_t *ids = NULL;
        size_t ni = 0;
        if ((st = kiln_clip_tok_encode(t, pc[i].text, strlen(pc[i].text), &ids, &ni))) break;
        for (size_t j = 0; j < ni && !st; j++) {
            if (ids[j] == comma) {
                c.last_comma = c.len;
            } else if (c.len == KILN_CLIP_CHUNK && c.last_comma >= 0 && c.len - c.last_comma <= COMMA_BACKTRACK) {
                /* the tokens after the last comma move on to the next chunk */
                const int from = c.last_comma + 1, moved = c.len - from;
                int32_t ids_m[KILN_CLIP_CHUNK];
                float w_m[KILN_CLIP_CHUNK];
                memcpy(ids_m, c.ids + from, sizeof *ids_m * (size_t)moved);
                memcpy(w_m, c.w + from, sizeof *w_m * (size_t)moved);
                c.len = from;
                if ((st = next_chunk(&c))) break;
                memcpy(c.ids, ids_m, sizeof *ids_m * (size_t)moved);
                memcpy(c.w, w_m, sizeof *w_m * (size_t)moved);
                c.len = moved;
            }
            if (c.len == KILN_CLIP_CHUNK && (st = next_chunk(&c))) break;
            c.ids[c.len] = ids[j];
            c.w[c.len++] = (float)pc[i].weight;
        }
        free(ids);
    }
    if (!st && (c.len || c.n == 0)) st = next_chunk(&c);
    kiln_prompt_pieces_free(pc, np);
    if (st) {
        free(c.v);
        return st;
    }
    *chunks = c.v;
    *n = c.n;
    return KILN_OK;
}
