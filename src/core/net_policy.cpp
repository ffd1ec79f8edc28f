// Outbound address policy: special-purpose ranges, allow-list parsing, URL checks.
#include "core/net_policy.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <iterator>
#include <memory>

namespace dataflow {
namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
    return s;
}

bool prefix_match(const IpAddress& ip, const IpAddress& base, int prefix) {
    if (ip.v6 != base.v6) return false;
    int full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(ip.bytes, base.bytes, full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xFF << (8 - rest));
    return (ip.bytes[full] & mask) == (base.bytes[full] & mask);
}

struct Range {
    const char* base;
    int prefix;
    const char* why;
};

// IANA special-purpose registries (RFC 6890 and successors), plus multicast.
const Range kV4Special[] = {
    {"0.0.0.0", 8, "unspecified (0.0.0.0/8)"},
    {"10.0.0.0", 8, "private (10.0.0.0/8)"},
    {"100.64.0.0", 10, "shared address space (100.64.0.0/10)"},
    {"127.0.0.0", 8, "loopback (127.0.0.0/8)"},
    {"169.254.0.0", 16, "link-local (169.254.0.0/16)"},
    {"172.16.0.0", 12, "private (172.16.0.0/12)"},
    {"192.0.0.0", 24, "IETF protocol assignments (192.0.0.0/24)"},
    {"192.0.2.0", 24, "documentation (192.0.2.0/24)"},
    {"192.88.99.0", 24, "6to4 relay anycast (192.88.99.0/24)"},
    {"192.168.0.0", 16, "private (192.168.0.0/16)"},
    {"198.18.0.0", 15, "benchmarking (198.18.0.0/15)"},
    {"198.51.100.0", 24, "documentation (198.51.100.0/24)"},
    {"203.0.113.0", 24, "documentation (203.0.113.0/24)"},
    {"224.0.0.0", 4, "multicast (224.0.0.0/4)"},
    {"240.0.0.0", 4, "reserved (240.0.0.0/4)"},
};
const Range kV6Special[] = {
    {"::", 128, "unspecified (::)"},
    {"::1", 128, "loopback (::1)"},
    // ::a.b.c.d, deprecated by RFC 4291; never a real destination, whatever it embeds
    {"::", 96, "IPv4-compatible (deprecated, ::/96)"},
    {"64:ff9b:1::", 48, "local-use translation (64:ff9b:1::/48)"},
    {"100::", 64, "discard-only (100::/64)"},
    {"2001::", 32, "Teredo (2001::/32)"},
    {"2001:2::", 48, "benchmarking (2001:2::/48)"},
    {"2001:db8::", 32, "documentation (2001:db8::/32)"},
    {"fc00::", 7, "unique local (fc00::/7)"},
    {"fe80::", 10, "link-local (fe80::/10)"},
    {"fec0::", 10, "site-local (fec0::/10)"},
    {"ff00::", 8, "multicast (ff00::/8)"},
};

// IPv6 forms that stand for an IPv4 host and are judged (and allowed) as that
// host: IPv4-mapped ::ffff:a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d (SIIT) and
// the NAT64 well-known prefix 64:ff9b::a.b.c.d.
bool embedded_v4(const IpAddress& ip, IpAddress* v4) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    static const uint8_t translated[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xFF, 0x9B, 0, 0, 0, 0, 0, 0, 0, 0};
    if (!ip.v6) return false;
    if (std::memcmp(ip.bytes, mapped, 12) != 0 && std::memcmp(ip.bytes, translated, 12) != 0 &&
        std::memcmp(ip.bytes, nat64, 12) != 0)
        return false;
    *v4 = IpAddress{};
    std::memcpy(v4->bytes, ip.bytes + 12, 4);
    return true;
}

// A 6to4 address 2002:AABB:CCDD::/48 routes through the IPv4 host A.B.C.D: special when
// that host is. Judged only, never allowed through an IPv4 entry (the destination is
// another machine behind it).
bool sixto4_v4(const IpAddress& ip, IpAddress* v4) {
    if (!ip.v6 || ip.bytes[0] != 0x20 || ip.bytes[1] != 0x02) return false;
    *v4 = IpAddress{};
    std::memcpy(v4->bytes, ip.bytes + 2, 4);
    return true;
}

struct UrlDeleter {
    void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlStr {
    char* p = nullptr;
    ~CurlStr() { curl_free(p); }
};

}  // namespace

bool parse_ip(const std::string& text, IpAddress* out) {
    IpAddress ip;
    if (inet_pton(AF_INET, text.c_str(), ip.bytes) == 1) {
        *out = ip;
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), ip.bytes) == 1) {
        ip.v6 = true;
        *out = ip;
        return true;
    }
    return false;
}

bool ip_from_sockaddr(const struct sockaddr* sa, IpAddress* out) {
    if (sa == nullptr) return false;
    IpAddress ip;
    if (sa->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
        std::memcpy(ip.bytes, &in->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
        std::memcpy(ip.bytes, &in6->sin6_addr, 16);
        ip.v6 = true;
    } else {
        return false;
    }
    *out = ip;
    return true;
}

std::string ip_to_string(const IpAddress& ip) {
    char buf[INET6_ADDRSTRLEN] = {0};
    inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes, buf, sizeof buf);
    return buf;
}

