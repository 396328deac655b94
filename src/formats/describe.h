/*
 * describe.h — a human-readable description of a model file, for `kiln info`.
 *
 * Recognizes GGUF (by magic), safetensors (a file, a *.index.json, or a folder; the
 * architectures/model_type of a config.json beside it are shown too) and llama2.c
 * checkpoints (.bin), opens them with their validating readers and prints the
 * metadata (key = value; arrays as type, length and first elements) and a tensor
 * table (name, type, shape, offset, bytes).
 */
#ifndef KILN_FORMATS_DESCRIBE_H
#define KILN_FORMATS_DESCRIBE_H

#include "base/buf.h"

/* Appends the description of path to *out. On failure returns the reader's status
 * (KILN_ERR_IO / KILN_ERR_FORMAT / KILN_ERR_UNSUPPORTED / KILN_ERR_NOMEM) with its
 * message; *out may then hold a partial description. The caller owns *out either way. */
kiln_status kiln_describe_file(const char *path, kiln_buf *out);

#endif
