// Standard Webhooks signing (HMAC-SHA256 through OpenSSL's libcrypto) and retries.
#include "core/webhook.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <sstream>

namespace dataflow {
namespace {
const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Constant-time comparison so verification leaks no prefix length.
bool same(const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}
}  // namespace

std::string base64_encode(const std::string& bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        uint32_t v =
            (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    size_t rest = bytes.size() - i;
    if (rest == 1) {
        uint32_t v = uint8_t(bytes[i]) << 16;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += "==";
    } else if (rest == 2) {
        uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += '=';
    }
    return out;
}

bool base64_decode(const std::string& text, std::string* bytes) {
    if (text.size() % 4 != 0) return false;
    std::string out;
    out.reserve(text.size() / 4 * 3);
    for (size_t i = 0; i < text.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            unsigned char c = text[i + k];
            if (c == '=' && i + 4 == text.size() && k >= 2) {
                v[k] = 0;
                ++pad;
            } else if (pad > 0 || (v[k] = b64_value(c)) < 0) {
                return false;
            }
        }
        uint32_t w = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
        out += char((w >> 16) & 0xFF);
        if (pad < 2) out += char((w >> 8) & 0xFF);
        if (pad < 1) out += char(w & 0xFF);
    }
    *bytes = std::move(out);
    return true;
}

std::string hmac_sha256(const std::string& key, const std::string& message) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), md,
             &len) == nullptr)
        return "";
    return std::string(reinterpret_cast<char*>(md), len);
}

bool decode_webhook_secret(const std::string& secret, std::string* key) {
    std::string b64 = secret.rfind("whsec_", 0) == 0 ? secret.substr(6) : secret;
    return !b64.empty() && base64_decode(b64, key) && !key->empty();
}

std::string webhook_signature(const std::string& secret, const std::string& msg_id,
                              int64_t timestamp, const std::string& body) {
    std::string key;
    if (!decode_webhook_secret(secret, &key)) return "";
    std::string mac = hmac_sha256(key, msg_id + "." + std::to_string(timestamp) + "." + body);
    if (mac.empty()) return "";
    return "v1," + base64_encode(mac);
}

bool webhook_verify(const std::string& secret, const std::string& msg_id, int64_t timestamp,
                    const std::string& body, const std::string& signature_header) {
    std::string expected = webhook_signature(secret, msg_id, timestamp, body);
    if (expected.empty()) return false;
    std::istringstream in(signature_header);
    std::string sig;
    bool ok = false;
    while (in >> sig) ok |= same(sig, expected);
    return ok;
}

std::optional<int64_t> webhook_retry_delay_seconds(int failed_attempts) {
    static const int64_t kDelays[] = {5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600};
    if (failed_attempts < 1 || failed_attempts > 6) return std::nullopt;
    return kDelays[failed_attempts - 1];
}

DeliveryOutcome webhook_outcome(const HttpResponse& r, int attempts_before) {
    DeliveryOutcome o;
    bool two_xx = r.status >= 200 && r.status <= 299;
    if (two_xx && (r.error.empty() || r.too_large)) {
        o.kind = DeliveryOutcome::kDelivered;
        return o;
    }
    if (r.status == 410) {
        o.kind = DeliveryOutcome::kGone;
        o.error =
            "HTTP 410 Gone: the receiver says this endpoint no longer exists; "
            "subscription disabled";
        return o;
    }
    o.error = response_error(r);
    std::optional<int64_t> delay = webhook_retry_delay_seconds(attempts_before + 1);
    if (!delay) {
        o.kind = DeliveryOutcome::kGiveUp;
        return o;
    }
    std::optional<int64_t> asked = requested_retry_delay(r);
    o.kind = DeliveryOutcome::kRetry;
    o.retry_in_seconds = asked ? *asked : *delay;
    return o;
}

}  // namespace dataflow