std::string special_range(const IpAddress& ip) {
    IpAddress v4;
    if (embedded_v4(ip, &v4)) return special_range(v4);
    if (sixto4_v4(ip, &v4)) {
        std::string inner = special_range(v4);
        if (!inner.empty()) return "6to4 (2002::/16) of " + inner;
    }
    const Range* table = ip.v6 ? kV6Special : kV4Special;
    size_t count = ip.v6 ? std::size(kV6Special) : std::size(kV4Special);
    for (size_t i = 0; i < count; ++i) {
        const Range& r = table[i];
        IpAddress base;
        parse_ip(r.base, &base);
        if (prefix_match(ip, base, r.prefix)) return r.why;
    }
    if (!ip.v6 && ip.bytes[0] == 255 && ip.bytes[1] == 255 && ip.bytes[2] == 255 &&
        ip.bytes[3] == 255)
        return "broadcast (255.255.255.255)";
    return "";
}

bool NetPolicy::parse(const std::string& allow, NetPolicy* out, std::string* error) {
    NetPolicy p;
    std::string item;
    auto flush = [&](void) -> bool {
        if (item.empty()) return true;
        std::string entry = lower(item);
        item.clear();
        if (entry == "*") {
            p.allow_all_ = true;
            return true;
        }
        size_t slash = entry.find('/');
        IpAddress ip;
        if (parse_ip(entry.substr(0, slash), &ip)) {
            int max = ip.v6 ? 128 : 32, prefix = max;
            if (slash != std::string::npos) {
                std::string bits = entry.substr(slash + 1);
                if (bits.empty() || bits.size() > 3 ||
                    !std::all_of(bits.begin(), bits.end(),
                                 [](unsigned char c) { return std::isdigit(c); }) ||
                    std::stoi(bits) > max) {
                    *error = "invalid prefix length in \"" + entry + "\"";
                    return false;
                }
                prefix = std::stoi(bits);
            }
            p.cidrs_.push_back(Cidr{ip, prefix});
            return true;
        }
        if (slash != std::string::npos) {
            *error = "invalid CIDR \"" + entry + "\"";
            return false;
        }
        for (unsigned char c : entry) {
            if (!(std::isalnum(c) || c == '-' || c == '.' || c == '_')) {
                *error = "invalid host name \"" + entry + "\"";
                return false;
            }
        }
        if (entry[0] == '.') {
            if (entry.size() < 2) {
                *error = "empty domain suffix";
                return false;
            }
            p.suffixes_.push_back(entry);
        } else {
            p.hosts_.push_back(entry);
        }
        return true;
    };
    for (char c : allow) {
        if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
            if (!flush()) return false;
        } else {
            item.push_back(c);
        }
    }
    if (!flush()) return false;
    *out = std::move(p);
    return true;
}

bool NetPolicy::host_listed(const std::string& host) const {
    std::string h = lower(host);
    if (std::find(hosts_.begin(), hosts_.end(), h) != hosts_.end()) return true;
    for (const std::string& s : suffixes_)
        if (h.size() > s.size() && h.compare(h.size() - s.size(), s.size(), s) == 0) return true;
    return false;
}

bool NetPolicy::address_allowed(const IpAddress& ip, const std::string& host,
                                std::string* why) const {
    std::string special = special_range(ip);
    if (special.empty() || allow_all_) return true;
    IpAddress v4;
    bool has_v4 = embedded_v4(ip, &v4);
    for (const Cidr& c : cidrs_) {
        if (prefix_match(ip, c.base, c.prefix)) return true;
        if (has_v4 && prefix_match(v4, c.base, c.prefix)) return true;
    }
    if (!host.empty() && host_listed(host)) return true;
    if (why != nullptr)
        *why = "destination " + ip_to_string(ip) + " is " + special +
               " and not listed in dataflow.http_allow";
    return false;
}

std::string check_url(const std::string& url, std::string* host) {
    if (url.size() > 8192) return "URL is longer than 8192 bytes";
    for (unsigned char c : url)
        if (c <= 0x20 || c == 0x7F) return "URL contains whitespace or control characters";
    std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
    if (!u) return "out of memory";
    if (curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) return "malformed URL";
    CurlStr scheme, h;
    if (curl_url_get(u.get(), CURLUPART_SCHEME, &scheme.p, 0) != CURLUE_OK)
        return "URL has no scheme";
    std::string s = lower(scheme.p);
    if (s != "http" && s != "https")
        return "only http:// and https:// URLs are allowed (got " + s + "://)";
    if (curl_url_get(u.get(), CURLUPART_HOST, &h.p, 0) != CURLUE_OK || h.p[0] == '\0')
        return "URL has no host";
    std::string hs = lower(h.p);
    if (hs.size() > 2 && hs.front() == '[' && hs.back() == ']') hs = hs.substr(1, hs.size() - 2);
    if (host != nullptr) *host = hs;
    return "";
}

bool valid_header(const std::string& name, const std::string& value) {
    static const char* kTokenPunct = "!#$%&'*+-.^_`|~";
    if (name.empty()) return false;
    for (unsigned char c : name)
        if (!std::isalnum(c) && std::strchr(kTokenPunct, c) == nullptr) return false;
    for (unsigned char c : value)
        if (c == '\r' || c == '\n' || c == '\0') return false;
    return true;
}

}  // namespace dataflow
