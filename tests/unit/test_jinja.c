/*
 * test_jinja.c — the chat-template Jinja interpreter, feature by feature, against
 * outputs of python jinja2 configured as transformers configures it (the expected
 * strings were produced by /usr/bin/python3's jinja2 and checked by hand), and hostile
 * templates: syntax errors name their line, runaway nesting, recursion, loops, output
 * and memory end in errors, never in a crash or a hang.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/chat_template.h"
#include "test.h"

static const char *k_ctx = "{\"messages\": [{\"role\": \"system\", \"content\": \" Sys \"}, {\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\", \"tool_calls\": [{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [1, 2.5, null, true]}}}]}], \"d\": {\"b\": 2, \"a\": 1, \"items\": \"x\"}, \"s\": \"Hello, World\", \"n\": 7, \"f\": 2.5, \"l\": [3, 1, 2], \"e\": [], \"t\": true, \"z\": null, \"u8\": \"\\u65e5\\u672c\\u8a9e\\u00fc\"}";

static const struct {
    const char *name, *src, *want;
} k_cases[] = {
    {"text only",
     "plain text",
     "plain text"},
    {"output",
     "{{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ z }}|{{ undefined_x }}|",
     "Hello, World|7|2.5|True|None||"},
    {"comment+ws",
     "a {# c #} b\n  {%- if t %} X {% endif -%}  \n c",
     "a  b X c"},
    {"trim_blocks",
     "{% if t %}\nyes\n{% endif %}\nafter",
     "yes\nafter"},
    {"lstrip_blocks",
     "  {% if t %}\n  in\n  {% endif %}\nend",
     "  in\nend"},
    {"plus marker",
     "  {%+ if t %}x{% endif +%}\ny",
     "  x\ny"},
    {"arith",
     "{{ 1 + 2 * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 10 / 4 }} {{ 1e20 }} {{ 0.1 + 0.2 }}",
     "7 3 -4 1 2 3.5 1024 2.5 2.5 1e+20 0.30000000000000004"},
    {"concat",
     "{{ 'a' ~ 1 ~ none ~ true ~ undefined_x }}|{{ 'x' + 'y' }}|{{ [1] + [2] }}|{{ 'ab' * 3 }}",
     "a1NoneTrue|xy|[1, 2]|ababab"},
    {"compare",
     "{{ 1 < 2 < 3 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'a' }} {{ 2 in l }} {{ 5 not in l }} {{ 'ell' in s }} {{ 'a' in d }}",
     "True True True False True True True True"},
    {"logic",
     "{{ t and 'yes' }} {{ z or 'dflt' }} {{ not t }} {{ 0 or '' or 'last' }} {{ 'a' if n > 5 else 'b' }} {{ 'a' if false }}|",
     "yes dflt False last a |"},
    {"tests",
     "{{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ n is number }} {{ z is none }} {{ q is defined }} {{ q is undefined }} {{ n is divisibleby 7 }} {{ n is odd }} {{ s is not string }} {{ l is sequence }} {{ d.b is equalto 2 }}",
     "True True True True True False True True True False True True"},
    {"subscript",
     "{{ l[0] }} {{ l[-1] }} {{ d['b'] }} {{ d.a }} {{ messages[1].content }} {{ s[0] }} {{ l[10] }}|{{ d.missing }}|",
     "3 2 2 1 Hi H ||"},
    {"slices",
     "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ s[::-1] }} {{ s[7:] }} {{ u8[1:] }} {{ u8[::-1] }} {{ l[::2] }}",
     "[1, 2] [3, 1] [2, 1, 3] dlroW ,olleH World \346\234\254\350\252\236\303\274 \303\274\350\252\236\346\234\254\346\227\245 [3, 2]"},
    {"literals",
     "{{ [1, 'a', none, true, 1.5, {'k': \"it's\"}] }} {{ (1, 2) }} {{ (1,) }} {{ {'a': [1, 2]} }} {{ \"q\\\"x\\n\" }}",
     "[1, 'a', None, True, 1.5, {'k': \"it's\"}] (1, 2) (1,) {'a': [1, 2]} q\"x\n"},
    {"for loop vars",
     "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}:{{ x }};{% endfor %}",
     "1032TrueFalse3:3;2121FalseFalse3:1;3210FalseTrue3:2;"},
    {"for prev/next/cycle",
     "{% for x in l %}[{{ loop.previtem }}|{{ loop.nextitem }}|{{ loop.cycle('a','b') }}]{% endfor %}",
     "[|1|a][3|2|b][1||a]"},
    {"for else",
     "{% for x in e %}x{% else %}empty{% endfor %}{% for x in undefined_x %}x{% else %}E2{% endfor %}",
     "emptyE2"},
    {"for if filter",
     "{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{{ loop.last }} {% endfor %}",
     "32False 22True "},
    {"for unpack",
     "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}",
     "b=2;a=1;items=x;baitems37"},
    {"for dict items filter",
     "{% for k, v in d|items %}{{ k }}:{{ v }},{% endfor %}",
     "b:2,a:1,items:x,"},
    {"break continue",
     "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}",
     "0134"},
    {"loop scope",
     "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = i * 10 %}{{ x }};{% endfor %}{{ x }}",
     "110;120;1"},
    {"if elif else",
     "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}other{% endif %} {% endfor %}",
     "one two other "},
    {"set and namespace",
     "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set ns = namespace(c=0, s='') %}{% for x in l %}{% set ns.c = ns.c + x %}{% endfor %}{{ ns.c }}",
     "126"},
    {"block set",
     "{% set blk %}\n  inner {{ n }}\n{% endset %}[{{ blk }}]{% set b2 | trim | upper %}  xy  {% endset %}[{{ b2 }}]",
     "[  inner 7\n][XY]"},
    {"filter block",
     "{% filter upper %}abc {{ s }}{% endfilter %}",
     "ABC HELLO, WORLD"},
    {"macro",
     "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }} {{ greet() }}",
     "Hi Bob! Hi Al? Hi !"},
    {"macro recursion",
     "{% macro fact(k) %}{% if k <= 1 %}1{% else %}{{ k * fact(k - 1)|int }}{% endif %}{% endmacro %}{{ fact(5) }}",
     "120"},
    {"macro sees outer",
     "{% set ns = namespace(v=1) %}{% macro bump() %}{% set ns.v = ns.v + 1 %}{% endmacro %}{{ bump() }}{{ bump() }}{{ ns.v }}",
     "3"},
    {"string filters",
     "{{ '  x y  '|trim }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello world'|capitalize }}|{{ 'hello big-world'|title }}|{{ s|replace('l', 'L') }}|{{ s|length }}|{{ u8|length }}|{{ 'xxaxx'|trim('x') }}",
     "x y|HELLO, WORLD|hello, world|Hello world|Hello Big-World|HeLLo, WorLd|12|4|a"},
    {"list filters",
     "{{ l|first }} {{ l|last }} {{ l|length }} {{ l|join(', ') }} {{ l|sort }} {{ l|sort(reverse=true) }} {{ ['b', 'A', 'a']|unique|list }} {{ l|reverse|list }} {{ 'abc'|list }} {{ d|list }} {{ e|first }}|",
     "3 2 3 3, 1, 2 [1, 2, 3] [3, 2, 1] ['b', 'A'] [2, 1, 3] ['a', 'b', 'c'] ['b', 'a', 'items'] |"},
    {"default",
     "{{ q|default('d') }} {{ z|default('d') }} {{ ''|default('d', true) }} {{ q|d('x') }} {{ n|default(1) }}",
     "d None d x 7"},
    {"numbers",
     "{{ '42'|int }} {{ 'x'|int }} {{ 3.9|int }} {{ '2.5'|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ n|string }} {{ 1.0|int }}",
     "42 0 3 2.5 3 2.57 2.0 7 1"},
    {"tojson",
     "{{ messages[2].tool_calls[0].function.arguments|tojson }}|{{ d|tojson(indent=2) }}|{{ '\303\274\"\\n'|tojson }}|{{ [1, [], {}]|tojson(indent=2) }}|{{ d|tojson(sort_keys=true) }}|{{ d|tojson(separators=(',', ':')) }}",
     "{\"a\": 1, \"b\": [1, 2.5, null, true]}|{\n  \"b\": 2,\n  \"a\": 1,\n  \"items\": \"x\"\n}|\"\303\274\\\"\\n\"|[\n  1,\n  [],\n  {}\n]|{\"a\": 1, \"b\": 2, \"items\": \"x\"}|{\"b\":2,\"a\":1,\"items\":\"x\"}"},
    {"indent",
     "{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(4, first=true) }}|{{ 'x\n'|indent(2, true, true) }}|",
     "a\n  b\n\n  c|    a\n    b|  x\n  |"},
    {"map select",
     "{{ messages|map(attribute='role')|join(',') }} {{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|list }} {{ [1, 0, 2]|select|list }} {{ ['a', 'b']|reject('equalto', 'a')|list }} {{ ['a', 'b']|map('upper')|list }}",
     "system,user,assistant 1 ['system', 'assistant'] [1, 2] ['b'] ['A', 'B']"},
    {"str methods",
     "{{ s.strip() }}|{{ '  a  '.lstrip() }}|{{ '  a  '.rstrip() }}|{{ s.split(', ') }}|{{ ' a  b '.split() }}|{{ s.startswith('He') }}|{{ s.endswith(('x', 'ld')) }}|{{ s.upper() }}|{{ s.lower() }}|{{ s.replace('o', '0') }}|{{ 'ab cd'.title() }}|{{ s.find('W') }}|{{ ','.join(['a', 'b']) }}|{{ 'a</think>b</think>c'.split('</think>')[-1] }}",
     "Hello, World|a  |  a|['Hello', 'World']|['a', 'b']|True|True|HELLO, WORLD|hello, world|Hell0, W0rld|Ab Cd|7|a,b|c"},
    {"dict methods",
     "{{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('zz', 5) }} {{ d.get('zz') }} {{ d['items'] }} {{ d.items()|list }}",
     "['b', 'a', 'items'] [2, 1, 'x'] 1 5 None x [('b', 2), ('a', 1), ('items', 'x')]"},
    {"markup safe concat",
     "{{ 'a'|safe + '<b\\'&' }}|{{ '<x>' + '\"'|safe }}|{{ 'p'|safe ~ '<' }}",
     "a&lt;b&#39;&amp;|&lt;x&gt;\"|p<"},
    {"whitespace dash",
     "a   {{- ' b ' -}}   c\n{%- if t -%}\n  d\n{%- endif %}",
     "a b cd"},
    {"multiline string",
     "{{ 'line1\nline2' }}{{ \"tab\\tq\\u00e9\\x41\" }}",
     "line1\nline2tab\tq\303\251A"},
    {"strings in tags with braces",
     "{{ '{{ }}' }}{{ {'a': {'b': 1}} }}{{ '%}' }}",
     "{{ }}{'a': {'b': 1}}%}"},
    {"trailing newline dropped",
     "x\n",
     "x"},
    {"crlf",
     "a\r\n{% if t %}\r\nb\r\n{% endif %}\r\nc",
     "a\nb\nc"},
    {"none printing",
     "{{ none }}{{ None }}{{ [none] }}{{ true }}{{ True }}",
     "NoneNone[None]TrueTrue"},
    {"range",
     "{{ range(3)|list }}{{ range(1, 7, 2)|list }}{{ range(3, 0, -1)|list }}",
     "[0, 1, 2][1, 3, 5][3, 2, 1]"},
    {"raise in if",
     "{% if false %}{{ raise_exception('no') }}{% endif %}ok",
     "ok"},
    {"is iterable on string",
     "{{ 'x' is iterable }}{{ 3 is iterable }}{{ q is iterable }}{{ d is iterable }}",
     "TrueFalseTrueTrue"},
    {"truthiness",
     "{% for v in [0, 1, '', 'a', [], [0], {}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}",
     "FTFTFTFFF"},
    {"float repr",
     "{{ 1/3 }} {{ 2.0 }} {{ 1e-5 }} {{ 123456789012345678.0 }} {{ 1e16 }} {{ 0.0001 }} {{ -0.5 }} {{ 3.14159 }}",
     "0.3333333333333333 2.0 1e-05 1.2345678901234568e+17 1e+16 0.0001 -0.5 3.14159"},
    {"tojson float int",
     "{{ [1, 2.5, 1e20, -0.0]|tojson }}",
     "[1, 2.5, 1e+20, -0.0]"},
    {"unicode upper",
     "{{ 'stra\303\237e \303\274'|upper }} {{ '\303\204B'|lower }}",
     "STRASSE \303\234 \303\244b"},
    {"items of undefined",
     "{% for k, v in q|items %}x{% endfor %}ok{{ q|length }}",
     "ok0"},
    {"chained filters and ops",
     "{{ messages[0]['content']|trim + '!' }}{{ -n|abs }}{{ not t is defined }}",
     "Sys!7False"},
    {"dict literal key order",
     "{{ {'z': 1, 'a': 2}|tojson }}{% set m = {'string': 'str', 'integer': 'int'} %}{{ m['integer'] }}{{ m[q] is defined }}",
     "{\"z\": 1, \"a\": 2}intFalse"},
};

/* Renders src with the variables of ctx_json; returns the status, *out malloc'd or NULL. */
static kiln_status render(const char *src, const char *ctx_json, char **out) {
    *out = NULL;
    kiln_jinja *t = NULL;
    kiln_status st = kiln_jinja_compile(src, strlen(src), &t);
    if (st) return st;
    cJSON *ctx = ctx_json ? cJSON_Parse(ctx_json) : NULL;
    size_t len = 0;
    st = kiln_jinja_render(t, ctx, out, &len);
    if (!st && len != strlen(*out)) st = KILN_ERR_FORMAT; /* no embedded NULs expected here */
    cJSON_Delete(ctx);
    kiln_jinja_free(t);
    return st;
}

