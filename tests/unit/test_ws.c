/*
 * test_ws.c — WebSocket handshake, frame encoding and the client-frame decoder
 * (RFC 6455 examples of §1.3 and §5.7, every protocol error, arbitrary chunking,
 * random garbage).
 */
#include "server/ws.h"
#include "test.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Appends a client frame built by hand: any length form (form 0: shortest, 16 or 64:
 * forced), mask (NULL: unmasked), rsv bits. */
static void client_frame(kiln_buf *b, int op, bool fin, unsigned rsv, const void *payload, size_t len,
                         const uint8_t *mask, int form) {
    uint8_t h[14];
    size_t hl = 0;
    h[hl++] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
    uint8_t mbit = mask ? 0x80 : 0;
    if (form == 0 && len < 126) {
        h[hl++] = (uint8_t)(mbit | len);
    } else if ((form == 0 && len <= 0xFFFF) || form == 16) {
        h[hl++] = mbit | 126;
        h[hl++] = (uint8_t)(len >> 8);
        h[hl++] = (uint8_t)len;
    } else {
        h[hl++] = mbit | 127;
        for (int i = 0; i < 8; i++) h[hl++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (mask) {
        memcpy(h + hl, mask, 4);
        hl += 4;
    }
    kiln_buf_append(b, h, hl);
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = mask ? (uint8_t)(p[i] ^ mask[i & 3]) : p[i];
        kiln_buf_append(b, &c, 1);
    }
}

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

static void cf(kiln_buf *b, int op, bool fin, const char *s) {
    client_frame(b, op, fin, 0, s, strlen(s), MASK, 0);
}

/* Event log: one record per event, "T<len>:<bytes>|" with T the type letter. */
typedef struct {
    kiln_buf log;
    int n;
    int close_code;
    unsigned rsv;
} recorder;

static void record(void *user, const kiln_ws_event *ev) {
    recorder *r = user;
    static const char letters[] = "TBPQC";
    CHECK(ev->data[ev->len] == 0); /* NUL after the payload */
    kiln_buf_printf(&r->log, "%c", letters[ev->type]);
    if (ev->type == KILN_WS_EV_CLOSE) kiln_buf_printf(&r->log, "%d,", ev->close_code);
    kiln_buf_printf(&r->log, "%zu:", ev->len);
    kiln_buf_append(&r->log, ev->data, ev->len);
    kiln_buf_append_str(&r->log, "|");
    r->n++;
    if (ev->type == KILN_WS_EV_CLOSE) r->close_code = ev->close_code;
    r->rsv |= ev->rsv;
}

typedef struct {
    kiln_status st;
    int error; /* close code from kiln_ws_decoder_error */
    recorder r;
} result;

/* Decodes the stream fed in chunks of `chunk` bytes (0: all at once). */
static result decode(const kiln_buf *in, size_t chunk, size_t max_message, unsigned allowed_rsv) {
    result res = {0};
    kiln_ws_decoder *d = NULL;
    if (kiln_ws_decoder_create(max_message, allowed_rsv, &d)) {
        res.st = KILN_ERR_NOMEM;
        return res;
    }
    size_t step = chunk ? chunk : in->len;
    for (size_t i = 0; i < in->len && res.st == KILN_OK; i += step) {
        size_t n = in->len - i < step ? in->len - i : step;
        res.st = kiln_ws_decoder_feed(d, in->data + i, n, record, &res.r);
    }
    res.error = kiln_ws_decoder_error(d, NULL);
    kiln_ws_decoder_free(d);
    return res;
}

static const char *logstr(result *r) { return r->r.log.data ? r->r.log.data : ""; }

/* Decodes all at once and byte by byte; both must agree. Returns the first. */
static result decode_both(const kiln_buf *in, size_t max_message, unsigned allowed_rsv) {
    result a = decode(in, 0, max_message, allowed_rsv);
    result b = decode(in, 1, max_message, allowed_rsv);
    result c = decode(in, 7, max_message, allowed_rsv);
    CHECK_MSG(a.st == b.st && a.error == b.error && strcmp(logstr(&a), logstr(&b)) == 0,
              "whole vs byte-by-byte: %d/%d vs %d/%d", a.st, a.error, b.st, b.error);
    CHECK(a.st == c.st && a.error == c.error && strcmp(logstr(&a), logstr(&c)) == 0);
    kiln_buf_free(&b.r.log);
    kiln_buf_free(&c.r.log);
    return a;
}

/* Expects the stream to fail with the close code. */
static void expect_error(const char *what, const kiln_buf *in, size_t max_message, int code) {
    result r = decode_both(in, max_message, 0);
    CHECK_MSG(r.st != KILN_OK && r.error == code, "%s: status %d, close code %d (want %d)", what, r.st,
              r.error, code);
    kiln_buf_free(&r.r.log);
}

static bool bytes_eq(const kiln_buf *b, const uint8_t *want, size_t n) {
    return b->len == n && memcmp(b->data, want, n) == 0;
}

/* ---- handshake ----------------------------------------------------------------- */

static void test_handshake(void) {
    char acc[29];
    kiln_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", acc); /* RFC 6455 §1.3 */
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    kiln_ws_accept_key("  dGhlIHNhbXBsZSBub25jZQ==\t", acc);
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);

    const char *key = "dGhlIHNhbXBsZSBub25jZQ==", *why = NULL;
    int st = 0;
    CHECK(kiln_ws_handshake_ok("websocket", "Upgrade", "13", key, &why, &st) && st == 101 && !why);
    CHECK(kiln_ws_handshake_ok("WebSocket", "keep-alive, Upgrade", "13", key, NULL, NULL));
    CHECK(kiln_ws_handshake_ok("websocket", "keep-alive,upgrade ", " 13", key, NULL, NULL));
    CHECK(kiln_ws_handshake_ok("h2c, websocket", "UPGRADE,\tkeep-alive", "13", key, NULL, NULL));

    CHECK(!kiln_ws_handshake_ok(NULL, "Upgrade", "13", key, &why, &st) && st == 400 && strstr(why, "Upgrade"));
    CHECK(!kiln_ws_handshake_ok("h2c", "Upgrade", "13", key, &why, &st) && st == 400);
    CHECK(!kiln_ws_handshake_ok("websockets", "Upgrade", "13", key, &why, &st) && st == 400);
    CHECK(!kiln_ws_handshake_ok("websocket", "keep-alive", "13", key, &why, &st) && st == 400 &&
          strstr(why, "Connection"));
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade-Insecure", "13", key, &why, &st));
    CHECK(!kiln_ws_handshake_ok("websocket", NULL, "13", key, &why, &st) && st == 400);
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "8", key, &why, &st) && st == 426 &&
          strstr(why, "13"));
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "130", key, &why, &st) && st == 426);
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", NULL, key, &why, &st) && st == 426);
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "13", NULL, &why, &st) && st == 400);
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "13", "", &why, &st) && st == 400);
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "13", "abc", &why, &st) && strstr(why, "16 bytes"));
    /* base64 of 15 and 17 bytes */
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "13", "AAAAAAAAAAAAAAAAAAAA", &why, &st));
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "13", "AAAAAAAAAAAAAAAAAAAAAAA=", &why, &st));
    CHECK(!kiln_ws_handshake_ok("websocket", "Upgrade", "13", "dGhlIHNhbXBsZSBub25j*Q==", &why, &st));
}

