/*
 * ws.c — RFC 6455 WebSocket handshake checks, frame encoding and the incremental
 * client-frame decoder (see ws.h for the contract).
 *
 * The decoder is a byte-driven state machine: it collects a frame header (2 to 14
 * bytes), then streams the payload, unmasking it straight into the message buffer
 * (data frames) or a 125-byte buffer (control frames, which may arrive between the
 * fragments of a data message, §5.4). Every rule is checked as soon as the bytes
 * that decide it arrive, so feeding the stream byte by byte or all at once yields
 * the same events and the same error.
 */
#include "ws.h"

#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <nettle/version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/status.h"

/* ---- handshake --------------------------------------------------------------- */

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Trims spaces/tabs around s: *start and *len describe the inner part. */
static void trim(const char *s, const char **start, size_t *len) {
    size_t n = strlen(s);
    while (n && is_ows(*s)) s++, n--;
    while (n && is_ows(s[n - 1])) n--;
    *start = s;
    *len = n;
}

void kiln_ws_accept_key(const char *client_key, char out[29]) {
    const char *k;
    size_t n;
    trim(client_key ? client_key : "", &k, &n);
    struct sha1_ctx ctx;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&ctx);
    sha1_update(&ctx, n, (const uint8_t *)k);
    sha1_update(&ctx, sizeof KILN_WS_GUID - 1, (const uint8_t *)KILN_WS_GUID);
#if NETTLE_VERSION_MAJOR > 3 || (NETTLE_VERSION_MAJOR == 3 && NETTLE_VERSION_MINOR >= 10)
    sha1_digest(&ctx, digest);
#else
    sha1_digest(&ctx, SHA1_DIGEST_SIZE, digest);
#endif
    /* 20 bytes encode to BASE64_ENCODE_RAW_LENGTH(20) = 28 characters */
    base64_encode_raw(out, SHA1_DIGEST_SIZE, digest);
    out[28] = 0;
}

/* Whether the comma-separated token list value contains token (case-insensitive). */
static bool list_has_token(const char *value, const char *token) {
    size_t tl = strlen(token);
    const char *p = value;
    while (*p) {
        const char *end = strchr(p, ',');
        if (!end) end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && is_ows(*a)) a++;
        while (b > a && is_ows(b[-1])) b--;
        if ((size_t)(b - a) == tl && strncasecmp(a, token, tl) == 0) return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

static bool b64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

static bool handshake_fail(const char **why, int *http_status, const char *msg, int status) {
    if (why) *why = msg;
    if (http_status) *http_status = status;
    return false;
}

bool kiln_ws_handshake_ok(const char *upgrade, const char *connection, const char *version,
                          const char *key, const char **why, int *http_status) {
    if (!upgrade || !list_has_token(upgrade, "websocket"))
        return handshake_fail(why, http_status, "the Upgrade header must be \"websocket\"", 400);
    if (!connection || !list_has_token(connection, "upgrade"))
        return handshake_fail(why, http_status, "the Connection header must list \"Upgrade\"", 400);
    if (!key) return handshake_fail(why, http_status, "the Sec-WebSocket-Key header is missing", 400);
    /* 16 bytes encode to 22 base64 characters and "==" */
    const char *k;
    size_t n;
    trim(key, &k, &n);
    bool key_ok = n == 24 && k[22] == '=' && k[23] == '=';
    for (size_t i = 0; key_ok && i < 22; i++) key_ok = b64_char(k[i]);
    if (!key_ok)
        return handshake_fail(why, http_status,
                              "the Sec-WebSocket-Key header must be the base64 encoding of 16 bytes", 400);
    const char *v;
    size_t vn;
    trim(version ? version : "", &v, &vn);
    if (!version || vn != 2 || memcmp(v, "13", 2) != 0)
        return handshake_fail(why, http_status, "unsupported Sec-WebSocket-Version (this server speaks 13)",
                              426);
    if (why) *why = NULL;
    if (http_status) *http_status = 101;
    return true;
}

/* ---- frame encoding ---------------------------------------------------------- */

static bool is_control(int op) { return op & 0x8; }
static bool known_opcode(int op) { return (op >= 0 && op <= 2) || (op >= 8 && op <= 10); }

kiln_status kiln_ws_frame(kiln_buf *out, int opcode, const void *payload, size_t len, bool fin) {
    if (!known_opcode(opcode)) return kiln_fail(KILN_ERR_INVALID_ARG, "websocket: unknown opcode %d", opcode);
    if (is_control(opcode) && (!fin || len > 125))
        return kiln_fail(KILN_ERR_INVALID_ARG,
                         "websocket: control frames must be final and carry at most 125 bytes");
    uint8_t h[10];
    size_t hl;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        h[1] = (uint8_t)len;
        hl = 2;
    } else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hl = 4;
    } else {
        h[1] = 127;
        uint64_t l = len;
        for (int i = 0; i < 8; i++) h[2 + i] = (uint8_t)(l >> (56 - 8 * i));
        hl = 10;
    }
    if (len > SIZE_MAX - hl) return kiln_fail(KILN_ERR_NOMEM, "websocket: frame too large");
    kiln_status s = kiln_buf_reserve(out, hl + len); /* both appends below then fit */
    if (s) return s;
    kiln_buf_append(out, h, hl);
    kiln_buf_append(out, payload, len);
    return KILN_OK;
}

