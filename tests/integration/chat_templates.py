#!/usr/bin/python3
"""chat_templates.py — renders every chat template in a folder with python jinja2,
configured as Hugging Face transformers configures it, and with `kiln template`, over
several message sets, and compares the two byte for byte.

usage: chat_templates.py KILN_BIN TEMPLATE_DIR TMP_DIR
When jinja2 raises (a template refusing a system role, ...), kiln must fail too: that
counts as agreement. Exits 1 on any mismatch, printing a diff.
"""
import datetime
import difflib
import json
import os
import subprocess
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_env():
    # As transformers.utils.chat_template_utils._compile_jinja_template does.
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city, e.g. \"Paris\""},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"},
            "days": {"type": "integer", "description": "Days of forecast"}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search",
        "description": "Search the web <fast> & 'safely'.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "What to search for"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "Filters"},
            "limit": {"type": ["integer", "null"], "description": "At most this many"},
            "opts": {"type": "object", "additionalProperties": {"type": "number"}, "description": "Options"}},
            "required": ["query", "tags"]}}},
]

# Without union types: templates that map JSON-schema types to Python ones recurse
# forever on ["integer", "null"] in jinja2 too (both sides fail, as TOOLS shows).
TOOLS_SIMPLE = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the weather.\n  Multi-line, with \"quotes\".",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "  The city  "},
            "days": {"type": "integer", "description": "Days"},
            "scale": {"type": "number", "description": "Scale factor"},
            "flags": {"type": "array", "items": {"type": "boolean"}, "description": "Flags"},
            "extra": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Extra"},
            "any": {"description": "Anything"}},
            "required": ["city", "days"]},
        "return": {"type": "string", "description": "The forecast"}}},
    {"type": "function", "function": {
        "name": "noop", "description": "Does nothing.",
        "parameters": {"type": "object", "properties": {}, "required": []}}},
]
TOOLS_COHERE_OLD = [
    {"name": "internet_search", "description": "Search the internet",
     "parameter_definitions": {
         "query": {"description": "Query to search", "type": "str", "required": True},
         "count": {"description": "How many", "type": "int", "required": False}}},
    {"name": "directly_answer", "description": "Answer directly", "parameter_definitions": {}},
]

