// Hostile endpoints, the pure part: Retry-After parsing and capping, what a 429/503/410/3xx
// means for a webhook delivery and for an http dispatch.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/dispatch.h"
#include "core/http_client.h"
#include "core/webhook.h"

using namespace dataflow;

namespace {
// 1994-11-06 08:49:37 UTC, the RFC's example date.
constexpr int64_t kRfcExample = 784111777;

HttpResponse resp(long status, std::string retry_after = "", int64_t received = kRfcExample) {
    HttpResponse r;
    r.status = status;
    r.retry_after = std::move(retry_after);
    r.received_unix = received;
    return r;
}
}  // namespace

TEST(RetryAfter, DelaySeconds) {
    EXPECT_EQ(parse_retry_after("120", 0), 120);
    EXPECT_EQ(parse_retry_after("0", 0), 0);
    EXPECT_EQ(parse_retry_after("  7\t", 0), 7);  // optional whitespace around the value
    EXPECT_EQ(parse_retry_after("007", 0), 7);
    // Saturates instead of overflowing; the cap applies later.
    EXPECT_GT(parse_retry_after("99999999999999999999999999", 0).value(), 36000);
}

TEST(RetryAfter, HttpDateInAllThreeForms) {
    int64_t now = kRfcExample - 60;
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), 60);
    EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), 60);
    EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), 60);
    // A date in the past means "now".
    EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", kRfcExample + 5), 0);
    // Leap day and a two-digit year of this century.
    EXPECT_EQ(parse_retry_after("Thu, 29 Feb 2024 00:00:00 GMT", 1709164800 - 3600), 3600);
    EXPECT_EQ(parse_retry_after("Thursday, 29-Feb-24 00:00:00 GMT", 1709164800 - 1), 1);
    EXPECT_EQ(parse_retry_after("Thu Feb 29 00:00:00 2024", 1709164800 - 2), 2);
}

TEST(RetryAfter, RejectsEverythingElse) {
    for (const char* bad : {"",
                            "   ",
                            "-5",
                            "+5",
                            "1.5",
                            "5s",
                            "soon",
                            "0x10",
                            "1e3",
                            "Sun, 06 Nov 1994 08:49:37 UTC",
                            "Sun, 06 Nov 1994 08:49:37",
                            "Sun, 6 Nov 1994 08:49:37 GMT",
                            "Sun, 31 Feb 1994 08:49:37 GMT",
                            "Sun, 06 Foo 1994 08:49:37 GMT",
                            "Sun, 06 Nov 1994 24:00:00 GMT",
                            "Xyz, 06 Nov 1994 08:49:37 GMT",
                            "Sun, 06 Nov 1994 08:49:37 GMT x",
                            "Sun Nov 6 08:49:37 1994",
                            "Funday, 06-Nov-94 08:49:37 GMT",
                            "1994-11-06T08:49:37Z"})
        EXPECT_FALSE(parse_retry_after(bad, 0).has_value()) << bad;
}

TEST(RetryAfter, OnlyFor429And503AndClamped) {
    EXPECT_EQ(requested_retry_delay(resp(429, "7")), 7);
    EXPECT_EQ(requested_retry_delay(resp(503, "7")), 7);
    EXPECT_EQ(requested_retry_delay(resp(503, "Sun, 06 Nov 1994 08:50:37 GMT")), 60);
    EXPECT_FALSE(requested_retry_delay(resp(500, "7")).has_value());
    EXPECT_FALSE(requested_retry_delay(resp(302, "7")).has_value());
    EXPECT_FALSE(requested_retry_delay(resp(200, "7")).has_value());
    EXPECT_FALSE(requested_retry_delay(resp(503, "")).has_value());
    EXPECT_FALSE(requested_retry_delay(resp(503, "soon")).has_value());
    // At least a second (no hot loop on "0" or a past date), at most the cap.
    EXPECT_EQ(requested_retry_delay(resp(429, "0")), 1);
    EXPECT_EQ(requested_retry_delay(resp(429, "Sun, 06 Nov 1994 08:00:00 GMT")), 1);
    EXPECT_EQ(requested_retry_delay(resp(429, "999999999")), kRetryAfterMaxSeconds);
    EXPECT_EQ(requested_retry_delay(resp(429, "100"), 50), 50);
}

TEST(RetryAfter, CapIsTheLongestStepOfTheWebhookSchedule) {
    int64_t longest = 0;
    for (int i = 1; i < kWebhookMaxAttempts; ++i)
        longest = std::max(longest, webhook_retry_delay_seconds(i).value());
    EXPECT_EQ(kRetryAfterMaxSeconds, longest);
}