kiln_status kiln_ws_frame_text(kiln_buf *out, const char *text, size_t len) {
    return kiln_ws_frame(out, KILN_WS_OP_TEXT, text, len, true);
}

/* Close codes an endpoint may put on the wire (§7.4.1, §7.4.2; 1012-1014 were
 * registered with IANA later). */
static bool close_code_sendable(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

kiln_status kiln_ws_frame_close(kiln_buf *out, int code, const char *reason) {
    uint8_t p[125];
    size_t n = 0;
    if (code == 0) {
        if (reason && *reason)
            return kiln_fail(KILN_ERR_INVALID_ARG, "websocket: a close reason needs a close code");
    } else {
        if (!close_code_sendable(code))
            return kiln_fail(KILN_ERR_INVALID_ARG, "websocket: %d is not a close code to send", code);
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 123) {
            rl = 123;
            /* back up to the start of a character */
            while (rl > 0 && ((uint8_t)reason[rl] & 0xC0) == 0x80) rl--;
        }
        if (rl) memcpy(p + 2, reason, rl);
        n = 2 + rl;
    }
    return kiln_ws_frame(out, KILN_WS_OP_CLOSE, p, n, true);
}

/* ---- incremental UTF-8 check ------------------------------------------------- */

/* State between bytes: how many continuation bytes are still due, and the range the
 * next one must lie in (narrower after E0, ED, F0, F4: no overlongs, no surrogates,
 * nothing above U+10FFFF). */
typedef struct {
    int need;
    uint8_t lo, hi;
} utf8_state;

static bool utf8_step(utf8_state *u, uint8_t c) {
    if (u->need) {
        if (c < u->lo || c > u->hi) return false;
        u->need--;
        u->lo = 0x80;
        u->hi = 0xBF;
        return true;
    }
    u->lo = 0x80;
    u->hi = 0xBF;
    if (c < 0x80) return true;
    if (c >= 0xC2 && c <= 0xDF) u->need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        u->need = 2;
        if (c == 0xE0) u->lo = 0xA0;
        if (c == 0xED) u->hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        u->need = 3;
        if (c == 0xF0) u->lo = 0x90;
        if (c == 0xF4) u->hi = 0x8F;
    } else
        return false;
    return true;
}

static bool utf8_valid(const uint8_t *p, size_t n) {
    utf8_state u = {0, 0x80, 0xBF};
    for (size_t i = 0; i < n; i++)
        if (!utf8_step(&u, p[i])) return false;
    return u.need == 0;
}

/* ---- decoder ----------------------------------------------------------------- */

#define DEFAULT_MAX_MESSAGE ((size_t)16 << 20)
/* A message buffer grown past this is released after delivery, so an idle
 * connection does not keep a large allocation. */
#define KEEP_MESSAGE_CAP ((size_t)64 << 10)

struct kiln_ws_decoder {
    size_t max_message;
    unsigned allowed_rsv;

    /* the frame being read */
    uint8_t hdr[14];
    size_t hdr_len, hdr_need;
    bool in_payload;
    int opcode;
    bool fin;
    uint8_t mask[4];
    uint64_t remaining, pos;

    /* the data message being reassembled */
    bool in_message;
    int msg_opcode;
    unsigned msg_rsv;
    bool msg_check_utf8;
    utf8_state msg_utf8;
    kiln_buf msg;

    /* the control frame being read */
    uint8_t ctrl[126];
    size_t ctrl_len;

    bool closed;
    int error; /* close code once failed */
    char errmsg[128];
    kiln_status err_status;
};

