// What PostgreSQL refuses in an engine's answer: NUL, bytes that are not UTF-8,
// \u0000 in jsonb, nesting deeper than the worker accepts.
#include <gtest/gtest.h>

#include <string>

#include "core/dispatch.h"
#include "core/json_text.h"

using namespace dataflow;
using namespace std::string_literals;

TEST(JsonText, TextAcceptsValidUtf8) {
    EXPECT_EQ(text_refusal(""), std::nullopt);
    EXPECT_EQ(text_refusal("plain ascii, \t\n and \x7f"), std::nullopt);
    EXPECT_EQ(text_refusal("\u00e9\u20ac\U0001F600 \U0010FFFF \uFFFF"), std::nullopt);
}

TEST(JsonText, TextRefusesNulAndInvalidUtf8) {
    EXPECT_EQ(text_refusal("ab\0c"s), "a NUL byte at offset 2");
    EXPECT_EQ(text_refusal("ok \xff"), "byte 0xFF at offset 3 is not valid UTF-8");
    // A bad continuation, overlong forms, a surrogate, past U+10FFFF, truncated, a lone
    // continuation byte.
    EXPECT_EQ(text_refusal("\xc3\x28"), "byte 0xC3 at offset 0 is not valid UTF-8");
    EXPECT_EQ(text_refusal("\xc0\x80"), "byte 0xC0 at offset 0 is not valid UTF-8");
    EXPECT_EQ(text_refusal("\xe0\x80\xaf"), "byte 0xE0 at offset 0 is not valid UTF-8");
    EXPECT_EQ(text_refusal("\xed\xa0\x80"), "byte 0xED at offset 0 is not valid UTF-8");
    EXPECT_EQ(text_refusal("\xf4\x90\x80\x80"), "byte 0xF4 at offset 0 is not valid UTF-8");
    EXPECT_EQ(text_refusal("x\xe2\x82"), "byte 0xE2 at offset 1 is not valid UTF-8");
    EXPECT_EQ(text_refusal("\x80"), "byte 0x80 at offset 0 is not valid UTF-8");
}

TEST(JsonText, JsonbAcceptsWhatPostgresStores) {
    EXPECT_EQ(jsonb_refusal(R"({"status": "succeeded", "info": {"a": [1, {"b": null}]}})"),
              std::nullopt);
    // Other escapes, \u0000 spelled as data (an escaped backslash), brackets in strings.
    EXPECT_EQ(jsonb_refusal(R"({"a": "\u0001 \n \" \\u0000 [[[[ {{{{ \u00e9"})"), std::nullopt);
    EXPECT_EQ(jsonb_refusal(R"(["\\", "\\\"", "\"[[["])", 1), std::nullopt);
    EXPECT_EQ(jsonb_refusal("{\"k\": \"\u00e9\U0001F600\"}"), std::nullopt);
}

TEST(JsonText, JsonbRefusesNulEscapeAnywhereInAString) {
    EXPECT_EQ(jsonb_refusal(R"({"info": {"note": "a\u0000b"}})"),
              "\\u0000 at offset 20 (PostgreSQL cannot store the NUL character in jsonb)");
    EXPECT_NE(jsonb_refusal(R"({"a\u0000": 1})"), std::nullopt);     // in a key
    EXPECT_NE(jsonb_refusal(R"({"a": "\\\u0000"})"), std::nullopt);  // after an escaped backslash
    EXPECT_NE(jsonb_refusal(R"(["\"", "\u0000"])"), std::nullopt);   // after an escaped quote
}

TEST(JsonText, JsonbRefusesRawBytesPostgresRefuses) {
    EXPECT_EQ(jsonb_refusal("{\"a\": \"\xff\xfe\"}"), "byte 0xFF at offset 7 is not valid UTF-8");
    EXPECT_EQ(jsonb_refusal("{\"a\": \"x\0\"}"s), "a NUL byte at offset 8");
    EXPECT_EQ(jsonb_refusal("{\"a\": \"\\\xff\"}"),
              "byte 0xFF at offset 8 is not valid UTF-8");  // escaped
}