static void test_features(void) {
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        char *out = NULL;
        kiln_status st = render(k_cases[i].src, k_ctx, &out);
        CHECK_MSG(st == KILN_OK, "%s: %s", k_cases[i].name, kiln_last_error());
        if (!st) CHECK_MSG(!strcmp(out, k_cases[i].want), "%s:\n  want [%s]\n  got  [%s]", k_cases[i].name, k_cases[i].want, out);
        free(out);
    }
}

/* A failing render: status st and a message containing needle. */
static void expect_fail(const char *src, kiln_status want, const char *needle) {
    char *out = NULL;
    kiln_status st = render(src, k_ctx, &out);
    CHECK_MSG(st == want, "[%.60s]: status %s, want %s (%s)", src, kiln_status_name(st), kiln_status_name(want),
              st ? kiln_last_error() : "(rendered)");
    if (st && needle) CHECK_MSG(strstr(kiln_last_error(), needle) != NULL, "[%.60s]: message '%s' lacks '%s'", src, kiln_last_error(), needle);
    free(out);
}

static char *repeat(const char *a, size_t n, const char *mid, const char *b) {
    size_t la = strlen(a), lb = strlen(b), lm = strlen(mid);
    char *s = malloc(n * (la + lb) + lm + 1), *p = s;
    for (size_t i = 0; i < n; i++, p += la) memcpy(p, a, la);
    memcpy(p, mid, lm);
    p += lm;
    for (size_t i = 0; i < n; i++, p += lb) memcpy(p, b, lb);
    *p = 0;
    return s;
}