/* ---- encoding ------------------------------------------------------------------ */

static void test_encode(void) {
    kiln_buf b = {0};
    /* §5.7: a single-frame unmasked text message */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    CHECK_OK(kiln_ws_frame_text(&b, "Hello", 5));
    CHECK(bytes_eq(&b, hello, sizeof hello));
    /* §5.7: a fragmented unmasked text message */
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    kiln_buf_clear(&b);
    CHECK_OK(kiln_ws_frame(&b, KILN_WS_OP_TEXT, "Hel", 3, false));
    CHECK_OK(kiln_ws_frame(&b, KILN_WS_OP_CONTINUATION, "lo", 2, true));
    CHECK(bytes_eq(&b, frag, sizeof frag));
    /* §5.7: unmasked ping */
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    kiln_buf_clear(&b);
    CHECK_OK(kiln_ws_frame(&b, KILN_WS_OP_PING, "Hello", 5, true));
    CHECK(bytes_eq(&b, ping, sizeof ping));

    /* length forms: 125 (7-bit), 126 and 256 and 65535 (16-bit), 65536 (64-bit) */
    uint8_t *big = calloc(65536, 1);
    for (size_t i = 0; i < 65536; i++) big[i] = (uint8_t)(i * 7);
    size_t lens[] = {0, 125, 126, 256, 65535, 65536};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        size_t n = lens[k];
        kiln_buf_clear(&b);
        CHECK_OK(kiln_ws_frame(&b, KILN_WS_OP_BINARY, big, n, true));
        const uint8_t *h = (const uint8_t *)b.data;
        CHECK(h[0] == 0x82);
        size_t hl;
        if (n < 126) {
            CHECK(h[1] == n);
            hl = 2;
        } else if (n <= 65535) {
            CHECK(h[1] == 126 && (size_t)(h[2] << 8 | h[3]) == n);
            hl = 4;
        } else {
            /* §5.7: 0x82 0x7F 0x0000000000010000 */
            static const uint8_t h64[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};
            CHECK(memcmp(h, h64, 10) == 0);
            hl = 10;
        }
        CHECK(b.len == hl + n && memcmp(b.data + hl, big, n) == 0);
    }
    /* §5.7: 256 bytes binary: 0x82 0x7E 0x0100 */
    kiln_buf_clear(&b);
    CHECK_OK(kiln_ws_frame(&b, KILN_WS_OP_BINARY, big, 256, true));
    CHECK((uint8_t)b.data[1] == 0x7E && (uint8_t)b.data[2] == 0x01 && b.data[3] == 0);
    free(big);

    /* close frames */
    static const uint8_t close1[] = {0x88, 0x05, 0x03, 0xE8, 'b', 'y', 'e'};
    kiln_buf_clear(&b);
    CHECK_OK(kiln_ws_frame_close(&b, 1000, "bye"));
    CHECK(bytes_eq(&b, close1, sizeof close1));
    static const uint8_t close0[] = {0x88, 0x00};
    kiln_buf_clear(&b);
    CHECK_OK(kiln_ws_frame_close(&b, 0, NULL));
    CHECK(bytes_eq(&b, close0, sizeof close0));
    /* a long reason of 2-byte characters is cut at a character boundary */
    char reason[401] = {0};
    for (int i = 0; i < 200; i++) memcpy(reason + 2 * i, "\xc3\xa9", 2);
    kiln_buf_clear(&b);
    CHECK_OK(kiln_ws_frame_close(&b, 1009, reason));
    CHECK(b.len == 2 + 2 + 122 && (uint8_t)b.data[1] == 124);
    kiln_buf_clear(&b);
    CHECK(kiln_ws_frame_close(&b, 1005, NULL) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_ws_frame_close(&b, 999, "x") == KILN_ERR_INVALID_ARG);
    CHECK(kiln_ws_frame_close(&b, 0, "x") == KILN_ERR_INVALID_ARG);
    CHECK_OK(kiln_ws_frame_close(&b, 4000, "app"));

    /* control frames must be final and short; opcodes must be known */
    char c126[126] = {0};
    kiln_buf_clear(&b);
    CHECK(kiln_ws_frame(&b, KILN_WS_OP_PING, c126, 126, true) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_ws_frame(&b, KILN_WS_OP_PONG, "x", 1, false) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_ws_frame(&b, 3, "x", 1, true) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_ws_frame(&b, 16, "x", 1, true) == KILN_ERR_INVALID_ARG);
    CHECK(b.len == 0);
    kiln_buf_free(&b);
}

