/* tok_json.c — placeholder during development */
#include "base/status.h"
#include "tokenizers/tok_impl.h"
kiln_status kiln_tokenizer_from_json(const char *a, const char *b, kiln_tokenizer **out) {
    (void)a; (void)b; *out = NULL;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "not yet");
}