TEST(JsonText, JsonbRefusesDeepNesting) {
    std::string at_limit = std::string(kMaxAnswerDepth, '[') + std::string(kMaxAnswerDepth, ']');
    EXPECT_EQ(jsonb_refusal(at_limit), std::nullopt);
    std::string deeper =
        "{\"info\": " + std::string(kMaxAnswerDepth, '[') + std::string(kMaxAnswerDepth, ']') + "}";
    EXPECT_EQ(jsonb_refusal(deeper), "arrays and objects nested deeper than 1000 levels");
    // Depth, not count: many siblings at a shallow depth are fine.
    std::string wide = "[";
    for (int i = 0; i < 5000; ++i) wide += "[],";
    wide += "{}]";
    EXPECT_EQ(jsonb_refusal(wide, 2), std::nullopt);
    EXPECT_EQ(jsonb_refusal("[[[]]]", 2), "arrays and objects nested deeper than 2 levels");
    EXPECT_EQ(jsonb_refusal("{\"a\": {\"b\": {}}}", 2),
              "arrays and objects nested deeper than 2 levels");
    // 10 MB of nesting: one pass, no recursion.
    std::string huge = std::string(5 << 20, '[') + std::string(5 << 20, ']');
    EXPECT_EQ(jsonb_refusal(huge), "arrays and objects nested deeper than 1000 levels");
}

// The dispatch interpretation refuses such answers before parsing them: the run fails
// with the reason (retried while attempts remain), never the statement recording it.
namespace {
HttpResponse answer(long status, std::string body) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    return r;
}
}  // namespace

TEST(JsonText, DispatchFailsAnswersPostgresRefuses) {
    const std::string prefix = "engine answer is not valid JSON for PostgreSQL: ";
    for (const std::string& body :
         {R"({"status": "succeeded", "info": {"note": "a\u0000b"}})"s,
          R"({"status": "succeeded", "location": "s3://x/\u0000/y"})"s,
          "{\"status\": \"succeeded\", \"info\": {\"note\": \"\xff\xfe\"}}"s,
          R"({"status": "failed", "error": "x\u0000"})"s,
          "{\"status\": \"succeeded\", \"info\": {\"deep\": " + std::string(5 << 20, '[') +
              std::string(5 << 20, ']') + "}}"}) {
        Outcome o = interpret_http_dispatch(answer(200, body));
        EXPECT_EQ(o.kind, Outcome::kFailed) << body.substr(0, 80);
        EXPECT_TRUE(o.retry);
        EXPECT_EQ(o.error.rfind(prefix, 0), 0u) << o.error;
    }
    Outcome deep = interpret_http_dispatch(
        answer(200, "{\"status\": \"succeeded\", \"info\": " + std::string(2000, '[') + "}"));
    EXPECT_EQ(deep.error, prefix + "arrays and objects nested deeper than 1000 levels");
    // Good answers, and escaped backslashes that only look like \u0000, are untouched.
    Outcome ok = interpret_http_dispatch(
        answer(200, R"({"status": "succeeded", "row_count": 3, "info": {"p": "C:\\u0000"}})"));
    EXPECT_EQ(ok.kind, Outcome::kSucceeded);
    EXPECT_EQ(ok.info_json, R"({"p":"C:\\u0000"})");
    // Not a 2xx: the body is only an excerpt in the error, as before.
    EXPECT_EQ(interpret_http_dispatch(answer(500, "a\\u0000")).kind, Outcome::kRetry);
}

TEST(JsonText, AirflowPollRetriesAnswersPostgresRefuses) {
    Outcome o =
        airflow_interpret_poll(answer(200, R"({"state": "success", "dag_run_id": "a\u0000"})"));
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_EQ(o.error.rfind("Airflow poll: answer is not valid JSON for PostgreSQL: ", 0), 0u)
        << o.error;
    EXPECT_EQ(airflow_interpret_poll(answer(200, R"({"state": "success"})")).kind,
              Outcome::kSucceeded);
}
