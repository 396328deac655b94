/*
 * ws.h — the WebSocket protocol (RFC 6455), server side, without any transport.
 *
 * The HTTP server owns the sockets; this module holds the pieces of the protocol
 * that are pure byte work, so they can be tested on their own and reused by any
 * transport:
 *   - the opening handshake: validating the client's headers and computing
 *     Sec-WebSocket-Accept (RFC 6455 §4.2);
 *   - frame encoding, server → client (never masked, §5.2);
 *   - an incremental decoder for client → server bytes, fed arbitrary chunks, that
 *     reassembles fragmented messages and enforces the RFC's rules; on a violation it
 *     says which close code to send (§7.4.1).
 * It does not depend on libmicrohttpd.
 */
#ifndef KILN_SERVER_WS_H
#define KILN_SERVER_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/* Opcodes (§5.2). */
enum {
    KILN_WS_OP_CONTINUATION = 0x0,
    KILN_WS_OP_TEXT = 0x1,
    KILN_WS_OP_BINARY = 0x2,
    KILN_WS_OP_CLOSE = 0x8,
    KILN_WS_OP_PING = 0x9,
    KILN_WS_OP_PONG = 0xA,
};

/* Close codes (§7.4.1). */
enum {
    KILN_WS_CLOSE_NORMAL = 1000,
    KILN_WS_CLOSE_GOING_AWAY = 1001,
    KILN_WS_CLOSE_PROTOCOL = 1002,
    KILN_WS_CLOSE_UNSUPPORTED = 1003,
    KILN_WS_CLOSE_NO_STATUS = 1005, /* reported, never sent: the close frame had no code */
    KILN_WS_CLOSE_ABNORMAL = 1006,  /* reported, never sent: connection dropped */
    KILN_WS_CLOSE_INVALID_DATA = 1007,
    KILN_WS_CLOSE_POLICY = 1008,
    KILN_WS_CLOSE_TOO_BIG = 1009,
    KILN_WS_CLOSE_INTERNAL = 1011,
};

/* The GUID appended to the client key before hashing (§1.3). */
#define KILN_WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- handshake --------------------------------------------------------------- */

/* Writes Sec-WebSocket-Accept for client_key (spaces/tabs around it are ignored):
 * base64(SHA-1(key + GUID)), 28 characters and a NUL. This function can't fail. */
void kiln_ws_accept_key(const char *client_key, char out[29]);

/* Decides whether a request's headers make a valid WebSocket upgrade (§4.2.1). Each
 * argument is the header's value, or NULL when the header is absent:
 *   upgrade     must list the token "websocket" (case-insensitive);
 *   connection  must list the token "Upgrade" (e.g. "keep-alive, Upgrade");
 *   version     must be 13;
 *   key         must be the base64 encoding of 16 bytes.
 * The caller checks the method is GET. Returns true if valid; otherwise *why (if not
 * NULL) gets a static message and *http_status (if not NULL) the response status to
 * send: 426 for a bad version (send "Sec-WebSocket-Version: 13" with it), 400 else. */
bool kiln_ws_handshake_ok(const char *upgrade, const char *connection, const char *version,
                          const char *key, const char **why, int *http_status);

/* ---- frame encoding (server → client) ------------------------------------------ */

/* Appends one unmasked frame with the given opcode, payload and FIN bit to out,
 * choosing the 7-, 16- or 64-bit length form. Control frames (close, ping, pong)
 * must have fin set and at most 125 bytes. KILN_ERR_INVALID_ARG on a bad opcode or
 * control frame, KILN_ERR_NOMEM if out cannot grow (out is then unchanged). */
kiln_status kiln_ws_frame(kiln_buf *out, int opcode, const void *payload, size_t len, bool fin);

/* Appends a whole text message (one frame). The caller guarantees text is UTF-8. */
kiln_status kiln_ws_frame_text(kiln_buf *out, const char *text, size_t len);

/* Appends a close frame with code and reason (NULL for none). code 0 sends an empty
 * close payload. A reason longer than 123 bytes is cut at a UTF-8 character
 * boundary so the payload fits in 125 bytes. KILN_ERR_INVALID_ARG if code is not one
 * an endpoint may send (1000-1003, 1007-1014, 3000-4999). */
kiln_status kiln_ws_frame_close(kiln_buf *out, int code, const char *reason);

/* ---- decoding (client → server) ------------------------------------------------ */

typedef enum {
    KILN_WS_EV_TEXT,   /* a complete text message (valid UTF-8) */
    KILN_WS_EV_BINARY, /* a complete binary message */
    KILN_WS_EV_PING,   /* reply with a pong carrying the same payload */
    KILN_WS_EV_PONG,
    KILN_WS_EV_CLOSE, /* the peer closes: echo a close frame, then close the socket */
} kiln_ws_event_type;

typedef struct {
    kiln_ws_event_type type;
    /* The payload (message, ping/pong data, or the close reason), followed by a NUL
     * that is not counted in len. Owned by the decoder; valid only during the
     * callback. */
    const char *data;
    size_t len;
    int close_code; /* KILN_WS_EV_CLOSE only: the code, or 1005 if the frame had none */
    unsigned rsv;   /* RSV1-3 bits (0x4/0x2/0x1) of the message's first frame; nonzero
                       only for bits allowed at creation (a negotiated extension) */
} kiln_ws_event;

/* Called once per complete event, in wire order. */
typedef void (*kiln_ws_event_fn)(void *user, const kiln_ws_event *ev);

typedef struct kiln_ws_decoder kiln_ws_decoder;

/* Creates a decoder. max_message bounds the size of a reassembled data message (0:
 * 16 MiB); larger messages fail with close code 1009 as soon as a frame header
 * announces the excess. allowed_rsv is the mask of RSV bits (0x4 = RSV1, 0x2 = RSV2,
 * 0x1 = RSV3) that a negotiated extension permits (0 without extensions); text
 * messages carrying such a bit are not checked for UTF-8 (the extension transforms
 * them). On success *out owns the decoder; free it with kiln_ws_decoder_free. */
kiln_status kiln_ws_decoder_create(size_t max_message, unsigned allowed_rsv, kiln_ws_decoder **out);
void kiln_ws_decoder_free(kiln_ws_decoder *d);

/* Feeds len bytes received from the client (any split of the stream is fine) and
 * calls cb for every event they complete. After a close event, further bytes are
 * ignored (§5.5.1). On a protocol violation returns KILN_ERR_FORMAT with a message
 * (kiln_last_error) and the decoder stays failed: kiln_ws_decoder_error then gives
 * the close code to send before closing the connection. KILN_ERR_NOMEM if a message
 * buffer cannot grow. */
kiln_status kiln_ws_decoder_feed(kiln_ws_decoder *d, const void *data, size_t len,
                                 kiln_ws_event_fn cb, void *user);

/* 0 while the decoder has not failed; otherwise the close code to send (1002 protocol
 * error, 1007 invalid UTF-8, 1009 too big, 1011 out of memory) and, if msg is not
 * NULL, the reason (owned by the decoder). */
int kiln_ws_decoder_error(const kiln_ws_decoder *d, const char **msg);

/* Whether a close frame has been received (further input is ignored). */
bool kiln_ws_decoder_closed(const kiln_ws_decoder *d);

#endif