static void test_syntax_errors(void) {
    expect_fail("{% if t %}abc", KILN_ERR_FORMAT, "line 1");
    expect_fail("a\nb\n{% for x in l %}\nx", KILN_ERR_FORMAT, "line 3");
    expect_fail("line1\nline2 {{ 1 + }}", KILN_ERR_FORMAT, "line 2:");
    expect_fail("{{ x ) }}", KILN_ERR_FORMAT, "line 1:6");
    expect_fail("{% endfor %}", KILN_ERR_FORMAT, "endfor");
    expect_fail("{% frobnicate %}", KILN_ERR_FORMAT, "frobnicate");
    expect_fail("{{ 'abc }}", KILN_ERR_FORMAT, "unterminated string");
    expect_fail("ok\n{# never closed", KILN_ERR_FORMAT, "line 2");
    expect_fail("{{ x", KILN_ERR_FORMAT, "unclosed");
    expect_fail("{% if t %}{% else %}{% else %}{% endif %}", KILN_ERR_FORMAT, "else");
    expect_fail("{{ a b }}", KILN_ERR_FORMAT, "line 1");
    expect_fail("{{ }}", KILN_ERR_FORMAT, "expression");
    expect_fail("{% set %}", KILN_ERR_FORMAT, "variable name");
    expect_fail("{% macro m(a %}{% endmacro %}", KILN_ERR_FORMAT, NULL);
    expect_fail("{{ 99999999999999999999 }}", KILN_ERR_FORMAT, "too large");
    expect_fail("{{ f(a=1, 2) }}", KILN_ERR_FORMAT, "positional");
    expect_fail("{% include 'x' %}", KILN_ERR_FORMAT, "include");
}