kiln_status kiln_ws_decoder_create(size_t max_message, unsigned allowed_rsv, kiln_ws_decoder **out) {
    *out = NULL;
    if (allowed_rsv & ~7u)
        return kiln_fail(KILN_ERR_INVALID_ARG, "websocket: allowed_rsv 0x%x has bits beyond RSV1-3", allowed_rsv);
    kiln_ws_decoder *d = calloc(1, sizeof *d);
    if (!d) return kiln_fail(KILN_ERR_NOMEM, "websocket: out of memory creating a decoder");
    d->max_message = max_message ? max_message : DEFAULT_MAX_MESSAGE;
    d->allowed_rsv = allowed_rsv;
    d->hdr_need = 2;
    *out = d;
    return KILN_OK;
}

void kiln_ws_decoder_free(kiln_ws_decoder *d) {
    if (!d) return;
    kiln_buf_free(&d->msg);
    free(d);
}

int kiln_ws_decoder_error(const kiln_ws_decoder *d, const char **msg) {
    if (msg) *msg = d->error ? d->errmsg : "";
    return d->error;
}

bool kiln_ws_decoder_closed(const kiln_ws_decoder *d) { return d->closed; }

/* Marks the decoder failed with a close code and returns the status to report. */
static kiln_status fail(kiln_ws_decoder *d, int code, kiln_status s, const char *msg) {
    d->error = code;
    d->err_status = s;
    snprintf(d->errmsg, sizeof d->errmsg, "%s", msg);
    return kiln_fail(s, "websocket: %s (close code %d)", msg, code);
}

static kiln_status protocol(kiln_ws_decoder *d, const char *msg) {
    return fail(d, KILN_WS_CLOSE_PROTOCOL, KILN_ERR_FORMAT, msg);
}

/* Checks the first two header bytes and works out the header's full length. */
static kiln_status start_header(kiln_ws_decoder *d) {
    uint8_t b0 = d->hdr[0], b1 = d->hdr[1];
    unsigned rsv = (b0 >> 4) & 7;
    int op = b0 & 0x0F;
    unsigned len7 = b1 & 0x7F;
    if (rsv & ~d->allowed_rsv) return protocol(d, "reserved bits set without a negotiated extension");
    if (!known_opcode(op)) return protocol(d, "unknown opcode");
    if (!(b1 & 0x80)) return protocol(d, "client frames must be masked");
    if (is_control(op)) {
        if (!(b0 & 0x80)) return protocol(d, "fragmented control frame");
        if (len7 > 125) return protocol(d, "control frame longer than 125 bytes");
    } else if (op == KILN_WS_OP_CONTINUATION) {
        if (!d->in_message) return protocol(d, "continuation frame without a message to continue");
    } else if (d->in_message) {
        return protocol(d, "new data message before the fragmented one ended");
    }
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return KILN_OK;
}

/* The header is complete: reads the length and mask and starts the payload. */
static kiln_status end_header(kiln_ws_decoder *d) {
    uint8_t b0 = d->hdr[0];
    unsigned len7 = d->hdr[1] & 0x7F;
    uint64_t len = len7;
    size_t at = 2;
    if (len7 == 126) {
        len = (uint64_t)d->hdr[2] << 8 | d->hdr[3];
        at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | d->hdr[2 + i];
        at = 10;
        if (len >> 63) return protocol(d, "frame length has its most significant bit set");
    }
    memcpy(d->mask, d->hdr + at, 4);
    d->opcode = b0 & 0x0F;
    d->fin = (b0 & 0x80) != 0;
    d->remaining = len;
    d->pos = 0;
    if (is_control(d->opcode)) {
        d->ctrl_len = 0;
    } else {
        if (len > d->max_message - d->msg.len) /* msg.len <= max_message always */
            return fail(d, KILN_WS_CLOSE_TOO_BIG, KILN_ERR_FORMAT, "message exceeds the maximum size");
        if (d->opcode != KILN_WS_OP_CONTINUATION) {
            d->in_message = true;
            d->msg_opcode = d->opcode;
            d->msg_rsv = (b0 >> 4) & 7;
            d->msg_check_utf8 = d->opcode == KILN_WS_OP_TEXT && d->msg_rsv == 0;
            d->msg_utf8 = (utf8_state){0, 0x80, 0xBF};
            kiln_buf_clear(&d->msg);
        }
        if (len && kiln_buf_reserve(&d->msg, (size_t)len) != KILN_OK)
            return fail(d, KILN_WS_CLOSE_INTERNAL, KILN_ERR_NOMEM, "out of memory for a message");
    }
    d->in_payload = true;
    return KILN_OK;
}

