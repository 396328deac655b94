/*
 * sd_output.c — a generated image as files (kiln.h, kiln_sd_image_write /
 * kiln_sd_image_encode): a PNG with the parameters in a "parameters" text chunk, as
 * AUTOMATIC1111 writes them (its PNG-info tab, and tools that read it, parse this
 * chunk), and a JSON sidecar with the same fields, both written atomically.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "formats/png.h"
#include "kiln.h"

kiln_status kiln_sd_image_encode(const kiln_sd_image *img, uint8_t **png, size_t *len) {
    if (!img || !img->rgb) return kiln_fail(KILN_ERR_INVALID_ARG, "no image to encode");
    kiln_png_text t = {"parameters", img->parameters ? img->parameters : ""};
    return kiln_png_encode(img->rgb, img->width, img->height, 3, &t, 1, png, len);
}

static kiln_status write_atomic(const char *path, const char *text) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return kiln_fail(KILN_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    bool ok = fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
    if (fclose(f) != 0) ok = false;
    if (ok && rename(tmp, path) != 0) ok = false;
    if (!ok) {
        int err = errno;
        remove(tmp);
        return kiln_fail(KILN_ERR_IO, "%s: write failed: %s", path, strerror(err));
    }
    return KILN_OK;
}

kiln_status kiln_sd_image_write(const kiln_sd_image *img, const char *png_path, const char *json_path) {
    if (!img || !img->rgb || !png_path) return kiln_fail(KILN_ERR_INVALID_ARG, "no image or path");
    kiln_png_text t = {"parameters", img->parameters ? img->parameters : ""};
    kiln_status st = kiln_png_write(png_path, img->rgb, img->width, img->height, 3, &t, 1);
    if (!st && json_path && img->json) st = write_atomic(json_path, img->json);
    return st;
}