/* ---- decoding ------------------------------------------------------------------ */

static void test_decode_rfc(void) {
    kiln_buf in = {0};
    /* §5.7: a single-frame masked text message */
    static const uint8_t masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    kiln_buf_append(&in, masked_hello, sizeof masked_hello);
    result r = decode_both(&in, 0, 0);
    CHECK_OK(r.st);
    CHECK(strcmp(logstr(&r), "T5:Hello|") == 0);
    kiln_buf_free(&r.r.log);

    /* §5.7: masked pong "Hello" */
    kiln_buf_clear(&in);
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    kiln_buf_append(&in, pong, sizeof pong);
    r = decode_both(&in, 0, 0);
    CHECK(r.st == KILN_OK && strcmp(logstr(&r), "Q5:Hello|") == 0);
    kiln_buf_free(&r.r.log);

    /* fragmented "Hel" + "lo", with a ping between the fragments (§5.4) */
    kiln_buf_clear(&in);
    cf(&in, KILN_WS_OP_TEXT, false, "Hel");
    cf(&in, KILN_WS_OP_PING, true, "p");
    cf(&in, KILN_WS_OP_CONTINUATION, true, "lo");
    r = decode_both(&in, 0, 0);
    CHECK(r.st == KILN_OK && strcmp(logstr(&r), "P1:p|T5:Hello|") == 0);
    kiln_buf_free(&r.r.log);

    /* three fragments, an empty one in the middle, binary, then empty messages */
    kiln_buf_clear(&in);
    client_frame(&in, KILN_WS_OP_BINARY, false, 0, "a\0", 2, MASK, 0);
    client_frame(&in, KILN_WS_OP_CONTINUATION, false, 0, "", 0, MASK, 0);
    client_frame(&in, KILN_WS_OP_CONTINUATION, true, 0, "b", 1, MASK, 0);
    cf(&in, KILN_WS_OP_TEXT, true, "");
    cf(&in, KILN_WS_OP_PING, true, "");
    r = decode_both(&in, 0, 0);
    CHECK(r.st == KILN_OK && r.r.n == 3 && r.r.log.len == strlen("B3:a_b|T0:|P0:|") &&
          memcmp(r.r.log.data, "B3:a\0b|T0:|P0:|", r.r.log.len) == 0);
    kiln_buf_free(&r.r.log);

    /* 126-byte and 65536-byte payloads (16- and 64-bit lengths), and a 5-byte payload
     * in the (non-minimal) 64-bit form */
    size_t sizes[] = {126, 65535, 65536, 70000};
    for (size_t k = 0; k < 4; k++) {
        size_t n = sizes[k];
        char *p = malloc(n);
        for (size_t i = 0; i < n; i++) p[i] = (char)('a' + i % 26);
        kiln_buf_clear(&in);
        client_frame(&in, KILN_WS_OP_TEXT, true, 0, p, n, MASK, 0);
        client_frame(&in, KILN_WS_OP_BINARY, true, 0, "12345", 5, MASK, 64);
        r = decode_both(&in, 0, 0);
        char head[32];
        int hl = snprintf(head, sizeof head, "T%zu:", n);
        CHECK(r.st == KILN_OK && r.r.n == 2 && r.r.log.len == (size_t)hl + n + 1 + 9 &&
              memcmp(r.r.log.data, head, (size_t)hl) == 0 && memcmp(r.r.log.data + hl, p, n) == 0 &&
              memcmp(r.r.log.data + hl + n, "|B5:12345|", 10) == 0);
        kiln_buf_free(&r.r.log);
        free(p);
    }

    /* close: with code and reason, then further bytes are ignored */
    kiln_buf_clear(&in);
    uint8_t cl[] = {0x03, 0xE8, 'b', 'y', 'e'};
    client_frame(&in, KILN_WS_OP_CLOSE, true, 0, cl, sizeof cl, MASK, 0);
    cf(&in, KILN_WS_OP_TEXT, true, "after");
    kiln_buf_append(&in, "\xff\xff garbage", 10);
    r = decode_both(&in, 0, 0);
    CHECK(r.st == KILN_OK && r.r.close_code == 1000 && strcmp(logstr(&r), "C1000,3:bye|") == 0);
    kiln_buf_free(&r.r.log);
    /* an empty close reports 1005 */
    kiln_buf_clear(&in);
    cf(&in, KILN_WS_OP_CLOSE, true, "");
    r = decode_both(&in, 0, 0);
    CHECK(r.st == KILN_OK && strcmp(logstr(&r), "C1005,0:|") == 0);
    kiln_buf_free(&r.r.log);

    /* valid UTF-8 split across fragments and across feed boundaries */
    kiln_buf_clear(&in);
    cf(&in, KILN_WS_OP_TEXT, false, "\xe2\x82");
    cf(&in, KILN_WS_OP_CONTINUATION, false, "\xac \xf0\x9f");
    cf(&in, KILN_WS_OP_CONTINUATION, true, "\x98\x80");
    r = decode_both(&in, 0, 0);
    CHECK(r.st == KILN_OK && strcmp(logstr(&r), "T8:\xe2\x82\xac \xf0\x9f\x98\x80|") == 0);
    kiln_buf_free(&r.r.log);

    /* a negotiated RSV1 passes, is reported, and skips the UTF-8 check */
    kiln_buf_clear(&in);
    client_frame(&in, KILN_WS_OP_TEXT, true, 4, "\xff", 1, MASK, 0);
    r = decode_both(&in, 0, 4);
    CHECK(r.st == KILN_OK && r.r.n == 1 && r.r.rsv == 4);
    kiln_buf_free(&r.r.log);

    /* exactly the maximum size is fine */
    kiln_buf_clear(&in);
    cf(&in, KILN_WS_OP_TEXT, false, "12345");
    cf(&in, KILN_WS_OP_CONTINUATION, true, "67890");
    r = decode_both(&in, 10, 0);
    CHECK(r.st == KILN_OK && strcmp(logstr(&r), "T10:1234567890|") == 0);
    kiln_buf_free(&r.r.log);
    kiln_buf_free(&in);
}