/* Unmasks n payload bytes from p into the current destination. */
static kiln_status take_payload(kiln_ws_decoder *d, const uint8_t *p, size_t n) {
    uint8_t *dst;
    if (is_control(d->opcode)) {
        dst = d->ctrl + d->ctrl_len;
        d->ctrl_len += n;
    } else {
        dst = (uint8_t *)d->msg.data + d->msg.len; /* reserved in end_header */
        d->msg.len += n;
    }
    for (size_t i = 0; i < n; i++) dst[i] = p[i] ^ d->mask[(d->pos + i) & 3];
    d->pos += n;
    d->remaining -= n;
    if (!is_control(d->opcode)) {
        d->msg.data[d->msg.len] = 0;
        if (d->msg_check_utf8)
            for (size_t i = 0; i < n; i++)
                if (!utf8_step(&d->msg_utf8, dst[i]))
                    return fail(d, KILN_WS_CLOSE_INVALID_DATA, KILN_ERR_FORMAT, "text message is not valid UTF-8");
    }
    return KILN_OK;
}

/* A frame's payload is complete: emits what it finishes. */
static kiln_status end_frame(kiln_ws_decoder *d, kiln_ws_event_fn cb, void *user) {
    d->in_payload = false;
    d->hdr_len = 0;
    d->hdr_need = 2;
    kiln_ws_event ev = {0};
    if (is_control(d->opcode)) {
        d->ctrl[d->ctrl_len] = 0;
        ev.data = (const char *)d->ctrl;
        ev.len = d->ctrl_len;
        if (d->opcode == KILN_WS_OP_PING) ev.type = KILN_WS_EV_PING;
        else if (d->opcode == KILN_WS_OP_PONG) ev.type = KILN_WS_EV_PONG;
        else {
            ev.type = KILN_WS_EV_CLOSE;
            if (d->ctrl_len == 0) {
                ev.close_code = KILN_WS_CLOSE_NO_STATUS;
            } else if (d->ctrl_len == 1) {
                return protocol(d, "close frame with a 1-byte payload");
            } else {
                ev.close_code = d->ctrl[0] << 8 | d->ctrl[1];
                if (!close_code_sendable(ev.close_code)) return protocol(d, "invalid close code");
                ev.data += 2;
                ev.len -= 2;
                if (!utf8_valid((const uint8_t *)ev.data, ev.len))
                    return fail(d, KILN_WS_CLOSE_INVALID_DATA, KILN_ERR_FORMAT, "close reason is not valid UTF-8");
            }
            d->closed = true;
        }
        if (cb) cb(user, &ev);
        return KILN_OK;
    }
    if (!d->fin) return KILN_OK;
    if (d->msg_check_utf8 && d->msg_utf8.need)
        return fail(d, KILN_WS_CLOSE_INVALID_DATA, KILN_ERR_FORMAT, "text message ends inside a UTF-8 character");
    ev.type = d->msg_opcode == KILN_WS_OP_TEXT ? KILN_WS_EV_TEXT : KILN_WS_EV_BINARY;
    ev.data = d->msg.data ? d->msg.data : "";
    ev.len = d->msg.len;
    ev.rsv = d->msg_rsv;
    d->in_message = false;
    if (cb) cb(user, &ev);
    if (d->msg.cap > KEEP_MESSAGE_CAP) kiln_buf_free(&d->msg);
    else kiln_buf_clear(&d->msg);
    return KILN_OK;
}

kiln_status kiln_ws_decoder_feed(kiln_ws_decoder *d, const void *data, size_t len, kiln_ws_event_fn cb,
                                 void *user) {
    if (d->error) return kiln_fail(d->err_status, "websocket: %s (close code %d)", d->errmsg, d->error);
    const uint8_t *p = data;
    size_t i = 0;
    kiln_status s = KILN_OK;
    while (i < len && !d->closed && s == KILN_OK) {
        if (!d->in_payload) {
            size_t n = d->hdr_need - d->hdr_len;
            if (n > len - i) n = len - i;
            memcpy(d->hdr + d->hdr_len, p + i, n);
            d->hdr_len += n;
            i += n;
            if (d->hdr_len == 2 && d->hdr_need == 2) {
                s = start_header(d);
                if (s) break;
            }
            if (d->hdr_len == d->hdr_need) {
                s = end_header(d);
                if (s == KILN_OK && d->remaining == 0) s = end_frame(d, cb, user);
            }
        } else {
            size_t n = len - i;
            if (d->remaining < n) n = (size_t)d->remaining;
            s = take_payload(d, p + i, n);
            i += n;
            if (s == KILN_OK && d->remaining == 0) s = end_frame(d, cb, user);
        }
    }
    return s;
}
