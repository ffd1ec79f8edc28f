// Standard Webhooks (https://www.standardwebhooks.com) signing and the delivery
// retry schedule. Postgres-free: must not include postgres.h.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstdint>
#include <optional>
#include <string>

#include "core/http_client.h"

namespace dataflow {

std::string base64_encode(const std::string& bytes);
// Strict standard alphabet with padding; false on malformed input.
bool base64_decode(const std::string& text, std::string* bytes);

// Raw 32-byte HMAC-SHA256 of `message` under `key`.
std::string hmac_sha256(const std::string& key, const std::string& message);

// Decodes a signing secret: "whsec_" + base64 (the prefix is optional).
bool decode_webhook_secret(const std::string& secret, std::string* key);

// The webhook-signature header value, "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
// Returns "" when the secret is malformed.
std::string webhook_signature(const std::string& secret, const std::string& msg_id,
                              int64_t timestamp, const std::string& body);

// Verifies a webhook-signature header (space-separated list of "v1,<sig>").
bool webhook_verify(const std::string& secret, const std::string& msg_id, int64_t timestamp,
                    const std::string& body, const std::string& signature_header);

// Delay before the next attempt after `failed_attempts` failures (1-based):
// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h; nullopt after the sixth failure (give up).
std::optional<int64_t> webhook_retry_delay_seconds(int failed_attempts);
constexpr int kWebhookMaxAttempts = 7;

// What one delivery attempt means for the delivery and its subscription.
//   kDelivered  a 2xx status (a body over the cap does not matter: only the status does)
//   kGone       410 Gone: the receiver says the endpoint is gone for good; the worker
//               disables the subscription and the delivery waits, pending, for it to be
//               re-enabled (dataflow.enable_subscription)
//   kRetry      anything else, while attempts remain: after the schedule's delay, or
//               after the Retry-After of a 429/503 (clamped to [1 s, 10 h])
//   kGiveUp     anything else after the last attempt
// A Retry-After never grants extra attempts.
struct DeliveryOutcome {
    enum Kind { kDelivered, kRetry, kGiveUp, kGone } kind = kRetry;
    std::string error;                        // why the attempt failed; "" when delivered
    std::optional<int64_t> retry_in_seconds;  // kRetry only
};
DeliveryOutcome webhook_outcome(const HttpResponse& response, int attempts_before);

}  // namespace dataflow
