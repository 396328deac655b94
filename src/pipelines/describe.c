/*
 * describe.c — the public entry for `kiln info`: a textual description of a model
 * file, produced by the formats layer.
 */
#include "base/buf.h"
#include "formats/describe.h"
#include "kiln.h"

kiln_status kiln_model_describe(const char *path, char **text) {
    kiln_buf b = {0};
    *text = NULL;
    kiln_status st = kiln_describe_file(path, &b);
    if (st) {
        kiln_buf_free(&b);
        return st;
    }
    if (!b.data && (st = kiln_buf_append(&b, "", 0))) return st;
    *text = b.data;
    return KILN_OK;
}