static void test_runtime_errors(void) {
    expect_fail("{{ raise_exception('Conversation roles must alternate') }}", KILN_ERR_INVALID_ARG,
                "Conversation roles must alternate");
    char *out = NULL;
    CHECK(render("x{{ raise_exception('exact message') }}", NULL, &out) == KILN_ERR_INVALID_ARG);
    CHECK(!strcmp(kiln_last_error(), "exact message"));
    free(out);
    expect_fail("{{ 1 + 'a' }}", KILN_ERR_INVALID_ARG, "unsupported operand");
    expect_fail("{{ 'a' + q }}", KILN_ERR_INVALID_ARG, "'q' is undefined");
    expect_fail("{{ q.x }}", KILN_ERR_INVALID_ARG, "'q' is undefined");
    expect_fail("\n\n{{ q['x'] }}", KILN_ERR_INVALID_ARG, "line 3");
    expect_fail("{{ 1 // 0 }}", KILN_ERR_INVALID_ARG, "zero");
    expect_fail("{{ 1 / 0 }}", KILN_ERR_INVALID_ARG, "zero");
    expect_fail("{{ 'a' < 1 }}", KILN_ERR_INVALID_ARG, "not supported");
    expect_fail("{% for x in n %}{% endfor %}", KILN_ERR_INVALID_ARG, "not iterable");
    expect_fail("{{ n|nosuchfilter }}", KILN_ERR_INVALID_ARG, "nosuchfilter");
    expect_fail("{{ n is nosuchtest }}", KILN_ERR_INVALID_ARG, "nosuchtest");
    expect_fail("{{ l|map(attribute='x')|tojson }}", KILN_ERR_INVALID_ARG, "generator");
    expect_fail("{{ q|tojson }}", KILN_ERR_INVALID_ARG, "not JSON serializable");
    expect_fail("{% set d.x = 1 %}", KILN_ERR_INVALID_ARG, "non-namespace");
    expect_fail("{{ l.append(4) }}", KILN_ERR_INVALID_ARG, "immutable");
    expect_fail("{{ 9223372036854775807 + 1 }}", KILN_ERR_INVALID_ARG, "overflow");
    expect_fail("{% set a, b = l %}", KILN_ERR_INVALID_ARG, "unpack");
}