static void test_decode_errors(void) {
    kiln_buf in = {0};
#define CASE(what, max, code, ...)              \
    do {                                        \
        kiln_buf_clear(&in);                    \
        __VA_ARGS__;                            \
        expect_error(what, &in, max, code);     \
    } while (0)

    CASE("unmasked text", 0, 1002, client_frame(&in, KILN_WS_OP_TEXT, true, 0, "Hello", 5, NULL, 0));
    CASE("unmasked ping", 0, 1002, client_frame(&in, KILN_WS_OP_PING, true, 0, "", 0, NULL, 0));
    CASE("ping of 126 bytes", 0, 1002, {
        char p[126] = {0};
        client_frame(&in, KILN_WS_OP_PING, true, 0, p, 126, MASK, 0);
    });
    CASE("close with a 16-bit length", 0, 1002, client_frame(&in, KILN_WS_OP_CLOSE, true, 0, "ab", 2, MASK, 16));
    CASE("fragmented ping", 0, 1002, cf(&in, KILN_WS_OP_PING, false, "x"));
    CASE("fragmented close", 0, 1002, cf(&in, KILN_WS_OP_CLOSE, false, ""));
    CASE("continuation first", 0, 1002, cf(&in, KILN_WS_OP_CONTINUATION, true, "x"));
    CASE("continuation after a final frame", 0, 1002, {
        cf(&in, KILN_WS_OP_TEXT, true, "a");
        cf(&in, KILN_WS_OP_CONTINUATION, true, "b");
    });
    CASE("text inside a fragmented message", 0, 1002, {
        cf(&in, KILN_WS_OP_TEXT, false, "a");
        cf(&in, KILN_WS_OP_TEXT, true, "b");
    });
    CASE("binary inside a fragmented message", 0, 1002, {
        cf(&in, KILN_WS_OP_BINARY, false, "a");
        cf(&in, KILN_WS_OP_BINARY, true, "b");
    });
    for (unsigned rsv = 1; rsv < 8; rsv++)
        CASE("reserved bits", 0, 1002, client_frame(&in, KILN_WS_OP_TEXT, true, rsv, "a", 1, MASK, 0));
    CASE("reserved bit on a ping", 0, 1002, client_frame(&in, KILN_WS_OP_PING, true, 2, "", 0, MASK, 0));
    for (int op = 3; op < 16; op++) {
        if (op >= 8 && op <= 10) continue;
        CASE("unknown opcode", 0, 1002, cf(&in, op, true, ""));
    }
    CASE("64-bit length with the top bit", 0, 1002, {
        static const uint8_t h[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
        kiln_buf_append(&in, h, sizeof h);
    });
    CASE("huge 64-bit length", 0, 1009, {
        static const uint8_t h[] = {0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4};
        kiln_buf_append(&in, h, sizeof h);
    });
    CASE("too big, one frame", 10, 1009, cf(&in, KILN_WS_OP_TEXT, true, "12345678901"));
    CASE("too big, fragments", 10, 1009, {
        cf(&in, KILN_WS_OP_BINARY, false, "123456");
        cf(&in, KILN_WS_OP_CONTINUATION, true, "789012");
    });
    CASE("overlong NUL", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "a\xc0\x80"));
    CASE("overlong 3-byte", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "\xe0\x80\xaf"));
    CASE("surrogate", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "\xed\xa0\x80"));
    CASE("above U+10FFFF", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "\xf4\x90\x80\x80"));
    CASE("invalid byte", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "ok\xff"));
    CASE("lone continuation", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "\x80"));
    CASE("truncated at the end", 0, 1007, cf(&in, KILN_WS_OP_TEXT, true, "\xe2\x82"));
    CASE("truncated across fragments", 0, 1007, {
        cf(&in, KILN_WS_OP_TEXT, false, "\xe2\x82");
        cf(&in, KILN_WS_OP_CONTINUATION, true, "a");
    });
    CASE("invalid in a later fragment", 0, 1007, {
        cf(&in, KILN_WS_OP_TEXT, false, "fine");
        cf(&in, KILN_WS_OP_CONTINUATION, false, "\xfe");
    });
    CASE("close with 1 byte", 0, 1002, cf(&in, KILN_WS_OP_CLOSE, true, "\x03"));
    int bad_codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535};
    for (size_t k = 0; k < sizeof bad_codes / sizeof bad_codes[0]; k++)
        CASE("invalid close code", 0, 1002, {
            uint8_t p[2] = {(uint8_t)(bad_codes[k] >> 8), (uint8_t)bad_codes[k]};
            client_frame(&in, KILN_WS_OP_CLOSE, true, 0, p, 2, MASK, 0);
        });
    CASE("close reason not UTF-8", 0, 1007, {
        uint8_t p[] = {0x03, 0xE8, 0xff};
        client_frame(&in, KILN_WS_OP_CLOSE, true, 0, p, 3, MASK, 0);
    });
