// Outbound address policy for the worker's HTTP traffic (dataflow.http_allow).
//
// Public unicast destinations are allowed. Loopback, private, link-local,
// carrier-grade NAT, unspecified, multicast, reserved and documentation ranges
// are refused unless an allow-list entry covers them. Entries are separated by
// commas or whitespace:
//   10.0.0.0/8, ::1/128     CIDR blocks (a bare address is a /32 or /128)
//   airflow.internal        an exact host name (case-insensitive)
//   .corp.example           every host name ending in .corp.example
//   *                       every destination
// The check runs on the RESOLVED address (curl's open-socket callback), so a
// public name that resolves to 127.0.0.1 is still refused.
// Postgres-free: must not include postgres.h.
#pragma once

#if defined(PG_VERSION_NUM) || defined(POSTGRES_H)
#error "src/core must stay Postgres-free"
#endif

#include <cstdint>
#include <string>
#include <vector>

struct sockaddr;

namespace dataflow {

struct IpAddress {
    bool v6 = false;
    uint8_t bytes[16] = {0};  // IPv4 uses the first 4 bytes
};

// Parses a literal IPv4 or IPv6 address (no brackets, no zone). False if not one.
bool parse_ip(const std::string& text, IpAddress* out);
// Converts a socket address (AF_INET / AF_INET6); false for other families.
bool ip_from_sockaddr(const struct sockaddr* sa, IpAddress* out);
std::string ip_to_string(const IpAddress& ip);

// Why an address is special, or "" when it is ordinary public unicast.
// IPv4-mapped (::ffff:0:0/96), IPv4-translated (::ffff:0:0:0/96) and NAT64
// (64:ff9b::/96) addresses are judged by their embedded IPv4 address, 6to4
// (2002::/16) also by its relay's; IPv4-compatible ::/96 and Teredo are refused.
std::string special_range(const IpAddress& ip);

class NetPolicy {
public:
    // Parses a dataflow.http_allow value. On error returns false and says why.
    static bool parse(const std::string& allow, NetPolicy* out, std::string* error);

    // May a connection to `ip`, reached through the URL host `host`, be opened?
    // On refusal `why` explains it (safe to log: no credentials).
    bool address_allowed(const IpAddress& ip, const std::string& host, std::string* why) const;

    bool allow_all() const { return allow_all_; }

private:
    struct Cidr {
        IpAddress base;
        int prefix = 0;
    };
    bool allow_all_ = false;
    std::vector<Cidr> cidrs_;
    std::vector<std::string> hosts_;     // exact names, lower case
    std::vector<std::string> suffixes_;  // ".corp.example", lower case
    bool host_listed(const std::string& host) const;
};

// URL checks done before a request is started: only http:// and https://, with a
// host. Returns "" when acceptable, else the reason. Sets *host (lower case).
std::string check_url(const std::string& url, std::string* host);

// A header name must be an RFC 7230 token; a value must not contain CR, LF or NUL.
bool valid_header(const std::string& name, const std::string& value);

}  // namespace dataflow
