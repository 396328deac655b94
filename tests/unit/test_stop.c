/*
 * test_stop.c — stop strings across streamed chunks.
 */
#include "pipelines/stop.h"
#include "test.h"

/* Feeds chunks; returns whether a stop hit, with the emitted text in out. */
static bool feed_all(const char *const *stops, const char *const *chunks, char *out, size_t cap) {
    kiln_stop *s = NULL;
    kiln_buf b = {0};
    bool hit = false;
    if (kiln_stop_create(stops, &s)) return false;
    for (int i = 0; chunks[i] && !hit; i++) hit = kiln_stop_feed(s, chunks[i], strlen(chunks[i]), &b);
    if (!hit) kiln_stop_flush(s, &b);
    snprintf(out, cap, "%s", b.data ? b.data : "");
    kiln_buf_free(&b);
    kiln_stop_free(s);
    return hit;
}

int main(void) {
    char out[256];
    const char *const user[] = {"\n\nUser:", NULL};
    const char *const c1[] = {"Hello.\n", "\nUs", "er: hi", NULL};
    CHECK(feed_all(user, c1, out, sizeof out) && strcmp(out, "Hello.") == 0);

    /* a prefix that turns out not to be a stop string is emitted */
    const char *const c2[] = {"a\n\nUs", "ually fine", NULL};
    CHECK(!feed_all(user, c2, out, sizeof out) && strcmp(out, "a\n\nUsually fine") == 0);

    /* held-back text comes out at flush */
    const char *const c3[] = {"end\n\nUse", NULL};
    CHECK(!feed_all(user, c3, out, sizeof out) && strcmp(out, "end\n\nUse") == 0);

    /* several stop strings, overlapping prefixes: the earliest complete one wins */
    const char *const two[] = {"abc", "ab", NULL};
    const char *const c4[] = {"xa", "bc", NULL};
    CHECK(feed_all(two, c4, out, sizeof out) && strcmp(out, "x") == 0);
    const char *const c5[] = {"xyz", NULL};
    CHECK(!feed_all(two, c5, out, sizeof out) && strcmp(out, "xyz") == 0);

    /* only the possible prefix is held back: text before it is released at once */
    kiln_stop *s = NULL;
    kiln_buf b = {0};
    CHECK_OK(kiln_stop_create(user, &s));
    if (s) {
        CHECK(!kiln_stop_feed(s, "one two\n", 8, &b));
        CHECK(b.len == 7 && memcmp(b.data, "one two", 7) == 0);
        kiln_stop_free(s);
    }
    kiln_buf_free(&b);

    /* UTF-8 stop strings and text */
    const char *const eu[] = {"€", NULL};
    const char *const c6[] = {"prix: 5\xe2\x82", "\xac ok", NULL};
    CHECK(feed_all(eu, c6, out, sizeof out) && strcmp(out, "prix: 5") == 0);

    /* no stop strings: everything passes */
    const char *const c7[] = {"a", "b", NULL};
    CHECK(!feed_all(NULL, c7, out, sizeof out) && strcmp(out, "ab") == 0);

    /* empty stop strings are refused */
    const char *const bad[] = {"", NULL};
    CHECK(kiln_stop_create(bad, &s) == KILN_ERR_INVALID_ARG);
    TEST_MAIN_END();
}