#undef CASE

    /* events before the error are delivered; the decoder stays failed */
    kiln_buf_clear(&in);
    cf(&in, KILN_WS_OP_TEXT, true, "ok");
    client_frame(&in, KILN_WS_OP_TEXT, true, 0, "no", 2, NULL, 0);
    kiln_ws_decoder *d = NULL;
    CHECK_OK(kiln_ws_decoder_create(0, 0, &d));
    recorder rec = {0};
    CHECK(kiln_ws_decoder_feed(d, in.data, in.len, record, &rec) == KILN_ERR_FORMAT);
    CHECK(strstr(kiln_last_error(), "masked") != NULL);
    const char *msg = NULL;
    CHECK(kiln_ws_decoder_error(d, &msg) == 1002 && strstr(msg, "masked"));
    CHECK(rec.n == 1 && strcmp(rec.log.data, "T2:ok|") == 0);
    kiln_buf_clear(&in);
    cf(&in, KILN_WS_OP_TEXT, true, "more");
    CHECK(kiln_ws_decoder_feed(d, in.data, in.len, record, &rec) == KILN_ERR_FORMAT && rec.n == 1);
    CHECK(!kiln_ws_decoder_closed(d));
    kiln_ws_decoder_free(d);
    kiln_buf_free(&rec.log);
    CHECK(kiln_ws_decoder_create(0, 8, &d) == KILN_ERR_INVALID_ARG && d == NULL);
    kiln_buf_free(&in);
}

