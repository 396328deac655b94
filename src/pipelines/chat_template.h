/*
 * chat_template.h — a small Jinja interpreter for the chat templates models ship
 * (GGUF tokenizer.chat_template, tokenizer_config.json chat_template), rendering them
 * byte for byte as Hugging Face transformers does: jinja2's
 * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the
 * loopcontrols extension (break/continue), the globals raise_exception(msg) and
 * strftime_now(fmt), and tojson = json.dumps(x, ensure_ascii=False, indent=...,
 * separators=..., sort_keys=...).
 *
 * Supported: {{ }}, {% %}, {# #}, "-"/"+" whitespace control; for (loop.*, else,
 * "if" filtering, tuple unpacking), if/elif/else, set (also ns.attr and block set),
 * macro, filter blocks, break/continue; Python-like expressions, literals, slices,
 * str/dict/list methods; the usual filters and tests (see jinja/filters.c).
 * Unsupported (a clear error): call blocks, recursive loops, include/import/extends.
 * Undefined names behave like jinja2's default Undefined: they print as nothing, are
 * false, iterate as empty and `is defined` is false; attribute access, arithmetic or
 * calls on them fail with "'name' is undefined", as in jinja2.
 * Differences from Python: integers are 64-bit (overflow is an error); JSON numbers
 * written with a fraction of zero ("1.0") come in as integers.
 *
 * Hostile templates fail cleanly: nesting, macro recursion, loop iterations, output
 * size and value memory are all bounded (limits in jinja/jinja_impl.h).
 * Thread-safety: a compiled template may be rendered from several threads at once.
 */
#ifndef KILN_PIPELINES_CHAT_TEMPLATE_H
#define KILN_PIPELINES_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "kiln.h"

typedef struct kiln_jinja kiln_jinja;

/* Compiles src[0..len). KILN_ERR_FORMAT on a syntax error, the message naming line:col.
 * *out is owned by the caller (kiln_jinja_free). */
kiln_status kiln_jinja_compile(const char *src, size_t len, kiln_jinja **out);

/* Renders with the members of the cJSON object ctx as the template's variables
 * (messages, bos_token, eos_token, add_generation_prompt, tools, ...); ctx may be NULL.
 * On success *out is malloc'd and NUL-terminated (caller frees), *out_len (if not NULL)
 * its length. raise_exception(msg) -> KILN_ERR_INVALID_ARG with msg as the message;
 * runtime type errors and limits -> KILN_ERR_INVALID_ARG naming the problem and line. */
kiln_status kiln_jinja_render(const kiln_jinja *t, const cJSON *ctx, char **out, size_t *out_len);

void kiln_jinja_free(kiln_jinja *t);

/* Compiles and renders a chat: messages (a cJSON array), tools (a cJSON array, or NULL:
 * then `tools` is none, as transformers passes it), the bos/eos strings (NULL: "") and
 * add_generation_prompt. *out is malloc'd (caller frees). tmpl NULL means
 * kiln_chat_default_template. */
kiln_status kiln_chat_template_render(const char *tmpl, const cJSON *messages, const cJSON *tools,
                                      const char *bos_token, const char *eos_token, bool add_generation_prompt,
                                      char **out);

/* The template used for models without one: ChatML. Each message renders as
 *   "<|im_start|>" role "\n" content "<|im_end|>\n"
 * and add_generation_prompt appends "<|im_start|>assistant\n". No BOS is added. */
extern const char *const kiln_chat_default_template;

#endif
