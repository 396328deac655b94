/*
 * test_sse.c — server-sent event formatting: fields, line splitting on every line
 * ending, injection refused, comments.
 */
#include "server/sse.h"
#include "test.h"

/* Formats one event and compares with want. */
static void expect(const char *event, const char *id, const char *data, size_t len, const char *want) {
    kiln_buf b = {0};
    CHECK_OK(kiln_sse_event(&b, event, id, data, len));
    CHECK_MSG(b.data && strcmp(b.data, want) == 0, "got [%s] want [%s]", b.data ? b.data : "", want);
    kiln_buf_free(&b);
}

#define EXPECT(ev, id, data, want) expect(ev, id, data, strlen(data), want)

int main(void) {
    EXPECT(NULL, NULL, "hello", "data: hello\n\n");
    EXPECT("token", "7", "hi", "event: token\nid: 7\ndata: hi\n\n");
    EXPECT("done", NULL, "[DONE]", "event: done\ndata: [DONE]\n\n");
    EXPECT(NULL, "", "x", "id: \ndata: x\n\n"); /* an empty id resets the client's last id */
    /* each kind of line ending starts a new data line; CRLF counts once */
    EXPECT(NULL, NULL, "a\nb", "data: a\ndata: b\n\n");
    EXPECT(NULL, NULL, "a\r\nb", "data: a\ndata: b\n\n");
    EXPECT(NULL, NULL, "a\rb", "data: a\ndata: b\n\n");
    EXPECT(NULL, NULL, "a\n\rb", "data: a\ndata: \ndata: b\n\n");
    EXPECT(NULL, NULL, "a\r\r\nb", "data: a\ndata: \ndata: b\n\n");
    EXPECT(NULL, NULL, "a\n\nb", "data: a\ndata: \ndata: b\n\n");
    /* a trailing line break survives the client's removal of the last "\n" */
    EXPECT(NULL, NULL, "a\n", "data: a\ndata: \n\n");
    EXPECT(NULL, NULL, "\n", "data: \ndata: \n\n");
    EXPECT(NULL, NULL, "a\r", "data: a\ndata: \n\n");
    /* empty data still dispatches an event */
    EXPECT(NULL, NULL, "", "data: \n\n");
    expect("ping", NULL, NULL, 0, "event: ping\ndata: \n\n");
    /* a leading space is kept (the client strips only the one after the colon) */
    EXPECT(NULL, NULL, " x", "data:  x\n\n");
    /* embedded NUL and JSON pass through */
    {
        kiln_buf b = {0};
        CHECK_OK(kiln_sse_event(&b, NULL, NULL, "a\0b", 3));
        CHECK(b.len == 11 && memcmp(b.data, "data: a\0b\n\n", 11) == 0);
        kiln_buf_free(&b);
    }
    EXPECT(NULL, NULL, "{\"choices\":[{\"delta\":{\"content\":\"x\"}}]}",
           "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n");

    /* events append */
    kiln_buf b = {0};
    CHECK_OK(kiln_sse_event(&b, NULL, NULL, "1", 1));
    CHECK_OK(kiln_sse_event(&b, "e", NULL, "2", 1));
    CHECK(strcmp(b.data, "data: 1\n\nevent: e\ndata: 2\n\n") == 0);

    /* injection through the event name or id is refused and leaves out unchanged */
    size_t before = b.len;
    CHECK(kiln_sse_event(&b, "a\ndata: evil", NULL, "x", 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_sse_event(&b, "a\r", NULL, "x", 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_sse_event(&b, NULL, "1\n", "x", 1) == KILN_ERR_INVALID_ARG);
    CHECK(kiln_sse_event(&b, NULL, NULL, NULL, 3) == KILN_ERR_INVALID_ARG);
    CHECK(b.len == before && strcmp(b.data, "data: 1\n\nevent: e\ndata: 2\n\n") == 0);

    /* comments and retry */
    kiln_buf_clear(&b);
    CHECK_OK(kiln_sse_comment(&b, "ping"));
    CHECK(strcmp(b.data, ": ping\n\n") == 0);
    kiln_buf_clear(&b);
    CHECK_OK(kiln_sse_comment(&b, "two\nlines"));
    CHECK(strcmp(b.data, ": two\n: lines\n\n") == 0);
    kiln_buf_clear(&b);
    CHECK_OK(kiln_sse_comment(&b, ""));
    CHECK(strcmp(b.data, ": \n\n") == 0);
    kiln_buf_clear(&b);
    CHECK_OK(kiln_sse_retry(&b, 3000));
    CHECK(strcmp(b.data, "retry: 3000\n\n") == 0);
    kiln_buf_free(&b);
    TEST_MAIN_END();
}