/* Random bytes, and random mutations of valid streams, in random chunks: no crash,
 * no leak (run under ASan), same outcome whatever the chunking. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static void test_garbage(void) {
    kiln_buf in = {0};
    for (int iter = 0; iter < 3000; iter++) {
        kiln_buf_clear(&in);
        if (iter % 2) {
            size_t n = rnd() % 300;
            for (size_t i = 0; i < n; i++) {
                uint8_t c = (uint8_t)rnd();
                kiln_buf_append(&in, &c, 1);
            }
        } else {
            /* valid-looking frames, then a few flipped bytes */
            int nf = 1 + (int)(rnd() % 4);
            for (int f = 0; f < nf; f++) {
                char p[200];
                size_t n = rnd() % sizeof p;
                for (size_t i = 0; i < n; i++) p[i] = (char)(rnd() % 128);
                static const int ops[] = {1, 2, 0, 9, 10, 8};
                int op = ops[rnd() % 6];
                if (op & 8 && n > 125) n = 125;
                uint8_t m[4] = {(uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd(), (uint8_t)rnd()};
                client_frame(&in, op, rnd() % 3 != 0, 0, p, n, m, 0);
            }
            for (int k = (int)(rnd() % 4); k > 0 && in.len; k--) in.data[rnd() % in.len] = (char)rnd();
        }
        size_t max = (rnd() % 2) ? 64 : 0;
        result a = decode(&in, 0, max, rnd() % 8);
        kiln_buf_free(&a.r.log);
        result b = decode(&in, 1 + rnd() % 5, max, 0);
        result c = decode(&in, 0, max, 0);
        kiln_test_checks++;
        if (b.st != c.st || b.error != c.error || strcmp(logstr(&b), logstr(&c)) != 0) {
            kiln_test_failures++;
            fprintf(stderr, "garbage iteration %d: chunked and whole decoding differ\n", iter);
        }
        kiln_buf_free(&b.r.log);
        kiln_buf_free(&c.r.log);
    }
    kiln_buf_free(&in);
}

int main(void) {
    test_handshake();
    test_encode();
    test_decode_rfc();
    test_decode_errors();
    test_garbage();
    TEST_MAIN_END();
}
