// Outbound address policy: special ranges, allow-list entries, URL and header checks.
#include <gtest/gtest.h>

#include "core/net_policy.h"

using namespace dataflow;

namespace {
IpAddress ip(const char* s) {
    IpAddress a;
    EXPECT_TRUE(parse_ip(s, &a)) << s;
    return a;
}
bool allowed(const NetPolicy& p, const char* addr, const std::string& host = "") {
    std::string why;
    return p.address_allowed(ip(addr), host, &why);
}
NetPolicy policy(const std::string& allow) {
    NetPolicy p;
    std::string err;
    EXPECT_TRUE(NetPolicy::parse(allow, &p, &err)) << err;
    return p;
}
}  // namespace

TEST(NetPolicy, RefusesSpecialRangesByDefault) {
    NetPolicy p = policy("");
    for (const char* a : {"127.0.0.1",
                          "127.8.9.10",
                          "10.1.2.3",
                          "172.16.0.1",
                          "172.31.255.255",
                          "192.168.1.1",
                          "169.254.169.254",
                          "0.0.0.0",
                          "100.64.0.1",
                          "224.0.0.1",
                          "255.255.255.255",
                          "::1",
                          "::",
                          "fe80::1",
                          "fc00::1",
                          "fd12:3456::1",
                          "ff02::1",
                          "::ffff:127.0.0.1",
                          "::ffff:10.0.0.1",
                          "64:ff9b::a9fe:a9fe"})
        EXPECT_FALSE(allowed(p, a)) << a;
}

// Every IPv6 spelling of an internal IPv4 host, and the IPv6 ranges that tunnel or
// translate to one, is refused by default and named in the refusal.
TEST(NetPolicy, RefusesIpv6FormsOfInternalIpv4) {
    NetPolicy p = policy("");
    struct Case {
        const char* addr;
        const char* why;
    } cases[] = {
        {"::ffff:7f00:1", "loopback (127.0.0.0/8)"},         // IPv4-mapped
        {"::ffff:0:7f00:1", "loopback (127.0.0.0/8)"},       // IPv4-translated (SIIT)
        {"64:ff9b::7f00:1", "loopback (127.0.0.0/8)"},       // NAT64 well-known prefix
        {"64:ff9b::a9fe:a9fe", "link-local"},                // NAT64 of cloud metadata
        {"::127.0.0.1", "IPv4-compatible"},                  // deprecated ::/96
        {"::8.8.8.8", "IPv4-compatible"},                    // deprecated whatever it embeds
        {"2002:7f00:1::1", "6to4 (2002::/16) of loopback"},  // 6to4 relay on loopback
        {"2002:a00:1::", "6to4 (2002::/16) of private"},
        {"2001:0:4136:e378::1", "Teredo"},
        {"fd00:ec2::254", "unique local"},  // AWS metadata over IPv6
        {"0:0:0:0:0:0:0:1", "loopback (::1)"},
    };
    for (const Case& c : cases) {
        std::string why;
        EXPECT_FALSE(p.address_allowed(ip(c.addr), "", &why)) << c.addr;
        EXPECT_NE(why.find(c.why), std::string::npos) << c.addr << ": " << why;
    }
    EXPECT_TRUE(allowed(p, "2002:808:808::1"));  // 6to4 of a public relay is ordinary
    EXPECT_TRUE(allowed(p, "64:ff9b::808:808"));
    // A listed IPv4 range covers the IPv4 host's own IPv6 spellings, not 6to4 networks
    // behind it nor the deprecated compatible form.
    NetPolicy lo = policy("127.0.0.1/32");
    EXPECT_TRUE(allowed(lo, "::ffff:127.0.0.1"));
    EXPECT_TRUE(allowed(lo, "::ffff:0:127.0.0.1"));
    EXPECT_FALSE(allowed(lo, "2002:7f00:1::1"));
    EXPECT_FALSE(allowed(lo, "::127.0.0.1"));
    EXPECT_FALSE(allowed(lo, "::ffff:127.0.0.2"));
}

TEST(NetPolicy, AllowsPublicUnicast) {
    NetPolicy p = policy("");
    for (const char* a : {"8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700:4700::1111",
                          "::ffff:8.8.8.8"})
        EXPECT_TRUE(allowed(p, a)) << a;
}