UNICODE = "Grüße, 世界! «quotes» \"double\" 'single' {braces} {{ not_a_var }} {% raw %}\n\tindented\r\nend  "
CALL_DICT = [{"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 3, "ratio": 1.5}}}]
CALL_STR = [{"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 3}"}}]

SETS = {
    "user": ([{"role": "user", "content": "Hello!"}], None, {}),
    "system_user": ([{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "What is 2+2?"}], None, {}),
    "multi_turn": ([{"role": "user", "content": "Hi there"},
                    {"role": "assistant", "content": "Hello! How can I help?"},
                    {"role": "user", "content": "Tell me a joke."}], None, {}),
    "system_multi": ([{"role": "system", "content": "  Be brief.  "},
                      {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "<think>hmm</think>Hello."},
                      {"role": "user", "content": "Bye"}], None, {}),
    "unicode": ([{"role": "user", "content": UNICODE},
                 {"role": "assistant", "content": "Réponse: <b>&amp;</b> 🎉\n"},
                 {"role": "user", "content": "\n\n  spaced \u3000"}], None, {}),
    "tools": ([{"role": "system", "content": "You can call tools."},
               {"role": "user", "content": "Weather in Paris?"}], TOOLS, {}),
    "tools_no_system": ([{"role": "user", "content": "Search for cats"}], TOOLS, {}),
    "tool_calls_dict": ([{"role": "user", "content": "Weather in Paris?"},
                         {"role": "assistant", "content": None, "tool_calls": CALL_DICT},
                         {"role": "tool", "name": "get_weather", "content": "{\"temp\": 21}"},
                         {"role": "assistant", "content": "It is 21 degrees."},
                         {"role": "user", "content": "Thanks"}], TOOLS, {}),
    "tool_calls_str": ([{"role": "system", "content": "Use tools."},
                        {"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": None, "tool_calls": CALL_STR},
                        {"role": "tool", "content": "sunny"},
                        {"role": "tool", "content": "21C"}], TOOLS, {}),
    "tool_calls_text": ([{"role": "user", "content": "Weather?"},
                         {"role": "assistant", "content": "Let me check.", "tool_calls": CALL_DICT},
                         {"role": "tool", "content": "sunny"}], TOOLS, {}),
    "vars": ([{"role": "system", "content": "Sys"}, {"role": "user", "content": "Hi"}], TOOLS,
             {"functions": json.dumps([t["function"] for t in TOOLS]), "datetime": "2024-07-26",
              "date_string": "01 Aug 2024", "builtin_tools": ["brave_search", "wolfram_alpha"],
              "tools_in_user_message": False}),
    "vars_calls": ([{"role": "user", "content": "Hi"},
                    {"role": "assistant", "content": "",
                     "tool_calls": [{"type": "function", "function": {"name": "brave_search",
                                                                      "arguments": {"query": "x y"}}}]},
                    {"role": "ipython", "content": {"result": [1, 2]}}], None,
                   {"functions": "[]", "datetime": "now", "builtin_tools": ["brave_search"]}),
    "tools_simple": ([{"role": "system", "content": "Sys"}, {"role": "user", "content": "Weather?"}],
                     TOOLS_SIMPLE, {}),
    "tools_simple_calls": ([{"role": "user", "content": "Weather?"},
                            {"role": "assistant", "content": None, "tool_calls": CALL_DICT},
                            {"role": "tool", "content": "sunny"},
                            {"role": "tool", "content": "windy"},
                            {"role": "assistant", "content": "Sunny and windy."},
                            {"role": "user", "content": "Thanks"}], TOOLS_SIMPLE, {}),
    "tools_simple_calls_str": ([{"role": "system", "content": "Sys"},
                                {"role": "user", "content": "Weather?"},
                                {"role": "assistant", "content": None, "tool_calls": CALL_STR + CALL_STR},
                                {"role": "tool", "content": "sunny"}], TOOLS_SIMPLE, {}),
    "tools_cohere_old": ([{"role": "user", "content": "Find cats"},
                          {"role": "assistant", "content": "Searching",
                           "tool_calls": [{"name": "internet_search", "arguments": {"query": "cats"}}]},
                          {"role": "tool", "content": "  cats found  "}], TOOLS_COHERE_OLD, {}),
    "vars_calls_str": ([{"role": "system", "content": "Sys"},
                        {"role": "user", "content": "Weather?"},
                        {"role": "assistant", "content": "", "tool_calls": CALL_STR},
                        {"role": "tool", "content": "sunny"},
                        {"role": "assistant", "content": None},
                        {"role": "user", "content": "ok"}], TOOLS_SIMPLE,
                       {"functions": "[{\"name\": \"get_weather\"}]", "datetime": "2024-07-26 10:00"}),
    "empty": ([], None, {}),
    "bad_role": ([{"role": "robot", "content": "beep"}], None, {}),
}


def main():
    kiln, tdir, tmp = sys.argv[1], sys.argv[2], sys.argv[3]
    os.makedirs(tmp, exist_ok=True)
    env = make_env()
    templates = sorted(f for f in os.listdir(tdir) if f.endswith(".jinja"))
    total = agree = both_fail = 0
    mismatches = []
    for name in templates:
        path = os.path.join(tdir, name)
        with open(path, encoding="utf-8") as f:
            src = f.read()
        tmpl = env.from_string(src)
        for set_name, (messages, tools, extra) in SETS.items():
            for agp in (False, True):
                mfile = os.path.join(tmp, "messages.json")
                with open(mfile, "w", encoding="utf-8") as f:
                    json.dump(messages, f, ensure_ascii=False)
                cmd = [kiln, "template", "--template", path, "--messages", mfile, "--bos", "<s>", "--eos", "</s>"]
                if tools is not None:
                    tfile = os.path.join(tmp, "tools.json")
                    with open(tfile, "w", encoding="utf-8") as f:
                        json.dump(tools, f, ensure_ascii=False)
                    cmd += ["--tools", tfile]
                if extra:
                    vfile = os.path.join(tmp, "vars.json")
                    with open(vfile, "w", encoding="utf-8") as f:
                        json.dump(extra, f, ensure_ascii=False)
                    cmd += ["--vars", vfile]
                if agp:
                    cmd.append("--add-generation-prompt")
                try:
                    want = tmpl.render(messages=messages, tools=tools, documents=None, add_generation_prompt=agp,
                                       bos_token="<s>", eos_token="</s>", **extra).encode("utf-8")
                    want_err = None
                except Exception as e:  # jinja2 refuses: kiln must refuse too
                    want, want_err = None, f"{type(e).__name__}: {e}"
                r = subprocess.run(cmd, capture_output=True, timeout=60)
                total += 1
                label = f"{name} [{set_name}, add_generation_prompt={agp}]"
                if want_err is not None:
                    if r.returncode != 0:
                        agree += 1
                        both_fail += 1
                    else:
                        mismatches.append((label, f"jinja2 failed ({want_err}) but kiln rendered:\n"
                                           + r.stdout.decode("utf-8", "replace")))
                elif r.returncode != 0:
                    mismatches.append((label, "kiln failed: " + r.stderr.decode("utf-8", "replace")))
                elif r.stdout != want:
                    diff = difflib.unified_diff(want.decode().splitlines(True),
                                                r.stdout.decode("utf-8", "replace").splitlines(True),
                                                "jinja2", "kiln")
                    mismatches.append((label, "".join(diff)))
                else:
                    agree += 1
    for label, detail in mismatches:
        print(f"MISMATCH {label}\n{detail}\n")
    print(f"chat templates: {len(templates)} templates x {len(SETS)} message sets x 2: "
          f"{total} renders compared, {agree} agree ({both_fail} of them both refusing), "
          f"{len(mismatches)} mismatch")
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