TEST(WebhookOutcome, TwoXxDeliversEvenWithAnOversizedBody) {
    EXPECT_EQ(webhook_outcome(resp(200), 0).kind, DeliveryOutcome::kDelivered);
    EXPECT_EQ(webhook_outcome(resp(204), 3).kind, DeliveryOutcome::kDelivered);
    HttpResponse big = resp(200);
    big.too_large = true;
    big.error = "response body exceeds 65536 bytes";
    EXPECT_EQ(webhook_outcome(big, 0).kind, DeliveryOutcome::kDelivered);
    // A 2xx whose exchange broke off (reset, timeout mid-body) is retried: at least once.
    HttpResponse cut = resp(200);
    cut.error = "Recv failure: Connection reset by peer";
    EXPECT_EQ(webhook_outcome(cut, 0).kind, DeliveryOutcome::kRetry);
}

TEST(WebhookOutcome, RetryAfterReplacesTheScheduleButNeverAddsAttempts) {
    DeliveryOutcome o = webhook_outcome(resp(503, "7"), 0);
    EXPECT_EQ(o.kind, DeliveryOutcome::kRetry);
    EXPECT_EQ(o.retry_in_seconds, 7);
    EXPECT_EQ(o.error, "HTTP 503");
    o = webhook_outcome(resp(429, "99999"), 1);
    EXPECT_EQ(o.retry_in_seconds, kRetryAfterMaxSeconds);
    // Without (or with a malformed) Retry-After: the normal schedule.
    EXPECT_EQ(webhook_outcome(resp(503), 0).retry_in_seconds, 5);
    EXPECT_EQ(webhook_outcome(resp(429, "later"), 1).retry_in_seconds, 300);
    EXPECT_EQ(webhook_outcome(resp(500, "7"), 0).retry_in_seconds, 5);
    // The last attempt gives up whatever Retry-After says.
    EXPECT_EQ(webhook_outcome(resp(503, "7"), kWebhookMaxAttempts - 1).kind,
              DeliveryOutcome::kGiveUp);
}

TEST(WebhookOutcome, GoneDisablesRedirectsAreFailures) {
    DeliveryOutcome o = webhook_outcome(resp(410), 0);
    EXPECT_EQ(o.kind, DeliveryOutcome::kGone);
    EXPECT_NE(o.error.find("410"), std::string::npos);
    EXPECT_EQ(webhook_outcome(resp(410), kWebhookMaxAttempts - 1).kind, DeliveryOutcome::kGone);
    for (long s : {301, 302, 303, 307, 308}) {
        o = webhook_outcome(resp(s), 0);
        EXPECT_EQ(o.kind, DeliveryOutcome::kRetry) << s;
        EXPECT_NE(o.error.find("not followed"), std::string::npos) << o.error;
    }
    HttpResponse reset;
    reset.error = "Recv failure: Connection reset by peer";
    o = webhook_outcome(reset, 0);
    EXPECT_EQ(o.kind, DeliveryOutcome::kRetry);
    EXPECT_EQ(o.error, reset.error);
    EXPECT_EQ(o.retry_in_seconds, 5);
}

TEST(DispatchOutcome, GoneIsTerminalAndRetryAfterIsKept) {
    HttpResponse gone = resp(410);
    gone.body = "no such pipeline";
    Outcome o = interpret_http_dispatch(gone);
    EXPECT_EQ(o.kind, Outcome::kFailed);
    EXPECT_FALSE(o.retry);
    EXPECT_TRUE(o.gone);
    EXPECT_NE(o.error.find("410"), std::string::npos);
    EXPECT_NE(o.error.find("no such pipeline"), std::string::npos);

    o = interpret_http_dispatch(resp(503, "42"));
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_EQ(o.retry_after_s, 42);
    EXPECT_FALSE(o.gone);
    o = interpret_http_dispatch(resp(429, "Sun, 06 Nov 1994 08:49:47 GMT"));
    EXPECT_EQ(o.retry_after_s, 10);
    EXPECT_FALSE(interpret_http_dispatch(resp(429)).retry_after_s.has_value());
    EXPECT_FALSE(interpret_http_dispatch(resp(500, "42")).retry_after_s.has_value());
    o = interpret_http_dispatch(resp(302));
    EXPECT_EQ(o.kind, Outcome::kRetry);
    EXPECT_NE(o.error.find("not followed"), std::string::npos) << o.error;
    EXPECT_EQ(airflow_interpret_trigger(resp(503, "30"), "dataflow-1").retry_after_s, 30);
    EXPECT_EQ(airflow_interpret_poll(resp(429, "30")).retry_after_s, 30);
}
