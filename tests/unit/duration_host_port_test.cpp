// conf/duration.hpp parse_duration and common/net.hpp parse_host_port / HostPort::to_string.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "common/net.hpp"
#include "conf/duration.hpp"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using ::testing::IsEmpty;

TEST(ParseDuration, AcceptsEveryUnit) {
    const struct {
        const char* text;
        int64_t millis;
    } cases[] = {
        {"250ms", 250},  {"5s", 5000}, {"2m", 120000},
        {"1h", 3600000}, {"0s", 0},    {"0ms", 0},
        {"007s", 7000},  {"1ms", 1},   {"8760h", 8760LL * 3600 * 1000},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        Millis out{-1};
        EXPECT_THAT(parse_duration(c.text, out), IsEmpty());
        EXPECT_EQ(out.count(), c.millis);
    }
}

TEST(ParseDuration, RejectsBadText) {
    const struct {
        const char* text;
        const char* keyword;
    } cases[] = {
        {"", "must start with a whole number"},
        {"5", "has no unit"},
        {"s", "must start with a whole number"},
        {"-1s", "must start with a whole number"},
        {"fast", "must start with a whole number"},
        {" 5s", "must start with a whole number"},
        {"5 s", "unknown unit \" s\""},
        {"1.5s", "unknown unit \".5s\""},
        {"5sec", "unknown unit \"sec\""},
        {"5MS", "unknown unit \"MS\""},
        {"5s ", "unknown unit \"s \""},
        {"99999999999999999999s", "too large"},  // does not fit 64 bits
        {"8761h", "too large"},                  // more than a year
        {"9999999999999ms", "too large"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        Millis out{-1};
        const std::string error = parse_duration(c.text, out);
        EXPECT_THAT(error, HasSubstr(c.keyword));
        EXPECT_THAT(error, HasSubstr("\"" + std::string(c.text) + "\""));  // quotes the input
        EXPECT_EQ(out.count(), -1) << "left unchanged on error";
    }
}

TEST(ParseDuration, NoUnitSuggestsOne) {
    Millis out{};
    EXPECT_EQ(parse_duration("5", out),
              "duration \"5\" has no unit (write e.g. \"5s\" or \"5ms\")");
}

TEST(ParseHostPort, AcceptsNamesAndLiterals) {
    const struct {
        const char* text;
        const char* host;
        uint16_t port;
    } cases[] = {
        {"host:80", "host", 80},
        {"http-api-1:8001", "http-api-1", 8001},
        {"a_b.example.com:1", "a_b.example.com", 1},
        {"1.2.3.4:65535", "1.2.3.4", 65535},
        {"0.0.0.0:080", "0.0.0.0", 80},
        {"[::1]:443", "::1", 443},
        {"[2001:db8::7]:9000", "2001:db8::7", 9000},
        {"[::ffff:10.0.0.1]:5", "::ffff:10.0.0.1", 5},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        net::HostPort out;
        EXPECT_THAT(net::parse_host_port(c.text, out), IsEmpty());
        EXPECT_EQ(out.host, c.host);
        EXPECT_EQ(out.port, c.port);
    }
}

TEST(ParseHostPort, RejectsBadText) {
    const struct {
        const char* text;
        const char* keyword;
    } cases[] = {
        {"host", "expected HOST:PORT, found no ':'"},
        {"", "found no ':'"},
        {"host:0", "port 0 is out of range (1-65535)"},
        {"host:70000", "port 70000 is out of range"},
        {"host:65536", "out of range"},
        {"host:abc", "port 'abc' is not a number"},
        {"host:", "port '' is not a number"},
        {"host:-1", "not a number"},
        {"host:+1", "not a number"},
        {"host: 80", "not a number"},
        {"host:80x", "not a number"},
        {"host:99999999999", "port 99999999999 is out of range"},
        {"::1:80", "an IPv6 address must be written in brackets"},
        {"a:80:90", "brackets"},
        {":80", "empty host"},
        {"a b:80", "invalid character ' ' in host name"},
        {"a/b:80", "invalid character '/'"},
        {"[::1:80", "missing ']'"},
        {"[::1]", "expected ':PORT' after ']'"},
        {"[::1]80", "expected ':PORT' after ']'"},
        {"[::1]:", "not a number"},
        {"[zz]:80", "'zz' is not an IPv6 address"},
        {"[1.2.3.4]:80", "is not an IPv6 address"},
        {"[]:80", "is not an IPv6 address"},
        {"[::1]:0", "out of range"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text);
        net::HostPort out{"unchanged", 7};
        EXPECT_THAT(net::parse_host_port(c.text, out), HasSubstr(c.keyword));
        EXPECT_EQ(out.host, "unchanged") << "left unchanged on error";
        EXPECT_EQ(out.port, 7);
    }
}

TEST(ParseHostPort, HostNameLengthLimit) {
    net::HostPort out;
    EXPECT_THAT(net::parse_host_port(std::string(253, 'a') + ":1", out), IsEmpty());
    EXPECT_EQ(out.host.size(), 253u);
    EXPECT_THAT(net::parse_host_port(std::string(254, 'a') + ":1", out),
                HasSubstr("longer than 253"));
}

TEST(HostPortToString, BracketsIpv6Only) {
    EXPECT_EQ((net::HostPort{"host", 80}).to_string(), "host:80");
    EXPECT_EQ((net::HostPort{"10.0.0.1", 65535}).to_string(), "10.0.0.1:65535");
    EXPECT_EQ((net::HostPort{"::1", 443}).to_string(), "[::1]:443");
    EXPECT_EQ((net::HostPort{"2001:db8::7", 9000}).to_string(), "[2001:db8::7]:9000");
}

TEST(HostPortToString, RoundTripsThroughParse) {
    for (const char* text :
         {"host:80", "1.2.3.4:1", "[::1]:443", "[2001:db8::7]:9000", "http-api-1:8001"}) {
        SCOPED_TRACE(text);
        net::HostPort parsed;
        ASSERT_THAT(net::parse_host_port(text, parsed), IsEmpty());
        EXPECT_EQ(parsed.to_string(), text);
        net::HostPort again;
        ASSERT_THAT(net::parse_host_port(parsed.to_string(), again), IsEmpty());
        EXPECT_TRUE(again == parsed);
    }
}

}  // namespace
}  // namespace sluice