static void test_hostile(void) {
    char *s, *t;
    s = repeat("(", 100000, "1", ")");
    t = malloc(strlen(s) + 16);
    sprintf(t, "{{ %s }}", s);
    free(s);
    s = t;
    expect_fail(s, KILN_ERR_FORMAT, "deeply");
    free(s);
    s = repeat("[", 100000, "", "]");
    t = malloc(strlen(s) + 16);
    sprintf(t, "{{ %s }}", s);
    expect_fail(t, KILN_ERR_FORMAT, "deeply");
    free(t);
    free(s);
    s = repeat("{% if t %}", 20000, "x", "{% endif %}");
    expect_fail(s, KILN_ERR_FORMAT, "deeply");
    free(s);
    s = repeat("not ", 100000, "t", "");
    t = malloc(strlen(s) + 16);
    sprintf(t, "{{ %s }}", s);
    expect_fail(t, KILN_ERR_FORMAT, "deeply");
    free(t);
    free(s);
    s = repeat("-", 100000, "1", "");
    t = malloc(strlen(s) + 16);
    sprintf(t, "{{ %s }}", s);
    expect_fail(t, KILN_ERR_FORMAT, "deeply");
    free(t);
    free(s);
    /* runaway work */
    expect_fail("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", KILN_ERR_INVALID_ARG,
                "iterations");
    expect_fail("{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}", KILN_ERR_INVALID_ARG, "output");
    expect_fail("{{ 'x' * 1000000000000 }}", KILN_ERR_INVALID_ARG, "too large");
    expect_fail("{{ range(1000000000)|list }}", KILN_ERR_INVALID_ARG, "range");
    expect_fail("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                KILN_ERR_INVALID_ARG, "memory");
    expect_fail("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", KILN_ERR_INVALID_ARG, "nested too deeply");
    expect_fail("{% macro f(k) %}{% for i in range(3) %}{{ f(k) }}{% endfor %}{% endmacro %}{{ f(1) }}", KILN_ERR_INVALID_ARG, NULL);
    expect_fail("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}",
                KILN_ERR_INVALID_ARG, "nested too deeply");
    expect_fail("{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|tojson }}",
                KILN_ERR_INVALID_ARG, "nested too deeply");
    /* garbage bytes never crash */
    char junk[4096];
    unsigned x = 12345;
    const char alphabet[] = "{}%#-+()[]'\"|.,:=!<>~*/ \nabcif endfor set macro 0123";
    for (int round = 0; round < 300; round++) {
        size_t n = (size_t)(round * 13 % 4000) + 1;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            junk[i] = alphabet[(x >> 16) % (sizeof alphabet - 1)];
        }
        junk[n] = 0;
        char *out = NULL;
        kiln_status st = render(junk, k_ctx, &out);
        CHECK(st == KILN_OK || st == KILN_ERR_FORMAT || st == KILN_ERR_INVALID_ARG);
        free(out);
    }
}