TEST(NetPolicy, RefusalExplainsItself) {
    NetPolicy p = policy("");
    std::string why;
    EXPECT_FALSE(p.address_allowed(ip("169.254.169.254"), "metadata", &why));
    EXPECT_NE(why.find("link-local"), std::string::npos) << why;
    EXPECT_NE(why.find("169.254.169.254"), std::string::npos) << why;
}

TEST(NetPolicy, CidrEntriesOpenOnlyTheirRange) {
    NetPolicy p = policy("127.0.0.1/32, 10.0.0.0/8 fd00::/8");
    EXPECT_TRUE(allowed(p, "127.0.0.1"));
    EXPECT_FALSE(allowed(p, "127.0.0.2"));
    EXPECT_TRUE(allowed(p, "10.200.3.4"));
    EXPECT_TRUE(allowed(p, "::ffff:10.0.0.1"));  // mapped form of a listed address
    EXPECT_TRUE(allowed(p, "fd00::5"));
    EXPECT_FALSE(allowed(p, "192.168.0.1"));
    EXPECT_TRUE(allowed(policy("::1"), "::1"));
    EXPECT_TRUE(allowed(policy("172.16.0.0/12"), "172.20.1.1"));
    EXPECT_FALSE(allowed(policy("172.16.0.0/13"), "172.24.1.1"));
}

TEST(NetPolicy, HostEntriesMatchTheUrlHost) {
    NetPolicy p = policy("airflow.internal,.corp.example");
    EXPECT_TRUE(allowed(p, "10.0.0.7", "airflow.internal"));
    EXPECT_TRUE(allowed(p, "10.0.0.7", "AIRFLOW.internal"));
    EXPECT_TRUE(allowed(p, "10.0.0.7", "etl.corp.example"));
    EXPECT_FALSE(allowed(p, "10.0.0.7", "corp.example"));
    EXPECT_FALSE(allowed(p, "10.0.0.7", "evilcorp.example"));
    EXPECT_FALSE(allowed(p, "10.0.0.7", "other.internal"));
    EXPECT_FALSE(allowed(p, "10.0.0.7", ""));
}

TEST(NetPolicy, StarAllowsEverything) {
    NetPolicy p = policy("*");
    EXPECT_TRUE(p.allow_all());
    EXPECT_TRUE(allowed(p, "127.0.0.1"));
}

TEST(NetPolicy, ParseErrors) {
    NetPolicy p;
    std::string err;
    EXPECT_FALSE(NetPolicy::parse("10.0.0.0/33", &p, &err));
    EXPECT_FALSE(NetPolicy::parse("::1/129", &p, &err));
    EXPECT_FALSE(NetPolicy::parse("10.0.0.0/", &p, &err));
    EXPECT_FALSE(NetPolicy::parse("bad host!", &p, &err));
    EXPECT_FALSE(NetPolicy::parse("host/8", &p, &err));
    EXPECT_FALSE(NetPolicy::parse(".", &p, &err));
    EXPECT_TRUE(NetPolicy::parse(" , ,", &p, &err));
}

TEST(CheckUrl, OnlyHttpAndHttps) {
    std::string host;
    EXPECT_EQ(check_url("http://example.com/x", &host), "");
    EXPECT_EQ(host, "example.com");
    EXPECT_EQ(check_url("HTTPS://Example.COM:8443/a?b=c", &host), "");
    EXPECT_EQ(host, "example.com");
    EXPECT_EQ(check_url("http://[::1]:8080/", &host), "");
    EXPECT_EQ(host, "::1");
    EXPECT_NE(check_url("file:///etc/passwd", &host), "");
    EXPECT_NE(check_url("gopher://example.com/", &host), "");
    EXPECT_NE(check_url("ftp://example.com/", &host), "");
    EXPECT_NE(check_url("not a url", &host), "");
    EXPECT_NE(check_url("http://example.com/\r\nX-Evil: 1", &host), "");
    EXPECT_NE(check_url("", &host), "");
}

TEST(Headers, RefuseInjection) {
    EXPECT_TRUE(valid_header("webhook-id", "msg_1"));
    EXPECT_TRUE(valid_header("Authorization", "Bearer abc.def"));
    EXPECT_FALSE(valid_header("X-A", "a\r\nX-B: b"));
    EXPECT_FALSE(valid_header("X-A", "a\nb"));
    EXPECT_FALSE(valid_header("X A", "v"));
    EXPECT_FALSE(valid_header("X:A", "v"));
    EXPECT_FALSE(valid_header("", "v"));
    EXPECT_FALSE(valid_header("X", std::string("a\0b", 3)));
}
