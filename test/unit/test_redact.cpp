// The one redaction step for engine answers (core/redact.h): raw and JSON-escaped
// secrets, nested JSON leaves, short secrets, and masking before any excerpt is cut.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/http_client.h"
#include "core/prefect.h"
#include "core/redact.h"

using namespace dataflow;

TEST(Redactor, MasksEverySecretEverywhere) {
    Redactor r;
    r.add("6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01");
    r.add("pnu_stub_key");
    r.add("");
    EXPECT_EQ(r.apply("token 6f1c0f5e-3c1e-4c55-9a55-0d2b1d1f0a01 key pnu_stub_key pnu_stub_key"),
              "token [redacted] key [redacted] [redacted]");
    EXPECT_EQ(r.apply("nothing here"), "nothing here");
    EXPECT_TRUE(Redactor().empty());
    EXPECT_EQ(Redactor().apply("x"), "x");
}

TEST(Redactor, StringLeavesOfNestedSecretParams) {
    Redactor r;
    r.add_json_leaves(R"({"portal": {"api_key": "pk-SECRET-9", "ids": ["hunter22", 12345678]},
                          "flag": true, "n": 42})");
    std::string body =
        R"({"detail": "Failure reason: 'pk-SECRET-9' is not one of ['a'], hunter22; 12345678 true 42"})";
    std::string out = r.apply(body);
    EXPECT_EQ(out.find("pk-SECRET"), std::string::npos) << out;
    EXPECT_EQ(out.find("hunter22"), std::string::npos) << out;
    // numbers and booleans are not secrets: left alone
    EXPECT_NE(out.find("12345678 true 42"), std::string::npos) << out;
    EXPECT_FALSE(nlohmann::json::parse(out, nullptr, false).is_discarded());  // still JSON
    r.add_json_leaves("{not json");                                           // ignored
    EXPECT_EQ(r.apply("pk-SECRET-9"), "[redacted]");
}

TEST(Redactor, JsonEscapedFormIsMaskedToo) {
    Redactor r;
    r.add("quo\"te\\slash\n");
    std::string body = nlohmann::json{{"detail", "bad value quo\"te\\slash\n!"}}.dump();
    std::string out = r.apply(body);
    EXPECT_EQ(out, R"({"detail":"bad value [redacted]!"})");
    EXPECT_EQ(r.apply("raw quo\"te\\slash\n."), "raw [redacted].");
}

TEST(Redactor, ASecretContainingAnotherIsMaskedWhole) {
    Redactor r;
    r.add("abcdef");
    r.add("xxabcdefyy");
    EXPECT_EQ(r.apply("1 xxabcdefyy 2 abcdef"), "1 [redacted] 2 [redacted]");
}

TEST(Redactor, ShortSecretsOnlyWhereTheyStandQuoted) {
    // Below kMinLength (6 bytes) a secret is masked only as a whole quoted string:
    // Prefect's "Failure reason: 'abc' is not one of" and JSON "abc", not every "abc".
    static_assert(Redactor::kMinLength == 6, "docs/security.md names the length");
    Redactor r;
    r.add("abc");
    r.add("true");
    EXPECT_EQ(r.apply("Failure reason: 'abc' is not one of ['x']"),
              "Failure reason: '[redacted]' is not one of ['x']");
    EXPECT_EQ(r.apply(R"({"v":"abc","w":"abcd","ok":true,"s":"true"})"),
              R"({"v":"[redacted]","w":"abcd","ok":true,"s":"[redacted]"})");
    EXPECT_EQ(r.apply("labcd 'abc\" abc"), "labcd 'abc\" abc");
    Redactor six;
    six.add("abcdef");  // at the length: masked wherever it occurs
    EXPECT_EQ(six.apply("xabcdefx"), "x[redacted]x");
}

TEST(Redactor, MasksTheWholeBodyBeforeTheExcerptIsCut) {
    // A secret straddling the excerpt's cut (300 bytes) must leave no prefix behind:
    // masked first, cut after.
    std::string secret = "pk-SECRET-straddling-the-cut-0123456789";
    std::string body = std::string(290, 'x') + secret + " tail";
    Redactor r;
    r.add(secret);
    std::string kept = body_excerpt(r.apply(body));
    EXPECT_EQ(kept.find("pk-SEC"), std::string::npos) << kept;
    // what the cut alone would have kept: a prefix of the secret
    EXPECT_NE(body_excerpt(body).find("pk-SEC"), std::string::npos);
    // and the answer errors that quote it, once masked
    HttpResponse resp;
    resp.status = 409;
    resp.body = r.apply(nlohmann::json{{"detail", body}}.dump());
    Outcome o = prefect_interpret_create(resp, 1, "j");
    EXPECT_EQ(o.error.find("pk-SEC"), std::string::npos) << o.error;
}