static void test_chat_api(void) {
    cJSON *msgs = cJSON_Parse("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Hi\"}]");
    char *out = NULL;
    CHECK_OK(kiln_chat_template_render(NULL, msgs, NULL, "<s>", "</s>", true, &out));
    CHECK(out && !strcmp(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    free(out);
    CHECK_OK(kiln_chat_template_render(kiln_chat_default_template, msgs, NULL, NULL, NULL, false, &out));
    CHECK(out && !strcmp(out, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"));
    free(out);
    /* tools are none when not given; bos_token reaches the template */
    CHECK_OK(kiln_chat_template_render("{{ bos_token }}{{ tools is none }}{{ add_generation_prompt }}{{ messages|length }}",
                                       msgs, NULL, "<s>", NULL, false, &out));
    CHECK(out && !strcmp(out, "<s>TrueFalse2"));
    free(out);
    cJSON *tools = cJSON_Parse("[{\"name\":\"f\"}]");
    CHECK_OK(kiln_chat_template_render("{{ tools[0].name }}", msgs, tools, NULL, NULL, false, &out));
    CHECK(out && !strcmp(out, "f"));
    free(out);
    CHECK(kiln_chat_template_render("{{ raise_exception('nope') }}", msgs, NULL, NULL, NULL, false, &out) == KILN_ERR_INVALID_ARG);
    CHECK(out == NULL && !strcmp(kiln_last_error(), "nope"));
    CHECK(kiln_chat_template_render("{% if %}", msgs, NULL, NULL, NULL, false, &out) == KILN_ERR_FORMAT);
    cJSON_Delete(tools);
    cJSON_Delete(msgs);
    /* a compiled template renders again and again (and with no variables) */
    kiln_jinja *t = NULL;
    CHECK_OK(kiln_jinja_compile("{{ x|default('none') }}", 23, &t));
    for (int i = 0; i < 3; i++) {
        size_t len = 0;
        CHECK_OK(kiln_jinja_render(t, NULL, &out, &len));
        CHECK(out && len == 4 && !strcmp(out, "none"));
        free(out);
    }
    kiln_jinja_free(t);
}

int main(void) {
    test_features();
    test_syntax_errors();
    test_runtime_errors();
    test_hostile();
    test_chat_api();
    TEST_MAIN_END();
}
