// worker/proxy_protocol: the header bytes against the examples in HAProxy's
// doc/proxy-protocol.txt (version 1 lines, version 2 signature, command, family, length,
// and addresses and ports in network byte order).

#include "worker/proxy_protocol.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "common/unique_fd.hpp"
#include "worker/connection.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <string>
#include <vector>

namespace sluice::worker {
namespace {

net::Endpoint endpoint(const char* address, uint16_t port) {
    net::Endpoint e;
    if (std::strchr(address, ':') == nullptr) {
        auto* in = reinterpret_cast<sockaddr_in*>(&e.storage);
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        EXPECT_EQ(inet_pton(AF_INET, address, &in->sin_addr), 1) << address;
        e.length = sizeof(sockaddr_in);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&e.storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        EXPECT_EQ(inet_pton(AF_INET6, address, &in6->sin6_addr), 1) << address;
        e.length = sizeof(sockaddr_in6);
    }
    return e;
}

std::string v1(const net::Endpoint& client, const net::Endpoint& destination) {
    char out[kMaxProxyHeader];
    return std::string(out, proxy_header_v1(client, destination, out));
}

std::vector<unsigned char> v2(const net::Endpoint& client, const net::Endpoint& destination) {
    char out[kMaxProxyHeader];
    const size_t n = proxy_header_v2(client, destination, out);
    return {reinterpret_cast<unsigned char*>(out), reinterpret_cast<unsigned char*>(out) + n};
}

const std::vector<unsigned char> kSignature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                               0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

std::vector<unsigned char> concat(std::vector<std::vector<unsigned char>> parts) {
    std::vector<unsigned char> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

TEST(ProxyHeaderV1, Tcp4AsInTheSpec) {
    EXPECT_EQ(v1(endpoint("192.168.0.1", 56324), endpoint("192.168.0.11", 443)),
              "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
}

TEST(ProxyHeaderV1, Tcp6) {
    EXPECT_EQ(v1(endpoint("2001:db8::1", 56324), endpoint("::1", 443)),
              "PROXY TCP6 2001:db8::1 ::1 56324 443\r\n");
}

TEST(ProxyHeaderV1, TheSpecsWorstCaseFitsTheBuffer) {
    // "PROXY TCP6 ffff:...:ffff ffff:...:ffff 65535 65535\r\n": 104 bytes, the spec's longest
    // line, which with its NUL must fit kMaxProxyHeader (108 in the spec).
    const char* all_f = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    const std::string line = v1(endpoint(all_f, 65535), endpoint(all_f, 65535));
    EXPECT_EQ(line, std::string("PROXY TCP6 ") + all_f + " " + all_f + " 65535 65535\r\n");
    EXPECT_EQ(line.size(), 104u);
    EXPECT_LT(line.size(), kMaxProxyHeader);
}

TEST(ProxyHeaderV2, Tcp4) {
    const auto header = v2(endpoint("192.168.0.1", 56324), endpoint("192.168.0.11", 443));
    const auto expected = concat({
        kSignature,
        {0x21},             // version 2, command PROXY
        {0x11},             // AF_INET, STREAM
        {0x00, 0x0C},       // 12 bytes follow, big-endian
        {192, 168, 0, 1},   // source address
        {192, 168, 0, 11},  // destination address
        {0xDC, 0x04},       // source port 56324, big-endian
        {0x01, 0xBB},       // destination port 443
    });
    EXPECT_EQ(header, expected);
    EXPECT_EQ(header.size(), 16u + 12u);
}

TEST(ProxyHeaderV2, Tcp6) {
    const auto header = v2(endpoint("2001:db8::1", 56324), endpoint("::1", 443));
    const auto expected = concat({
        kSignature,
        {0x21},        // version 2, command PROXY
        {0x21},        // AF_INET6, STREAM
        {0x00, 0x24},  // 36 bytes follow
        {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01},
        {0xDC, 0x04},
        {0x01, 0xBB},
    });
    EXPECT_EQ(header, expected);
    EXPECT_EQ(header.size(), 16u + 36u);
    EXPECT_LE(header.size(), kMaxProxyHeader);
}

TEST(ProxyHeader, MixedOrUnknownFamiliesWriteNothing) {
    const net::Endpoint v4 = endpoint("192.168.0.1", 1);
    const net::Endpoint v6 = endpoint("::1", 2);
    net::Endpoint unix_socket;
    unix_socket.storage.ss_family = AF_UNIX;
    unix_socket.length = sizeof(sockaddr_un);
    char out[kMaxProxyHeader];
    EXPECT_EQ(proxy_header_v1(v4, v6, out), 0u);
    EXPECT_EQ(proxy_header_v1(v6, v4, out), 0u);
    EXPECT_EQ(proxy_header_v2(v4, v6, out), 0u);
    EXPECT_EQ(proxy_header_v1(unix_socket, unix_socket, out), 0u);
    EXPECT_EQ(proxy_header_v2(unix_socket, unix_socket, out), 0u);
}

// A header that cannot be built (here: a client address of another family than the address
// it reached) is an error, and nothing is sent: the connection must not be relayed without it.
TEST(SendProxyHeader, FailsClosedWhenNoHeaderCanBeBuilt) {
    UniqueFd listener = net::listen_tcp({"127.0.0.1", 0}, 1);
    UniqueFd client =
        net::connect_with_timeout(net::local_endpoint(listener.get()), std::chrono::seconds(5));
    ASSERT_TRUE(client.valid());
    int target[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, target), 0);
    const UniqueFd target_near(target[0]), target_far(target[1]);
    TargetConfig config;
    for (const ProxyProtocol version : {ProxyProtocol::v1, ProxyProtocol::v2}) {
        config.send_proxy = version;
        EXPECT_EQ(send_proxy_header(client.get(), endpoint("2001:db8::1", 4000), config,
                                    target_near.get(), std::chrono::seconds(5)),
                  EAFNOSUPPORT);
        char byte = 0;
        EXPECT_EQ(::recv(target_far.get(), &byte, 1, 0), -1) << "a header was sent";
        EXPECT_EQ(errno, EAGAIN);
    }
    config.send_proxy = ProxyProtocol::v1;
    EXPECT_EQ(send_proxy_header(client.get(), endpoint("192.0.2.7", 4000), config,
                                target_near.get(), std::chrono::seconds(5)),
              0);
    char line[128] = {};
    const ssize_t n = ::recv(target_far.get(), line, sizeof line - 1, 0);
    ASSERT_GT(n, 0);
    EXPECT_EQ(std::string(line, 20), "PROXY TCP4 192.0.2.7");
}

}  // namespace
}  // namespace sluice::worker
