// Standard Webhooks signing, base64 and the delivery retry schedule.
#include <gtest/gtest.h>

#include "core/webhook.h"

using namespace dataflow;

TEST(Webhook, StandardWebhooksReferenceVector) {
    // The reference vector published with the Standard Webhooks specification.
    const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const std::string id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const std::string body = "{\"test\": 2432232314}";
    EXPECT_EQ(webhook_signature(secret, id, 1614265330, body),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    // The whsec_ prefix is optional.
    EXPECT_EQ(webhook_signature("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id, 1614265330, body),
              "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST(Webhook, VerifyAcceptsAnyListedSignatureAndRejectsTampering) {
    const std::string secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const std::string id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const std::string body = "{\"test\": 2432232314}";
    std::string good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    EXPECT_TRUE(webhook_verify(secret, id, 1614265330, body, good));
    EXPECT_TRUE(webhook_verify(secret, id, 1614265330, body, "v1,bm9wZQ== " + good));
    EXPECT_FALSE(webhook_verify(secret, id, 1614265331, body, good));
    EXPECT_FALSE(webhook_verify(secret, id, 1614265330, body + " ", good));
    EXPECT_FALSE(webhook_verify(secret, "msg_other", 1614265330, body, good));
    EXPECT_FALSE(webhook_verify("whsec_bm90IHRoZSBrZXk=", id, 1614265330, body, good));
    EXPECT_FALSE(webhook_verify(secret, id, 1614265330, body, ""));
}

TEST(Webhook, MalformedSecretGivesNoSignature) {
    EXPECT_EQ(webhook_signature("whsec_", "id", 1, "{}"), "");
    EXPECT_EQ(webhook_signature("whsec_!!!!", "id", 1, "{}"), "");
    EXPECT_EQ(webhook_signature("whsec_abc", "id", 1, "{}"), "");  // not a multiple of 4
}

TEST(Base64, RoundTripsAllLengthsAndRejectsGarbage) {
    std::string bytes;
    for (int i = 0; i < 40; ++i) {
        std::string decoded;
        std::string enc = base64_encode(bytes);
        ASSERT_TRUE(base64_decode(enc, &decoded)) << enc;
        EXPECT_EQ(decoded, bytes);
        bytes.push_back(static_cast<char>(i * 37 + 200));
    }
    EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
    EXPECT_EQ(base64_encode("fo"), "Zm8=");
    std::string out;
    EXPECT_FALSE(base64_decode("Zm9=v", &out));
    EXPECT_FALSE(base64_decode("Zm=8", &out));
    EXPECT_FALSE(base64_decode("Zm8*", &out));
    EXPECT_FALSE(base64_decode("=Zm8", &out));
}

TEST(Hmac, Rfc4231TestCase2) {
    std::string mac = hmac_sha256("Jefe", "what do ya want for nothing?");
    static const char* hex = "0123456789abcdef";
    std::string h;
    for (unsigned char c : mac) {
        h += hex[c >> 4];
        h += hex[c & 15];
    }
    EXPECT_EQ(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(WebhookRetry, ScheduleThenGiveUp) {
    EXPECT_EQ(webhook_retry_delay_seconds(1).value(), 5);
    EXPECT_EQ(webhook_retry_delay_seconds(2).value(), 300);
    EXPECT_EQ(webhook_retry_delay_seconds(3).value(), 1800);
    EXPECT_EQ(webhook_retry_delay_seconds(4).value(), 7200);
    EXPECT_EQ(webhook_retry_delay_seconds(5).value(), 18000);
    EXPECT_EQ(webhook_retry_delay_seconds(6).value(), 36000);
    EXPECT_FALSE(webhook_retry_delay_seconds(7).has_value());
    EXPECT_FALSE(webhook_retry_delay_seconds(0).has_value());
    EXPECT_EQ(kWebhookMaxAttempts, 7);
}
